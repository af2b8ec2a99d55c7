package adaptertest

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// recorder wraps a sink and records how the runner calls Apply.
type recorder struct {
	checkpoint.Sink
	delay time.Duration

	mu          sync.Mutex
	calls       int
	maxLen      int
	inflight    int
	maxInflight int
	throughs    []uint64 // of successful applies, in order
	interrupted int      // applies that failed after their context ended
}

// Prepare passes checkpoint.Preparer through.
func (r *recorder) Prepare(ctx context.Context, sch *schema.Schema) error {
	return prepare(ctx, r.Sink, sch)
}

func (r *recorder) Apply(ctx context.Context, b checkpoint.Batch) error {
	r.mu.Lock()
	r.calls++
	r.maxLen = max(r.maxLen, len(b.Effects))
	r.inflight++
	r.maxInflight = max(r.maxInflight, r.inflight)
	r.mu.Unlock()
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	err := r.Sink.Apply(ctx, b)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight--
	if err == nil {
		r.throughs = append(r.throughs, b.Through)
	} else if ctx.Err() != nil {
		r.interrupted++
	}
	return err
}

func testApplyAll(f *fixture) {
	var es []eventstream.Effect
	for i := range 10 {
		es = append(es, f.upsert("Author", authorID(i), author(i, 0)))
	}
	for i := range 120 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 0)))
	}
	for i := 0; i < 120; i += 3 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 1)))
	}
	for i := 0; i < 120; i += 10 {
		es = append(es, f.del("Book", bookID(i+1)))
	}
	for i := range 5 {
		es = append(es, f.upsert("Author", authorID(i), author(i, 1)))
	}
	f.append(es...)

	s := f.open()
	if c := f.checkpointOf(s); c != 0 {
		f.t.Fatalf("a new sink reports checkpoint %d, want 0", c)
	}
	r := f.runner(s, config(64))
	f.catchUp(r)
	st := r.Status()
	if st.Checkpoint != f.last() || st.Lag != 0 || st.Parked != 0 {
		f.t.Fatalf("status after catch-up: %+v, want checkpoint %d, no lag, nothing parked", st, f.last())
	}
	f.check(s, f.last())
}

func testReplay(f *fixture) {
	s := f.open()
	var es []eventstream.Effect
	for i := range 20 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 0)))
	}
	for i := range 10 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 1)))
	}
	es = append(es, f.del("Book", bookID(15)), f.upsert("Author", authorID(1), author(1, 0)))
	es = f.append(es...)
	first := checkpoint.Batch{Effects: checkpoint.Collapse(es), Through: es[len(es)-1].LSN}
	f.apply(s, first)
	f.check(s, first.Through)

	// The same batch again changes nothing.
	f.apply(s, first)
	f.check(s, first.Through)

	// Newer effects, then the first batch again: it is below the
	// checkpoint, so neither the data nor the checkpoint go back.
	es2 := f.append(
		f.upsert("Book", bookID(1), book(1, 2)),
		f.del("Book", bookID(2)),
		f.upsert("Book", bookID(15), book(15, 3)),
		f.upsert("Author", authorID(1), author(1, 1)),
		f.upsert("Book", bookID(3), book(3, 2)),
	)
	second := checkpoint.Batch{Effects: checkpoint.Collapse(es2), Through: es2[len(es2)-1].LSN}
	f.apply(s, second)
	f.check(s, second.Through)
	f.apply(s, first)
	f.check(s, second.Through)
	f.apply(s, checkpoint.Batch{Effects: checkpoint.Collapse(es[:5]), Through: es[4].LSN})
	f.check(s, second.Through)
	f.apply(s, second)
	f.check(s, second.Through)

	// A batch that overlaps the checkpoint: its older part is already in.
	es3 := f.append(f.upsert("Book", bookID(1), book(1, 4)), f.upsert("Book", bookID(30), book(30, 0)))
	f.apply(s, checkpoint.Batch{Effects: checkpoint.Collapse(append(slices.Clone(es2[2:]), es3...)), Through: es3[len(es3)-1].LSN})
	f.check(s, es3[len(es3)-1].LSN)

	// An empty batch only moves the checkpoint (its effects were parked).
	es4 := f.append(f.upsert("Book", bookID(4), book(4, 9)), f.del("Book", bookID(5)))
	f.skip(es4)
	f.apply(s, checkpoint.Batch{Through: es4[len(es4)-1].LSN})
	f.check(s, es4[len(es4)-1].LSN)

	// A new instance sees the same checkpoint, and a runner has nothing to do.
	f.close(s)
	s2 := f.open()
	r := f.runner(s2, config(10))
	f.catchUp(r)
	if st := r.Status(); st.Applied != 0 || st.Checkpoint != f.last() {
		f.t.Fatalf("runner over a caught-up sink: %+v", st)
	}
	f.check(s2, f.last())
}

