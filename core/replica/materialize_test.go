package replica

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

func TestSchemaRulesRefuseWritesAndStoreNothing(t *testing.T) {
	admin := key(t, 1)
	clk := &clock{}
	r := found(t, admin)
	before, _ := r.Status()
	cases := map[string]core.Op{
		"wrong type":         {Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": "x", "year": "1999"}},
		"unknown field":      {Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": "x", "isbn": "1"}},
		"required missing":   {Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"year": int64(1)}},
		"range":              {Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": "x", "year": int64(5000)}},
		"length":             {Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": ""}},
		"unknown collection": {Kind: core.OpCreate, Coll: "Film", Doc: "b", Fields: map[string]any{"title": "x"}},
		"dangling reference": {Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": "x", "author": "nobody"}},
		"set on a counter":   {Kind: core.OpSet, Coll: "Book", Doc: "b", Field: "likes", Value: int64(3)},
	}
	for name, op := range cases {
		if _, err := r.Write(context.Background(), admin, []core.Op{op}, clk.now()); !errors.Is(err, core.ErrSchemaViolation) {
			t.Errorf("%s: got %v, want a schema violation", name, err)
		}
	}
	after, _ := r.Status()
	if after.Changes != before.Changes {
		t.Fatalf("refused writes stored %d changes", after.Changes-before.Changes)
	}
}

// TestReferenceMustBeInCausalPast: a reference to a document created
// concurrently (not in the change's past) makes the change invalid on
// every replica, whatever else each holds.
func TestReferenceMustBeInCausalPast(t *testing.T) {
	admin, bob := key(t, 1), key(t, 2)
	clk := &clock{}
	a := found(t, admin)
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpGrant, Member: bob.Public(), Role: core.RoleWriter})
	b := openMem(t)
	syncInto(t, b, a)
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "x", Fields: map[string]any{"name": "X"}})
	// Bob has not seen author x but names it anyway (a hostile client).
	c := nextChange(t, b, bob, clk.now(), core.Op{Kind: core.OpCreate, Coll: "Book", Doc: "b1", Fields: map[string]any{"title": "T", "author": "x"}})
	env, id := signRaw(t, c, bob)
	all, _ := a.Export(nil)
	valid, reason := everyReplicaAgrees(t, append(all, env), id)
	if valid || !strings.Contains(reason, "causal past") {
		t.Fatalf("reference outside the causal past: valid=%v reason=%q", valid, reason)
	}
	// Once bob has seen x, the same reference is fine.
	syncInto(t, b, a)
	mustWrite(t, b, bob, clk, core.Op{Kind: core.OpCreate, Coll: "Book", Doc: "b2", Fields: map[string]any{"title": "T", "author": "x"}})
}

func TestSchemaUpgradeIsAChange(t *testing.T) {
	admin := key(t, 1)
	clk := &clock{}
	r := found(t, admin)
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a", Fields: map[string]any{"name": "A"}})
	isbn := core.Op{Kind: core.OpSet, Coll: "Author", Doc: "a", Field: "country", Value: "NZ"}
	if _, err := r.Write(context.Background(), admin, []core.Op{isbn}, clk.now()); !errors.Is(err, core.ErrSchemaViolation) {
		t.Fatalf("field of a future schema: %v", err)
	}
	old := r.Schema().ID
	upgraded := strings.Replace(librarySchema(t), "born: DateTime", "born: DateTime\n  country: String! @default(value: \"unknown\")", 1)
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpSchema, Schema: upgraded})
	if r.Schema().ID == old {
		t.Fatal("schema did not change")
	}
	d, _, _ := r.Get("Author", "a")
	if d.Fields["country"] != "unknown" {
		t.Fatalf("existing document lacks the new field's default: %v", d.Fields)
	}
	mustWrite(t, r, admin, clk, isbn)
	if d, _, _ = r.Get("Author", "a"); d.Fields["country"] != "NZ" {
		t.Fatalf("write under the new schema: %v", d.Fields)
	}
	dropping := strings.Replace(librarySchema(t), "born: DateTime", "", 1)
	if _, err := r.Write(context.Background(), admin, []core.Op{{Kind: core.OpSchema, Schema: dropping}}, clk.now()); !errors.Is(err, core.ErrSchemaViolation) {
		t.Fatal("an upgrade dropping a field was accepted")
	}
	// A replica built from the log alone agrees.
	envs, _ := r.Export(nil)
	fresh := openMem(t)
	if _, err := fresh.Receive(context.Background(), envs); err != nil {
		t.Fatal(err)
	}
	if fingerprint(t, fresh) != fingerprint(t, r) || fresh.Schema().ID != r.Schema().ID {
		t.Fatal("replaying the log gives another state or schema")
	}
}

