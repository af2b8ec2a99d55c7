package replica

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

func lendingSchema(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/lending.graphql")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// library is a lending library space: a founder, a librarian, two
// members granted in the order ann then bob, a reader, three replicas.
type library struct {
	admin, lib, ann, bob, rita core.PrivateKey
	clk                        *clock
	reps                       []*Replica
}

func newLibrary(t *testing.T) *library {
	t.Helper()
	l := &library{admin: key(t, 1), lib: key(t, 2), ann: key(t, 3), bob: key(t, 4), rita: key(t, 5), clk: &clock{}}
	r0 := openMem(t)
	if _, err := r0.Found(context.Background(), l.admin, "library", lendingSchema(t), nil, 1_000_000); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		k    core.PrivateKey
		role string
	}{{l.lib, "librarian"}, {l.ann, "member"}, {l.bob, "member"}, {l.rita, core.RoleReader}} {
		mustWrite(t, r0, l.admin, l.clk, core.Op{Kind: core.OpGrant, Member: g.k.Public(), Role: g.role})
	}
	l.reps = []*Replica{r0, clone(t, r0), clone(t, r0)}
	return l
}

func book(id, title string) core.Op {
	return core.Op{Kind: core.OpCreate, Coll: "Book", Doc: id, Fields: map[string]any{"title": title}}
}

func loanOf(id, bookID string, borrower core.PrivateKey) core.Op {
	return core.Op{Kind: core.OpCreate, Coll: "Loan", Doc: id, Fields: map[string]any{"book": bookID, "borrower": borrower.Public().String()}}
}

func review(id, bookID string, stars int64) core.Op {
	return core.Op{Kind: core.OpCreate, Coll: "Review", Doc: id, Fields: map[string]any{"book": bookID, "stars": stars}}
}

// heal exchanges everything between every pair of replicas, in bundles.
func (l *library) heal(t *testing.T) {
	t.Helper()
	for round := 0; round < 2; round++ {
		for i, dst := range l.reps {
			for j, src := range l.reps {
				if i != j {
					receive(t, dst, mustExport(t, src)...)
				}
			}
		}
	}
}

// refused writes ops and requires the write to fail with want, storing
// nothing.
func refused(t *testing.T, r *Replica, k core.PrivateKey, clk *clock, want error, mention string, ops ...core.Op) {
	t.Helper()
	before := fingerprint(t, r)
	_, err := r.Write(context.Background(), k, ops, clk.now())
	if !errors.Is(err, want) {
		t.Fatalf("write %v: error %v, want %v", ops, err, want)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Errorf("error %q does not mention %q", err, mention)
	}
	if after := fingerprint(t, r); after != before {
		t.Fatalf("a refused write changed the replica:\n%s", printDiff(before, after))
	}
}

func verdict(t *testing.T, r *Replica, id core.ID) (bool, string) {
	t.Helper()
	v, why, err := r.Verdict(id)
	if err != nil {
		t.Fatal(err)
	}
	return v, why
}