func testOrdering(f *fixture) {
	const hot = "book-hot"
	var es []eventstream.Effect
	for v := range 60 {
		if v == 20 || v == 40 {
			es = append(es, f.del("Book", hot))
		} else {
			es = append(es, f.upsert("Book", hot, book(999, v)))
		}
		es = append(es, f.upsert("Book", bookID(v%5), book(v%5, v)))
		if v%7 == 3 {
			es = append(es, f.del("Book", bookID((v+2)%5)))
		}
		if v%9 == 0 {
			es = append(es, f.upsert("Author", authorID(v%3), author(v%3, v)))
		}
	}
	f.append(es...)
	s := f.open()
	r := f.runner(s, config(7))
	for steps := 0; ; steps++ {
		n, err := r.RunOnce(f.ctx())
		if err != nil {
			f.t.Fatalf("run once: %v", err)
		}
		if n == 0 {
			break
		}
		f.check(s, r.Status().Checkpoint)
		if steps > len(es) {
			f.t.Fatal("the runner does not finish")
		}
	}
	f.check(s, f.last())

	// Directly: the hot document with every field, deleted in one batch,
	// re-created with only its title in the next: no old field survives.
	full := book(999, 100)
	full["meta"], full["cover"], full["available"], full["year"] = js(map[string]any{"full": true}), []byte("c"), true, int64(2000)
	for _, e := range [][]eventstream.Effect{
		f.append(f.upsert("Book", hot, full)),
		f.append(f.del("Book", hot)),
		f.append(f.upsert("Book", hot, map[string]any{"title": "reborn"})),
		f.append(f.upsert("Book", hot, full), f.upsert("Book", hot, map[string]any{"title": "only the title"})),
	} {
		f.apply(s, checkpoint.Batch{Effects: checkpoint.Collapse(e), Through: e[len(e)-1].LSN})
		f.check(s, e[len(e)-1].LSN)
	}
}

func testDeletes(f *fixture) {
	s := f.open()
	r := f.runner(s, config(100))

	// Deletes of documents that never existed, in a collection never written.
	f.append(f.del("Sample", "ghost"), f.del("Book", "ghost"))
	f.catchUp(r)
	f.check(s, f.last())

	var es []eventstream.Effect
	for i := range 30 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 0)))
	}
	for i := range 5 {
		es = append(es, f.upsert("Author", authorID(i), author(i, 0)))
	}
	es = append(es, f.upsert("Sample", "s1", map[string]any{"text": "x"}))
	f.append(es...)
	f.catchUp(r)
	f.check(s, f.last())

	es = nil
	for i := range 10 {
		es = append(es, f.del("Book", bookID(i)))
	}
	es = append(es, f.del("Book", "never"), f.del("Author", authorID(0)), f.del("Book", bookID(11)), f.del("Book", bookID(11)), f.del("Sample", "s1"))
	f.append(es...)
	f.catchUp(r)
	f.check(s, f.last())

	// Deleted documents come back.
	f.append(f.upsert("Book", bookID(3), book(3, 7)), f.upsert("Book", bookID(4), book(4, 7)), f.upsert("Author", authorID(0), author(0, 7)))
	f.catchUp(r)
	f.check(s, f.last())

	// Delete everything, with a runner that cuts it into small batches.
	es = nil
	for coll, docs := range f.want(f.last()) {
		for _, id := range sortedKeys(docs) {
			es = append(es, f.del(coll, id))
		}
	}
	f.append(es...)
	r2 := f.runner(s, config(9))
	f.catchUp(r2)
	f.check(s, f.last())
	for _, c := range f.Schema().Collections {
		if got := f.h.Read(f.t, f.name, c.Name); len(got) != 0 {
			f.t.Fatalf("%s holds %d documents after deleting all", c.Name, len(got))
		}
	}
}

