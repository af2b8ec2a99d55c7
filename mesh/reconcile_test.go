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

// history is a single writer's chain of n changes: item i at height i+1.
func history(n int) []Item {
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{Height: uint64(i + 1), ID: item(uint64(i)).ID}
	}
	return out
}

// TestReconcileNewestMissingInFewRounds: a peer holding 1M changes that
// missed the newest 1k learns them in 2 round trips as initiator, and
// the other side learns what it has to give in 1; two equal sets agree
// in one round trip of a few ranges.
func TestReconcileNewestMissingInFewRounds(t *testing.T) {
	full := history(1_001_000)
	behind := full[:1_000_000]
	have, need, rounds := run(t, DefaultReconciler, behind, full)
	if len(have) != 0 || !slices.Equal(need, full[1_000_000:]) {
		t.Fatalf("behind as initiator: have %d need %d, want 0 and the newest 1000", len(have), len(need))
	}
	if rounds != 2 {
		t.Fatalf("behind as initiator: %d round trips, want 2", rounds)
	}
	have, need, rounds = run(t, DefaultReconciler, full, behind)
	if len(need) != 0 || !slices.Equal(have, full[1_000_000:]) {
		t.Fatalf("ahead as initiator: have %d need %d, want the newest 1000 and 0", len(have), len(need))
	}
	if rounds != 1 {
		t.Fatalf("ahead as initiator: %d round trips, want 1", rounds)
	}
	msg := DefaultReconciler.Initiate(full)
	if len(msg) != 5 || len(DefaultReconciler.Respond(full, msg)) != 0 {
		t.Fatalf("equal sets of 1M: %d ranges opened, want 5 and no answer", len(msg))
	}
	if got := DefaultReconciler.Initiate(full[:64]); len(got) != 1 || got[0].Lower != (Item{}) || got[0].Upper != MaxItem || got[0].Count != 64 {
		t.Fatalf("a set of 64 opens with %+v, want one range over everything", got)
	}
}

// TestReconcileRecentDifferences: seeded random histories where each
// side wrote changes of its own at the newest heights (and a few older
// ones went missing): have and need are exactly the differences, and the
// round trips stay bounded by the size of the difference, not the set.
func TestReconcileRecentDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	for trial := range 30 {
		n := 1000 + rng.IntN(300_000)
		base := history(n)
		a, b := slices.Clone(base), slices.Clone(base)
		var onlyA, onlyB []Item
		fresh := func(k int, tag uint64) (out []Item) {
			for i := range k {
				out = append(out, Item{Height: uint64(n + 1 + rng.IntN(k)), ID: item(tag<<40 | uint64(trial)<<24 | uint64(i)).ID})
			}
			return out
		}
		ka, kb := rng.IntN(3000), rng.IntN(3000)
		if trial%3 == 0 {
			kb = 0 // the usual catch-up: b only lacks a's newest
		}
		onlyA, onlyB = fresh(ka, 1), fresh(kb, 2)
		a, b = append(a, onlyA...), append(b, onlyB...)
		if trial%5 == 4 { // and a few older changes b never got
			for range 1 + rng.IntN(5) {
				i := rng.IntN(n)
				if j := slices.Index(b, base[i]); j >= 0 {
					onlyA = append(onlyA, base[i])
					b = slices.Delete(b, j, j+1)
				}
			}
		}
		a, b, onlyA, onlyB = sorted(a), sorted(b), sorted(onlyA), sorted(onlyB)
		for _, dir := range []struct {
			name         string
			ini, resp    []Item
			wantH, wantN []Item
		}{{"a initiates", a, b, onlyA, onlyB}, {"b initiates", b, a, onlyB, onlyA}} {
			have, need, rounds := run(t, DefaultReconciler, dir.ini, dir.resp)
			if !slices.Equal(have, dir.wantH) || !slices.Equal(need, dir.wantN) {
				t.Fatalf("trial %d (n=%d, %d and %d new), %s: have %d need %d, want %d and %d",
					trial, n, ka, kb, dir.name, len(have), len(need), len(dir.wantH), len(dir.wantN))
			}
			limit := 4
			if trial%5 == 4 {
				limit = 6 // an old difference is found from the bottom range down
			}
			if trial%3 == 0 && trial%5 != 4 && dir.name == "b initiates" {
				limit = 2
			}
			if rounds > limit {
				t.Fatalf("trial %d (n=%d, %d and %d new), %s: %d round trips, want at most %d", trial, n, ka, kb, dir.name, rounds, limit)
			}
		}
	}
}
