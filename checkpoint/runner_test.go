package checkpoint

// These tests drive the runner over a real eventstream.Log kept in an
// in-memory Badger DB. The sink here is a test double that follows the
// Sink contract (atomic batch + checkpoint, replay ignored, rejection
// applies nothing) and records what it was given. Tests that use the real
// memory.View as the sink live in adapters/memory/view_test.go: the memory
// package imports checkpoint, so this package's own tests cannot import it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

const testSDL = "type Book @collection { title: String! year: Int }"

type schemaSrc struct{ s *schema.Schema }

func (s schemaSrc) Schema() *schema.Schema { return s.s }

func newSchemas(t testing.TB) schemaSrc {
	t.Helper()
	s, err := schema.Parse(testSDL)
	if err != nil {
		t.Fatal(err)
	}
	return schemaSrc{s}
}

func openLog(t testing.TB) *eventstream.Log {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := eventstream.Open(db, []byte("fx/"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func book(id, title string, year int64) eventstream.Effect {
	return eventstream.Effect{
		Collection: "Book", DocID: id, Kind: eventstream.Upsert,
		Doc:     map[string]any{"title": title, "year": year},
		Changes: []string{"c-" + id}, Author: "alice", HLC: "1.0", LastChange: "c-" + id, SchemaID: "s1",
	}
}

func del(id string) eventstream.Effect {
	return eventstream.Effect{Collection: "Book", DocID: id, Kind: eventstream.Delete, Author: "alice", HLC: "1.0", SchemaID: "s1"}
}

func appendAll(t testing.TB, l *eventstream.Log, effects ...eventstream.Effect) []eventstream.Effect {
	t.Helper()
	out, err := l.Append(effects)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var errTransient = errors.New("connection reset (test)")

type applyCall struct {
	effects []eventstream.Effect
	through uint64
}

// testSink is a transactional in-memory sink that records every batch it
// applied, can be told to fail transiently and to reject documents.
type testSink struct {
	name string

	mu       sync.Mutex
	ckpt     uint64
	docs     map[string]eventstream.Effect // key -> newest applied effect
	applied  []uint64                      // LSNs of applied effects, in order
	batches  []applyCall                   // successful applies
	calls    int                           // every Apply call
	failN    int                           // fail the next failN applies
	failFull int                           // fail the next failFull applies that carry effects
	onReject func(s *testSink)             // called, locked, after a rejection
	reject   map[string]bool               // doc IDs refused
	noIndex  bool                          // refuse with Index -1
	schemaOK bool                          // every batch carried a schema
	fenced   bool                          // a newer instance took the target
	redos    int                           // Redo batches applied
}

func newTestSink(name string) *testSink {
	return &testSink{name: name, docs: map[string]eventstream.Effect{}, reject: map[string]bool{}, schemaOK: true}
}

func (s *testSink) Name() string { return s.name }

func (s *testSink) Checkpoint(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced {
		return 0, fmt.Errorf("test sink %s: %w", s.name, ErrFenced)
	}
	return s.ckpt, nil
}

func (s *testSink) Apply(_ context.Context, b Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if b.Schema == nil {
		s.schemaOK = false
	}
	if s.fenced {
		return fmt.Errorf("test sink %s: %w", s.name, ErrFenced)
	}
	if s.failN > 0 {
		s.failN--
		return errTransient
	}
	if s.failFull > 0 && len(b.Effects) > 0 {
		s.failFull--
		return errTransient
	}
	for i, e := range b.Effects {
		if s.reject[e.DocID] {
			rej := &RejectedError{Index: i, Reason: "refused " + e.DocID}
			if s.noIndex && len(b.Effects) > 1 {
				// a store that cannot say which row it refused
				rej = &RejectedError{Index: -1, Reason: fmt.Sprintf("batch of %d refused", len(b.Effects))}
			} else if s.noIndex {
				rej.Index = -1
			}
			if s.onReject != nil {
				s.onReject(s)
			}
			return rej
		}
	}
	if b.Through < s.ckpt && !b.Redo {
		return nil
	}
	if b.Redo {
		s.redos++
	}
	var kept []eventstream.Effect
	for _, e := range b.Effects {
		if e.LSN <= s.ckpt && !b.Redo {
			continue
		}
		s.docs[e.Key()] = e
		s.applied = append(s.applied, e.LSN)
		kept = append(kept, e)
	}
	s.ckpt = max(s.ckpt, b.Through)
	s.batches = append(s.batches, applyCall{effects: kept, through: b.Through})
	return nil
}

func (s *testSink) Close(context.Context) error { return nil }

func (s *testSink) setFail(n int) {
	s.mu.Lock()
	s.failN = n
	s.mu.Unlock()
}

func (s *testSink) checkpoint() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ckpt
}

func (s *testSink) doc(id string) (eventstream.Effect, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.docs["Book\x00"+id]
	return e, ok
}

func (s *testSink) applyCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *testSink) appliedLSNs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

func testConfig() Config {
	c := DefaultConfig()
	c.Linger = 0
	c.RetryMin = time.Millisecond
	c.RetryMax = 5 * time.Millisecond
	return c
}

func newRunner(t testing.TB, cfg Config, l *eventstream.Log, sink Sink, parking Parking) *Runner {
	t.Helper()
	r, err := New(cfg, l, sink, newSchemas(t), parking)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// newestByDoc is what a sink must hold after applying all of effects.
func newestByDoc(effects []eventstream.Effect) map[string]eventstream.Effect {
	m := map[string]eventstream.Effect{}
	for _, e := range effects {
		m[e.Key()] = e
	}
	return m
}

// checkAppliedOnce checks that no LSN was applied twice and that LSNs were
// applied in increasing order.
func checkAppliedOnce(t *testing.T, lsns []uint64) {
	t.Helper()
	for i := 1; i < len(lsns); i++ {
		if lsns[i] <= lsns[i-1] {
			t.Fatalf("applied LSNs not strictly increasing (duplicate or reorder): %v", lsns)
		}
	}
}

func TestCollapse(t *testing.T) {
	mk := func(lsn uint64, coll, id string) eventstream.Effect {
		return eventstream.Effect{LSN: lsn, Collection: coll, DocID: id, Kind: eventstream.Upsert}
	}
	in := []eventstream.Effect{
		mk(1, "Book", "a"), mk(2, "Book", "b"), mk(3, "Book", "a"),
		mk(4, "Author", "a"), // same ID, other collection: a different document
		mk(5, "Book", "c"), mk(6, "Book", "b"), mk(7, "Book", "a"),
	}
	got := Collapse(in)
	var lsns []uint64
	for _, e := range got {
		lsns = append(lsns, e.LSN)
	}
	if want := []uint64{4, 5, 6, 7}; !slices.Equal(lsns, want) {
		t.Fatalf("Collapse kept LSNs %v, want %v", lsns, want)
	}
	if in[0].LSN != 1 || in[6].LSN != 7 || len(in) != 7 {
		t.Fatal("Collapse modified its input")
	}

	distinct := []eventstream.Effect{mk(1, "Book", "a"), mk(2, "Book", "b")}
	if got := Collapse(distinct); len(got) != 2 || got[0].LSN != 1 || got[1].LSN != 2 {
		t.Fatalf("Collapse of distinct documents gave %+v", got)
	}
	if got := Collapse(nil); len(got) != 0 {
		t.Fatalf("Collapse(nil) gave %+v", got)
	}
	// A delete after upserts wins, as the newest effect.
	withDelete := []eventstream.Effect{mk(1, "Book", "a"), {LSN: 2, Collection: "Book", DocID: "a", Kind: eventstream.Delete}}
	if got := Collapse(withDelete); len(got) != 1 || got[0].LSN != 2 || got[0].Kind != eventstream.Delete {
		t.Fatalf("Collapse with a trailing delete gave %+v", got)
	}
}

func TestCatchUpAppliesEveryEffectOnce(t *testing.T) {
	for _, batchSize := range []int{1, 3, 1000} {
		t.Run(fmt.Sprintf("batch%d", batchSize), func(t *testing.T) {
			l := openLog(t)
			var all []eventstream.Effect
			for round := range 4 {
				all = append(all, appendAll(t, l,
					book("b1", fmt.Sprintf("one v%d", round), int64(1990+round)),
					book(fmt.Sprintf("n%d", round), "new", 2000),
					book("b2", fmt.Sprintf("two v%d", round), 1980),
				)...)
			}
			all = append(all, appendAll(t, l, del("n0"))...)

			cfg := testConfig()
			cfg.BatchSize = batchSize
			sink := newTestSink("test")
			parking := NewMemoryParking()
			r := newRunner(t, cfg, l, sink, parking)
			if err := r.CatchUp(context.Background()); err != nil {
				t.Fatal(err)
			}

			last := l.LastLSN()
			if last != 13 {
				t.Fatalf("log last LSN %d, want 13", last)
			}
			if got := sink.checkpoint(); got != last {
				t.Fatalf("sink checkpoint %d, want %d", got, last)
			}
			st := r.Status()
			if st.Checkpoint != last || st.LastLSN != last || st.Lag != 0 {
				t.Fatalf("status %+v, want checkpoint = last LSN = %d, lag 0", st, last)
			}
			if st.Failures != 0 || st.LastError != "" || st.Parked != 0 {
				t.Fatalf("clean run reported trouble: %+v", st)
			}

			lsns := sink.appliedLSNs()
			checkAppliedOnce(t, lsns)
			if uint64(len(lsns)) != st.Applied {
				t.Fatalf("status says %d applied, sink saw %d", st.Applied, len(lsns))
			}

			// Every batch holds at most one effect per document, in LSN
			// order, and equals Collapse of the log range it covers.
			var prev uint64
			for _, b := range sink.batches {
				seen := map[string]bool{}
				for i, e := range b.effects {
					if seen[e.Key()] {
						t.Fatalf("batch through %d holds %s twice", b.through, e.DocID)
					}
					seen[e.Key()] = true
					if i > 0 && e.LSN <= b.effects[i-1].LSN {
						t.Fatalf("batch through %d out of LSN order", b.through)
					}
					if e.LSN <= prev || e.LSN > b.through {
						t.Fatalf("batch (%d, %d] holds LSN %d", prev, b.through, e.LSN)
					}
				}
				want := Collapse(all[prev:b.through])
				if len(want) != len(b.effects) {
					t.Fatalf("batch (%d, %d] applied %d effects, want %d (collapsed)", prev, b.through, len(b.effects), len(want))
				}
				for i := range want {
					if want[i].LSN != b.effects[i].LSN {
						t.Fatalf("batch (%d, %d] effect %d has LSN %d, want %d", prev, b.through, i, b.effects[i].LSN, want[i].LSN)
					}
				}
				prev = b.through
			}
			if batchSize == 1 && len(lsns) != len(all) {
				t.Fatalf("batch size 1 applied %d effects, want all %d", len(lsns), len(all))
			}
			if batchSize == 1000 {
				if len(sink.batches) != 1 {
					t.Fatalf("batch size 1000 used %d batches, want 1", len(sink.batches))
				}
				// b1, b2 collapsed to their newest; n0's delete wins; n1..n3 once.
				if len(lsns) != 6 {
					t.Fatalf("collapsed batch applied LSNs %v, want 6 effects", lsns)
				}
			}

			// The sink holds the newest state of every document.
			for key, want := range newestByDoc(all) {
				id := want.DocID
				got, ok := sink.doc(id)
				if !ok {
					t.Fatalf("sink lacks %s", key)
				}
				if got.LSN != want.LSN || got.Kind != want.Kind {
					t.Fatalf("sink holds %s at LSN %d (%s), want LSN %d (%s)", id, got.LSN, got.Kind, want.LSN, want.Kind)
				}
			}
			if got, _ := sink.doc("b1"); got.Doc["title"] != "one v3" || got.Doc["year"] != int64(1993) {
				t.Fatalf("b1 is %+v, want the round-3 post-image", got.Doc)
			}
			if !sink.schemaOK {
				t.Fatal("a batch came without a schema")
			}

			// A second CatchUp with nothing new applies nothing.
			calls := sink.applyCalls()
			if err := r.CatchUp(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := sink.applyCalls(); n != calls {
				t.Fatalf("idle CatchUp called Apply %d more times", n-calls)
			}
		})
	}
}

func TestResumeFromSinkCheckpoint(t *testing.T) {
	l := openLog(t)
	appendAll(t, l, book("a", "A", 1), book("b", "B", 2), book("c", "C", 3))
	sink := newTestSink("test")
	parking := NewMemoryParking()
	cfg := testConfig()
	cfg.BatchSize = 2

	r1 := newRunner(t, cfg, l, sink, parking)
	if err := r1.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.checkpoint() != 3 {
		t.Fatalf("first runner left checkpoint %d, want 3", sink.checkpoint())
	}
	r1.Close()

	appendAll(t, l, book("a", "A2", 10), book("d", "D", 4))
	before := len(sink.appliedLSNs())

	r2 := newRunner(t, cfg, l, sink, parking)
	if st := r2.Status(); st.Checkpoint != 0 || st.Applied != 0 {
		t.Fatalf("a new runner reports %+v before running", st)
	}
	n, err := r2.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("resumed runner read %d effects, want the 2 new ones", n)
	}
	if err := r2.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	lsns := sink.appliedLSNs()
	checkAppliedOnce(t, lsns)
	if got := lsns[before:]; !slices.Equal(got, []uint64{4, 5}) {
		t.Fatalf("resumed runner applied LSNs %v, want [4 5]", got)
	}
	st := r2.Status()
	if st.Checkpoint != 5 || st.Applied != 2 || sink.checkpoint() != 5 {
		t.Fatalf("resumed status %+v, sink checkpoint %d; want checkpoint 5, 2 applied", st, sink.checkpoint())
	}
	if got, _ := sink.doc("a"); got.Doc["title"] != "A2" {
		t.Fatalf("a is %+v after resume", got.Doc)
	}
}

func TestCheckpointAheadOfLogFails(t *testing.T) {
	l := openLog(t)
	appendAll(t, l, book("a", "A", 1))
	sink := newTestSink("test")
	sink.ckpt = 7 // fed from some other log
	r := newRunner(t, testConfig(), l, sink, NewMemoryParking())
	if _, err := r.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "ahead") {
		t.Fatalf("RunOnce with a checkpoint ahead of the log: %v", err)
	}
	if st := r.Status(); st.Failures != 1 || st.LastError == "" {
		t.Fatalf("status %+v after the failure", st)
	}
	if len(sink.appliedLSNs()) != 0 || sink.checkpoint() != 7 {
		t.Fatal("the runner touched a sink whose checkpoint is ahead of the log")
	}
}

func TestTransientFailurePinsCheckpointThenRecovers(t *testing.T) {
	l := openLog(t)
	appendAll(t, l, book("a", "A", 1), book("b", "B", 2))
	sink := newTestSink("test")
	cfg := testConfig()
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	ctx := context.Background()
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Status().Checkpoint != 2 {
		t.Fatalf("checkpoint %d after the first catch-up", r.Status().Checkpoint)
	}

	appendAll(t, l, book("a", "A2", 11), book("c", "C", 3), book("d", "D", 4))
	sink.setFail(4)

	if _, err := r.RunOnce(ctx); !errors.Is(err, errTransient) {
		t.Fatalf("RunOnce against a failing sink: %v", err)
	}
	st := r.Status()
	if st.Checkpoint != 2 || sink.checkpoint() != 2 {
		t.Fatalf("a failed batch moved the checkpoint: status %d, sink %d", st.Checkpoint, sink.checkpoint())
	}
	if st.Failures != 1 || !strings.Contains(st.LastError, errTransient.Error()) || st.LastErrAt.IsZero() {
		t.Fatalf("status after one failure: %+v", st)
	}
	if st.Lag != 3 {
		t.Fatalf("lag %d, want 3", st.Lag)
	}
	if err := r.CatchUp(ctx); !errors.Is(err, errTransient) {
		t.Fatalf("CatchUp against a failing sink: %v", err)
	}
	if st := r.Status(); st.Failures != 2 || st.Checkpoint != 2 {
		t.Fatalf("status after two failures: %+v", st)
	}
	if len(sink.appliedLSNs()) != 2 {
		t.Fatalf("failed batches applied effects: %v", sink.appliedLSNs())
	}

	// Two more failures, then the sink recovers; the loop retries on its own.
	r.Start(ctx)
	waitFor(t, "the runner to catch up after the sink recovered", func() bool {
		return r.Status().Checkpoint == l.LastLSN()
	})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	st = r.Status()
	if st.Failures != 4 {
		t.Fatalf("failures %d, want 4", st.Failures)
	}
	if st.Running || st.Retrying || st.Lag != 0 || sink.checkpoint() != 5 {
		t.Fatalf("status after recovery: %+v (sink checkpoint %d)", st, sink.checkpoint())
	}
	lsns := sink.appliedLSNs()
	checkAppliedOnce(t, lsns)
	if !slices.Equal(lsns, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("applied LSNs %v, want each of 1..5 once", lsns)
	}
	if got, _ := sink.doc("a"); got.Doc["title"] != "A2" {
		t.Fatalf("a is %+v", got.Doc)
	}
}

func TestPoisonEffectIsParked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noIndex bool
	}{
		{"index", false},
		{"bisect", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t)
			all := appendAll(t, l,
				book("a", "A", 1), book("b", "B", 2), book("bad1", "X", 3),
				book("c", "C", 4), book("bad2", "Y", 5), book("d", "D", 6),
			)
			all = append(all, appendAll(t, l, book("e", "E", 7))...)
			sink := newTestSink("test")
			sink.reject["bad1"] = true
			sink.reject["bad2"] = true
			sink.noIndex = tc.noIndex
			parking := NewMemoryParking()
			r := newRunner(t, testConfig(), l, sink, parking)
			if err := r.CatchUp(context.Background()); err != nil {
				t.Fatal(err)
			}

			last := l.LastLSN()
			if sink.checkpoint() != last || r.Status().Checkpoint != last {
				t.Fatalf("checkpoint sink %d, status %d, want %d", sink.checkpoint(), r.Status().Checkpoint, last)
			}
			lsns := sink.appliedLSNs()
			checkAppliedOnce(t, lsns)
			if want := []uint64{1, 2, 4, 6, 7}; !slices.Equal(lsns, want) {
				t.Fatalf("applied LSNs %v, want %v", lsns, want)
			}
			for _, id := range []string{"bad1", "bad2"} {
				if _, ok := sink.doc(id); ok {
					t.Fatalf("rejected document %s was applied", id)
				}
			}
			parked, err := parking.List(context.Background(), "test")
			if err != nil {
				t.Fatal(err)
			}
			if len(parked) != 2 {
				t.Fatalf("parked %+v, want bad1 and bad2", parked)
			}
			for i, id := range []string{"bad1", "bad2"} {
				p := parked[i]
				if p.Sink != "test" || p.Effect.DocID != id || p.Effect.LSN != all[2+2*i].LSN || p.Reason != "refused "+id || p.ParkedAt.IsZero() {
					t.Fatalf("parked[%d] = %+v, want %s with its reason", i, p, id)
				}
			}
			if other, _ := parking.List(context.Background(), "other"); len(other) != 0 {
				t.Fatalf("parking listed %d effects for another sink", len(other))
			}
			st := r.Status()
			if st.Parked != 2 || st.Failures != 0 || st.LastError != "" {
				t.Fatalf("status %+v, want 2 parked and no failures", st)
			}
			if st.Applied != uint64(len(lsns)) {
				t.Fatalf("status says %d applied, sink applied %d", st.Applied, len(lsns))
			}

			// The bad documents do not stall later effects.
			appendAll(t, l, book("bad1", "X again", 3), book("f", "F", 8))
			if err := r.CatchUp(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, ok := sink.doc("f"); !ok || sink.checkpoint() != l.LastLSN() {
				t.Fatal("an effect after the parked ones was not applied")
			}
			if parked, _ := parking.List(context.Background(), "test"); len(parked) != 3 {
				t.Fatalf("%d parked, want 3 (bad1 rejected again)", len(parked))
			}
		})
	}
}

