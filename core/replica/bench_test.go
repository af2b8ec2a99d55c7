package replica

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
)

// benchOps makes n ops for change number i: creates of fresh books, and
// every fourth op an overwrite of an earlier one, so both paths are timed.
func benchOps(i, n int) []core.Op {
	ops := make([]core.Op, n)
	for j := range ops {
		doc := fmt.Sprintf("b%d-%d", i, j)
		if j%4 == 3 {
			ops[j] = core.Op{Kind: core.OpSet, Coll: "Book", Doc: fmt.Sprintf("b%d-%d", i, j-1), Field: "year", Value: int64(1900 + j)}
			continue
		}
		ops[j] = core.Op{Kind: core.OpCreate, Coll: "Book", Doc: doc, Fields: map[string]any{"title": "t" + doc, "year": int64(2000)}}
	}
	return ops
}

// BenchmarkLocalWrite signs, validates, materializes and commits local
// changes of 1, 16 and 256 ops each (the batch size), with the effect log
// hook in the same transaction as in production.
func BenchmarkLocalWrite(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("ops=%d", batch), func(b *testing.B) {
			admin := key(b, 1)
			r := found(b, admin)
			ctx := context.Background()
			clk := &clock{}
			b.ResetTimer()
			for i := range b.N {
				if _, err := r.Write(ctx, admin, benchOps(i, batch), clk.now()); err != nil {
					b.Fatal(err)
				}
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/s, "changes/s")
			b.ReportMetric(float64(b.N*batch)/s, "ops/s")
		})
	}
}

// BenchmarkMaterialize receives changes written elsewhere into a fresh
// replica: decode, batch signature verification, validation, merge,
// commit. It reports ops/s.
func BenchmarkMaterialize(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("ops=%d", batch), func(b *testing.B) {
			admin := key(b, 1)
			src := found(b, admin)
			ctx := context.Background()
			clk := &clock{}
			const changes = 2000
			for i := range changes {
				if _, err := src.Write(ctx, admin, benchOps(i, batch), clk.now()); err != nil {
					b.Fatal(err)
				}
			}
			envs, err := src.Export(nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				dst := openMem(b)
				b.StartTimer()
				for k := 0; k < len(envs); k += 500 {
					if _, err := dst.Receive(ctx, envs[k:min(k+500, len(envs))]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*changes*batch)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkConcurrentPutsOnDisk is the product's single-document write:
// one put per Mutate call, from 1, 16 and 64 goroutines, on an on-disk
// replica with fsync per commit as `tributary run` opens it. Group
// commit lets concurrent calls share a transaction, a change and an
// fsync; the serial run (1 writer) is the baseline.
func BenchmarkConcurrentPutsOnDisk(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			admin := key(b, 1)
			r, err := Open(Options{Dir: b.TempDir(), SyncWrites: true})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			if _, err := r.Found(ctx, admin, "bench", librarySchema(b), nil, 1_000_000); err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					m := Mutation{Op: MutPut, Collection: "Book", ID: fmt.Sprintf("b%d", i), Fields: map[string]any{"title": "t", "year": 2000}}
					if _, _, err := r.Mutate(ctx, admin, []Mutation{m}, uint64(1_000_100+i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			st, _ := r.Status()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
			b.ReportMetric(float64(b.N)/float64(st.Changes), "docs/change")
		})
	}
}

// BenchmarkBulkMutate is `tributary load`'s path in process: batches of
// 1000 puts of new documents per Mutate call, on disk with fsync.
func BenchmarkBulkMutate(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) { benchBulkMutate(b, sync) })
	}
}

func benchBulkMutate(b *testing.B, sync bool) {
	admin := key(b, 1)
	r, err := Open(Options{Dir: b.TempDir(), SyncWrites: sync})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if _, err := r.Found(ctx, admin, "bench", librarySchema(b), nil, 1_000_000); err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	cpu := startCPU(b)
	for i := range b.N {
		muts := make([]Mutation, batch)
		for j := range muts {
			muts[j] = Mutation{Op: MutPut, Collection: "Book", ID: fmt.Sprintf("b%d-%d", i, j), Fields: map[string]any{"title": "a title", "year": 1990 + j%30, "tags": []any{"x", "y"}}}
		}
		if _, _, err := r.Mutate(ctx, admin, muts, uint64(1_000_100+i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "docs/s")
	cpu.report(b, b.N*batch, "doc")
}

// cpuClock measures the process's CPU time (user and system, every
// goroutine, Badger's included) across a benchmark. On a shared, loaded
// machine wall-clock rates swing with the neighbours; CPU time per unit
// of work swings much less, so a change shows in it.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU resets the benchmark timer and starts the CPU clock.
func startCPU(b *testing.B) *cpuClock {
	b.ResetTimer()
	return &cpuClock{start: processCPU()}
}

// report adds "cpu-µs/<unit>": CPU time per unit of work.
func (c *cpuClock) report(b *testing.B, units int, unit string) {
	used := processCPU() - c.start
	b.ReportMetric(float64(used.Microseconds())/float64(units), "cpu-µs/"+unit)
}
