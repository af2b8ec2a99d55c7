package eventstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
)

func openMem(t testing.TB) (*badger.DB, *Log) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := Open(db, []byte("e/"))
	if err != nil {
		t.Fatal(err)
	}
	return db, l
}

func upsert(coll, id string, v int64) Effect {
	return Effect{Collection: coll, DocID: id, Kind: Upsert, Doc: map[string]any{"v": v}, Changes: []string{"c"}, Author: "a", HLC: "1.0", LastChange: "c", SchemaID: "s"}
}

func TestAppendReadDense(t *testing.T) {
	_, l := openMem(t)
	ctx := context.Background()
	for i := range 10 {
		out, err := l.Append([]Effect{upsert("Book", fmt.Sprint(i%3), int64(i)), upsert("Author", "x", int64(i))})
		if err != nil {
			t.Fatal(err)
		}
		if out[0].LSN != uint64(2*i+1) || out[1].LSN != uint64(2*i+2) {
			t.Fatalf("batch %d got LSNs %d,%d", i, out[0].LSN, out[1].LSN)
		}
	}
	if l.LastLSN() != 20 {
		t.Fatalf("last LSN %d, want 20", l.LastLSN())
	}
	got, err := l.Read(ctx, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].LSN != 5 || got[3].LSN != 8 {
		t.Fatalf("read 5..8 gave %+v", got)
	}
	if got[0].Doc["v"] != int64(2) || got[0].Collection != "Book" || got[0].DocID != "2" {
		t.Fatalf("effect 5 decoded as %+v", got[0])
	}
	if rest, _ := l.Read(ctx, 21, 10); len(rest) != 0 {
		t.Fatalf("read past the end gave %d effects", len(rest))
	}
	if _, err := l.Append([]Effect{{Collection: "Book", DocID: "z"}}); err == nil {
		t.Fatal("an effect without a kind was appended")
	}
	if l.LastLSN() != 20 {
		t.Fatalf("failed append moved the last LSN to %d", l.LastLSN())
	}
}

func TestDiscardedTxnUsesNoLSN(t *testing.T) {
	db, l := openMem(t)
	txn := db.NewTransaction(true)
	if err := l.AppendTx(badgerTx{txn}, []Effect{upsert("Book", "1", 1)}); err != nil {
		t.Fatal(err)
	}
	txn.Discard()
	out, err := l.Append([]Effect{upsert("Book", "2", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].LSN != 1 {
		t.Fatalf("after a discarded transaction the next LSN is %d, want 1", out[0].LSN)
	}
}

func TestWaitWakesOnCommit(t *testing.T) {
	db, l := openMem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, 0) }()
	err := db.Update(func(txn *badger.Txn) error {
		return l.AppendTx(badgerTx{txn}, []Effect{upsert("Book", "1", 1)})
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Committed()
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := l.Wait(short, 1); err == nil {
		t.Fatal("wait returned with nothing new")
	}
}

func TestCompactKeepsNewestPerDocument(t *testing.T) {
	_, l := openMem(t)
	ctx := context.Background()
	// doc i%5 written 20 times each; doc "3" ends deleted.
	for i := range 100 {
		e := upsert("Book", fmt.Sprint(i%5), int64(i))
		if i == 98 {
			e = Effect{Collection: "Book", DocID: "3", Kind: Delete}
		}
		if _, err := l.Append([]Effect{e}); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := l.Compact(ctx, 97)
	if err != nil {
		t.Fatal(err)
	}
	// Effect i has LSN i+1. Within LSNs 1..97 only 96 ("0") and 97 ("1")
	// are the newest of their documents ("2" is rewritten at 98, "3"
	// deleted at 99, "4" rewritten at 100).
	if removed != 95 {
		t.Fatalf("compaction removed %d, want 95", removed)
	}
	all, err := l.Read(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[0].LSN != 96 {
		t.Fatalf("after compaction %d effects from LSN %d, want 5 from 96", len(all), all[0].LSN)
	}
	// Replaying what is left gives the same final state as replaying everything.
	state := map[string]any{}
	for _, e := range all {
		if e.Kind == Delete {
			delete(state, e.DocID)
		} else {
			state[e.DocID] = e.Doc["v"]
		}
	}
	want := map[string]any{"0": int64(95), "1": int64(96), "2": int64(97), "4": int64(99)}
	if fmt.Sprint(state) != fmt.Sprint(want) {
		t.Fatalf("state after replay of compacted log %v, want %v", state, want)
	}
	st, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.First != 96 || st.Last != 100 || st.CompactedThrough != 97 {
		t.Fatalf("stats %+v", st)
	}
	if again, _ := l.Compact(ctx, 97); again != 0 {
		t.Fatalf("second compaction removed %d", again)
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			_, l := openMem(b)
			effects := make([]Effect, batch)
			for i := range effects {
				effects[i] = upsert("Book", fmt.Sprint(i), int64(i))
			}
			b.ResetTimer()
			for range b.N {
				if _, err := l.Append(effects); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "effects/s")
		})
	}
}

// ReadSized stops before the effect that would take the stored size of
// what it returns past the bound, and returns a first effect larger than
// the bound on its own.
func TestReadSized(t *testing.T) {
	_, l := openMem(t)
	ctx := context.Background()
	var in []Effect
	for i := range 6 {
		in = append(in, upsert("Book", fmt.Sprint(i), int64(i)))
	}
	in[3].Doc["blob"] = string(make([]byte, 2000))
	stored, err := l.Append(in)
	if err != nil {
		t.Fatal(err)
	}
	one, err := core.Marshal(&stored[0])
	if err != nil {
		t.Fatal(err)
	}
	size := len(one) // effects 0, 1, 2, 4 and 5 encode alike in size
	got, err := l.ReadSized(ctx, 1, 10, 2*size+size/2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].LSN != 2 {
		t.Fatalf("bounded to 2.5 effects' size: got %d effects", len(got))
	}
	if got, err = l.ReadSized(ctx, 3, 10, 3*size); err != nil || len(got) != 1 || got[0].LSN != 3 {
		t.Fatalf("the large effect 4 must not join 3: got %d effects, %v", len(got), err)
	}
	if got, err = l.ReadSized(ctx, 4, 10, size); err != nil || len(got) != 1 || got[0].LSN != 4 || len(got[0].Doc["blob"].(string)) != 2000 {
		t.Fatalf("a first effect over the bound must come alone: got %d effects, %v", len(got), err)
	}
	if got, err = l.ReadSized(ctx, 1, 4, 0); err != nil || len(got) != 4 {
		t.Fatalf("no bound: got %d effects, want the 4 asked for (%v)", len(got), err)
	}
}
