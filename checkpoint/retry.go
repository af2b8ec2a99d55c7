package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tributary-sync/tributary/eventstream"
)

// Outcomes of Retry for one parked effect.
const (
	RetryApplied    = "applied"    // the sink took it now: no longer parked
	RetrySuperseded = "superseded" // a newer effect of its document was applied: no longer parked
	RetryRefused    = "refused"    // the sink still refuses it: still parked
	RetryWaiting    = "waiting"    // above the checkpoint: the runner has yet to reach it
)

// Retried is what Retry did with one parked effect.
type Retried struct {
	Parked
	Outcome string `json:"outcome"`
	// By is the LSN of the newer effect of a superseded one.
	By uint64 `json:"by,omitempty"`
	// Why is the sink's reason for a refused one, now.
	Why string `json:"why,omitempty"`
}

// retryScan is how many effects Retry reads from the log at a time.
const retryScan = 1000

// Retry offers the sink's parked effects again (tributary sink retry), in
// step with the runner (no batch runs meanwhile). For each parked
// document it takes the current post-image the sink should hold: the
// newest effect of the document at or below the checkpoint. A parked
// effect that a newer one (applied, or parked later) supersedes is
// removed from the parking; one that is still its document's newest is
// applied again (Batch.Redo) and removed from the parking if the sink
// takes it now, or stays parked if the sink still refuses it. Effects
// above the checkpoint are left to the runner.
//
// It returns the outcome of every parked effect, in LSN order. An error
// (reading the log or the parking, or a sink failure other than a
// rejection) leaves the parking as it was for the effects not decided yet.
func (r *Runner) Retry(ctx context.Context) ([]Retried, error) {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	name := r.sink.Name()
	parked, err := r.parking.List(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("sink %s: list parked effects: %w", name, err)
	}
	slices.SortFunc(parked, func(a, b Parked) int { return cmpLSN(a.Effect.LSN, b.Effect.LSN) })
	out := make([]Retried, len(parked))
	// The newest parked effect of each document at or below the
	// checkpoint is its candidate; older parked effects of the document
	// are superseded by it.
	cand := map[string]int{} // document -> index in out
	for i, p := range parked {
		out[i] = Retried{Parked: p}
		if p.Effect.LSN > r.ckpt {
			out[i].Outcome = RetryWaiting
			continue
		}
		key := p.Effect.Key()
		if j, ok := cand[key]; ok {
			out[j].Outcome, out[j].By = RetrySuperseded, p.Effect.LSN
		}
		cand[key] = i
	}
	if err := r.supersede(ctx, out, cand); err != nil {
		return nil, err
	}
	var done []uint64
	for i := range out {
		if out[i].Outcome == RetrySuperseded {
			done = append(done, out[i].Effect.LSN)
		}
	}
	if err := r.parking.Remove(ctx, name, done...); err != nil {
		return nil, fmt.Errorf("sink %s: remove superseded parked effects: %w", name, err)
	}

	var redo []int // indexes in out, in LSN order
	for i := range out {
		if out[i].Outcome == "" {
			redo = append(redo, i)
		}
	}
	if err := r.redo(ctx, out, redo); err != nil {
		return nil, err
	}
	done = done[:0]
	for _, i := range redo {
		if out[i].Outcome == RetryApplied {
			done = append(done, out[i].Effect.LSN)
		}
	}
	if err := r.parking.Remove(ctx, name, done...); err != nil {
		return nil, fmt.Errorf("sink %s: remove applied parked effects: %w", name, err)
	}
	for _, o := range out {
		r.log.Info("parked effect retried", "lsn", o.Effect.LSN, "collection", o.Effect.Collection, "id", o.Effect.DocID, "outcome", o.Outcome)
	}
	return out, nil
}

// supersede marks the candidates whose document has a newer effect in
// the log at or below the checkpoint.
func (r *Runner) supersede(ctx context.Context, out []Retried, cand map[string]int) error {
	if len(cand) == 0 {
		return nil
	}
	from := r.ckpt
	for _, i := range cand {
		from = min(from, out[i].Effect.LSN)
	}
	for from < r.ckpt {
		es, err := r.src.Read(ctx, from+1, retryScan)
		if err != nil {
			return fmt.Errorf("sink %s: read effects from LSN %d: %w", r.sink.Name(), from+1, err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.LSN > r.ckpt {
				return nil
			}
			if i, ok := cand[e.Key()]; ok && e.LSN > out[i].Effect.LSN {
				out[i].Outcome, out[i].By = RetrySuperseded, e.LSN
			}
		}
		from = es[len(es)-1].LSN
	}
	return nil
}

// redo applies the effects of out at idx again, as one batch, dropping
// the ones the sink refuses; it sets their outcomes.
func (r *Runner) redo(ctx context.Context, out []Retried, idx []int) error {
	sch := r.schemas.Schema()
	for len(idx) > 0 {
		effects := make([]eventstream.Effect, len(idx))
		for k, i := range idx {
			effects[k] = out[i].Effect
		}
		err := r.applyBatch(ctx, Batch{Effects: effects, Schema: sch, Through: r.ckpt, Redo: true})
		if err == nil {
			for _, i := range idx {
				out[i].Outcome = RetryApplied
			}
			return nil
		}
		var rej *RejectedError
		if Fatal(err) || !errors.As(err, &rej) {
			return r.fail(fmt.Errorf("sink %s: apply %d parked effects again: %w", r.sink.Name(), len(idx), err))
		}
		if rej.Index >= 0 && rej.Index < len(idx) {
			i := idx[rej.Index]
			out[i].Outcome, out[i].Why = RetryRefused, rej.Reason
			idx = slices.Delete(slices.Clone(idx), rej.Index, rej.Index+1)
			continue
		}
		// The sink cannot tell which: one at a time.
		for _, i := range idx {
			err := r.applyBatch(ctx, Batch{Effects: []eventstream.Effect{out[i].Effect}, Schema: sch, Through: r.ckpt, Redo: true})
			switch {
			case err == nil:
				out[i].Outcome = RetryApplied
			case !Fatal(err) && errors.As(err, &rej):
				out[i].Outcome, out[i].Why = RetryRefused, rej.Reason
			default:
				return r.fail(fmt.Errorf("sink %s: apply parked LSN %d again: %w", r.sink.Name(), out[i].Effect.LSN, err))
			}
		}
		return nil
	}
	return nil
}

func cmpLSN(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