// TestLendingLibraryAcrossPartitions is the library across three
// replicas: offline loans of one book, a loan concurrent with the delete
// of its book, a review by a non-borrower, the delete of a lent book, a
// reader that tries to write. After healing every replica holds the same
// bytes and verdicts, and lists the rolled-back changes with their reason
// and the change each lost to.
func TestLendingLibraryAcrossPartitions(t *testing.T) {
	ctx := context.Background()
	l := newLibrary(t)
	r0, r1, r2 := l.reps[0], l.reps[1], l.reps[2]
	mustWrite(t, r0, l.lib, l.clk, book("b1", "Dune"), book("b2", "Emma"), book("b3", "Ubik"))
	l.heal(t)

	// Locally refused: nothing stored.
	refused(t, r2, l.rita, l.clk, core.ErrUnauthorized, `role "reader" reads but never writes`, loanOf("x", "b3", l.rita))
	refused(t, r2, l.bob, l.clk, core.ErrUnauthorized, `role "member" may not write Book`, book("b9", "Mine"))
	refused(t, r2, l.bob, l.clk, core.ErrRuleViolation, "new.borrower == author is false", loanOf("x", "b3", l.ann))
	refused(t, r2, l.bob, l.clk, core.ErrRuleViolation, "@create rule of Review is false", review("rv", "b1", 5))

	// Partition: each replica on its own.
	la := mustWrite(t, r1, l.ann, l.clk, loanOf("la", "b1", l.ann))   // ann borrows b1
	lb := mustWrite(t, r2, l.bob, l.clk, loanOf("lb", "b1", l.bob))   // bob borrows b1 too, offline
	lb2 := mustWrite(t, r2, l.bob, l.clk, loanOf("lb2", "b2", l.bob)) // and b2
	del2 := mustWrite(t, r0, l.lib, l.clk, core.Op{Kind: core.OpDelete, Coll: "Book", Doc: "b2"})
	// On its own replica each loan blocks the book at once.
	refused(t, r2, l.bob, l.clk, core.ErrRuleViolation, "Loan/lb matches", loanOf("x", "b1", l.bob))
	// The attestation: what ann's loan relied on.
	e, err := r1.Change(la)
	if err != nil {
		t.Fatal(err)
	}
	reads := e.Ops[0].Reads
	if !slices.ContainsFunc(reads, func(f core.Fact) bool { return f.Coll == "Book" && f.Doc == "b1" && !f.Version.IsZero() }) ||
		!slices.ContainsFunc(reads, func(f core.Fact) bool { return f.Coll == "Loan" && f.Field == "book" && f.Value == "b1" }) {
		t.Fatalf("ann's loan attests %+v, want Book/b1 at its version and the loans of b1", reads)
	}
	// A review by a non-borrower, signed by a peer that skips the checks.
	env, rv := signRaw(t, nextChange(t, r2, l.bob, l.clk.now(), review("rv", "b1", 5)), l.bob)
	receive(t, r2, env)

	l.heal(t)
	want := fingerprint(t, r0)
	for i, r := range l.reps[1:] {
		if got := fingerprint(t, r); got != want {
			t.Fatalf("replica %d differs from replica 0 after healing:\n%s", i+1, printDiff(want, got))
		}
	}
	fresh := openMem(t)
	all := mustExport(t, r1)
	slices.Reverse(all[1:]) // genesis first, the rest as late as can be
	for _, env := range all {
		receive(t, fresh, env)
	}
	receive(t, fresh, all...)
	if got := fingerprint(t, fresh); got != want {
		t.Fatalf("a fresh replica fed in another order differs:\n%s", printDiff(want, got))
	}

	for _, r := range l.reps {
		if ok, why := verdict(t, r, la); !ok {
			t.Fatalf("ann's loan (granted before bob) lost: %s", why)
		}
		if ok, why := verdict(t, r, lb); ok || !strings.Contains(why, "rolled back") || !strings.Contains(why, la.Short()) {
			t.Fatalf("bob's concurrent loan of b1: valid=%v %q, want rolled back in favour of %s", ok, why, la.Short())
		}
		if ok, why := verdict(t, r, del2); !ok {
			t.Fatalf("the librarian's delete of b2 lost: %s", why)
		}
		if ok, why := verdict(t, r, lb2); ok || !strings.Contains(why, "rolled back") || !strings.Contains(why, "Book/b2") {
			t.Fatalf("bob's loan of b2 concurrent with its delete: valid=%v %q, want rolled back (the book is gone)", ok, why)
		}
		if ok, why := verdict(t, r, rv); ok || !strings.Contains(why, "rule violation") {
			t.Fatalf("review by a non-borrower: valid=%v %q, want a rule violation", ok, why)
		}
		rbs, err := r.Rollbacks()
		if err != nil {
			t.Fatal(err)
		}
		got := map[core.ID]core.ID{}
		for _, rb := range rbs {
			got[rb.Change] = rb.Winner
			if rb.Reason == "" || len(rb.Documents) == 0 || len(rb.WinnerDocs) == 0 {
				t.Errorf("rollback %+v lacks its reason or documents", rb)
			}
		}
		if r == r0 {
			for _, rb := range rbs {
				t.Logf("rolled back %s (%v): %s", rb.Change.Short(), rb.Documents, rb.Reason)
			}
		}
		if len(got) != 2 || got[lb] != la || got[lb2] != del2 {
			t.Fatalf("rollbacks %+v, want bob's loans, losing to ann's loan and to the delete", rbs)
		}
		loans, err := r.Query("Loan", map[string]any{"book": "b1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(loans) != 1 || loans[0].ID != "la" {
			t.Fatalf("loans of b1: %+v, want ann's alone", loans)
		}
		if _, ok, _ := r.Get("Loan", "lb2"); ok {
			t.Fatal("bob's rolled-back loan of b2 is visible")
		}
	}

	// After healing: the lent book cannot be deleted, the winner returns
	// it, reviews it; bob, whose loan was rolled back, cannot review it.
	refused(t, r0, l.lib, l.clk, core.ErrRuleViolation, "Loan/la matches", core.Op{Kind: core.OpDelete, Coll: "Book", Doc: "b1"})
	refused(t, r2, l.bob, l.clk, core.ErrRuleViolation, "create Loan/x): @create rule of Loan is false: exists(Book b where b.id == new.book) is false", loanOf("x", "b2", l.bob))
	refused(t, r2, l.bob, l.clk, core.ErrRuleViolation, "old.borrower == author is false", core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "la", Field: "returned", Value: true})
	mustWrite(t, r1, l.ann, l.clk, core.Op{Kind: core.OpSet, Coll: "Loan", Doc: "la", Field: "returned", Value: true})
	mustWrite(t, r1, l.ann, l.clk, review("ra", "b1", 4))
	l.heal(t)
	refused(t, r2, l.bob, l.clk, core.ErrRuleViolation, "@create rule of Review is false", review("rb", "b1", 1))
	refused(t, r2, l.bob, l.clk, core.ErrRuleViolation, "creator(old) == author is false", core.Op{Kind: core.OpSet, Coll: "Review", Doc: "ra", Field: "stars", Value: int64(1)})
	mustWrite(t, r2, l.bob, l.clk, loanOf("lb3", "b1", l.bob)) // free again
	mustWrite(t, r0, l.lib, l.clk, core.Op{Kind: core.OpDelete, Coll: "Book", Doc: "b3"})
	l.heal(t)
	want = fingerprint(t, r0)
	for i, r := range l.reps[1:] {
		if got := fingerprint(t, r); got != want {
			t.Fatalf("replica %d differs after the second heal:\n%s", i+1, printDiff(want, got))
		}
	}
	if _, err := r0.Write(ctx, l.admin, []core.Op{{Kind: core.OpDelete, Coll: "Book", Doc: "b1"}}, l.clk.now()); !errors.Is(err, core.ErrRuleViolation) {
		t.Fatalf("an admin deleting a lent book: %v, want a rule violation (rules bind admins too)", err)
	}
}