// A sink that rejects a document on its own but with Index -1 on every
// batch: bisection finds it even when it is the only effect of the batch.
func TestPoisonAloneInBatch(t *testing.T) {
	l := openLog(t)
	appendAll(t, l, book("bad", "X", 1))
	sink := newTestSink("test")
	sink.reject["bad"] = true
	sink.noIndex = true
	parking := NewMemoryParking()
	r := newRunner(t, testConfig(), l, sink, parking)
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	parked, _ := parking.List(context.Background(), "test")
	if len(parked) != 1 || parked[0].Effect.DocID != "bad" || sink.checkpoint() != 1 {
		t.Fatalf("parked %+v, sink checkpoint %d", parked, sink.checkpoint())
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"zero batch":              func(c *Config) { c.BatchSize = 0 },
		"negative batch":          func(c *Config) { c.BatchSize = -1 },
		"huge batch":              func(c *Config) { c.BatchSize = 1_000_001 },
		"negative linger":         func(c *Config) { c.Linger = -time.Millisecond },
		"long linger":             func(c *Config) { c.Linger = time.Hour },
		"zero retry min":          func(c *Config) { c.RetryMin = 0 },
		"negative retry":          func(c *Config) { c.RetryMin = -time.Second },
		"max below min":           func(c *Config) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond },
		"negative catch-up batch": func(c *Config) { c.CatchUpBatch = -1 },
		"huge catch-up batch":     func(c *Config) { c.CatchUpBatch = 1_000_001 },
		"negative batch bytes":    func(c *Config) { c.BatchBytes = -1 },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, c)
		}
		if _, err := New(c, openLog(t), newTestSink("x"), newSchemas(t), NewMemoryParking()); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	ok := DefaultConfig()
	ok.BatchSize, ok.Linger, ok.RetryMin, ok.RetryMax = 1, 0, time.Nanosecond, time.Nanosecond
	if err := ok.Validate(); err != nil {
		t.Fatalf("edge config rejected: %v", err)
	}
}

