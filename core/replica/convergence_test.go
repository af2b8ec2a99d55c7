package replica

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: time-based)")

func testSeed(t *testing.T) uint64 {
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", s, s)
	return s
}

// site is one writer with its own replica.
type site struct {
	key core.PrivateKey
	r   *Replica
}

var (
	docIDs = []string{"d1", "d2", "d3", "d4"}
	words  = []string{"alpha", "beta", "gamma", "delta"}
)

// randomOps makes 1-4 ops a member could write given what r holds.
func randomOps(rng *rand.Rand, r *Replica) []core.Op {
	var ops []core.Op
	for n := 1 + rng.IntN(4); len(ops) < n; {
		doc := docIDs[rng.IntN(len(docIDs))]
		existing, ok, _ := r.Get("Book", doc)
		_ = existing
		if !ok || rng.IntN(8) == 0 {
			ops = append(ops, core.Op{Kind: core.OpCreate, Coll: "Book", Doc: doc, Fields: map[string]any{
				"title": words[rng.IntN(len(words))], "year": int64(1900 + rng.IntN(100)),
			}})
			continue
		}
		switch rng.IntN(7) {
		case 0:
			ops = append(ops, core.Op{Kind: core.OpSet, Coll: "Book", Doc: doc, Field: "title", Value: words[rng.IntN(len(words))]})
		case 1:
			ops = append(ops, core.Op{Kind: core.OpSet, Coll: "Book", Doc: doc, Field: "year", Value: int64(1900 + rng.IntN(100))})
		case 2:
			ops = append(ops, core.Op{Kind: core.OpIncrement, Coll: "Book", Doc: doc, Field: "likes", Delta: int64(rng.IntN(5) - 2)})
		case 3:
			ops = append(ops, core.Op{Kind: core.OpAdd, Coll: "Book", Doc: doc, Field: "tags", Value: words[rng.IntN(len(words))]})
		case 4:
			ops = append(ops, core.Op{Kind: core.OpRemove, Coll: "Book", Doc: doc, Field: "tags", Value: words[rng.IntN(len(words))]})
		case 5:
			ops = append(ops, core.Op{Kind: core.OpSet, Coll: "Book", Doc: doc, Field: "price", Value: float64(rng.IntN(100)) / 4})
		case 6:
			if rng.IntN(3) == 0 {
				ops = append(ops, core.Op{Kind: core.OpDelete, Coll: "Book", Doc: doc})
			}
		}
	}
	return ops
}

// TestConvergenceRandomOrders: several authors write concurrently with
// random partial syncs (and one revocation concurrent with writes); every
// change is then delivered to fresh replicas in random orders, chunked and
// duplicated. All replicas must end byte-identical: documents, conflicts,
// verdicts, heads.
func TestConvergenceRandomOrders(t *testing.T) {
	for round := 0; round < 4; round++ {
		seed := testSeed(t) + uint64(round)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { convergenceRound(t, seed) })
	}
}

func convergenceRound(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	admin := key(t, 1)
	clk := &clock{}
	sites := []*site{{key: admin, r: found(t, admin)}}
	for i := 2; i <= 4; i++ {
		k := key(t, byte(i))
		mustWrite(t, sites[0].r, admin, clk, core.Op{Kind: core.OpGrant, Member: k.Public(), Role: core.RoleWriter})
		sites = append(sites, &site{key: k, r: openMem(t)})
	}
	for _, s := range sites[1:] {
		syncInto(t, s.r, sites[0].r)
	}
	revoked := false
	for step := 0; step < 120; step++ {
		s := sites[rng.IntN(len(sites))]
		switch {
		case rng.IntN(4) == 0:
			// Partial sync: a random subset of another site's changes (orphans are held).
			src := sites[rng.IntN(len(sites))]
			envs, err := src.r.Export(nil)
			if err != nil {
				t.Fatal(err)
			}
			rng.Shuffle(len(envs), func(i, j int) { envs[i], envs[j] = envs[j], envs[i] })
			if _, err := s.r.Receive(ctx, envs[:rng.IntN(len(envs)+1)]); err != nil {
				t.Fatal(err)
			}
		case !revoked && step > 60 && s == sites[0]:
			// The admin revokes site 3's author without having seen its latest writes.
			mustWrite(t, s.r, admin, clk, core.Op{Kind: core.OpRevoke, Member: sites[3].key.Public()})
			revoked = true
		default:
			ops := randomOps(rng, s.r)
			if _, err := s.r.Write(ctx, s.key, ops, clk.now()); err != nil && s != sites[3] {
				t.Fatalf("seed %d: write by site %v: %v", seed, s.key.Public(), err)
			}
		}
	}
	// Everything every site holds (including orphans never resolved).
	all := map[core.ID][]byte{}
	for _, s := range sites {
		envs, err := s.r.Export(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range envs {
			all[core.IDOf(mustSigned(t, e).Body)] = e
		}
	}
	var envs [][]byte
	for _, e := range all {
		envs = append(envs, e)
	}
	var want string
	for replay := 0; replay < 5; replay++ {
		r := openMem(t)
		order := append([][]byte(nil), envs...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for i := 0; i < len(envs)/5; i++ { // duplicates
			order = append(order, envs[rng.IntN(len(envs))])
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for len(order) > 0 {
			n := 1 + rng.IntN(min(len(order), 40))
			if _, err := r.Receive(ctx, order[:n]); err != nil {
				t.Fatal(err)
			}
			order = order[n:]
		}
		got := fingerprint(t, r)
		if replay == 0 {
			want = got
			st, _ := r.Status()
			t.Logf("seed %d: %d changes (%d without effect), %d heads", seed, st.Changes, st.Invalid, len(st.Heads))
			if st.Changes != len(envs) || st.Orphans != 0 {
				t.Fatalf("seed %d: replica holds %d changes and %d orphans, want %d and 0", seed, st.Changes, st.Orphans, len(envs))
			}
			continue
		}
		if got != want {
			t.Fatalf("seed %d: replay %d diverged from replay 0:\n%s", seed, replay, printDiff(want, got))
		}
	}
	// The writing sites converge too once everyone has everything.
	for _, s := range sites {
		if _, err := s.r.Receive(ctx, envs); err != nil {
			t.Fatal(err)
		}
		if got := fingerprint(t, s.r); got != want {
			t.Fatalf("seed %d: site %s diverged after full sync:\n%s", seed, s.key.Public(), printDiff(want, got))
		}
	}
}

func mustSigned(t testing.TB, b []byte) core.Signed {
	s, err := core.DecodeSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