func TestHistoryAndReadAtPastChange(t *testing.T) {
	admin := key(t, 1)
	clk := &clock{}
	r := found(t, admin)
	c1 := mustWrite(t, r, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": "first", "year": int64(1990)}})
	c2 := mustWrite(t, r, admin, clk, core.Op{Kind: core.OpSet, Coll: "Book", Doc: "b", Field: "title", Value: "second"})
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpIncrement, Coll: "Book", Doc: "b", Field: "likes", Delta: 2})
	c4 := mustWrite(t, r, admin, clk, core.Op{Kind: core.OpDelete, Coll: "Book", Doc: "b"})
	h, err := r.History("Book", "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 4 || h[0].Change != c1 || h[3].Change != c4 {
		t.Fatalf("history %+v", h)
	}
	at1, err := r.At("Book", "b", c1)
	if err != nil {
		t.Fatal(err)
	}
	at2, _ := r.At("Book", "b", c2)
	if at1.Fields["title"] != "first" || at2.Fields["title"] != "second" || at2.Fields["likes"] != int64(0) {
		t.Fatalf("at c1 %v, at c2 %v", at1.Fields, at2.Fields)
	}
	if _, ok, _ := r.Get("Book", "b"); ok {
		t.Fatal("deleted document still readable")
	}
	if at4, _ := r.At("Book", "b", c4); !at4.Deleted {
		t.Fatal("at the delete the document should be deleted")
	}
}

// effectRecorder is an EffectLog that keeps what it is given.
type effectRecorder struct{ got []core.Effect }

func (e *effectRecorder) AppendTx(_ Tx, es []core.Effect) error {
	e.got = append(e.got, es...)
	return nil
}
func (e *effectRecorder) Committed() {}

func TestEffectsCarryPostImages(t *testing.T) {
	rec := &effectRecorder{}
	r, err := Open(Options{InMemory: true, Effects: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	admin := key(t, 1)
	clk := &clock{}
	if _, err := r.Found(context.Background(), admin, "t", librarySchema(t), nil, clk.now()); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": "T"}},
		core.Op{Kind: core.OpAdd, Coll: "Book", Doc: "b", Field: "tags", Value: "sf"})
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpDelete, Coll: "Book", Doc: "b"})
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": "again"}})
	got := rec.got
	if len(got) != 3 {
		t.Fatalf("%d effects, want 3 (one per transaction and document)", len(got))
	}
	if got[0].Kind != core.Upsert || got[0].Doc["title"] != "T" || len(got[0].Doc["tags"].([]any)) != 1 || got[0].Doc["likes"] != int64(0) {
		t.Fatalf("first effect %+v", got[0])
	}
	if got[1].Kind != core.Delete || got[1].Doc != nil {
		t.Fatalf("delete effect %+v", got[1])
	}
	if got[2].Kind != core.Upsert || got[2].Doc["title"] != "again" || len(got[2].Doc["tags"].([]any)) != 0 {
		t.Fatalf("re-create after delete must not resurrect old fields: %+v", got[2].Doc)
	}
}