func TestNewRejectsNilParts(t *testing.T) {
	l, sink, sch, park := openLog(t), newTestSink("x"), newSchemas(t), NewMemoryParking()
	cfg := DefaultConfig()
	cases := map[string]func() (*Runner, error){
		"nil source":  func() (*Runner, error) { return New(cfg, nil, sink, sch, park) },
		"nil sink":    func() (*Runner, error) { return New(cfg, l, nil, sch, park) },
		"nil schemas": func() (*Runner, error) { return New(cfg, l, sink, nil, park) },
		"nil parking": func() (*Runner, error) { return New(cfg, l, sink, sch, nil) },
	}
	for name, mk := range cases {
		if r, err := mk(); err == nil || r != nil {
			t.Errorf("%s: got runner %v, error %v", name, r, err)
		}
	}
	r, err := New(cfg, l, sink, sch, park)
	if err != nil || r == nil {
		t.Fatalf("New with every part: %v", err)
	}
	if st := r.Status(); st.Sink != "x" || st.Running {
		t.Fatalf("fresh status %+v", st)
	}
}

// closeWithin fails the test if Close does not return in a generous time.
func closeWithin(t *testing.T, r *Runner) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

func TestStartCloseIdle(t *testing.T) {
	l := openLog(t)
	sink := newTestSink("test")
	cfg := DefaultConfig() // real linger and backoff: Close must not wait for them
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	if err := r.Close(); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
	r.Start(context.Background())
	r.Start(context.Background()) // a second Start is a no-op
	if !r.Status().Running {
		t.Fatal("Status not running after Start")
	}
	closeWithin(t, r)
	if r.Status().Running {
		t.Fatal("Status still running after Close")
	}
	closeWithin(t, r) // a second Close is harmless
	if n := sink.applyCalls(); n != 0 {
		t.Fatalf("an idle runner called Apply %d times", n)
	}

	// The runner can be started again after Close.
	r.Start(context.Background())
	appendAll(t, l, book("a", "A", 1))
	waitFor(t, "the restarted runner to apply", func() bool { return sink.checkpoint() == 1 })
	closeWithin(t, r)
}

