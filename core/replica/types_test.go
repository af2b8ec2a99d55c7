package replica

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

const typedSchema = `
scalar Email @pattern(regex: "^[^@ ]+@[^@ ]+$") @length(max: 40)
scalar Copies @base(type: Int) @range(min: 1, max: 9)
enum LoanStatus { OPEN RETURNED }
type Loan {
  status: LoanStatus! @default(value: OPEN)
  history: [LoanStatus!]
  flags: [LoanStatus!] @set
  contact: Email
  copies: Copies
}`

func foundTyped(t *testing.T, admin core.PrivateKey) *Replica {
	t.Helper()
	r := openMem(t)
	if _, err := r.Found(context.Background(), admin, "typed", typedSchema, nil, 1_000_000); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestTypedValuesRefusedAlikeLocallyAndReceived: a value an operator-defined
// type refuses is refused by its author's replica, naming the type's rule,
// and a peer that receives the same change (built and signed around the
// local check, as a hostile client would) reaches the same verdict on every
// replica, in any order; a valid one is accepted both ways.
func TestTypedValuesRefusedAlikeLocallyAndReceived(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	clk := &clock{}
	r := foundTyped(t, admin)
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Loan", Doc: "l1", Fields: map[string]any{"contact": "a@b", "copies": int64(2), "history": []any{"OPEN"}}})
	if d, ok, err := r.Get("Loan", "l1"); !ok || err != nil || d.Fields["status"] != "OPEN" {
		t.Fatalf("l1 = %+v, %v, %v: want stored with its default status OPEN", d, ok, err)
	}
	bad := map[string]struct {
		op   core.Op
		want string
	}{
		"enum value":         {core.Op{Kind: core.OpCreate, Coll: "Loan", Doc: "x", Fields: map[string]any{"status": "LOST"}}, `"LOST" is not a value of enum LoanStatus`},
		"enum value set":     {core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "status", Value: "open"}, `"open" is not a value of enum LoanStatus`},
		"enum list element":  {core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "history", Value: []any{"OPEN", "GONE"}}, `history[1]: "GONE"`},
		"enum set element":   {core.Op{Kind: core.OpAdd, Coll: "Loan", Doc: "l1", Field: "flags", Value: "MAYBE"}, `"MAYBE" is not a value`},
		"enum wrong kind":    {core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "status", Value: int64(1)}, "want LoanStatus"},
		"scalar pattern":     {core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "contact", Value: "nobody"}, `Email: "nobody" does not match`},
		"scalar length":      {core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "contact", Value: strings.Repeat("a", 40) + "@b"}, "Email: 42 characters, at most 40"},
		"scalar range":       {core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "copies", Value: int64(10)}, "Copies: 10 is above the maximum 9"},
		"required enum null": {core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "status", Value: nil}, "status is required"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			before := fingerprint(t, r)
			_, err := r.Write(ctx, admin, []core.Op{tc.op}, clk.now())
			if !errors.Is(err, core.ErrSchemaViolation) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("local write: %v, want a schema violation naming %q", err, tc.want)
			}
			if after := fingerprint(t, r); after != before {
				t.Fatalf("a refused write changed the store:\n%s", printDiff(before, after))
			}
			// The same change, made without the local check, as a peer sends it.
			env, id := signRaw(t, nextChange(t, r, admin, clk.now(), tc.op), admin)
			all, err := r.Export(nil)
			if err != nil {
				t.Fatal(err)
			}
			valid, reason := everyReplicaAgrees(t, append(all, env), id)
			if valid || !strings.Contains(reason, tc.want) {
				t.Fatalf("received: valid=%v reason=%q, want refused naming %q", valid, reason, tc.want)
			}
		})
	}
	// And a valid typed change is accepted when received.
	good := core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "status", Value: "RETURNED"}
	env, id := signRaw(t, nextChange(t, r, admin, clk.now(), good), admin)
	all, _ := r.Export(nil)
	if valid, reason := everyReplicaAgrees(t, append(all, env), id); !valid {
		t.Fatalf("valid typed change refused when received: %s", reason)
	}
}

// TestEnumUpgradeAddsAValue: an upgrade that adds an enum value lets the
// value be written by changes that have the upgrade in their causal past,
// and a change made before it (concurrently) stays refused everywhere; an
// upgrade that removes a value is refused.
func TestEnumUpgradeAddsAValue(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	clk := &clock{}
	r := foundTyped(t, admin)
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Loan", Doc: "l1", Fields: map[string]any{}})
	lost := core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "l1", Field: "status", Value: "LOST"}
	early, earlyID := signRaw(t, nextChange(t, r, admin, clk.now(), lost), admin) // before the upgrade
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpSchema, Schema: strings.Replace(typedSchema, "OPEN RETURNED", "OPEN RETURNED LOST", 1)})
	mustWrite(t, r, admin, clk, lost)
	if d, ok, err := r.Get("Loan", "l1"); !ok || err != nil || d.Fields["status"] != "LOST" {
		t.Fatalf("l1 = %+v, %v, %v after the upgrade: want status LOST", d, ok, err)
	}
	all, _ := r.Export(nil)
	if valid, reason := everyReplicaAgrees(t, append(all, early), earlyID); valid || !strings.Contains(reason, "not a value of enum LoanStatus") {
		t.Fatalf("a change from before the upgrade: valid=%v reason=%q, want refused", valid, reason)
	}
	_, err := r.Write(ctx, admin, []core.Op{{Kind: core.OpSchema, Schema: typedSchema + "\n# LOST dropped again"}}, clk.now())
	if !errors.Is(err, core.ErrSchemaViolation) || !strings.Contains(err.Error(), "enum LoanStatus loses value LOST") {
		t.Fatalf("upgrade removing an enum value: %v", err)
	}
}
