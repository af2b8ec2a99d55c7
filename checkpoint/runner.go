package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tributary-sync/tributary/eventstream"
)

// Config tunes a runner.
type Config struct {
	BatchSize int // most effects read per batch (default 1000)
	// CatchUpBatch is the most effects read per batch while the sink is
	// at least BatchSize effects behind the log (a backfill after a
	// reset, catching up after downtime): larger batches cost the target
	// fewer transactions. 0, or below BatchSize: BatchSize.
	CatchUpBatch int
	// BatchBytes bounds the stored size of the effects read for one
	// batch when the source can tell it (SizedSource: eventstream.Log
	// can); a batch holds at least one effect. 0: no bound (default
	// 8 MiB).
	BatchBytes int
	Linger     time.Duration // wait for more effects before a small batch (default 5ms)
	RetryMin   time.Duration // first backoff after a failed batch (default 100ms)
	RetryMax   time.Duration // backoff cap (default 10s)
	Logger     *slog.Logger
	// OnBatch, when set, is told of every batch the runner applied or
	// failed to apply: how many effects it read, how long applying took,
	// and the error (nil on success). It must return quickly (metrics).
	OnBatch func(effects int, took time.Duration, err error)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{BatchSize: 1000, BatchBytes: 8 << 20, Linger: 5 * time.Millisecond, RetryMin: 100 * time.Millisecond, RetryMax: 10 * time.Second}
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 1_000_000:
		return fmt.Errorf("checkpoint config: batch size %d: want 1 to 1000000", c.BatchSize)
	case c.CatchUpBatch < 0 || c.CatchUpBatch > 1_000_000:
		return fmt.Errorf("checkpoint config: catch-up batch %d: want 0 (the batch size) to 1000000", c.CatchUpBatch)
	case c.BatchBytes < 0:
		return fmt.Errorf("checkpoint config: batch bytes %d: want 0 (no bound) or more", c.BatchBytes)
	case c.Linger < 0 || c.Linger > time.Minute:
		return fmt.Errorf("checkpoint config: linger %s: want 0 to 1m", c.Linger)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("checkpoint config: retry backoff %s..%s: want 0 < min <= max", c.RetryMin, c.RetryMax)
	}
	return nil
}

// Status is a runner's progress.
type Status struct {
	Sink       string    `json:"sink"`
	Checkpoint uint64    `json:"checkpoint"`
	LastLSN    uint64    `json:"last_lsn"`
	Lag        uint64    `json:"lag"`
	Applied    uint64    `json:"applied"`  // effects applied since start
	Batches    uint64    `json:"batches"`  // batches applied since start
	Parked     uint64    `json:"parked"`   // effects parked since start
	Failures   uint64    `json:"failures"` // failed attempts since start
	LastError  string    `json:"last_error,omitempty"`
	LastErrAt  time.Time `json:"last_error_at,omitzero"`
	Retrying   bool      `json:"retrying"`
	Running    bool      `json:"running"`
	// Fatal is why the runner stopped for good: the sink was fenced out
	// by a newer instance, or its target belongs to another claim.
	Fatal      string    `json:"fatal,omitempty"`
	CaughtUpAt time.Time `json:"caught_up_at,omitzero"`
}

// Runner feeds one sink from one effect log.
type Runner struct {
	cfg     Config
	src     Source
	sink    Sink
	schemas SchemaSource
	parking Parking
	log     *slog.Logger

	runMu    sync.Mutex // one batch at a time
	ckpt     uint64
	known    bool   // ckpt loaded from the sink
	prepared bool   // Preparer.Prepare done
	ahead    *ahead // the next batch, read while the last one was applied

	mu      sync.Mutex
	status  Status
	cancel  context.CancelFunc
	done    chan struct{}
	backoff time.Duration
}

// New makes a runner; Start or RunOnce drive it.
func New(cfg Config, src Source, sink Sink, schemas SchemaSource, parking Parking) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || sink == nil || schemas == nil || parking == nil {
		return nil, errors.New("checkpoint: source, sink, schemas and parking are all required")
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, src: src, sink: sink, schemas: schemas, parking: parking, log: lg.With("sink", sink.Name())}
	r.status.Sink = sink.Name()
	return r, nil
}

// Status reports progress.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.LastLSN = r.src.LastLSN()
	if s.LastLSN > s.Checkpoint {
		s.Lag = s.LastLSN - s.Checkpoint
	}
	return s
}

// Start runs the runner in a goroutine until Close.
func (r *Runner) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	r.status.Running = true
	go r.loop(ctx, r.done)
}