func TestStartStopsWhenContextEnds(t *testing.T) {
	l := openLog(t)
	sink := newTestSink("test")
	r := newRunner(t, testConfig(), l, sink, NewMemoryParking())
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	cancel()
	closeWithin(t, r)
}

func TestStartFollowsTheLog(t *testing.T) {
	l := openLog(t)
	sink := newTestSink("test")
	cfg := testConfig()
	cfg.BatchSize = 4
	cfg.Linger = time.Millisecond
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	r.Start(context.Background())

	var all []eventstream.Effect
	for round := range 5 {
		all = append(all, appendAll(t, l, book("a", fmt.Sprint(round), int64(round)), book(fmt.Sprint("n", round), "N", 1))...)
		if round%2 == 0 {
			last := l.LastLSN()
			waitFor(t, fmt.Sprintf("round %d to be applied", round), func() bool { return sink.checkpoint() == last })
		}
	}
	for range 10 { // more than one batch at once
		all = append(all, appendAll(t, l, book("x", "X", 1))...)
	}
	last := l.LastLSN()
	waitFor(t, "the runner to follow the log", func() bool { return r.Status().Checkpoint == last })
	closeWithin(t, r)

	if sink.checkpoint() != last {
		t.Fatalf("sink checkpoint %d, want %d", sink.checkpoint(), last)
	}
	checkAppliedOnce(t, sink.appliedLSNs())
	for _, want := range newestByDoc(all) {
		if got, ok := sink.doc(want.DocID); !ok || got.LSN != want.LSN {
			t.Fatalf("sink holds %s at %+v, want LSN %d", want.DocID, got, want.LSN)
		}
	}
	st := r.Status()
	if st.Lag != 0 || st.Failures != 0 || st.Batches == 0 || st.CaughtUpAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
}

