package adaptertest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/eventstream"
)

// SharedHarness is a Harness over a target that other sinks and other
// processes can reach too (a database server): RunShared checks that the
// sink claims it and fences stale writers out.
type SharedHarness interface {
	Harness
	// OpenAs opens a sink for claim over the target kept for target (the
	// one Open(t, target) opens), and returns what the sink's New
	// returned. Open(t, name) must be OpenAs(t, name, ClaimFor(name)).
	OpenAs(t testing.TB, target string, claim checkpoint.Claim) (checkpoint.Sink, error)
}

// ClaimFor is the claim a SharedHarness opens the sink named name with.
func ClaimFor(name string) checkpoint.Claim {
	return checkpoint.Claim{Space: "bafyspaceadaptertest", Node: "node-adaptertest", Sink: name}
}

// RunShared runs the claim and fence scenarios against h:
//
//	claims    a second claimant of a sink's name (another space, another
//	          node) is refused by New with an error naming the owner; a
//	          sink of another name whose tables (labels, collections) the
//	          first one owns is stopped by its runner before it writes,
//	          with the owner named; the owner reopens freely
//	fencing   a sink opened again under the same claim fences the older
//	          instance out: the older one's Apply and Checkpoint fail with
//	          checkpoint.ErrFenced and write nothing, its runner stops
//	          instead of retrying, and the newer one carries on
func RunShared(t *testing.T, h SharedHarness) {
	for _, sc := range []struct {
		name string
		run  func(*fixture, SharedHarness)
	}{
		{"claims", testClaims},
		{"fencing", testFencing},
	} {
		t.Run(sc.name, func(t *testing.T) {
			sc.run(newFixture(t, h, sc.name), h)
		})
	}
}

func (f *fixture) openAs(h SharedHarness, claim checkpoint.Claim) (checkpoint.Sink, error) {
	f.t.Helper()
	s, err := h.OpenAs(f.t, f.name, claim)
	if err != nil {
		return nil, err
	}
	if s.Name() != claim.Sink {
		f.t.Fatalf("%s: OpenAs(%v) returned a sink named %q", h.Name(), claim, s.Name())
	}
	c := &closer{Sink: s}
	f.t.Cleanup(func() { c.Close(context.Background()) })
	return c, nil
}

// namesOwner requires err to be a refusal naming owner.
func (f *fixture) namesOwner(err error, owner checkpoint.Claim, what string) {
	f.t.Helper()
	if !errors.Is(err, checkpoint.ErrClaimed) {
		f.t.Fatalf("%s: %s: %v, want an error wrapping checkpoint.ErrClaimed", f.h.Name(), what, err)
	}
	for _, part := range []string{owner.Space, owner.Node, owner.Sink} {
		if !strings.Contains(err.Error(), part) {
			f.t.Fatalf("%s: %s: %q does not name the owner %v", f.h.Name(), what, err, owner)
		}
	}
	f.t.Logf("%s: %v", what, err)
}

