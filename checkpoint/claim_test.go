package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core/schema"
)

// preparingSink is a testSink that lays out its target first and can find
// it claimed by someone else.
type preparingSink struct {
	*testSink
	prepares int
	claimed  *ClaimedError
}

func (s *preparingSink) Prepare(_ context.Context, sch *schema.Schema) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prepares++
	if sch == nil {
		return errors.New("prepare without a schema")
	}
	if s.claimed != nil {
		return s.claimed
	}
	return nil
}

// A sink fenced out by a newer instance stops its runner at once: it is
// reported as fatal and never retried.
func TestFencedSinkStopsTheRunner(t *testing.T) {
	l := openLog(t)
	appendAll(t, l, book("a", "A", 1), book("b", "B", 2))
	sink := newTestSink("test")
	r := newRunner(t, testConfig(), l, sink, NewMemoryParking())
	ctx := context.Background()
	r.Start(ctx)
	waitFor(t, "the first catch-up", func() bool { return r.Status().Checkpoint == 2 })

	sink.mu.Lock()
	sink.fenced = true
	sink.mu.Unlock()
	appendAll(t, l, book("c", "C", 3))
	waitFor(t, "the runner to stop", func() bool { return !r.Status().Running })
	calls := sink.applyCalls()
	time.Sleep(50 * time.Millisecond) // a retrying runner would call again within 5ms
	st := r.Status()
	if n := sink.applyCalls(); n != calls {
		t.Fatalf("a fenced sink was retried: %d more applies", n-calls)
	}
	if st.Fatal == "" || !strings.Contains(st.Fatal, "fenced") || st.Running || st.Retrying || st.Failures != 1 {
		t.Fatalf("status of a fenced runner: %+v", st)
	}
	if st.Checkpoint != 2 || st.Lag != 1 {
		t.Fatalf("status %+v: want checkpoint 2, lag 1", st)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// Driven by hand, the error comes back as it is.
	if err := r.CatchUp(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("CatchUp of a fenced sink: %v", err)
	}
}

// A target another claim owns is found by Prepare, before the first
// batch, and stops the runner with the owner named.
func TestClaimedTargetStopsTheRunner(t *testing.T) {
	l := openLog(t)
	appendAll(t, l, book("a", "A", 1))
	owner := Claim{Space: "bafyspace", Node: "node-1", Sink: "pg"}
	sink := &preparingSink{testSink: newTestSink("other"), claimed: &ClaimedError{
		What: "table public.book", Owner: owner, By: Claim{Space: "bafyspace", Node: "node-2", Sink: "other"}, Hint: "give the sink a schema of its own"}}
	r := newRunner(t, testConfig(), l, sink, NewMemoryParking())
	err := r.CatchUp(context.Background())
	if !errors.Is(err, ErrClaimed) || !Fatal(err) {
		t.Fatalf("CatchUp over a claimed target: %v", err)
	}
	for _, want := range []string{"table public.book", "space bafyspace", "node node-1", "sink pg", "node node-2", "schema of its own"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	r.Start(context.Background())
	waitFor(t, "the runner to stop", func() bool { return !r.Status().Running })
	if st := r.Status(); !strings.Contains(st.Fatal, "node-1") || sink.applyCalls() != 0 {
		t.Fatalf("status %+v after %d applies", st, sink.applyCalls())
	}

	// Freed, the sink is prepared once per runner and then applies.
	sink.mu.Lock()
	sink.claimed = nil
	sink.prepares = 0
	sink.mu.Unlock()
	r2 := newRunner(t, testConfig(), l, sink, NewMemoryParking())
	if err := r2.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, book("b", "B", 2))
	if err := r2.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.prepares != 1 || sink.checkpoint() != 2 {
		t.Fatalf("%d prepares, checkpoint %d: want 1 prepare and checkpoint 2", sink.prepares, sink.checkpoint())
	}
}

func TestClaimString(t *testing.T) {
	if got := (Claim{Sink: "x"}).String(); got != `(space "", node "", sink x)` {
		t.Fatalf("empty claim parts print as %s", got)
	}
	err := fmt.Errorf("wrapped: %w", &ClaimedError{What: "w", Owner: Claim{"s", "n", "a"}, By: Claim{"s", "n", "b"}})
	if !errors.Is(err, ErrClaimed) || errors.Is(err, ErrFenced) || !Fatal(err) || Fatal(errTransient) {
		t.Fatalf("%v: Is/Fatal disagree", err)
	}
}
