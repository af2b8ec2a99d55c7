package checkpoint

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/eventstream"
)

// books appends n upserts of distinct documents and returns them.
func books(t *testing.T, l *eventstream.Log, n int) []eventstream.Effect {
	t.Helper()
	var es []eventstream.Effect
	for i := range n {
		es = append(es, book(fmt.Sprintf("d%d", i), fmt.Sprint("t", i), int64(i)))
	}
	return appendAll(t, l, es...)
}

func throughs(s *testSink) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for _, b := range s.batches {
		out = append(out, b.through)
	}
	return out
}

// checkHolds fails unless the sink holds the newest effect of every
// document of all and every LSN was applied exactly once.
func checkHolds(t *testing.T, sink *testSink, all []eventstream.Effect) {
	t.Helper()
	lsns := sink.appliedLSNs()
	checkAppliedOnce(t, lsns)
	want := newestByDoc(all)
	if len(lsns) != len(want) && len(lsns) != len(all) {
		t.Fatalf("applied LSNs %v for %d effects of %d documents", lsns, len(all), len(want))
	}
	for _, e := range want {
		if got, ok := sink.doc(e.DocID); !ok || got.LSN != e.LSN {
			t.Fatalf("sink holds %s at %+v, want LSN %d", e.DocID, got, e.LSN)
		}
	}
}

// A runner killed while it holds a batch read ahead (read, not applied)
// loses only that read: a new runner on the same sink resumes from the
// sink's checkpoint and applies every effect once.
func TestReadAheadKilledBeforeApplyResumesOnce(t *testing.T) {
	l := openLog(t)
	all := books(t, l, 7)
	sink := newTestSink("test")
	parking := NewMemoryParking()
	cfg := testConfig()
	cfg.BatchSize = 2

	r1 := newRunner(t, cfg, l, sink, parking)
	if n, err := r1.RunOnce(context.Background()); err != nil || n != 2 {
		t.Fatalf("first batch: %d effects, %v", n, err)
	}
	r1.runMu.Lock()
	a := r1.ahead
	r1.runMu.Unlock()
	if a == nil || a.from != 3 || len(a.effects) != 2 || a.effects[0].LSN != 3 {
		t.Fatalf("after the first batch the runner holds %+v read ahead, want LSNs 3 and 4", a)
	}
	if sink.checkpoint() != 2 {
		t.Fatalf("sink checkpoint %d, want 2: the batch read ahead must not be applied yet", sink.checkpoint())
	}
	r1.Close() // killed: what it read ahead is gone

	all = append(all, appendAll(t, l, book("d3", "changed", 33), book("late", "L", 1))...)
	r2 := newRunner(t, cfg, l, sink, parking)
	if err := r2.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := sink.checkpoint(), l.LastLSN(); got != want {
		t.Fatalf("sink checkpoint %d, want %d", got, want)
	}
	checkHolds(t, sink, all)
	if lsns := sink.appliedLSNs(); !slices.Equal(lsns, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("applied %v, want every LSN 1..9 once", lsns)
	}
}