// TestRulesSeeEarlierOpsOfTheirBatch: a batch is judged op by op, each
// seeing the ones before it, and refused as a whole naming the operation.
func TestRulesSeeEarlierOpsOfTheirBatch(t *testing.T) {
	ctx := context.Background()
	l := newLibrary(t)
	r := l.reps[0]
	// A book and its loan in one batch: the loan sees the book.
	res, _, err := r.Mutate(ctx, l.lib, []Mutation{
		{Op: MutPut, Collection: "Book", ID: "b1", Fields: map[string]any{"title": "Dune"}},
		{Op: MutPut, Collection: "Loan", ID: "l1", Fields: map[string]any{"book": "b1", "borrower": l.ann.Public().String()}},
	}, l.clk.now())
	if err != nil || len(res) != 2 {
		t.Fatalf("book and loan in one batch: %v", err)
	}
	// Two loans of one book in one batch: the second sees the first.
	before := fingerprint(t, r)
	_, _, err = r.Mutate(ctx, l.lib, []Mutation{
		{Op: MutPut, Collection: "Book", ID: "b2", Fields: map[string]any{"title": "Emma"}},
		{Op: MutPut, Collection: "Loan", ID: "l2", Fields: map[string]any{"book": "b2", "borrower": l.ann.Public().String()}},
		{Op: MutPut, Collection: "Loan", ID: "l3", Fields: map[string]any{"book": "b2", "borrower": l.bob.Public().String()}},
	}, l.clk.now())
	var me *MutationError
	if !errors.As(err, &me) || me.Index != 2 || !errors.Is(err, core.ErrRuleViolation) || !strings.Contains(err.Error(), "Loan/l2 matches") {
		t.Fatalf("two loans of one book in a batch: %v, want operation 3 refused by the Loan rule (Loan/l2 matches)", err)
	}
	if strings.Contains(err.Error(), "op 2") {
		t.Errorf("batch error %q names the op index of the change, not only the operation", err)
	}
	if after := fingerprint(t, r); after != before {
		t.Fatalf("the refused batch wrote something:\n%s", printDiff(before, after))
	}
	// Return then lend again in one batch.
	if _, _, err := r.Mutate(ctx, l.lib, []Mutation{
		{Op: MutPut, Collection: "Loan", ID: "l1", Fields: map[string]any{"returned": true}},
		{Op: MutPut, Collection: "Loan", ID: "l4", Fields: map[string]any{"book": "b1", "borrower": l.bob.Public().String()}},
	}, l.clk.now()); err != nil {
		t.Fatalf("return and lend again in one batch: %v", err)
	}
}

// TestGroupCommitRulesFailAlone: concurrent batches share a change; one
// that breaks a rule given the others is refused alone.
func TestGroupCommitRulesFailAlone(t *testing.T) {
	ctx := context.Background()
	l := newLibrary(t)
	r := l.reps[0]
	mustWrite(t, r, l.lib, l.clk, book("b1", "Dune"), book("b2", "Emma"))
	now := l.clk.now()
	reqs := []*mutation{
		{ctx: ctx, key: l.lib, now: now, done: make(chan struct{}), muts: []Mutation{{Op: MutPut, Collection: "Loan", ID: "l1", Fields: map[string]any{"book": "b1", "borrower": "x"}}}},
		{ctx: ctx, key: l.lib, now: now, done: make(chan struct{}), muts: []Mutation{{Op: MutPut, Collection: "Loan", ID: "l2", Fields: map[string]any{"book": "b1", "borrower": "y"}}}},
		{ctx: ctx, key: l.lib, now: now, done: make(chan struct{}), muts: []Mutation{{Op: MutPut, Collection: "Loan", ID: "l3", Fields: map[string]any{"book": "b2", "borrower": "z"}}}},
	}
	r.mu.Lock()
	r.commitGroup(reqs)
	r.mu.Unlock()
	if reqs[0].err != nil || reqs[2].err != nil {
		t.Fatalf("good batches failed: %v, %v", reqs[0].err, reqs[2].err)
	}
	if !errors.Is(reqs[1].err, core.ErrRuleViolation) {
		t.Fatalf("second loan of b1: %v, want a rule violation", reqs[1].err)
	}
	for _, id := range []string{"l1", "l3"} {
		if _, ok, _ := r.Get("Loan", id); !ok {
			t.Errorf("loan %s missing", id)
		}
	}
}