func testClaims(f *fixture, h SharedHarness) {
	owner := ClaimFor(f.name)
	var es []eventstream.Effect
	for i := range 10 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 0)))
	}
	es = append(es, f.upsert("Author", authorID(1), author(1, 0)))
	f.append(es...)
	s, err := f.openAs(h, owner)
	if err != nil {
		f.t.Fatalf("%s: open %v: %v", h.Name(), owner, err)
	}
	f.catchUp(f.runner(s, config(100)))
	f.check(s, f.last())

	// The same sink name, claimed from another space or another node.
	for _, other := range []checkpoint.Claim{
		{Space: "bafyotherspace", Node: owner.Node, Sink: owner.Sink},
		{Space: owner.Space, Node: "node-other", Sink: owner.Sink},
	} {
		s2, err := f.openAs(h, other)
		if err == nil {
			s2.Close(f.ctx())
			f.t.Fatalf("%s: a second claimant %v of %s's target was let in", h.Name(), other, owner)
		}
		f.namesOwner(err, owner, "open "+other.String())
	}

	// Another sink over the same target would write the owner's tables.
	intruder := checkpoint.Claim{Space: "bafyotherspace", Node: "node-other", Sink: f.name + "_b"}
	s3, err := f.openAs(h, intruder)
	if err != nil {
		f.namesOwner(err, owner, "open "+intruder.String())
	} else {
		rec := &recorder{Sink: s3}
		r := f.runner(rec, config(100))
		ctx, cancel := context.WithTimeout(f.ctx(), time.Minute)
		err := r.CatchUp(ctx)
		cancel()
		f.namesOwner(err, owner, "run "+intruder.String())
		if st := r.Status(); st.Fatal == "" {
			f.t.Fatalf("%s: a runner over a claimed target is not stopped: %+v", h.Name(), st)
		}
		rec.mu.Lock()
		calls := rec.calls
		rec.mu.Unlock()
		if calls != 0 {
			f.t.Fatalf("%s: %v was let apply %d batches over a target %v owns: the refusal must come at start (checkpoint.Preparer)", h.Name(), intruder, calls, owner)
		}
	}
	f.checkState(f.last())

	// The owner carries on, also from a new instance.
	f.close(s)
	s4, err := f.openAs(h, owner)
	if err != nil {
		f.t.Fatalf("%s: reopen %v: %v", h.Name(), owner, err)
	}
	f.append(f.upsert("Book", bookID(3), book(3, 1)), f.del("Book", bookID(4)))
	f.catchUp(f.runner(s4, config(100)))
	f.check(s4, f.last())
}

func testFencing(f *fixture, h SharedHarness) {
	claim := ClaimFor(f.name)
	f.append(f.upsert("Book", bookID(1), book(1, 0)), f.upsert("Author", authorID(1), author(1, 0)))
	old, err := f.openAs(h, claim)
	if err != nil {
		f.t.Fatal(err)
	}
	rec := &recorder{Sink: old}
	r1 := f.runner(rec, config(100))
	f.catchUp(r1)
	f.check(old, f.last())
	before := f.last()

	// A second process starts the same sink: the first is fenced out.
	cur, err := f.openAs(h, claim)
	if err != nil {
		f.t.Fatalf("%s: a restart of %v was refused: %v", h.Name(), claim, err)
	}
	es := f.append(f.upsert("Book", bookID(1), book(1, 1)), f.upsert("Book", bookID(2), book(2, 0)), f.del("Author", authorID(1)))
	stale := checkpoint.Batch{Effects: checkpoint.Collapse(es), Through: es[len(es)-1].LSN, Schema: f.Schema()}
	if err := old.Apply(f.ctx(), stale); !errors.Is(err, checkpoint.ErrFenced) {
		f.t.Fatalf("%s: the fenced-out instance applied a batch: %v", h.Name(), err)
	}
	if _, err := old.Checkpoint(f.ctx()); !errors.Is(err, checkpoint.ErrFenced) {
		f.t.Fatalf("%s: the fenced-out instance read its checkpoint: %v", h.Name(), err)
	}
	// Nothing of the refused batch is in.
	if c := f.checkpointOf(cur); c != before {
		f.t.Fatalf("%s: checkpoint %d after a fenced batch, want %d", h.Name(), c, before)
	}
	f.checkState(before)

	// Its runner stops on the first attempt instead of retrying.
	r1.Start(f.ctx())
	deadline := time.Now().Add(time.Minute)
	for r1.Status().Running {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: the runner of a fenced sink keeps running: %+v", h.Name(), r1.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec.mu.Lock()
	calls := rec.calls
	rec.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	rec.mu.Lock()
	again := rec.calls - calls
	rec.mu.Unlock()
	if st := r1.Status(); again != 0 || !strings.Contains(st.Fatal, checkpoint.ErrFenced.Error()) || st.Failures != 1 {
		f.t.Fatalf("%s: fenced runner: %d more applies, status %+v", h.Name(), again, st)
	}

	// The current instance applies what the fenced one could not.
	f.catchUp(f.runner(cur, config(100)))
	f.check(cur, f.last())
}
