package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// runHTTP: single-document writes (PUT) against node A by 1, 16 and 64
// concurrent clients; beside them the same client against a trivial
// net/http handler in this process, the HTTP floor.
func runHTTP(ctx context.Context, t *trial) error {
	home, space, err := t.single(ctx, "A")
	if err != nil {
		return err
	}
	a, err := t.startNode(ctx, home, "A", nodeOptions{})
	if err != nil {
		return err
	}
	floor, stop, err := startFloor()
	if err != nil {
		return err
	}
	defer stop()
	if err := t.measure(); err != nil {
		return err
	}
	for _, c := range t.h.cfg.HTTPClients {
		n := max(t.h.cfg.HTTPWrites, c)
		prefix := fmt.Sprintf("h%d-", c)
		api := newAPIClient(a.API.base, a.API.token, c)
		defer api.hc.CloseIdleConnections()
		prod, err := drive(ctx, c, n, func(ctx context.Context, i int) error {
			it := genItem(t.h.cfg.Seed, prefix, i)
			return api.put(ctx, space, it.ID, it.body())
		})
		if err != nil {
			return fmt.Errorf("%d clients: %w", c, err)
		}
		fc := newAPIClient(floor, "x", c)
		defer fc.hc.CloseIdleConnections()
		base, err := drive(ctx, c, n, func(ctx context.Context, i int) error {
			it := genItem(t.h.cfg.Seed, prefix, i)
			return fc.put(ctx, "s", it.ID, it.body())
		})
		if err != nil {
			return fmt.Errorf("%d clients, HTTP floor: %w", c, err)
		}
		cs := fmt.Sprintf("clients=%d n=%d", c, n)
		const what = "same client, trivial net/http handler"
		t.add(Result{Case: cs, Metric: "writes", Unit: "docs/s", Value: prod.rate}, &Baseline{What: what, Value: base.rate})
		t.add(Result{Case: cs, Metric: "latency p50", Unit: "ms", Value: ms(prod.lat.p50)}, &Baseline{What: what, Value: ms(base.lat.p50)})
		t.add(Result{Case: cs, Metric: "latency p99", Unit: "ms", Value: ms(prod.lat.p99)}, &Baseline{What: what, Value: ms(base.lat.p99)})
	}
	return nil
}

// driven is what drive measured.
type driven struct {
	rate float64
	lat  latencies
}

// drive runs n calls of fn from c concurrent clients, each taking the
// next index, and measures the rate and each call's latency.
func drive(ctx context.Context, c, n int, fn func(ctx context.Context, i int) error) (driven, error) {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	errs := make(chan error, c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := fn(ctx, i); err != nil {
					errs <- fmt.Errorf("write %d: %w", i, err)
					cancel()
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	select {
	case err := <-errs:
		return driven{}, err
	default:
	}
	return driven{rate: perSecond(n, el), lat: summarize(lat)}, nil
}

// startFloor serves a trivial handler on loopback: it reads the body and
// answers 201 with a small JSON object, as the API answers a write.
func startFloor() (base string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"x","change":"bafyreigklxkfvhwdkk74qqgqaeeinfknly7m35owlvonjkahvy2syxomuq","created":true}`+"\n")
	})}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	return "http://" + ln.Addr().String(), func() { srv.Close(); <-done }, nil
}
