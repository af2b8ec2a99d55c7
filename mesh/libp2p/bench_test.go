package libp2p_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// pair is two replicas of one space with nodes over libp2p on loopback.
type pair struct {
	space  *meshtest.Space
	a, b   *replica.Replica
	stored chan core.ID // changes B stores from A, as they commit
}

func newPair(b *testing.B) *pair {
	b.Helper()
	s := meshtest.NewSpace(b, 2)
	trs := startTransports(b, s.Keys)
	p := &pair{space: s, a: s.Member(b), b: s.Member(b), stored: make(chan core.ID, 1<<20)}
	cancel := p.b.Watch(func(local bool, ids []core.ID) {
		for _, id := range ids {
			p.stored <- id
		}
	})
	b.Cleanup(cancel)
	for i, r := range []*replica.Replica{p.a, p.b} {
		n := mesh.NewNode(r, trs[i], mesh.Config{SyncInterval: time.Second})
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
	}
	meshtest.Eventually(b, 20*time.Second, "peers connect", func() (bool, string) {
		return slices.Contains(trs[0].Peers(s.ID), trs[1].ID()) && slices.Contains(trs[1].Peers(s.ID), trs[0].ID()), ""
	})
	time.Sleep(1500 * time.Millisecond) // let the gossip mesh form (heartbeat 1s)
	return p
}

func (p *pair) write(b *testing.B, doc string, ops int) core.ID {
	list := make([]core.Op, ops)
	for k := range list {
		list[k] = core.Op{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("%s-%d", doc, k), Fields: map[string]any{"text": "benchmark note", "n": int64(k)}}
	}
	id, err := p.a.Write(context.Background(), p.space.Keys[0], list, p.space.Now())
	if err != nil {
		b.Fatal(err)
	}
	return id
}

// waitStored waits until B stored n more changes.
func (p *pair) waitStored(b *testing.B, n int, timeout time.Duration) {
	deadline := time.After(timeout)
	for range n {
		select {
		case <-p.stored:
		case <-deadline:
			b.Fatalf("B did not catch up within %s", timeout)
		}
	}
}

// BenchmarkReplication measures ops/s replicated from A to B: changes of
// 16 ops written on A as fast as the replica takes them, until B's replica
// holds them all.
func BenchmarkReplication(b *testing.B) {
	const changesPerIter, opsPerChange = 500, 16
	p := newPair(b)
	before, err := p.b.Status()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for j := range changesPerIter {
			p.write(b, fmt.Sprintf("r%d-%d", i, j), opsPerChange)
		}
	}
	wrote := time.Since(start)
	p.waitStored(b, b.N*changesPerIter, 3*time.Minute)
	took := time.Since(start)
	b.StopTimer()
	after, err := p.b.Status()
	if err != nil {
		b.Fatal(err)
	}
	if got, want := after.Changes-before.Changes, b.N*changesPerIter; got != want {
		b.Fatalf("B holds %d new changes, want %d", got, want)
	}
	ops := float64(b.N * changesPerIter * opsPerChange)
	b.ReportMetric(ops/took.Seconds(), "ops/s")
	b.ReportMetric(float64(b.N*changesPerIter)/took.Seconds(), "changes/s")
	b.ReportMetric(ops/wrote.Seconds(), "write-ops/s")
}

// BenchmarkLatency measures write-to-visible latency at about 1k ops/s:
// one op per write on A every millisecond, timed until B stored it.
func BenchmarkLatency(b *testing.B) {
	const writesPerIter = 1000
	p := newPair(b)
	var mu sync.Mutex
	seen := map[core.ID]time.Time{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for id := range p.stored {
			if id.IsZero() {
				return
			}
			mu.Lock()
			seen[id] = time.Now()
			mu.Unlock()
		}
	}()
	sent := map[core.ID]time.Time{}
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := range b.N * writesPerIter {
		<-tick.C
		t0 := time.Now()
		sent[p.write(b, fmt.Sprintf("l%d", i), 1)] = t0
	}
	rate := float64(len(sent)) / time.Since(start).Seconds()
	meshtest.Eventually(b, time.Minute, "B stores every write", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(sent), fmt.Sprintf("%d of %d", len(seen), len(sent))
	})
	b.StopTimer()
	p.stored <- core.ID{}
	<-done
	lat := make([]time.Duration, 0, len(sent))
	for id, t0 := range sent {
		lat = append(lat, seen[id].Sub(t0))
	}
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(rate, "writes/s")
}