// Close stops a started runner and waits for it. It does not close the sink.
func (r *Runner) Close() error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	r.mu.Lock()
	r.status.Running = false
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	return nil
}

func (r *Runner) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		n, err := r.RunOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if Fatal(err) {
				r.mu.Lock()
				r.status.Running, r.status.Retrying = false, false
				r.mu.Unlock()
				r.log.Error("sink stopped", "err", err)
				return
			}
			if !r.sleep(ctx, r.nextBackoff()) {
				return
			}
			continue
		}
		if n > 0 {
			continue
		}
		if err := r.src.Wait(ctx, r.checkpoint()); err != nil {
			return
		}
		if r.cfg.Linger > 0 && r.src.LastLSN()-r.checkpoint() < uint64(r.cfg.BatchSize) {
			if !r.sleep(ctx, r.cfg.Linger) {
				return
			}
		}
	}
}

func (r *Runner) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *Runner) nextBackoff() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backoff == 0 {
		r.backoff = r.cfg.RetryMin
	} else {
		r.backoff = min(2*r.backoff, r.cfg.RetryMax)
	}
	r.status.Retrying = true
	return r.backoff
}

func (r *Runner) checkpoint() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status.Checkpoint
}

// CatchUp runs batches until the sink's checkpoint reaches the log's last
// LSN as of the call, or ctx ends. The first error is returned (a sink that
// keeps failing fails CatchUp; Start retries instead).
func (r *Runner) CatchUp(ctx context.Context) error {
	target := r.src.LastLSN()
	for {
		if _, err := r.RunOnce(ctx); err != nil {
			return err
		}
		if r.checkpoint() >= target {
			return nil
		}
	}
}

// RunOnce applies at most one batch and returns how many effects it read.
// An error that Fatal reports (the sink was fenced out, or its target
// belongs to another claim) is also recorded as Status.Fatal.
func (r *Runner) RunOnce(ctx context.Context) (int, error) {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if err := r.start(ctx); err != nil {
		return 0, err
	}
	effects := r.takeAhead()
	if effects == nil {
		var err error
		if effects, err = r.read(ctx, r.ckpt+1); err != nil {
			return 0, r.fail(fmt.Errorf("sink %s: read effects: %w", r.sink.Name(), err))
		}
	}
	if len(effects) == 0 {
		r.mu.Lock()
		r.status.CaughtUpAt = time.Now()
		r.mu.Unlock()
		return 0, nil
	}
	through := effects[len(effects)-1].LSN
	kept := Collapse(effects)
	next := r.readAhead(ctx, through)
	began := time.Now()
	parked, err := r.apply(ctx, kept, through)
	if r.cfg.OnBatch != nil {
		r.cfg.OnBatch(len(effects), time.Since(began), err)
	}
	r.waitAhead(next, err == nil)
	if err != nil {
		return 0, r.fail(err)
	}
	r.ckpt = through
	r.mu.Lock()
	r.status.Checkpoint = through
	r.status.Applied += uint64(len(kept) - parked)
	r.status.Batches++
	r.status.Retrying = false
	r.backoff = 0
	r.mu.Unlock()
	return len(effects), nil
}

// start prepares the sink once and reads its checkpoint unless known.
func (r *Runner) start(ctx context.Context) error {
	if !r.prepared {
		if p, ok := r.sink.(Preparer); ok {
			if sch := r.schemas.Schema(); sch != nil {
				if err := p.Prepare(ctx, sch); err != nil {
					return r.fail(fmt.Errorf("sink %s: prepare the target: %w", r.sink.Name(), err))
				}
			}
		}
		r.prepared = true
	}
	if !r.known {
		c, err := r.sink.Checkpoint(ctx)
		if err != nil {
			return r.fail(fmt.Errorf("sink %s: read checkpoint: %w", r.sink.Name(), err))
		}
		r.ckpt, r.known = c, true
		r.setCheckpoint(c)
	}
	if last := r.src.LastLSN(); r.ckpt > last {
		return r.fail(fmt.Errorf("sink %s: checkpoint %d is ahead of the effect log (last LSN %d): the sink was fed by another space or store", r.sink.Name(), r.ckpt, last))
	}
	return nil
}

