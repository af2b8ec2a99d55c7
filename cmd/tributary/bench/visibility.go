package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runVisibility: writes at A at a steady rate (single-document PUTs,
// paced, from up to 64 clients) and the time until each is on B's
// effect stream (SSE); beside it, until it is on A's own stream.
func runVisibility(ctx context.Context, t *trial) error {
	rate := t.h.cfg.VisibilityRate
	n := max(1, int(float64(rate)*t.h.cfg.VisibilityTime.Seconds()))
	a, b, space, err := t.pair(ctx)
	if err != nil {
		return err
	}
	an, err := t.startNode(ctx, a, "A", nodeOptions{})
	if err != nil {
		return err
	}
	bn, err := t.startB(ctx, an, b, space, "", false)
	if err != nil {
		return err
	}
	warm := genItem(t.h.cfg.Seed, "vw", 0)
	if err := an.API.put(ctx, space, warm.ID, warm.body()); err != nil {
		return err
	}
	if err := waitUntil(ctx, time.Minute, "a first write at A on B", func() (bool, error) {
		st, err := bn.API.status(ctx, space)
		return err == nil && st.Effects.Last > 0, err
	}); err != nil {
		return err
	}

	sent, acked := make([]atomic.Int64, n), make([]atomic.Int64, n) // unix nanoseconds
	onA, onB := make([]atomic.Int64, n), make([]atomic.Int64, n)
	var seenB atomic.Int64
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, f := range []struct {
		node *Node
		seen []atomic.Int64
		all  *atomic.Int64
	}{{an, onA, nil}, {bn, onB, &seenB}} {
		st, err := f.node.API.status(ctx, space)
		if err != nil {
			return err
		}
		ready := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f.node.API.follow(fctx, space, st.Effects.Last+1, ready, func(id string, at time.Time) {
				i, ok := visIndex(id, n)
				if ok && f.seen[i].CompareAndSwap(0, at.UnixNano()) && f.all != nil {
					f.all.Add(1)
				}
			})
			if err != nil {
				errs <- fmt.Errorf("%s: %w", f.node.Name, err)
			}
		}()
		select {
		case <-ready:
		case err := <-errs:
			return err
		case <-time.After(time.Minute):
			return errors.New("the effect stream did not open")
		}
	}
	defer wg.Wait()
	defer stop()

	if err := t.measure(); err != nil {
		return err
	}
	achieved, err := paced(ctx, rate, n, 64, func(ctx context.Context, i int) error {
		it := genItem(t.h.cfg.Seed, "v", i)
		sent[i].Store(time.Now().UnixNano())
		err := an.API.put(ctx, space, it.ID, it.body())
		acked[i].Store(time.Now().UnixNano())
		return err
	})
	if err != nil {
		return err
	}
	if err := waitUntil(ctx, time.Minute, "every write on B's stream", func() (bool, error) {
		select {
		case err := <-errs:
			return false, err
		default:
		}
		return seenB.Load() == int64(n), nil
	}); err != nil {
		return fmt.Errorf("%w (%d of %d seen)", err, seenB.Load(), n)
	}
	la, lb := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	lw, lab := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i := range n {
		if a := onA[i].Load(); a != 0 {
			la = append(la, time.Duration(a-sent[i].Load()))
		}
		lb = append(lb, time.Duration(onB[i].Load()-sent[i].Load()))
		lw = append(lw, time.Duration(acked[i].Load()-sent[i].Load()))
		lab = append(lab, time.Duration(onB[i].Load()-acked[i].Load()))
	}
	sa, sb, sw, sab := summarize(la), summarize(lb), summarize(lw), summarize(lab)
	cs := fmt.Sprintf("rate=%d/s n=%d", rate, n)
	const what = "write at A -> on A's own stream"
	t.add(Result{Case: cs, Metric: "write at A -> on B's stream p50", Unit: "ms", Value: ms(sb.p50)}, &Baseline{What: what, Value: ms(sa.p50)})
	t.add(Result{Case: cs, Metric: "write at A -> on B's stream p99", Unit: "ms", Value: ms(sb.p99)}, &Baseline{What: what, Value: ms(sa.p99)})
	t.add(Result{Case: cs, Metric: "answered at A -> on B's stream p50", Unit: "ms", Value: ms(sab.p50),
		Note: "the mesh and B's commit, without A's write"}, nil)
	t.add(Result{Case: cs, Metric: "answered at A -> on B's stream p99", Unit: "ms", Value: ms(sab.p99)}, nil)
	t.add(Result{Case: cs, Metric: "writes at A, achieved", Unit: "docs/s", Value: achieved,
		Note: fmt.Sprintf("a write took %.2f ms p50, %.2f ms p99", ms(sw.p50), ms(sw.p99))}, &Baseline{What: "the rate asked", Value: float64(rate)})
	return nil
}

// visIndex is the write number of a document id "v00000042".
func visIndex(id string, n int) (int, bool) {
	s, ok := strings.CutPrefix(id, "v")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0 && i < n
}

// paced calls fn for 0..n-1, call i due at start + i/rate, from up to
// workers at once (a call late for want of a worker starts as soon as
// one is free), and returns the rate achieved.
func paced(ctx context.Context, rate, n, workers int, fn func(ctx context.Context, i int) error) (float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	due := make(chan int, n)
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range due {
				if ctx.Err() != nil {
					continue
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = fmt.Errorf("write %d: %w", i, err); cancel() })
				}
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		due <- i
	}
	close(due)
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return perSecond(n, time.Since(start)), ctx.Err()
}