func testSchemaUpgrade(f *fixture) {
	rec := &recorder{Sink: f.open()}
	r := f.runner(rec, config(50))
	var es []eventstream.Effect
	for i := range 20 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 0)))
	}
	for i := range 3 {
		es = append(es, f.upsert("Author", authorID(i), author(i, 0)))
	}
	f.append(es...)
	f.catchUp(r)
	f.check(rec, f.last())

	// The upgrade: Book.isbn and Publisher appear in effects under v2.
	f.setSchema(SchemaV2)
	es = nil
	for i := 20; i < 30; i++ {
		d := book(i, 0)
		d["isbn"] = fmt.Sprintf("978-%010d", i)
		es = append(es, f.upsert("Book", bookID(i), d))
	}
	for i := range 5 {
		d := book(i, 1)
		d["isbn"] = fmt.Sprintf("979-%010d", i)
		es = append(es, f.upsert("Book", bookID(i), d))
	}
	es = append(es, f.upsert("Book", bookID(5), book(5, 1)))
	for i := range 3 {
		es = append(es, f.upsert("Publisher", fmt.Sprintf("pub-%d", i), map[string]any{"name": fmt.Sprintf("Press %d", i), "founded": int64(1900 + i)}))
	}
	f.append(es...)
	f.catchUp(r)
	f.check(rec, f.last())
	rec.mu.Lock()
	throughs := slices.Clone(rec.throughs)
	rec.mu.Unlock()
	if !slices.IsSorted(throughs) || len(throughs) == 0 || throughs[0] == 0 {
		f.t.Fatalf("checkpoints recorded across the upgrade went back or restarted: %v", throughs)
	}

	// A new instance under v2 carries on over the upgraded target.
	f.close(rec)
	s2 := f.open()
	if c := f.checkpointOf(s2); c != f.last() {
		f.t.Fatalf("reopened after the upgrade: checkpoint %d, want %d", c, f.last())
	}
	d := book(30, 0)
	d["isbn"] = "isbn-30"
	f.append(f.upsert("Book", bookID(30), d), f.upsert("Publisher", "pub-1", map[string]any{"name": "Press 1 renamed"}), f.upsert("Book", bookID(1), book(1, 2)))
	r2 := f.runner(s2, config(50))
	f.catchUp(r2)
	f.check(s2, f.last())
}

func testCrashResume(f *fixture) {
	var es []eventstream.Effect
	for v := range 4 {
		for i := range 90 {
			es = append(es, f.upsert("Book", bookID(i), book(i, v)))
		}
		for i := range 10 {
			es = append(es, f.upsert("Author", authorID(i), author(i, v)))
		}
	}
	for i := 0; i < 90; i += 7 {
		es = append(es, f.del("Book", bookID(i)))
	}
	f.append(es...)

	// A sink applies three batches, then its process dies.
	s1 := f.open()
	r1 := f.runner(s1, config(50))
	for range 3 {
		if _, err := r1.RunOnce(f.ctx()); err != nil {
			f.t.Fatalf("run once: %v", err)
		}
	}
	c1 := r1.Status().Checkpoint
	if c1 != 150 {
		f.t.Fatalf("checkpoint after three batches of 50: %d", c1)
	}
	f.close(s1)

	// A new instance resumes where it stopped.
	s2 := f.open()
	if c := f.checkpointOf(s2); c != c1 {
		f.t.Fatalf("reopened sink: checkpoint %d, want %d", c, c1)
	}
	f.checkState(c1)
	r2 := f.runner(s2, config(50))
	f.catchUp(r2)
	f.check(s2, f.last())
	if st := r2.Status(); st.Batches != uint64((len(es)-150+49)/50) {
		f.t.Fatalf("resumed runner applied %d batches, want %d (it must start at the checkpoint)", st.Batches, (len(es)-150+49)/50)
	}
	f.close(s2)

	// Runs cut short by their context at every moment leave the data and
	// the checkpoint consistent.
	es = nil
	for v := range 3 {
		for i := range 1000 {
			d := book(i, v+10)
			d["meta"] = js(map[string]any{"padding": fmt.Sprintf("%0200d", i), "v": v})
			es = append(es, f.upsert("Book", bookID(i), d))
		}
	}
	f.append(es...)
	rec := &recorder{Sink: f.open()}
	r3 := f.runner(rec, config(400))
	deadlines := []time.Duration{0, 20 * time.Microsecond, 100 * time.Microsecond, 300 * time.Microsecond, time.Millisecond,
		2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond, 8 * time.Millisecond, 13 * time.Millisecond,
		21 * time.Millisecond, 34 * time.Millisecond, 55 * time.Millisecond, 100 * time.Millisecond, time.Second}
	failed := 0
	var runs []string // what each run did, printed when a check fails
	defer func() {
		if f.t.Failed() {
			f.t.Logf("runs cut short before the failure:\n  %s", strings.Join(runs, "\n  "))
		}
	}()
	for i := 0; i < 3*len(deadlines); i++ {
		if f.checkpointOf(rec) == f.last() {
			break
		}
		d := deadlines[i%len(deadlines)]
		ctx, cancel := context.WithTimeout(f.ctx(), d)
		_, err := r3.RunOnce(ctx)
		cancel()
		if err != nil {
			failed++
		}
		c := f.checkpointOf(rec)
		runs = append(runs, fmt.Sprintf("run %d, deadline %s: checkpoint %d, error %v", i, d, c, err))
		f.checkState(c)
	}
	f.catchUp(r3)
	f.check(rec, f.last())
	rec.mu.Lock()
	f.t.Logf("%d runs cut short, %d of them inside Apply", failed, rec.interrupted)
	rec.mu.Unlock()
	if failed == 0 {
		f.t.Fatal("no run was cut short")
	}
}

