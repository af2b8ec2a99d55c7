package mesh

import (
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
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

func item(n uint64) Item {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return Item{Height: n/7 + 1, ID: sha256.Sum256(b[:])}
}

func sorted(items []Item) []Item {
	slices.SortFunc(items, Item.Compare)
	return slices.CompactFunc(items, func(a, b Item) bool { return a.Compare(b) == 0 })
}

// run reconciles a (initiator) with b and returns have, need and rounds.
func run(t *testing.T, rc Reconciler, a, b []Item) (have, need []Item, rounds int) {
	t.Helper()
	msg := rc.Initiate(a)
	for len(msg) > 0 {
		rounds++
		if rounds > 64 {
			t.Fatal("reconciliation did not finish in 64 rounds")
		}
		reply := rc.Respond(b, msg)
		var h, n []Item
		msg, h, n = rc.Step(a, reply)
		have, need = append(have, h...), append(need, n...)
	}
	return sorted(have), sorted(need), rounds
}

// TestReconcileFindsExactDifference: random overlapping sets; have and
// need must be exactly a\b and b\a, in few round trips.
func TestReconcileFindsExactDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	for trial := range 40 {
		var a, b, onlyA, onlyB []Item
		common := rng.IntN(5000)
		for i := range common {
			a, b = append(a, item(uint64(i))), append(b, item(uint64(i)))
		}
		na, nb := rng.IntN(300), rng.IntN(3000)
		if trial%5 == 0 {
			na, nb = 0, 0
		}
		for i := range na {
			x := item(uint64(1_000_000 + trial*10000 + i))
			a, onlyA = append(a, x), append(onlyA, x)
		}
		for i := range nb {
			x := item(uint64(2_000_000 + trial*10000 + i))
			b, onlyB = append(b, x), append(onlyB, x)
		}
		a, b, onlyA, onlyB = sorted(a), sorted(b), sorted(onlyA), sorted(onlyB)
		have, need, rounds := run(t, DefaultReconciler, a, b)
		if !slices.Equal(have, onlyA) || !slices.Equal(need, onlyB) {
			t.Fatalf("trial %d: have %d need %d, want %d and %d", trial, len(have), len(need), len(onlyA), len(onlyB))
		}
		if rounds > 6 {
			t.Fatalf("trial %d: %d round trips for %d items", trial, rounds, len(a)+len(b))
		}
	}
}

// TestReconcileLargeCatchUp: a peer missing 100k items catches up in a
// logarithmic number of rounds.
func TestReconcileLargeCatchUp(t *testing.T) {
	var full []Item
	for i := range 100_000 {
		full = append(full, item(uint64(i)))
	}
	full = sorted(full)
	behind := full[:1000]
	have, need, rounds := run(t, DefaultReconciler, behind, full)
	if len(have) != 0 || len(need) != 99_000 {
		t.Fatalf("have %d need %d", len(have), len(need))
	}
	t.Logf("100k items, 99k missing: %d round trips", rounds)
	if rounds > 5 {
		t.Fatalf("%d round trips", rounds)
	}
}

func TestFingerprintSplitInvariant(t *testing.T) {
	var xs []Item
	for i := range 100 {
		xs = append(xs, item(uint64(i)))
	}
	if Fingerprint(xs) == Fingerprint(xs[:99]) {
		t.Fatal("fingerprint ignores an item")
	}
	ys := slices.Clone(xs)
	slices.Reverse(ys)
	if Fingerprint(xs) != Fingerprint(ys) {
		t.Fatal("fingerprint depends on order")
	}
}
