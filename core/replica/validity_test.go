package replica

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

// signRaw signs an arbitrary change, bypassing Write's checks, as a hostile
// or buggy peer could.
func signRaw(t *testing.T, c *core.Change, k core.PrivateKey) ([]byte, core.ID) {
	t.Helper()
	s, id, err := core.Sign(c, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b, id
}

// nextChange builds a change on top of r's heads by k, as Write would.
func nextChange(t *testing.T, r *Replica, k core.PrivateKey, now uint64, ops ...core.Op) *core.Change {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.begin()
	defer w.discard()
	c, err := w.build(k.Public(), ops, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// everyReplicaAgrees delivers envs to n fresh replicas in different orders
// and returns the verdict on id, failing if any two replicas disagree.
func everyReplicaAgrees(t *testing.T, envs [][]byte, id core.ID) (bool, string) {
	t.Helper()
	var verdicts []string
	var valid bool
	var reason string
	for i := 0; i < 3; i++ {
		r := openMem(t)
		order := append([][]byte(nil), envs...)
		// rotate: a different arrival order per replica
		order = append(order[i%len(order):], order[:i%len(order)]...)
		if i == 2 {
			for a, b := 0, len(order)-1; a < b; a, b = a+1, b-1 {
				order[a], order[b] = order[b], order[a]
			}
		}
		for _, e := range order {
			if _, err := r.Receive(context.Background(), [][]byte{e}); err != nil {
				t.Fatal(err)
			}
		}
		v, why, err := r.Verdict(id)
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		valid, reason = v, why
		verdicts = append(verdicts, fmtVerdict(v, why))
	}
	for _, v := range verdicts[1:] {
		if v != verdicts[0] {
			t.Fatalf("replicas disagree: %q", verdicts)
		}
	}
	return valid, reason
}

func fmtVerdict(v bool, why string) string {
	if v {
		return "valid"
	}
	return "invalid: " + why
}

func TestForgedSignatureRejectedNothingStored(t *testing.T) {
	admin := key(t, 1)
	r := found(t, admin)
	c := nextChange(t, r, admin, 1_000_100, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a1", Fields: map[string]any{"name": "Ann"}})
	env, id := signRaw(t, c, admin)
	s := mustSigned(t, env)
	s.Sig[0] ^= 0xff
	bad, _ := s.Encode()
	rep, err := r.Receive(context.Background(), [][]byte{bad})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, core.ErrBadSignature) || rep.Applied != 0 {
		t.Fatalf("forged change: %+v", rep)
	}
	if r.Has(id) {
		t.Fatal("forged change was stored")
	}
	// Signed by another key than its claimed author.
	mallory := key(t, 66)
	body, _ := c.Encode()
	forged := core.Signed{Body: body, Sig: mallory.SignID(core.IDOf(body))}
	fb, _ := forged.Encode()
	rep, _ = r.Receive(context.Background(), [][]byte{fb})
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, core.ErrBadSignature) {
		t.Fatalf("change signed by another key: %+v", rep)
	}
	if _, ok, _ := r.Get("Author", "a1"); ok {
		t.Fatal("forged data reached the state")
	}
}

func TestWrongHeightAndClockRejected(t *testing.T) {
	admin := key(t, 1)
	r := found(t, admin)
	for name, mutate := range map[string]func(*core.Change){
		"wrong height":     func(c *core.Change) { c.Height += 3 },
		"clock not after":  func(c *core.Change) { c.HLC = core.HLC{Wall: 1} },
		"clock far ahead":  func(c *core.Change) { c.HLC.Wall += core.DefaultMaxClockAhead * 2 },
		"sequence skipped": func(c *core.Change) { c.Seq = 5; c.Prev = c.Parents[0] },
		"other space":      func(c *core.Change) { c.Space = core.ID{9} },
	} {
		c := nextChange(t, r, admin, 1_000_100, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a1", Fields: map[string]any{"name": "Ann"}})
		mutate(c)
		env, id := signRaw(t, c, admin)
		rep, err := r.Receive(context.Background(), [][]byte{env})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Rejected) != 1 || r.Has(id) {
			t.Errorf("%s: want refused and not stored, got %+v", name, rep)
		}
	}
}

func TestBadParentIsHeldNotApplied(t *testing.T) {
	admin := key(t, 1)
	r := found(t, admin)
	c := nextChange(t, r, admin, 1_000_100, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a1", Fields: map[string]any{"name": "Ann"}})
	c.Parents = []core.ID{{0xde, 0xad}} // a parent nobody has
	env, id := signRaw(t, c, admin)
	rep, err := r.Receive(context.Background(), [][]byte{env})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Held != 1 || rep.Applied != 0 || r.Has(id) {
		t.Fatalf("change with unknown parent: %+v", rep)
	}
	if _, ok, _ := r.Get("Author", "a1"); ok {
		t.Fatal("change with unknown parent reached the state")
	}
}

func TestNonMemberHasNoEffectEverywhere(t *testing.T) {
	admin, stranger := key(t, 1), key(t, 2)
	r := found(t, admin)
	genesis, _ := r.Export(nil)
	c := nextChange(t, r, stranger, 1_000_100, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a1", Fields: map[string]any{"name": "Eve"}})
	env, id := signRaw(t, c, stranger)
	valid, reason := everyReplicaAgrees(t, append(genesis, env), id)
	if valid || !strings.Contains(reason, "no grant") {
		t.Fatalf("non-member change: valid=%v reason=%q", valid, reason)
	}
	if _, err := r.Write(context.Background(), stranger, c.Ops, 1_000_200); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("local write by a non-member: got %v, want ErrUnauthorized", err)
	}
}

func TestRevokedAuthorLaterChangesRejected(t *testing.T) {
	admin, bob := key(t, 1), key(t, 2)
	clk := &clock{}
	r := found(t, admin)
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpGrant, Member: bob.Public(), Role: core.RoleWriter})
	before := mustWrite(t, r, bob, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a1", Fields: map[string]any{"name": "Bob"}})
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpRevoke, Member: bob.Public()})
	if _, err := r.Write(context.Background(), bob, []core.Op{{Kind: core.OpSet, Coll: "Author", Doc: "a1", Field: "name", Value: "Bobby"}}, clk.now()); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("write after revocation: got %v", err)
	}
	// A hostile Bob signs a change after the revocation anyway.
	c := nextChange(t, r, bob, clk.now(), core.Op{Kind: core.OpSet, Coll: "Author", Doc: "a1", Field: "name", Value: "Bobby"})
	env, after := signRaw(t, c, bob)
	all, _ := r.Export(nil)
	valid, _ := everyReplicaAgrees(t, append(all, env), after)
	if valid {
		t.Fatal("change after revocation is valid")
	}
	if v, _ := everyReplicaAgrees(t, append(all, env), before); !v {
		t.Fatal("change before the revocation lost its effect")
	}
}