// A batch that fails after the runner took it from the read-ahead (and
// read the one after it) is offered again from the sink's checkpoint: the
// batch read ahead of it is dropped, and nothing is skipped or applied
// twice.
func TestReadAheadFailedBatchRetriedFromCheckpoint(t *testing.T) {
	l := openLog(t)
	all := books(t, l, 8)
	sink := newTestSink("test")
	cfg := testConfig()
	cfg.BatchSize = 2
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	ctx := context.Background()

	if _, err := r.RunOnce(ctx); err != nil { // 1-2 applied, 3-4 read ahead
		t.Fatal(err)
	}
	sink.mu.Lock()
	sink.failFull = 1
	sink.mu.Unlock()
	if _, err := r.RunOnce(ctx); err == nil { // 3-4 fail, 5-6 was read ahead
		t.Fatal("a failing batch reported no error")
	}
	r.runMu.Lock()
	a := r.ahead
	r.runMu.Unlock()
	if a != nil {
		t.Fatalf("after a failed batch the runner still holds %d effects from LSN %d read ahead", len(a.effects), a.from)
	}
	if sink.checkpoint() != 2 {
		t.Fatalf("sink checkpoint %d after the failure, want 2", sink.checkpoint())
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := throughs(sink); !slices.Equal(got, []uint64{2, 4, 6, 8}) {
		t.Fatalf("batches through %v, want 2 4 6 8 (the failed one again from the checkpoint)", got)
	}
	checkHolds(t, sink, all)
	if st := r.Status(); st.Failures != 1 || st.Checkpoint != 8 || st.Applied != 8 {
		t.Fatalf("status %+v, want 1 failure, checkpoint 8, 8 applied", st)
	}
}

// A batch whose apply reported an error although it landed (the commit's
// answer was lost) is not applied again: the runner re-reads the sink's
// checkpoint and carries on after it.
func TestReadAheadAfterLandedButFailedBatch(t *testing.T) {
	l := openLog(t)
	all := books(t, l, 6)
	sink := &landingSink{testSink: newTestSink("test"), failAt: 4}
	cfg := testConfig()
	cfg.BatchSize = 2
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	ctx := context.Background()
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RunOnce(ctx); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := throughs(sink.testSink); !slices.Equal(got, []uint64{2, 4, 6}) {
		t.Fatalf("batches through %v, want 2 4 6", got)
	}
	checkHolds(t, sink.testSink, all)
}

// landingSink applies the batch through failAt and then reports an error.
type landingSink struct {
	*testSink
	failAt uint64
}

func (s *landingSink) Apply(ctx context.Context, b Batch) error {
	if err := s.testSink.Apply(ctx, b); err != nil {
		return err
	}
	if b.Through == s.failAt {
		s.failAt = 0
		return errTransient
	}
	return nil
}

// The next batch is read while the sink applies the current one: the
// sink's first Apply waits until the runner has read from the LSN after
// it.
func TestReadAheadOverlapsApply(t *testing.T) {
	l := openLog(t)
	all := books(t, l, 6)
	src := &watchedSource{Log: l, reading: make(chan uint64, 16)}
	sink := &waitingSink{testSink: newTestSink("test"), src: src, t: t}
	cfg := testConfig()
	cfg.BatchSize = 2
	r, err := New(cfg, src, sink, newSchemas(t), NewMemoryParking())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.missed != "" {
		t.Fatal(sink.missed)
	}
	if got := throughs(sink.testSink); !slices.Equal(got, []uint64{2, 4, 6}) {
		t.Fatalf("batches through %v, want 2 4 6", got)
	}
	checkHolds(t, sink.testSink, all)
}

// watchedSource tells of every read it starts.
type watchedSource struct {
	*eventstream.Log
	reading chan uint64
}

func (s *watchedSource) Read(ctx context.Context, from uint64, max int) ([]eventstream.Effect, error) {
	s.reading <- from
	return s.Log.Read(ctx, from, max)
}

func (s *watchedSource) ReadSized(ctx context.Context, from uint64, max, maxBytes int) ([]eventstream.Effect, error) {
	s.reading <- from
	return s.Log.ReadSized(ctx, from, max, maxBytes)
}

// waitingSink holds each batch (but the last) until the read from the
// LSN after it has started.
type waitingSink struct {
	*testSink
	src    *watchedSource
	t      *testing.T
	missed string
}

func (s *waitingSink) Apply(ctx context.Context, b Batch) error {
	if len(b.Effects) > 0 && b.Through < s.src.LastLSN() {
		deadline := time.After(10 * time.Second) // a hang guard, not a speed bound
	wait:
		for {
			select {
			case from := <-s.src.reading:
				if from == b.Through+1 {
					break wait
				}
			case <-deadline:
				s.missed = fmt.Sprintf("the runner did not read from LSN %d while the sink applied the batch through %d", b.Through+1, b.Through)
				break wait
			}
		}
	}
	return s.testSink.Apply(ctx, b)
}

// While the sink is at least BatchSize effects behind, batches hold up
// to CatchUpBatch effects; near the end of the log, BatchSize.
func TestCatchUpBatch(t *testing.T) {
	l := openLog(t)
	all := books(t, l, 12)
	sink := newTestSink("test")
	cfg := testConfig()
	cfg.BatchSize, cfg.CatchUpBatch = 2, 5
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := throughs(sink); !slices.Equal(got, []uint64{5, 10, 12}) {
		t.Fatalf("batches through %v, want 5 10 12", got)
	}
	checkHolds(t, sink, all)
}

// BatchBytes bounds a batch by the effects' stored size; one effect
// larger than the bound still makes a batch.
func TestBatchBytes(t *testing.T) {
	l := openLog(t)
	big := book("big", string(make([]byte, 4096)), 1)
	all := appendAll(t, l, book("a", "A", 1), book("b", "B", 2), big, book("c", "C", 3))
	sink := newTestSink("test")
	cfg := testConfig()
	cfg.BatchSize, cfg.BatchBytes = 10, 1024
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := throughs(sink); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("batches through %v, want 2 3 4 (the large effect alone)", got)
	}
	checkHolds(t, sink, all)
}

// The runner's loop with read-ahead, fed while it runs by writers, ends
// with every effect applied once.
func TestReadAheadWhileFollowing(t *testing.T) {
	l := openLog(t)
	sink := newTestSink("test")
	cfg := testConfig()
	cfg.BatchSize, cfg.CatchUpBatch = 3, 7
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	r.Start(context.Background())
	var all []eventstream.Effect
	var mu sync.Mutex
	for i := range 60 {
		mu.Lock()
		all = append(all, appendAll(t, l, book(fmt.Sprint("d", i%17), fmt.Sprint(i), int64(i)), book(fmt.Sprint("n", i), "N", 1))...)
		mu.Unlock()
		if i%20 == 0 {
			sink.setFail(1)
		}
	}
	last := l.LastLSN()
	waitFor(t, "the runner to apply the whole log", func() bool { return sink.checkpoint() == last })
	closeWithin(t, r)
	checkHolds(t, sink, all)
}
