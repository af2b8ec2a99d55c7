package checkpoint

import (
	"context"
	"slices"
	"testing"

	"github.com/tributary-sync/tributary/eventstream"
)

// Retry applies a parked effect that is still its document's newest,
// drops one a newer effect superseded, keeps one the sink still refuses,
// and leaves the checkpoint alone.
func TestRetryParkedEffects(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	appendAll(t, l,
		book("ok", "fine", 1),
		book("fixed", "X", 2),    // parked, then the sink accepts it: applied
		book("updated", "Y", 3),  // parked, then updated: superseded
		book("stubborn", "Z", 4), // parked and still refused
		book("twice", "T1", 5),   // parked twice: the older is superseded by the newer
	)
	sink := newTestSink("test")
	for _, id := range []string{"fixed", "updated", "stubborn", "twice"} {
		sink.reject[id] = true
	}
	parking := NewMemoryParking()
	r := newRunner(t, testConfig(), l, sink, parking)
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, book("twice", "T2", 6))
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	delete(sink.reject, "updated")
	sink.mu.Unlock()
	appendAll(t, l, book("updated", "Y2", 7))
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := parking.List(ctx, "test"); len(p) != 5 {
		t.Fatalf("%d parked before the retry, want 5: %+v", len(p), p)
	}
	// Not yet reached by the runner: waits.
	appendAll(t, l, book("later", "L", 8))
	parking.Park(ctx, Parked{Sink: "test", Effect: mustRead(t, l, 8), Reason: "parked ahead"})

	sink.mu.Lock()
	delete(sink.reject, "fixed")
	delete(sink.reject, "twice")
	sink.mu.Unlock()
	calls := sink.applyCalls()
	out, err := r.Retry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]string{}
	for _, o := range out {
		got[o.Effect.LSN] = o.Outcome
		if o.Outcome == RetrySuperseded && o.By == 0 {
			t.Errorf("LSN %d superseded by nothing", o.Effect.LSN)
		}
		if o.Outcome == RetryRefused && o.Why != "refused stubborn" {
			t.Errorf("LSN %d refused for %q", o.Effect.LSN, o.Why)
		}
	}
	want := map[uint64]string{2: RetryApplied, 3: RetrySuperseded, 4: RetryRefused, 5: RetrySuperseded, 6: RetryApplied, 8: RetryWaiting}
	if len(got) != len(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	for lsn, o := range want {
		if got[lsn] != o {
			t.Errorf("LSN %d: %s, want %s", lsn, got[lsn], o)
		}
	}
	if d, ok := sink.doc("fixed"); !ok || d.LSN != 2 {
		t.Fatalf("fixed after retry: %+v, %v", d, ok)
	}
	if d, _ := sink.doc("twice"); d.Doc["title"] != "T2" {
		t.Fatalf("twice after retry: %+v", d.Doc)
	}
	if d, _ := sink.doc("updated"); d.Doc["title"] != "Y2" || d.LSN != 7 {
		t.Fatalf("updated after retry: %+v (a superseded effect was applied over a newer one?)", d)
	}
	if _, ok := sink.doc("stubborn"); ok {
		t.Fatal("a refused effect landed")
	}
	if sink.checkpoint() != 7 || r.Status().Checkpoint != 7 {
		t.Fatalf("retry moved the checkpoint to %d", sink.checkpoint())
	}
	if sink.redos == 0 || sink.applyCalls()-calls > 3 {
		t.Fatalf("%d redo batches in %d applies", sink.redos, sink.applyCalls()-calls)
	}
	left, _ := parking.List(ctx, "test")
	var lsns []uint64
	for _, p := range left {
		lsns = append(lsns, p.Effect.LSN)
	}
	if !slices.Equal(lsns, []uint64{4, 8}) {
		t.Fatalf("still parked: %v, want [4 8]", lsns)
	}
	// The runner carries on from where it was.
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if d, ok := sink.doc("later"); !ok || d.LSN != 8 {
		t.Fatalf("later: %+v %v", d, ok)
	}
}

// A parked effect whose only newer effect was compacted into the log's
// newest: Retry still finds it superseded.
func TestRetryAfterCompaction(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	appendAll(t, l, book("d", "bad", 1))
	sink := newTestSink("test")
	sink.reject["d"] = true
	parking := NewMemoryParking()
	r := newRunner(t, testConfig(), l, sink, parking)
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	delete(sink.reject, "d")
	appendAll(t, l, book("d", "good", 2), book("d", "better", 3), book("e", "E", 4))
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	out, err := r.Retry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Outcome != RetrySuperseded || out[0].By != 3 {
		t.Fatalf("retry after compaction: %+v", out)
	}
	if left, _ := parking.List(ctx, "test"); len(left) != 0 {
		t.Fatalf("still parked: %+v", left)
	}
}

func TestMemoryParkingRemoveAndClear(t *testing.T) {
	ctx := context.Background()
	p := NewMemoryParking()
	for _, lsn := range []uint64{3, 1, 2} {
		p.Park(ctx, Parked{Sink: "a", Effect: book("x", "t", 1), Reason: "r"})
		e := book("x", "t", 1)
		e.LSN = lsn
		p.Park(ctx, Parked{Sink: "a", Effect: e, Reason: "r"})
		p.Park(ctx, Parked{Sink: "b", Effect: e, Reason: "r"})
	}
	lsnsOf := func(sink string) []uint64 {
		l, _ := p.List(ctx, sink)
		var out []uint64
		for _, x := range l {
			out = append(out, x.Effect.LSN)
		}
		return out
	}
	if got := lsnsOf("a"); !slices.Equal(got, []uint64{0, 1, 2, 3}) {
		t.Fatalf("parked %v, want one per LSN in order", got)
	}
	p.Remove(ctx, "a", 0, 2, 9)
	if got := lsnsOf("a"); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("after Remove: %v", got)
	}
	p.Clear(ctx, "a")
	if got, other := lsnsOf("a"), lsnsOf("b"); len(got) != 0 || len(other) != 3 {
		t.Fatalf("after Clear: a %v, b %v", got, other)
	}
}

func mustRead(t *testing.T, l interface {
	Read(context.Context, uint64, int) ([]eventstream.Effect, error)
}, lsn uint64) eventstream.Effect {
	t.Helper()
	es, err := l.Read(context.Background(), lsn, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("read LSN %d: %v", lsn, err)
	}
	return es[0]
}