// CatchUp and a started loop may run at once: batches are serialised and
// nothing is applied twice.
func TestCatchUpWhileStarted(t *testing.T) {
	l := openLog(t)
	sink := newTestSink("test")
	cfg := testConfig()
	cfg.BatchSize = 2
	r := newRunner(t, cfg, l, sink, NewMemoryParking())
	r.Start(context.Background())
	var wg sync.WaitGroup
	var appendMu sync.Mutex // the log's writers serialise their appends
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				appendMu.Lock()
				_, err := l.Append([]eventstream.Effect{book(fmt.Sprintf("w%d-%d", w, i), "T", 1)})
				appendMu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
				if err := r.CatchUp(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	last := l.LastLSN()
	waitFor(t, "catch-up", func() bool { return sink.checkpoint() == last })
	closeWithin(t, r)
	lsns := sink.appliedLSNs()
	checkAppliedOnce(t, lsns)
	if len(lsns) != 40 {
		t.Fatalf("applied %d effects, want 40", len(lsns))
	}
}

// A rejection followed by a transient failure of the rest of the batch:
// the retry must not park the rejected effect a second time.
func TestPoisonThenTransientFailureParksOnce(t *testing.T) {
	for _, noIndex := range []bool{false, true} {
		t.Run(fmt.Sprint("noIndex=", noIndex), func(t *testing.T) {
			l := openLog(t)
			ctx := context.Background()
			sink := newTestSink("test")
			parking := NewMemoryParking()
			r := newRunner(t, testConfig(), l, sink, parking)
			appendAll(t, l, book("a", "A", 1))
			if err := r.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}

			appendAll(t, l, book("bad", "X", 2), book("b", "B", 3), book("c", "C", 4))
			sink.mu.Lock()
			sink.reject["bad"] = true
			sink.noIndex = noIndex
			sink.onReject = func(s *testSink) {
				if s.onReject != nil {
					s.onReject = nil
					s.failFull = 1 // the apply of [b c] after bad is parked fails once
				}
			}
			sink.mu.Unlock()

			if err := r.CatchUp(ctx); !errors.Is(err, errTransient) {
				t.Fatalf("first CatchUp: %v, want the transient failure", err)
			}
			if err := r.CatchUp(ctx); err != nil {
				t.Fatalf("second CatchUp: %v", err)
			}
			if sink.checkpoint() != 4 {
				t.Fatalf("sink checkpoint %d, want 4", sink.checkpoint())
			}
			if got := sink.appliedLSNs(); !slices.Equal(got, []uint64{1, 3, 4}) {
				t.Fatalf("applied LSNs %v, want [1 3 4]", got)
			}
			parked, _ := parking.List(ctx, "test")
			if len(parked) != 1 || parked[0].Effect.LSN != 2 || parked[0].Reason != "refused bad" {
				t.Fatalf("parked %+v, want LSN 2 once", parked)
			}
			if st := r.Status(); st.Parked != 1 || st.Failures != 1 || st.Checkpoint != 4 {
				t.Fatalf("status %+v, want 1 parked, 1 failure", st)
			}
		})
	}
}
