package replica

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// receiveSource is a space's changes as another replica exports them:
// docs documents written as changes of opsPer puts each, built once per
// shape and shared by the receive benchmarks.
type receiveSource struct {
	envs [][]byte
	docs int
}

var (
	receiveMu      sync.Mutex
	receiveSources = map[[2]int]*receiveSource{}
)

func sourceEnvelopes(b *testing.B, docs, opsPer int) *receiveSource {
	receiveMu.Lock()
	defer receiveMu.Unlock()
	if s, ok := receiveSources[[2]int{docs, opsPer}]; ok {
		return s
	}
	admin := key(b, 1)
	src := found(b, admin)
	ctx := context.Background()
	for i := 0; i < docs; i += opsPer {
		muts := make([]Mutation, min(opsPer, docs-i))
		for j := range muts {
			muts[j] = Mutation{Op: MutPut, Collection: "Book", ID: fmt.Sprintf("b%d", i+j), Fields: map[string]any{"title": "a title", "year": 1990 + j%30, "tags": []any{"x", "y"}}}
		}
		if _, _, err := src.Mutate(ctx, admin, muts, uint64(1_000_100+i)); err != nil {
			b.Fatal(err)
		}
	}
	envs, err := src.Export(nil)
	if err != nil {
		b.Fatal(err)
	}
	s := &receiveSource{envs: envs, docs: docs}
	receiveSources[[2]int{docs, opsPer}] = s
	return s
}

// BenchmarkReceive is the receive path as `tributary run` takes it: the
// changes of 50k documents exported from another replica (one document
// per change, as live single writes arrive, and 100 per change, as group
// commit and bulk loads write them) received in batches of 500 envelopes
// into an on-disk replica with fsync: decode, signature verification,
// validation, merge, commit. It reports docs/s, changes/s and CPU per
// document.
func BenchmarkReceive(b *testing.B) {
	for _, opsPer := range []int{1, 100} {
		b.Run(fmt.Sprintf("docs-per-change=%d", opsPer), func(b *testing.B) {
			src := sourceEnvelopes(b, 50_000, opsPer)
			ctx := context.Background()
			var cpu *cpuClock
			for i := range b.N {
				b.StopTimer()
				dst, err := Open(Options{Dir: b.TempDir(), SyncWrites: true})
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					cpu = startCPU(b)
				}
				b.StartTimer()
				for k := 0; k < len(src.envs); k += 500 {
					rep, err := dst.Receive(ctx, src.envs[k:min(k+500, len(src.envs))])
					if err != nil {
						b.Fatal(err)
					}
					if len(rep.Rejected) > 0 || rep.Held > 0 {
						b.Fatalf("batch at %d: %d rejected (%v), %d held", k, len(rep.Rejected), rep.Rejected, rep.Held)
					}
				}
				b.StopTimer()
				if st, err := dst.Status(); err != nil || st.Changes != len(src.envs) {
					b.Fatalf("received %d changes of %d (%v)", st.Changes, len(src.envs), err)
				}
				dst.Close()
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N*src.docs)/s, "docs/s")
			b.ReportMetric(float64(b.N*len(src.envs))/s, "changes/s")
			cpu.report(b, b.N*src.docs, "doc")
		})
	}
}