func testPoison(f *fixture) {
	p, ok := f.h.Poison()
	if !ok {
		f.t.Fatalf("%s offers no poison effect: every sink refuses something, and the suite must see it parked", f.h.Name())
	}
	poison := func(id string) eventstream.Effect {
		e := p
		e.DocID, e.LSN, e.Kind = id, 0, eventstream.Upsert
		e.Doc = maps.Clone(p.Doc)
		return f.stamp(e)
	}
	if p.Collection == "" {
		f.t.Fatal("the poison effect names no collection")
	}
	var good []eventstream.Effect
	for i := range 20 {
		good = append(good, f.upsert("Book", bookID(i), book(i, 0)))
	}
	f.append(good...)
	s := f.open()
	r := f.runner(s, config(100))
	f.catchUp(r)
	// An update of an existing document (applied in an earlier batch: a
	// batch keeps only the newest effect of each document, so a document
	// whose newest effect is parked keeps the state it had before the batch).
	bad := f.appendRejected(poison(bookID(3)))
	good = nil
	for i := 20; i < 40; i++ {
		good = append(good, f.upsert("Book", bookID(i), book(i, 0)))
	}
	f.append(good...)
	bad = append(bad, f.appendRejected(poison("poison-new"))...)
	f.append(f.upsert("Book", bookID(5), book(5, 1)), f.del("Book", bookID(6)))
	f.catchUp(r)
	if st := r.Status(); st.Parked != 2 || st.Checkpoint != f.last() {
		f.t.Fatalf("status %+v, want 2 parked and checkpoint %d", st, f.last())
	}
	f.check(s, f.last())

	// A poison at the end of a batch, alone in a batch, and first in one.
	f.append(f.upsert("Book", bookID(40), book(40, 0)), f.upsert("Book", bookID(41), book(41, 0)), f.upsert("Book", bookID(42), book(42, 0)))
	bad = append(bad, f.appendRejected(poison("poison-end"))...)
	bad = append(bad, f.appendRejected(poison("poison-first"))...)
	f.append(f.upsert("Book", bookID(43), book(43, 0)), f.upsert("Book", bookID(44), book(44, 0)), f.upsert("Book", bookID(45), book(45, 0)))
	bad = append(bad, f.appendRejected(poison("poison-alone"))...)
	r2 := f.runner(s, config(4))
	f.catchUp(r2)
	f.check(s, f.last())

	parked, err := f.parking.List(f.ctx(), f.name)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(parked) != len(bad) {
		f.t.Fatalf("%d effects parked, want %d: %+v", len(parked), len(bad), parked)
	}
	for i, pk := range parked {
		if pk.Effect.LSN != bad[i].LSN || pk.Effect.DocID != bad[i].DocID || pk.Reason == "" || pk.Sink != f.name {
			f.t.Fatalf("parked %d: LSN %d %s reason %q sink %q, want LSN %d %s with a reason", i, pk.Effect.LSN, pk.Effect.DocID, pk.Reason, pk.Sink, bad[i].LSN, bad[i].DocID)
		}
	}
	f.t.Logf("reason given: %s", parked[0].Reason)
}