func TestConcurrentWritesRecordConflictUntilResolved(t *testing.T) {
	admin, bob := key(t, 1), key(t, 2)
	clk := &clock{}
	a := found(t, admin)
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpGrant, Member: bob.Public(), Role: core.RoleWriter},
		core.Op{Kind: core.OpCreate, Coll: "Book", Doc: "b", Fields: map[string]any{"title": "T"}})
	b := openMem(t)
	syncInto(t, b, a)
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpSet, Coll: "Book", Doc: "b", Field: "title", Value: "by admin"})
	mustWrite(t, b, bob, clk, core.Op{Kind: core.OpSet, Coll: "Book", Doc: "b", Field: "title", Value: "by bob"})
	syncInto(t, a, b)
	syncInto(t, b, a)
	for _, r := range []*Replica{a, b} {
		cs, _ := r.Conflicts()
		if len(cs) != 1 || cs[0].Field != "title" || len(cs[0].Losers) != 1 {
			t.Fatalf("conflicts %+v", cs)
		}
		d, _, _ := r.Get("Book", "b")
		if d.Fields["title"] != cs[0].Winner.Value {
			t.Fatalf("document shows %v, conflict winner %v", d.Fields["title"], cs[0].Winner.Value)
		}
	}
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpSet, Coll: "Book", Doc: "b", Field: "title", Value: "agreed"})
	syncInto(t, b, a)
	for _, r := range []*Replica{a, b} {
		if cs, _ := r.Conflicts(); len(cs) != 0 {
			t.Fatalf("write after both did not resolve the conflict: %+v", cs)
		}
	}
}

// TestRefusedUpgradeFromAPeerHasNoEffect: an admin change carrying a
// schema upgrade that a local write refuses (it drops a field), or one
// that does not parse, may still arrive from a peer (hand-built, or from
// a buggy node). It is stored without effect, with the reason, and the
// schema in force stays what it was: on arrival, on a replica rebuilt
// from the log, and after the store is reopened. Nothing of the batch
// fails.
func TestRefusedUpgradeFromAPeerHasNoEffect(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	clk := &clock{}
	dir := t.TempDir()
	r, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Found(ctx, admin, "test", librarySchema(t), nil, 1_000_000); err != nil {
		t.Fatal(err)
	}
	before := r.Schema().ID
	dropping := strings.Replace(librarySchema(t), "born: DateTime", "", 1)
	for name, text := range map[string]string{"drops a field": dropping, "does not parse": "type Broken @collection {"} {
		env, id := signRaw(t, nextChange(t, r, admin, clk.now(), core.Op{Kind: core.OpSchema, Schema: text}), admin)
		rep, err := r.Receive(ctx, [][]byte{env})
		if err != nil {
			t.Fatalf("upgrade that %s: Receive failed: %v", name, err)
		}
		if rep.Applied != 1 || len(rep.Rejected) != 0 {
			t.Fatalf("upgrade that %s: %+v, want it stored", name, rep)
		}
		valid, why, err := r.Verdict(id)
		if err != nil || valid || !strings.Contains(why, "schema upgrade") {
			t.Fatalf("upgrade that %s: verdict %v %q %v, want invalid naming the schema upgrade", name, valid, why, err)
		}
		if r.Schema().ID != before {
			t.Fatalf("upgrade that %s took effect", name)
		}
	}
	// The field the refused upgrade dropped is still written and read.
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a", Fields: map[string]any{"name": "A", "born": "1920-10-08T00:00:00Z"}})
	want := fingerprint(t, r)

	envs, err := r.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh := openMem(t)
	if _, err := fresh.Receive(ctx, envs); err != nil {
		t.Fatal(err)
	}
	if fresh.Schema().ID != before || fingerprint(t, fresh) != want {
		t.Fatal("a replica rebuilt from the log puts a refused upgrade in force")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err = Open(Options{Dir: dir}); err != nil {
		t.Fatalf("reopen after a refused upgrade: %v", err)
	}
	defer r.Close()
	if r.Schema().ID != before || fingerprint(t, r) != want {
		t.Fatal("after reopening, a refused upgrade is in force")
	}
}