func TestRevocationConcurrentWithWrite(t *testing.T) {
	admin, bob := key(t, 1), key(t, 2)
	clk := &clock{}
	a := found(t, admin)
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpGrant, Member: bob.Public(), Role: core.RoleWriter})
	b := openMem(t)
	syncInto(t, b, a)
	// Bob writes on his replica while the admin, not having seen it, revokes him.
	mustWrite(t, b, bob, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a1", Fields: map[string]any{"name": "Bob"}})
	w := mustWrite(t, b, bob, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a2", Fields: map[string]any{"name": "Bob2"}})
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpRevoke, Member: bob.Public()})
	// Before it learns of the revocation, Bob's replica shows his write.
	if _, ok, _ := b.Get("Author", "a2"); !ok {
		t.Fatal("write missing on its own replica")
	}
	syncInto(t, b, a)
	syncInto(t, a, b)
	for name, r := range map[string]*Replica{"admin": a, "bob": b} {
		if _, ok, _ := r.Get("Author", "a2"); ok {
			t.Fatalf("%s: write concurrent with the revocation still has effect", name)
		}
		if v, _, _ := r.Verdict(w); v {
			t.Fatalf("%s: concurrent write judged valid", name)
		}
	}
	if fa, fb := fingerprint(t, a), fingerprint(t, b); fa != fb {
		t.Fatalf("replicas disagree after exchanging everything:\n%s", printDiff(fa, fb))
	}
	all, _ := a.Export(nil)
	if valid, _ := everyReplicaAgrees(t, all, w); valid {
		t.Fatal("concurrent write valid on a fresh replica")
	}
}

func TestEquivocationFlagged(t *testing.T) {
	admin, bob := key(t, 1), key(t, 2)
	clk := &clock{}
	r := found(t, admin)
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpGrant, Member: bob.Public(), Role: core.RoleWriter})
	now := clk.now()
	c1 := nextChange(t, r, bob, now, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "x", Fields: map[string]any{"name": "one"}})
	c2 := nextChange(t, r, bob, now, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "x", Fields: map[string]any{"name": "two"}})
	e1, id1 := signRaw(t, c1, bob)
	e2, id2 := signRaw(t, c2, bob)
	base, _ := r.Export(nil)
	var prints []string
	for _, order := range [][][]byte{{e1, e2}, {e2, e1}} {
		x := openMem(t)
		if _, err := x.Receive(context.Background(), append(append([][]byte{}, base...), order...)); err != nil {
			t.Fatal(err)
		}
		st, _ := x.Status()
		if len(st.Equivocated) != 1 || st.Equivocated[0] != bob.Public().String() {
			t.Fatalf("equivocation not flagged: %+v", st.Equivocated)
		}
		if !x.Has(id1) || !x.Has(id2) {
			t.Fatal("both equivocating changes must stay in the DAG")
		}
		prints = append(prints, fingerprint(t, x))
	}
	if prints[0] != prints[1] {
		t.Fatal("equivocation handled differently depending on arrival order")
	}
}