// apply applies kept (from LSNs up to through), splitting around rejected
// effects: the part before a rejection is applied, the rejected effect
// parked, and the rest applied, each step recording its own checkpoint.
// It returns how many effects it parked.
func (r *Runner) apply(ctx context.Context, kept []eventstream.Effect, through uint64) (parked int, err error) {
	sch := r.schemas.Schema()
	for {
		err := r.applyBatch(ctx, Batch{Effects: kept, Schema: sch, Through: through})
		var rej *RejectedError
		if err == nil {
			return parked, nil
		}
		if !errors.As(err, &rej) {
			return parked, fmt.Errorf("sink %s: apply %d effects through LSN %d: %w", r.sink.Name(), len(kept), through, err)
		}
		idx, reason := rej.Index, rej.Reason
		if idx < 0 || idx >= len(kept) {
			if idx, reason, err = r.bisect(ctx, kept); err != nil {
				return parked, err
			}
			if idx < 0 { // every half applied on its own: nothing left to do
				return parked, r.saveThrough(ctx, through)
			}
		} else if idx > 0 {
			if err := r.applyBatch(ctx, Batch{Effects: kept[:idx], Schema: sch, Through: kept[idx].LSN - 1}); err != nil {
				return parked, fmt.Errorf("sink %s: apply before rejected LSN %d: %w", r.sink.Name(), kept[idx].LSN, err)
			}
		}
		bad := kept[idx]
		if err := r.parking.Park(ctx, Parked{Sink: r.sink.Name(), Effect: bad, Reason: reason, ParkedAt: time.Now()}); err != nil {
			return parked, fmt.Errorf("sink %s: park LSN %d: %w", r.sink.Name(), bad.LSN, err)
		}
		r.log.Warn("effect parked", "lsn", bad.LSN, "collection", bad.Collection, "id", bad.DocID, "reason", reason)
		r.mu.Lock()
		r.status.Parked++
		r.mu.Unlock()
		parked++
		kept = kept[idx+1:]
		if len(kept) == 0 {
			return parked, r.saveThrough(ctx, through)
		}
		// Record the parked effect as handled, so that a failure applying
		// the rest does not park it again when the batch is retried.
		if err := r.saveThrough(ctx, bad.LSN); err != nil {
			return parked, err
		}
	}
}

// bisect finds the first effect the sink rejects on its own, applying the
// good effects before it one at a time. It returns -1 if none is rejected,
// else the index and the reason the sink gave for that effect alone.
func (r *Runner) bisect(ctx context.Context, kept []eventstream.Effect) (int, string, error) {
	for i, e := range kept {
		err := r.applyBatch(ctx, Batch{Effects: []eventstream.Effect{e}, Schema: r.schemas.Schema(), Through: e.LSN})
		if errors.Is(err, ErrRejected) && !Fatal(err) {
			reason := err.Error()
			if rej := (*RejectedError)(nil); errors.As(err, &rej) {
				reason = rej.Reason
			}
			return i, reason, nil
		}
		if err != nil {
			return 0, "", fmt.Errorf("sink %s: apply LSN %d alone: %w", r.sink.Name(), e.LSN, err)
		}
	}
	return -1, "", nil
}

// saveThrough records a checkpoint with an empty batch.
func (r *Runner) saveThrough(ctx context.Context, through uint64) error {
	if err := r.applyBatch(ctx, Batch{Schema: r.schemas.Schema(), Through: through}); err != nil {
		return fmt.Errorf("sink %s: save checkpoint %d: %w", r.sink.Name(), through, err)
	}
	return nil
}

func (r *Runner) setCheckpoint(c uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Checkpoint = c
}

func (r *Runner) fail(err error) error {
	r.known = false // re-read the sink's checkpoint: the failed batch may have landed
	r.ahead = nil   // and read what follows it afresh
	r.mu.Lock()
	r.status.Failures++
	r.status.LastError = err.Error()
	r.status.LastErrAt = time.Now()
	if Fatal(err) {
		r.status.Fatal = err.Error()
	}
	r.mu.Unlock()
	r.log.Error("sink batch failed", "err", err)
	return err
}

// Collapse keeps the newest effect of each document, in LSN order.
func Collapse(effects []eventstream.Effect) []eventstream.Effect {
	newest := make(map[docKey]int, len(effects))
	for i := range effects {
		newest[keyOf(&effects[i])] = i
	}
	if len(newest) == len(effects) {
		return effects
	}
	out := make([]eventstream.Effect, 0, len(newest))
	for i := range effects {
		if newest[keyOf(&effects[i])] == i {
			out = append(out, effects[i])
		}
	}
	return out
}

// docKey is Effect.Key without building the string.
type docKey struct{ coll, id string }

func keyOf(e *eventstream.Effect) docKey { return docKey{e.Collection, e.DocID} }
