package adaptertest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// BenchBatch is the number of effects in each round of the benchmark, and
// the runner's batch size.
const BenchBatch = 10_000

// BenchSchema is the schema of the benchmark's effects.
const BenchSchema = `type Item @collection {
  name: String!
  qty: Int
  price: Float
  active: Boolean
  updated: DateTime
  note: String
}
`

// BenchCollection is the collection the benchmark writes.
const BenchCollection = "Item"

// BenchDocs is how many documents exist after rounds 0..round.
func BenchDocs(round int) int { return BenchBatch + round*BenchBatch/2 }

// BenchEffects returns the effects of a benchmark round, without LSNs.
// Round 0 inserts BenchBatch documents; each later round updates
// BenchBatch/2 distinct existing documents and inserts BenchBatch/2 new
// ones, interleaved. Every document of a round is distinct, so the runner's
// collapse keeps them all.
func BenchEffects(round int) []eventstream.Effect {
	sid := schema.TextID(BenchSchema)
	out := make([]eventstream.Effect, 0, BenchBatch)
	mk := func(id, n int) eventstream.Effect {
		change := fmt.Sprintf("bafyreibench%08d%04d", id, round)
		doc := map[string]any{
			"name":    fmt.Sprintf("item %d round %d", id, round),
			"qty":     int64(id*3 + round),
			"price":   float64(id%1000) + float64(round)/8,
			"active":  (id+round)%2 == 0,
			"updated": time.Unix(1_700_000_000+int64(id), int64(round)*1000).UTC().Format(time.RFC3339Nano),
		}
		if id%3 != 0 {
			doc["note"] = fmt.Sprintf("note %d/%d", id, round)
		}
		return eventstream.Effect{
			Collection: BenchCollection, DocID: fmt.Sprintf("item-%d", id), Kind: eventstream.Upsert, Doc: doc,
			Changes: []string{change}, LastChange: change, Author: "bench",
			HLC: fmt.Sprintf("%016x.%04d", 1_700_000_000_000+round*BenchBatch+n, n%10), SchemaID: sid,
		}
	}
	if round == 0 {
		for i := range BenchBatch {
			out = append(out, mk(i, i))
		}
		return out
	}
	existing := BenchDocs(round - 1)
	step := 7919
	for gcd(step, existing) != 1 {
		step += 2
	}
	next := existing
	for k := range BenchBatch / 2 {
		out = append(out, mk((round*104729+k*step)%existing, 2*k), mk(next, 2*k+1))
		next++
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

type staticSchema struct{ s *schema.Schema }

func (s staticSchema) Schema() *schema.Schema { return s.s }

var benchSeq atomic.Int64

// Bench measures the sink of h applying BenchEffects through the runner
// and reports effects/s.
func Bench(b *testing.B, h Harness) {
	b.ReportMetric(BenchRate(b, h), "effects/s")
}

// BenchRate runs b.N rounds of BenchEffects through a runner into a new
// sink of h and returns the effects applied per second of CatchUp (the
// effect log is filled outside the measured time). It checks that the
// target holds every document afterwards.
func BenchRate(b *testing.B, h Harness) float64 {
	b.Helper()
	b.StopTimer()
	sch, err := schema.Parse(BenchSchema)
	if err != nil {
		b.Fatal(err)
	}
	l := openLog(b)
	name := fmt.Sprintf("bench_%d", benchSeq.Add(1))
	s := h.Open(b, name)
	defer s.Close(context.Background())
	cfg := config(BenchBatch)
	cfg.Linger = 0
	r, err := checkpoint.New(cfg, l, s, staticSchema{sch}, checkpoint.NewMemoryParking())
	if err != nil {
		b.Fatal(err)
	}
	var elapsed time.Duration
	applied := 0
	for i := range b.N {
		appendLog(b, l, BenchEffects(i))
		b.StartTimer()
		start := time.Now()
		if err := r.CatchUp(context.Background()); err != nil {
			b.Fatalf("%s: %v", h.Name(), err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		applied += BenchBatch
	}
	if st := r.Status(); st.Applied != uint64(applied) || st.Checkpoint != l.LastLSN() {
		b.Fatalf("%s: status %+v, want %d applied through %d", h.Name(), st, applied, l.LastLSN())
	}
	if got, want := len(h.Read(b, name, BenchCollection)), BenchDocs(b.N-1); got != want {
		b.Fatalf("%s: %d documents after the benchmark, want %d", h.Name(), got, want)
	}
	b.StartTimer()
	return float64(applied) / elapsed.Seconds()
}

// BenchCatchUpRate is a sink catching up on a backlog: backlog effects
// (new documents, BenchEffects rounds) wait in the log, and a new runner
// with the given batch size applies them all (CatchUp). It returns the
// effects applied per second and checks that the target holds them.
func BenchCatchUpRate(b *testing.B, h Harness, backlog, batch int) float64 {
	b.Helper()
	b.StopTimer()
	sch, err := schema.Parse(BenchSchema)
	if err != nil {
		b.Fatal(err)
	}
	var elapsed time.Duration
	for range b.N {
		l := openLog(b)
		for n := 0; n < backlog; n += BenchBatch {
			es := BenchEffects(0)[:min(BenchBatch, backlog-n)]
			for i := range es {
				es[i].DocID = fmt.Sprintf("c%d", n+i)
			}
			appendLog(b, l, es)
		}
		name := fmt.Sprintf("bench_%d", benchSeq.Add(1))
		s := h.Open(b, name)
		cfg := config(batch)
		cfg.Linger = 0
		r, err := checkpoint.New(cfg, l, s, staticSchema{sch}, checkpoint.NewMemoryParking())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := r.CatchUp(context.Background()); err != nil {
			b.Fatalf("%s: %v", h.Name(), err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		if got := len(h.Read(b, name, BenchCollection)); got != backlog {
			b.Fatalf("%s: %d documents after catching up, want %d", h.Name(), got, backlog)
		}
		s.Close(context.Background())
	}
	b.StartTimer()
	return float64(b.N*backlog) / elapsed.Seconds()
}
