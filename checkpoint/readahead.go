package checkpoint

import (
	"context"

	"github.com/tributary-sync/tributary/eventstream"
)

// SizedSource is a Source that can also bound a read by the stored size
// of the effects (eventstream.Log). The runner uses it for
// Config.BatchBytes; a Source without it is bounded by count only.
type SizedSource interface {
	// ReadSized returns up to max effects with LSN >= from, in LSN order,
	// stopping before the one that would take their stored size past
	// maxBytes (the first is returned whatever its size).
	ReadSized(ctx context.Context, from uint64, max, maxBytes int) ([]eventstream.Effect, error)
}

// read reads the batch that starts at from: up to BatchSize effects, or
// up to CatchUpBatch when the log holds at least BatchSize effects from
// there (the sink is behind: backfill, catch-up), bounded by BatchBytes.
func (r *Runner) read(ctx context.Context, from uint64) ([]eventstream.Effect, error) {
	max := r.cfg.BatchSize
	if last := r.src.LastLSN(); r.cfg.CatchUpBatch > max && last >= from && last-from >= uint64(max) {
		max = r.cfg.CatchUpBatch
	}
	if s, ok := r.src.(SizedSource); ok && r.cfg.BatchBytes > 0 {
		return s.ReadSized(ctx, from, max, r.cfg.BatchBytes)
	}
	return r.src.Read(ctx, from, max)
}

// ahead is a batch read while the one before it was being applied.
type ahead struct {
	from    uint64
	effects []eventstream.Effect
}

// takeAhead returns the batch read ahead if it starts right after the
// checkpoint, else nil; either way the runner holds none after. After a
// failure the checkpoint is where it was (the failed batch is offered
// again, read afresh) and the batch read ahead no longer fits.
func (r *Runner) takeAhead() []eventstream.Effect {
	a := r.ahead
	r.ahead = nil
	if a == nil || a.from != r.ckpt+1 {
		return nil
	}
	return a.effects
}

// prefetch is a read of the next batch, under way while the sink
// applies the current one.
type prefetch struct {
	from    uint64
	cancel  context.CancelFunc
	done    chan struct{}
	effects []eventstream.Effect
	err     error
}

// readAhead starts reading the batch after through, if the log has
// effects past it. The caller waits for it (prefetch.wait) before
// returning (Runner.waitAhead), so no read outlives the call that started it; the runner
// holds at most the batch being applied and the one read ahead.
func (r *Runner) readAhead(ctx context.Context, through uint64) *prefetch {
	if r.src.LastLSN() <= through {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetch{from: through + 1, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.effects, p.err = r.read(ctx, p.from)
	}()
	return p
}

// waitAhead ends the read ahead p. If applied (the batch before it was applied
// and the checkpoint is now right before it) the runner keeps what it
// read for the next batch; otherwise the read is cancelled and dropped.
// A read that failed is dropped too: the next batch reads again and
// reports the error.
func (r *Runner) waitAhead(p *prefetch, applied bool) {
	if p == nil {
		return
	}
	if !applied {
		p.cancel()
	}
	<-p.done
	p.cancel()
	if applied && p.err == nil && len(p.effects) > 0 {
		r.ahead = &ahead{from: p.from, effects: p.effects}
	}
}
