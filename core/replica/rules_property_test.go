package replica

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

// TestRulesConvergeUnderRandomInterleavings is the property behind rules
// and roles: random grants (of every role), revocations, books, loans,
// returns, reviews and deletes, written on three replicas that sync
// partially and in random orders (so loans of one book and deletes of a
// lent book happen concurrently), plus changes signed by peers that skip
// the local checks. After full exchange every replica, and fresh ones fed
// every change shuffled, chunked and duplicated, is byte-identical:
// documents, conflicts, verdicts (rolled-back changes included). The
// library's invariants hold in the result: at most one open loan per
// book, none of a deleted book, reviews only by borrowers who returned.
func TestRulesConvergeUnderRandomInterleavings(t *testing.T) {
	base := testSeed(t)
	total := map[string]int{}
	for round := 0; round < 6; round++ {
		seed := base + uint64(round)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			for k, n := range rulesRound(t, seed) {
				total[k] += n
			}
		})
	}
	t.Logf("over all rounds: %v", total)
	if total["rolled back"] == 0 || total["rule violation"] == 0 || total["valid loans"] == 0 {
		t.Fatalf("the property was not exercised: %v", total)
	}
}

type author struct {
	key  core.PrivateKey
	role string
	home int
}

func rulesRound(t *testing.T, seed uint64) map[string]int {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	clk := &clock{}
	admin := key(t, 1)
	r0 := openMem(t)
	if _, err := r0.Found(ctx, admin, "library", lendingSchema(t), nil, 1_000_000); err != nil {
		t.Fatal(err)
	}
	next := byte(10)
	var authors []*author
	grant := func(r *Replica, role string, home int) *author {
		next++
		a := &author{key: key(t, next), role: role, home: home}
		mustWrite(t, r, admin, clk, core.Op{Kind: core.OpGrant, Member: a.key.Public(), Role: role})
		authors = append(authors, a)
		return a
	}
	for i, role := range []string{"librarian", "member", "member", "member", "member", "reader", "librarian"} {
		grant(r0, role, i%3)
	}
	books := []string{"b1", "b2", "b3", "b4", "b5"}
	for _, b := range books {
		mustWrite(t, r0, authors[0].key, clk, book(b, "t"))
	}
	reps := []*Replica{r0, clone(t, r0), clone(t, r0)}
	sync := func(dst, src *Replica, fraction float64) {
		envs := mustExport(t, src)
		rng.Shuffle(len(envs), func(i, j int) { envs[i], envs[j] = envs[j], envs[i] })
		envs = envs[:int(float64(len(envs))*fraction)]
		for len(envs) > 0 {
			n := min(len(envs), 1+rng.IntN(6))
			receive(t, dst, envs[:n]...)
			envs = envs[n:]
		}
	}
	// write tries ops as a; refusals the rules or roles give are expected.
	stats := map[string]int{}
	write := func(a *author, ops ...core.Op) {
		r := reps[a.home]
		if rng.IntN(12) == 0 { // a peer that skips the checks
			env, _ := signRaw(t, nextChange(t, r, a.key, clk.now(), ops...), a.key)
			receive(t, r, env)
			stats["forged"]++
			return
		}
		_, err := r.Write(ctx, a.key, ops, clk.now())
		switch {
		case err == nil:
		case errors.Is(err, core.ErrRuleViolation):
			stats["refused by a rule"]++
		case errors.Is(err, core.ErrUnauthorized), errors.Is(err, core.ErrSchemaViolation):
			stats["refused"]++
		default:
			t.Fatalf("seed %d: write %v: %v", seed, ops, err)
		}
	}
	pick := func(role string) *author {
		var c []*author
		for _, a := range authors {
			if a.role == role {
				c = append(c, a)
			}
		}
		return c[rng.IntN(len(c))]
	}
	for step := 0; step < 200; step++ {
		bk := books[rng.IntN(len(books))]
		switch x := rng.IntN(100); {
		case x < 22: // partial delivery
			src, dst := rng.IntN(len(reps)), rng.IntN(len(reps))
			if src != dst {
				sync(reps[dst], reps[src], rng.Float64())
			}
		case x < 28: // the librarian (re)creates a book
			write(pick("librarian"), book(bk, fmt.Sprintf("t%d", step)))
		case x < 33: // or deletes one
			write(pick("librarian"), core.Op{Kind: core.OpDelete, Coll: "Book", Doc: bk})
		case x < 56: // a member borrows
			m := pick("member")
			write(m, loanOf(fmt.Sprintf("l%d", step), bk, m.key))
		case x < 72: // a member returns a loan it sees as its own
			m := pick("member")
			if id, ok := openLoan(t, reps[m.home], m.key); ok {
				write(m, core.Op{Kind: core.OpSet, Coll: "Loan", Doc: id, Field: "returned", Value: true})
			}
		case x < 80: // a member reviews
			m := pick("member")
			write(m, review(fmt.Sprintf("r%d", step), bk, int64(1+rng.IntN(5))))
		case x < 83: // a librarian lends on behalf of someone
			l, m := pick("librarian"), pick("member")
			write(l, loanOf(fmt.Sprintf("l%d", step), bk, m.key))
		case x < 85: // a reader tries to borrow
			rd := pick("reader")
			write(rd, loanOf(fmt.Sprintf("l%d", step), bk, rd.key))
		case x < 88: // the admin grants someone new, on its own replica
			roles := []string{"member", "librarian", "reader"}
			grant(r0, roles[rng.IntN(len(roles))], rng.IntN(3))
		case x < 90: // the admin revokes a member, concurrently with its writes
			m := authors[rng.IntN(len(authors))]
			mustWrite(t, r0, admin, clk, core.Op{Kind: core.OpRevoke, Member: m.key.Public()})
			stats["revocations"]++
		default: // the admin lends too (rules bind admins)
			write(&author{key: admin, role: "admin", home: 0}, loanOf(fmt.Sprintf("l%d", step), bk, admin))
		}
	}
	for round := 0; round < 2; round++ {
		for i := range reps {
			for j := range reps {
				if i != j {
					sync(reps[i], reps[j], 1)
				}
			}
		}
	}
	want := fingerprint(t, reps[0])
	for i, r := range reps[1:] {
		if got := fingerprint(t, r); got != want {
			t.Fatalf("seed %d: replica %d differs from replica 0:\n%s", seed, i+1, printDiff(want, got))
		}
	}
	all := mustExport(t, reps[0])
	for replay := 0; replay < 3; replay++ {
		fresh := openMem(t)
		order := append([][]byte(nil), all...)
		for i := 0; i < len(all)/5; i++ {
			order = append(order, all[rng.IntN(len(all))])
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for len(order) > 0 {
			n := 1 + rng.IntN(min(len(order), 30))
			receive(t, fresh, order[:n]...)
			order = order[n:]
		}
		if got := fingerprint(t, fresh); got != want {
			t.Fatalf("seed %d: fresh replica %d fed in a shuffled order differs:\n%s", seed, replay, printDiff(want, got))
		}
	}
	checkLibrary(t, seed, reps[0])
	rbs, err := reps[0].Rollbacks()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := reps[0].Status()
	stats["changes"], stats["without effect"], stats["rolled back"] = st.Changes, st.Invalid, len(rbs)
	log, err := reps[0].Log(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log {
		switch {
		case !e.Valid && errors.Is(errorsOf(e.Reason), core.ErrRuleViolation):
			stats["rule violation"]++
		case e.Valid && len(e.Ops) > 0 && e.Ops[0].Coll == "Loan" && e.Ops[0].Kind == "create":
			stats["valid loans"]++
		}
	}
	t.Logf("seed %d: %v", seed, stats)
	return stats
}

// errorsOf turns a stored reason back into its sentinel, for counting.
func errorsOf(reason string) error {
	for _, e := range []error{core.ErrRuleViolation, core.ErrRolledBack, core.ErrUnauthorized, core.ErrSchemaViolation} {
		if len(reason) >= len(e.Error()) && reason[:len(e.Error())] == e.Error() {
			return e
		}
	}
	return nil
}

func openLoan(t *testing.T, r *Replica, k core.PrivateKey) (string, bool) {
	t.Helper()
	loans, err := r.Query("Loan", map[string]any{"borrower": k.Public().String(), "returned": false})
	if err != nil {
		t.Fatal(err)
	}
	if len(loans) == 0 {
		return "", false
	}
	return loans[0].ID, true
}

// checkLibrary checks the invariants the lending rules keep.
func checkLibrary(t *testing.T, seed uint64, r *Replica) {
	t.Helper()
	loans, err := r.Query("Loan", nil)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string][]string{}
	returned := map[[2]string]bool{}
	for _, l := range loans {
		b := l.Fields["book"].(string)
		if l.Fields["returned"] == true {
			returned[[2]string{b, l.Fields["borrower"].(string)}] = true
			continue
		}
		open[b] = append(open[b], l.ID)
		if _, ok, _ := r.Get("Book", b); !ok {
			t.Errorf("seed %d: open loan %s of book %s, which does not exist", seed, l.ID, b)
		}
	}
	for b, ls := range open {
		if len(ls) > 1 {
			t.Errorf("seed %d: book %s has %d open loans: %v", seed, b, len(ls), ls)
		}
	}
	reviews, err := r.Query("Review", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rv := range reviews {
		b := rv.Fields["book"].(string)
		if !returned[[2]string{b, rv.Author}] {
			// The newest write may be an update by the creator; the
			// creator is who reviewed.
			hist, _ := r.History("Review", rv.ID)
			if len(hist) == 0 || !returned[[2]string{b, hist[0].Author}] {
				t.Errorf("seed %d: review %s of %s by a member with no returned loan of it", seed, rv.ID, b)
			}
		}
	}
}
