package mesh_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/memnet"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

var indexSeed = flag.Uint64("index-seed", 0, "seed of TestIndexFollowsTheStore (0: time-based)")

// fullRange lists the store the slow way: the reference.
func fullRange(t testing.TB, r *replica.Replica) []mesh.Item {
	t.Helper()
	var out []mesh.Item
	if err := r.Range(0, math.MaxUint64, func(h uint64, id core.ID) bool {
		out = append(out, mesh.Item{Height: h, ID: id})
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// rangeOnly hides the replica's Heights: the node then rebuilds its index
// with a full Range after every store, as before the index was kept up to
// date incrementally.
type rangeOnly struct{ mesh.Store }

func startIndexNode(t testing.TB, store mesh.Store, net *memnet.Network, key core.PrivateKey) *mesh.Node {
	t.Helper()
	n := mesh.NewNode(store, net.Endpoint(mesh.PeerOf(key.Public())), mesh.Config{SyncInterval: time.Hour})
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestIndexFollowsTheStore: after random interleavings of local writes
// and received changes (out of order, so some wait for their parents and
// are released later), the node's index equals a full listing of the
// store.
func TestIndexFollowsTheStore(t *testing.T) {
	seed := *indexSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -index-seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx := context.Background()
	s := meshtest.NewSpace(t, 3)
	r, other := s.Member(t), s.Member(t)
	net := memnet.New(seed, memnet.Faults{})
	defer net.Close()
	n := startIndexNode(t, r, net, s.Keys[0])

	var pool [][]byte // other's changes not delivered yet
	check := func(step int) {
		t.Helper()
		got, err := n.Changes()
		if err != nil {
			t.Fatal(err)
		}
		if want := fullRange(t, r); !slices.Equal(got, want) {
			t.Fatalf("seed %d, step %d: the index holds %d items, the store %d", seed, step, len(got), len(want))
		}
	}
	for step := range 600 {
		switch p := rng.IntN(100); {
		case p < 35:
			if _, err := r.Write(ctx, s.Keys[0], []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("local-%d", step), Fields: map[string]any{"text": "l"}}}, s.Now()); err != nil {
				t.Fatal(err)
			}
		case p < 60:
			key := s.Keys[1+rng.IntN(2)]
			id, err := other.Write(ctx, key, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("remote-%d", step), Fields: map[string]any{"text": "r"}}}, s.Now())
			if err != nil {
				t.Fatal(err)
			}
			env, err := other.Envelope(id)
			if err != nil {
				t.Fatal(err)
			}
			pool = append(pool, env)
		case p < 85 && len(pool) > 0:
			k := 1 + rng.IntN(min(len(pool), 4))
			rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
			if _, err := r.Receive(ctx, pool[:k]); err != nil {
				t.Fatal(err)
			}
			pool = pool[k:]
		default:
			check(step)
		}
	}
	if _, err := r.Receive(ctx, pool); err != nil {
		t.Fatal(err)
	}
	check(600)
	if len(r.Orphans()) != 0 {
		t.Fatalf("seed %d: %d changes still held", seed, len(r.Orphans()))
	}
}

// bench100k is a replica holding 100k changes, built once per run.
var bench100k struct {
	once  sync.Once
	space *meshtest.Space
	r     *replica.Replica
}

// BenchmarkSyncRound100k: one reconciliation round between two nodes
// that hold the same 100k changes, right after one more change was
// stored (so the index cannot be reused as it was). "rebuild" lists the
// whole store again, as the node did before; "incremental" inserts the
// new change.
func BenchmarkSyncRound100k(b *testing.B) {
	bench100k.once.Do(func() {
		s := meshtest.NewSpace(b, 2)
		r, err := replica.Open(replica.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if _, err := r.Receive(ctx, s.Bootstrap); err != nil {
			b.Fatal(err)
		}
		chain := s.Chain(b, 100000)
		for i := 0; i < len(chain); i += 5000 {
			if _, err := r.Receive(ctx, chain[i:min(i+5000, len(chain))]); err != nil {
				b.Fatal(err)
			}
		}
		bench100k.space, bench100k.r = s, r
	})
	s, r := bench100k.space, bench100k.r
	for _, mode := range []string{"rebuild", "incremental"} {
		b.Run(mode, func(b *testing.B) {
			var store mesh.Store = r
			if mode == "rebuild" {
				store = rangeOnly{r}
			}
			net := memnet.New(1, memnet.Faults{})
			defer net.Close()
			a := startIndexNode(b, store, net, s.Keys[0])
			startIndexNode(b, store, net, s.Keys[1]) // the peer, on the same store
			peer := mesh.PeerOf(s.Keys[1].Public())
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if _, err := r.Write(ctx, s.Keys[0], []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("bench-%s-%d", mode, i), Fields: map[string]any{"text": "b"}}}, s.Now()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				st, err := a.SyncWith(ctx, peer)
				if err != nil || st.Fetched != 0 {
					b.Fatalf("sync: %+v, %v", st, err)
				}
			}
			items, err := a.Changes()
			if err != nil || len(items) < 100000 {
				b.Fatalf("index of %d items, err %v", len(items), err)
			}
		})
	}
}