func testBackPressure(f *fixture) {
	var es []eventstream.Effect
	for i := range 2000 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 0)))
	}
	f.append(es...)
	rec := &recorder{Sink: f.open()}
	r := f.runner(rec, config(50))
	ctx, cancel := context.WithCancel(f.ctx())
	defer cancel()
	r.Start(ctx)
	// A stall, not slowness, fails: the checkpoint must move at least
	// once a minute (a slow target on a loaded machine is still correct).
	last, moved := uint64(0), time.Now()
	for c := r.Status().Checkpoint; c < f.last(); c = r.Status().Checkpoint {
		if c != last {
			last, moved = c, time.Now()
		} else if time.Since(moved) > time.Minute {
			f.t.Fatalf("the runner stalled at checkpoint %d for a minute: %+v", c, r.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Close()
	st := r.Status()
	rec.mu.Lock()
	calls, maxLen, maxInflight := rec.calls, rec.maxLen, rec.maxInflight
	rec.mu.Unlock()
	if maxLen > 50 || maxInflight != 1 || calls < 40 || st.Applied != 2000 || st.Batches < 40 {
		f.t.Fatalf("%d applies, largest %d effects, %d at once, status %+v: want at most 50 effects per apply, one at a time, 2000 applied", calls, maxLen, maxInflight, st)
	}
	f.check(rec, f.last())
}

func testValues(f *fixture) {
	full := map[string]any{
		"text":      "héllo, wörld ✓ — \"quoted\" 'single' \\back\\slash\ttab\nnewline\r\x01\x1f\x7f 😀 日本語",
		"whole":     int64(math.MaxInt64),
		"real":      3.141592653589793,
		"flag":      true,
		"moment":    dt("2024-02-29T23:59:59.123456Z"),
		"blob":      []byte{0, 1, 2, 0x7f, 0x80, 0xfe, 0xff},
		"data":      js(map[string]any{"a": []any{1, 2.5, "x", nil, true}, "b": map[string]any{"ü": "ß", "empty": map[string]any{}, "quote": "\"<&>\""}, "n": -0.000125, "big": 12345678901234}),
		"writer":    authorID(1),
		"hits":      int64(-42),
		"texts":     list("b", "a", "b", ""),
		"wholes":    list(int64(math.MinInt64), 0, 1, int64(math.MaxInt64), 1),
		"reals":     list(0.1, -2.5e-300, 1e300, 0),
		"flags":     list(true, false, true),
		"moments":   list(dt("1970-01-01T00:00:00Z"), dt("2000-01-01T12:00:00.5+02:00"), dt("1969-07-20T20:17:40.000001Z")),
		"blobs":     list([]byte{0}, []byte{}, []byte("abc"), []byte{0xff, 0}),
		"datas":     list(js(1), js("s"), js([]any{}), js(map[string]any{"k": []any{1, 2}}), js(false)),
		"writers":   list(authorID(2), authorID(1), authorID(2)),
		"textset":   set("z", "a", "m", "Z", "é"),
		"wholeset":  set(int64(3), int64(-1), int64(2), int64(math.MinInt64)),
		"realset":   set(2.5, -1.0, 0.0, 1e-10),
		"flagset":   set(true, false),
		"momentset": set(dt("2030-05-06T07:08:09Z"), dt("1999-12-31T23:59:59.999999Z")),
		"blobset":   set([]byte{2}, []byte{1}, []byte{1, 0}),
		"writerset": set(authorID(3), authorID(1)),
	}
	edges := map[string]any{
		"text":      "",
		"whole":     int64(math.MinInt64),
		"real":      -math.MaxFloat64,
		"flag":      false,
		"moment":    dt("0001-01-01T00:00:00Z"),
		"blob":      []byte{},
		"data":      js("just a string"),
		"writer":    strings.Repeat("r", 256),
		"hits":      int64(0),
		"texts":     list[string](),
		"wholes":    list[int64](),
		"reals":     list[float64](),
		"flags":     list[bool](),
		"moments":   list[string](),
		"blobs":     list[[]byte](),
		"datas":     list[string](),
		"writers":   list[string](),
		"textset":   set[string](),
		"wholeset":  set[int64](),
		"realset":   set[float64](),
		"flagset":   set[bool](),
		"momentset": set[string](),
		"blobset":   set[[]byte](),
		"writerset": set[string](),
	}
	tiny := map[string]any{
		"real":   5e-324,
		"moment": dt("9999-12-31T23:59:59.999999Z"),
		"data":   js([]any{[]any{[]any{}}, map[string]any{"": 0}}),
		"whole":  int64(-1),
	}
	f.append(
		f.upsert("Sample", "full", full),
		f.upsert("Sample", "edges", edges),
		f.upsert("Sample", "tiny", tiny),
		f.upsert("Sample", "only-id", map[string]any{}),
		f.upsert("Author", "odd id: ü/ \"x\" 'y' \\ 😀", map[string]any{"name": "odd", "born": dt("1900-01-01T00:00:00.000001-05:00")}),
	)
	s := f.open()
	r := f.runner(s, config(100))
	f.catchUp(r)
	f.check(s, f.last())

	// An update that clears fields, and values swapped between documents.
	f.append(
		f.upsert("Sample", "full", map[string]any{"text": "cleared the rest", "hits": int64(1)}),
		f.upsert("Sample", "edges", full),
		f.upsert("Sample", "only-id", edges),
		f.del("Sample", "tiny"),
	)
	f.catchUp(r)
	f.check(s, f.last())
}
