package replica

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

// TestWritesTheSpaceCannotCarryAreRefused replays findings 1-3 of the
// integrity review: ids and values that are not valid UTF-8, and a change
// just over the size limit after encoding, are refused with an error
// naming the problem, and nothing is stored.
func TestWritesTheSpaceCannotCarryAreRefused(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	clk := &clock{}
	r := found(t, admin)
	before := fingerprint(t, r)
	for name, tc := range map[string]struct {
		m    Mutation
		want string
	}{
		"id bad utf-8":       {Mutation{Op: MutPut, Collection: "Author", ID: "bad\xffid", Fields: map[string]any{"name": "x"}}, "not valid UTF-8"},
		"id slash":           {Mutation{Op: MutPut, Collection: "Author", ID: "a/b", Fields: map[string]any{"name": "x"}}, "'/'"},
		"id control":         {Mutation{Op: MutPut, Collection: "Author", ID: "a\x01b", Fields: map[string]any{"name": "x"}}, "control"},
		"id C1 control":      {Mutation{Op: MutPut, Collection: "Author", ID: "a\u0085b", Fields: map[string]any{"name": "x"}}, "control"},
		"id too long":        {Mutation{Op: MutPut, Collection: "Author", ID: strings.Repeat("x", 257), Fields: map[string]any{"name": "x"}}, "1 to 256 bytes"},
		"id dot-dot":         {Mutation{Op: MutPut, Collection: "Author", ID: "..", Fields: map[string]any{"name": "x"}}, "reserved"},
		"value bad utf-8":    {Mutation{Op: MutPut, Collection: "Author", ID: "a1", Fields: map[string]any{"name": "bad\xffname"}}, "UTF-8"},
		"json bad utf-8":     {Mutation{Op: MutPut, Collection: "Book", ID: "b1", Fields: map[string]any{"title": "t", "meta": map[string]any{"k\xff": 1}}}, "UTF-8"},
		"unknown field":      {Mutation{Op: MutPut, Collection: "Author", ID: "a1", Fields: map[string]any{"nope": 1}}, "unknown field"},
		"unknown collection": {Mutation{Op: MutPut, Collection: "Nope", ID: "a1", Fields: map[string]any{}}, "unknown collection"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := r.Mutate(ctx, admin, []Mutation{tc.m}, clk.now())
			var me *MutationError
			if !errors.As(err, &me) || me.Index != 0 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
	// A raw write of one op holding 4 MiB minus a little: under the limit
	// as text, over it once encoded with the change around it.
	big := strings.Repeat("x", core.MaxChangeBytes-100)
	_, err := r.Write(ctx, admin, []core.Op{{Kind: core.OpCreate, Coll: "Book", Doc: "big", Fields: map[string]any{"title": "t", "meta": `"` + big + `"`}}}, clk.now())
	if !errors.Is(err, core.ErrTooLarge) {
		t.Fatalf("oversize change: %v", err)
	}
	if after := fingerprint(t, r); after != before {
		t.Fatalf("a refused write changed the store:\n%s", printDiff(before, after))
	}
}

// TestConcurrentPutsPlanInsideTheWriterLock replays finding 4: two
// concurrent puts of likes=3 on one document must leave likes=3, never
// 6 (each planned from the same stale read).
func TestConcurrentPutsPlanInsideTheWriterLock(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	clk := &clock{}
	r := found(t, admin)
	var mu sync.Mutex
	now := func() uint64 { mu.Lock(); defer mu.Unlock(); return clk.now() }
	for trial := 0; trial < 200; trial++ {
		id := fmt.Sprintf("b%d", trial)
		if _, _, err := r.Mutate(ctx, admin, []Mutation{{Op: MutPut, Collection: "Book", ID: id, Fields: map[string]any{"title": "t"}}}, now()); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := r.Mutate(ctx, admin, []Mutation{{Op: MutPut, Collection: "Book", ID: id, Fields: map[string]any{"likes": 3}}}, now()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		d, _, err := r.Get("Book", id)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Fields["likes"]; got != int64(3) {
			t.Fatalf("trial %d: likes = %v after two concurrent puts of 3", trial, got)
		}
	}
}

// TestBatchIsAtomic: one bad mutation refuses the whole batch, naming it.
func TestBatchIsAtomic(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	clk := &clock{}
	r := found(t, admin)
	before := fingerprint(t, r)
	_, _, err := r.Mutate(ctx, admin, []Mutation{
		{Op: MutPut, Collection: "Author", ID: "a1", Fields: map[string]any{"name": "Ann"}},
		{Op: MutPut, Collection: "Book", ID: "b1", Fields: map[string]any{"title": "T", "author": "a1"}},
		{Op: MutPut, Collection: "Book", ID: "b2", Fields: map[string]any{"title": "T", "year": 99999}},
	}, clk.now())
	var me *MutationError
	if !errors.As(err, &me) || me.Index != 2 {
		t.Fatalf("got %v, want operation 3 named", err)
	}
	if after := fingerprint(t, r); after != before {
		t.Fatalf("a refused batch changed the store:\n%s", printDiff(before, after))
	}
	// The same without the bad one: references to documents created
	// earlier in the batch hold; a large batch is split into several
	// changes committed together.
	var muts []Mutation
	muts = append(muts, Mutation{Op: MutPut, Collection: "Author", ID: "a1", Fields: map[string]any{"name": "Ann"}})
	for i := range 6000 {
		muts = append(muts, Mutation{Op: MutPut, Collection: "Book", ID: fmt.Sprintf("b%d", i), Fields: map[string]any{"title": "T", "author": "a1"}})
	}
	res, last, err := r.Mutate(ctx, admin, muts, clk.now())
	if err != nil || last.IsZero() || len(res) != len(muts) || !res[1].Created {
		t.Fatalf("batch: %v", err)
	}
	if docs, _ := r.Query("Book", nil); len(docs) != 6000 {
		t.Fatalf("%d books", len(docs))
	}
}

// TestEveryLocalWriteReplicates is the symmetry property: random writes
// through the public API (good and bad: odd ids, odd text, big values,
// unknown fields, deletes of missing documents) on A; then A's changes go
// to a fresh B. Every change A accepted, B accepts, and the two are
// byte-identical.
func TestEveryLocalWriteReplicates(t *testing.T) {
	ctx := context.Background()
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	admin := key(t, 1)
	clk := &clock{}
	a := found(t, admin)
	ids := []string{"a", "b", "c", "ünï", "日本", strings.Repeat("z", 256), "", "bad\xffid", "x/y", "\u0085", strings.Repeat("z", 257)}
	texts := []string{"t", "ok ünï", "", "\x00nul", strings.Repeat("w", 1<<20), "bad\xff"}
	pick := func(l []string) string { // mostly good values, sometimes a bad one
		if rng.IntN(4) == 0 {
			return l[rng.IntN(len(l))]
		}
		return l[rng.IntN(len(l)/2)]
	}
	accepted, refused := 0, 0
	for step := 0; step < 300; step++ {
		var muts []Mutation
		for range 1 + rng.IntN(3) {
			m := Mutation{Op: MutPut, Collection: "Book", ID: pick(ids)}
			switch rng.IntN(10) {
			case 0:
				m.Op = MutDelete
			case 1:
				m.Collection, m.Fields = "Author", map[string]any{"name": pick(texts)}
			case 2:
				m.Fields = map[string]any{"title": pick(texts), "tags": []any{pick(texts)}}
			case 3:
				m.Fields = map[string]any{"title": "t", "likes": rng.IntN(10), "year": rng.IntN(5000) - 2500}
			case 4:
				m.Fields = map[string]any{"title": "t", "meta": map[string]any{pick(texts): []any{1, "x"}}}
			case 5:
				m.Fields = map[string]any{"title": "t", "nope": true}
			case 6:
				m.Collection, m.Fields = "Nope", map[string]any{}
			default:
				m.Fields = map[string]any{"title": pick(texts), "year": rng.IntN(300) + 1900}
			}
			muts = append(muts, m)
		}
		if _, _, err := a.Mutate(ctx, admin, muts, clk.now()); err != nil {
			refused++
		} else {
			accepted++
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("degenerate run: %d accepted, %d refused", accepted, refused)
	}
	b := openMem(t)
	rep := receive(t, b, mustExport(t, a)...)
	if len(rep.Rejected) > 0 || rep.Invalid > 0 {
		t.Fatalf("B refused what A accepted: %d rejected (first: %v), %d invalid", len(rep.Rejected), rep.Rejected, rep.Invalid)
	}
	if fa, fb := fingerprint(t, a), fingerprint(t, b); fa != fb {
		t.Fatalf("A and B differ:\n%s", printDiff(fa, fb))
	}
	t.Logf("%d batches accepted, %d refused; B accepted all %d changes", accepted, refused, rep.Applied)
}
