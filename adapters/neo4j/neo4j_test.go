package neo4j

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/tributary-sync/tributary/adapters/adaptertest"
	"github.com/tributary-sync/tributary/adapters/neo4j/neo4jtest"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

func TestMain(m *testing.M) { neo4jtest.Main(m) }

// harness runs the conformance suite over the shared Neo4j. Neo4j
// Community has one database, and a target is the whole database: opening
// a target the harness has not seen wipes the graph first (the suite's
// scenarios run one after another, each under its own name).
type harness struct {
	url     string
	schemas []*schema.Schema // where Read finds a collection's fields

	mu       sync.Mutex
	followed *schema.Schema // the scenario's schema in force, read first
	current  string         // the target the graph belongs to
	reader   *Sink          // read-only, of the current target's owner
}

func newHarness(t testing.TB) *harness {
	h := &harness{url: neo4jtest.Shared(t)}
	for _, text := range []string{adaptertest.SchemaV2, adaptertest.BenchSchema, adaptertest.NamesSchemaV2, adaptertest.RenameSchemaV3, adaptertest.TypesSchemaV2} {
		h.schemas = append(h.schemas, mustSchema(t, text))
	}
	t.Cleanup(func() {
		if h.reader != nil {
			h.reader.Close(context.Background())
		}
	})
	return h
}

func (h *harness) Name() string { return "neo4j" }

// Follow implements adaptertest.SchemaFollower.
func (h *harness) Follow(s *schema.Schema) {
	h.mu.Lock()
	h.followed = s
	h.mu.Unlock()
}

func (h *harness) Open(t testing.TB, name string) checkpoint.Sink {
	t.Helper()
	s, err := h.OpenAs(t, name, adaptertest.ClaimFor(name))
	if err != nil {
		t.Fatalf("open sink %s: %v", name, err)
	}
	return s
}

func (h *harness) OpenAs(t testing.TB, target string, claim checkpoint.Claim) (checkpoint.Sink, error) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if target != h.current {
		neo4jtest.Wipe(t, h.url)
		h.current = target
		if h.reader != nil {
			h.reader.Close(context.Background())
		}
		owner := adaptertest.ClaimFor(target)
		r, err := New(context.Background(), Config{URL: h.url, Name: owner.Sink, Space: owner.Space, Node: owner.Node, ReadOnly: true})
		if err != nil {
			t.Fatalf("open reader %s: %v", target, err)
		}
		h.reader = r
	}
	s, err := New(context.Background(), Config{URL: h.url, Name: claim.Sink, Space: claim.Space, Node: claim.Node})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (h *harness) Read(t testing.TB, sinkName, collection string) map[string]map[string]any {
	t.Helper()
	h.mu.Lock()
	current := h.current
	h.mu.Unlock()
	if sinkName != current {
		t.Fatalf("read %s of target %s: the graph holds target %s", collection, sinkName, current)
	}
	var c *schema.Collection
	h.mu.Lock()
	if h.followed != nil {
		c, _ = h.followed.Collection(collection)
	}
	h.mu.Unlock()
	for _, s := range h.schemas {
		if c == nil {
			c, _ = s.Collection(collection)
		}
	}
	if c == nil {
		t.Fatalf("read %s: no schema declares it", collection)
	}
	docs, err := h.reader.Documents(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]map[string]any, len(docs))
	for id, d := range docs {
		out[id] = d.Fields
	}
	return out
}

// Poison is a Book whose tags mix strings and integers: no schema value,
// and no Neo4j property either.
func (h *harness) Poison() (eventstream.Effect, bool) {
	return eventstream.Effect{Collection: "Book", Kind: eventstream.Upsert, Doc: map[string]any{"title": "mixed tags", "tags": []any{"a", int64(1)}}}, true
}

func TestConformance(t *testing.T) { adaptertest.Run(t, newHarness(t)) }

func TestSharedTarget(t *testing.T) { adaptertest.RunShared(t, newHarness(t)) }

func BenchmarkSink(b *testing.B) {
	h := newHarness(b)
	warmUp.Do(func() { warm(b, h) })
	rate := adaptertest.BenchRate(b, h)
	raw := rawRate(b, h.url, b.N)
	b.ReportMetric(rate, "effects/s")
	b.ReportMetric(raw, "raw-rows/s")
	b.ReportMetric(rate/raw, "ratio-vs-raw")
}

var warmUp sync.Once

// warm runs the benchmark's rounds through a sink and the raw writer once,
// unmeasured: Neo4j runs in a JVM whose first rounds are several times
// slower than the next ones until the JIT has compiled its write path.
func warm(b *testing.B, h *harness) {
	b.StopTimer()
	defer b.StartTimer()
	s := h.Open(b, "warmup")
	defer s.Close(context.Background())
	sch := mustSchema(b, adaptertest.BenchSchema)
	lsn := uint64(0)
	for round := range 4 {
		es := adaptertest.BenchEffects(round)
		for i := range es {
			lsn++
			es[i].LSN = lsn
		}
		apply(b, s.(*Sink), sch, es...)
	}
	rawRate(b, h.url, 4)
}

// rawRate writes the benchmark's rows with the driver alone: one UNWIND
// MERGE per round in one transaction, no checkpoint, no effect log.
func rawRate(b *testing.B, url string, rounds int) float64 {
	b.StopTimer()
	defer b.StartTimer()
	ctx := context.Background()
	neo4jtest.Wipe(b, url)
	d, err := neo4j.NewDriverWithContext(url, neo4j.NoAuth())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close(ctx)
	cypher(b, d, "CREATE CONSTRAINT IF NOT EXISTS FOR (n:RawItem) REQUIRE n.id IS UNIQUE", nil)
	var elapsed time.Duration
	lsn := int64(0)
	for round := range rounds {
		rows := make([]any, 0, adaptertest.BenchBatch)
		for _, e := range adaptertest.BenchEffects(round) {
			lsn++
			props := map[string]any{"id": e.DocID, "_lsn": lsn, "_change": e.LastChange, "_author": e.Author, "_hlc": e.HLC}
			for k, v := range e.Doc {
				props[k] = v
			}
			t, _ := time.Parse(time.RFC3339Nano, props["updated"].(string))
			props["updated"] = t.In(offsetUTC)
			rows = append(rows, map[string]any{"id": e.DocID, "props": props})
		}
		start := time.Now()
		_, err := neo4j.ExecuteQuery(ctx, d, "UNWIND $rows AS row MERGE (n:RawItem {id: row.id}) SET n = row.props",
			map[string]any{"rows": rows}, neo4j.EagerResultTransformer)
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
	}
	return float64(rounds*adaptertest.BenchBatch) / elapsed.Seconds()
}

func mustSchema(t testing.TB, text string) *schema.Schema {
	t.Helper()
	s, err := schema.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func open(t testing.TB, cfg Config) *Sink {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// cypher runs q in its own transaction and returns its records as maps.
func cypher(t testing.TB, d neo4j.DriverWithContext, q string, params map[string]any) []map[string]any {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), d, q, params, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := make([]map[string]any, len(res.Records))
	for i, r := range res.Records {
		out[i] = r.AsMap()
	}
	return out
}

func up(lsn uint64, coll, id string, doc map[string]any) eventstream.Effect {
	return eventstream.Effect{LSN: lsn, Collection: coll, DocID: id, Kind: eventstream.Upsert, Doc: doc,
		Changes: []string{fmt.Sprint("c", lsn)}, LastChange: fmt.Sprint("c", lsn), Author: "alice", HLC: fmt.Sprint(lsn, ".0")}
}

func del(lsn uint64, coll, id string) eventstream.Effect {
	return eventstream.Effect{LSN: lsn, Collection: coll, DocID: id, Kind: eventstream.Delete,
		Changes: []string{fmt.Sprint("c", lsn)}, LastChange: fmt.Sprint("c", lsn), Author: "bob", HLC: fmt.Sprint(lsn, ".0")}
}

func apply(t testing.TB, s *Sink, sch *schema.Schema, effects ...eventstream.Effect) {
	t.Helper()
	if err := s.Apply(context.Background(), checkpoint.Batch{Effects: effects, Schema: sch, Through: effects[len(effects)-1].LSN}); err != nil {
		t.Fatal(err)
	}
}

// edges lists the relationships of type typ from the :from nodes as
// "fromID->toID" (with "#index" for list and set elements), sorted.
func edges(t testing.TB, d neo4j.DriverWithContext, from, typ string) []string {
	t.Helper()
	var out []string
	for _, r := range cypher(t, d, "MATCH (a:"+quote(from)+")-[r:"+quote(typ)+"]->(b) RETURN a.id AS a, b.id AS b, r.index AS i", nil) {
		s := fmt.Sprintf("%s->%s", r["a"], r["b"])
		if r["i"] != nil {
			s += fmt.Sprintf("#%d", r["i"])
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// node returns the properties of the node of label with id, nil if none.
func node(t testing.TB, d neo4j.DriverWithContext, label, id string) map[string]any {
	t.Helper()
	rs := cypher(t, d, "MATCH (n:"+quote(label)+" {id: $id}) RETURN properties(n) AS p", map[string]any{"id": id})
	if len(rs) == 0 {
		return nil
	}
	return rs[0]["p"].(map[string]any)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestGraph(t *testing.T) {
	url := neo4jtest.Shared(t)
	neo4jtest.Wipe(t, url)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	s := open(t, Config{URL: url, Name: "graph", BatchSize: 2})
	d := s.Driver()
	eq := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}

	apply(t, s, sch,
		up(1, "Author", "a1", map[string]any{"name": "Ursula", "born": "1929-10-21T00:00:00.5Z"}),
		up(2, "Author", "a2", map[string]any{"name": "Frank"}),
		up(3, "Book", "b1", map[string]any{"title": "Earthsea", "author": "a1", "cover": []byte{1, 2}, "tags": []any{"fantasy", "sea"}, "editions": []any{int64(1), int64(2)}}),
		up(4, "Book", "b2", map[string]any{"title": "Ghost", "author": "a9"}),
		up(5, "Sample", "s1", map[string]any{"writers": []any{"a2", "a1", "a2"}, "writerset": []any{"a1", "a3"}, "blobs": []any{[]byte{0xff}, []byte{}}, "moments": []any{"2020-01-01T00:00:00Z"}}),
	)
	eq("AUTHOR", edges(t, d, "Book", "AUTHOR"), []string{"b1->a1", "b2->a9"})
	eq("WRITERS", edges(t, d, "Sample", "WRITERS"), []string{"s1->a1#1", "s1->a2#0", "s1->a2#2"})
	eq("WRITERSET", edges(t, d, "Sample", "WRITERSET"), []string{"s1->a1#0", "s1->a3#1"})

	// Properties: typed values, provenance, references stored as IDs too.
	b1 := node(t, d, "Book", "b1")
	eq("b1 properties", keys(b1), []string{"_author", "_change", "_hlc", "_lsn", "author", "cover", "editions", "id", "tags", "title"})
	if b1["_lsn"] != int64(3) || b1["_change"] != "c3" || b1["_author"] != "alice" || b1["_hlc"] != "3.0" || b1["author"] != "a1" ||
		string(b1["cover"].([]byte)) != "\x01\x02" || !slices.Equal(b1["editions"].([]any), []any{int64(1), int64(2)}) {
		t.Fatalf("b1: %#v", b1)
	}
	r := cypher(t, d, `MATCH (a:Author {id: 'a1'}) RETURN a.born.year AS y, a.born.millisecond AS ms, a.born.offset AS off, valueType(a.born) AS vt`, nil)[0]
	if r["y"] != int64(1929) || r["ms"] != int64(500) || r["off"] != "Z" || r["vt"] != "ZONED DATETIME NOT NULL" {
		t.Fatalf("DateTime as stored: %v", r)
	}
	s1 := node(t, d, "Sample", "s1")
	if !slices.Equal(s1["blobs"].([]any), []any{"/w==", ""}) {
		t.Fatalf("a list of Bytes is stored as base64 strings: %#v", s1["blobs"])
	}

	// Referenced documents that do not exist are stubs: id alone, and no
	// document.
	for _, id := range []string{"a3", "a9"} {
		if p := node(t, d, "Author", id); len(p) != 1 || p["id"] != id {
			t.Fatalf("stub %s: %v", id, p)
		}
	}
	authors, err := s.Documents(ctx, sch.Collections[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(authors) != 2 || authors["a1"].Fields["born"] != "1929-10-21T00:00:00.5Z" || authors["a1"].LSN != 1 || authors["a2"].Author != "alice" {
		t.Fatalf("authors: %+v", authors)
	}

	// Updates move the relationships; a stub nobody references any more
	// goes.
	apply(t, s, sch,
		up(6, "Book", "b1", map[string]any{"title": "Earthsea", "author": "a2"}),
		up(7, "Book", "b2", map[string]any{"title": "Ghost", "author": "a1"}),
		up(8, "Sample", "s1", map[string]any{"writers": []any{"a1"}, "writerset": []any{"a3"}}),
	)
	eq("AUTHOR after the update", edges(t, d, "Book", "AUTHOR"), []string{"b1->a2", "b2->a1"})
	eq("WRITERS after the update", edges(t, d, "Sample", "WRITERS"), []string{"s1->a1#0"})
	eq("WRITERSET after the update", edges(t, d, "Sample", "WRITERSET"), []string{"s1->a3#0"})
	if node(t, d, "Author", "a9") != nil {
		t.Fatal("the stub a9 outlived its last reference")
	}
	eq("b1 properties after the update", keys(node(t, d, "Book", "b1")), []string{"_author", "_change", "_hlc", "_lsn", "author", "id", "title"})

	// Deleting a referenced author leaves a stub the references keep
	// pointing to; re-creating it brings the document back under them.
	apply(t, s, sch, del(9, "Author", "a1"))
	if p := node(t, d, "Author", "a1"); len(p) != 1 {
		t.Fatalf("deleted but referenced a1: %v, want a stub", p)
	}
	eq("AUTHOR to the stub", edges(t, d, "Book", "AUTHOR"), []string{"b1->a2", "b2->a1"})
	if authors, err := s.Documents(ctx, sch.Collections[0]); err != nil || len(authors) != 1 {
		t.Fatalf("authors after deleting a1: %v, %v", authors, err)
	}
	apply(t, s, sch, up(10, "Author", "a1", map[string]any{"name": "Ursula K."}))
	if p := node(t, d, "Author", "a1"); p["name"] != "Ursula K." {
		t.Fatalf("re-created a1: %v", p)
	}
	eq("AUTHOR to the re-created author", edges(t, d, "Book", "AUTHOR"), []string{"b1->a2", "b2->a1"})

	// Deleting a book removes its node and its relationships
	// (DETACH DELETE); an unreferenced author goes entirely.
	apply(t, s, sch, del(11, "Book", "b1"), del(12, "Sample", "s1"))
	if node(t, d, "Book", "b1") != nil || node(t, d, "Author", "a3") != nil {
		t.Fatal("the deleted book, or the stub only it referenced, is still there")
	}
	eq("AUTHOR after deleting b1", edges(t, d, "Book", "AUTHOR"), []string{"b2->a1"})
	apply(t, s, sch, del(13, "Author", "a2"), del(14, "Book", "b2"), del(15, "Author", "a1"))
	if n := cypher(t, d, "MATCH (n) WHERE NOT n:"+quote(CheckpointLabel)+" AND NOT n:"+quote(MappingLabel)+" RETURN count(n) AS n", nil)[0]["n"]; n != int64(0) {
		t.Fatalf("%v nodes left after deleting everything", n)
	}

	// One uniqueness constraint per label, on id, and one on the
	// checkpoint's sink.
	var cons []string
	for _, r := range cypher(t, d, "SHOW CONSTRAINTS YIELD type, labelsOrTypes, properties RETURN type, labelsOrTypes[0] AS l, properties[0] AS p", nil) {
		cons = append(cons, fmt.Sprintf("%s %s.%s", r["type"], r["l"], r["p"]))
	}
	for _, want := range []string{"UNIQUENESS Author.id", "UNIQUENESS Book.id", "UNIQUENESS Sample.id", "UNIQUENESS _TributaryCheckpoint.sink", "UNIQUENESS _TributaryMapping.label"} {
		if !slices.Contains(cons, want) {
			t.Errorf("constraints %q lack %q", cons, want)
		}
	}
}

// The checkpoint is written in the transaction of the batch: a batch that
// fails leaves neither its documents nor its checkpoint.
func TestCheckpointInBatchTransaction(t *testing.T) {
	url := neo4jtest.Shared(t)
	neo4jtest.Wipe(t, url)
	ctx := context.Background()
	sch := mustSchema(t, "type Note @collection { title: String! }")
	s := open(t, Config{URL: url, Name: "ckpt"})
	d := s.Driver()
	apply(t, s, sch, up(1, "Note", "n1", map[string]any{"title": "one"}))
	check := func(ckpt uint64, ids ...string) {
		t.Helper()
		if c, err := s.Checkpoint(ctx); err != nil || c != ckpt {
			t.Fatalf("checkpoint %d, %v, want %d", c, err, ckpt)
		}
		var got []string
		for _, r := range cypher(t, d, "MATCH (n:Note) RETURN n.id AS id ORDER BY id", nil) {
			got = append(got, r["id"].(string))
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("notes %q, want %q", got, ids)
		}
	}
	check(1, "n1")

	// The checkpoint write fails, after the documents are written: a
	// constraint on the checkpoint's lsn, which another sink's checkpoint
	// holds already.
	cypher(t, d, "CREATE (:"+quote(CheckpointLabel)+" {sink: 'other', lsn: 3})", nil)
	cypher(t, d, "CREATE CONSTRAINT ckpt_lsn FOR (c:"+quote(CheckpointLabel)+") REQUIRE c.lsn IS UNIQUE", nil)
	t.Cleanup(func() {
		cypher(t, d, "DROP CONSTRAINT ckpt_lsn IF EXISTS", nil)
		cypher(t, d, "MATCH (c:"+quote(CheckpointLabel)+" {sink: 'other'}) DELETE c", nil)
	})
	err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 3, Effects: []eventstream.Effect{
		up(2, "Note", "n2", map[string]any{"title": "two"}), del(3, "Note", "n1"),
	}})
	if err == nil || !strings.Contains(err.Error(), "ConstraintValidationFailed") {
		t.Fatalf("Apply with a failing checkpoint write: %v", err)
	}
	check(1, "n1")
	cypher(t, d, "DROP CONSTRAINT ckpt_lsn", nil)

	// A document Neo4j refuses (a uniqueness constraint the user added):
	// rejected, nothing of the batch in; the runner finds it and parks it.
	cypher(t, d, "CREATE CONSTRAINT note_title IF NOT EXISTS FOR (n:Note) REQUIRE n.title IS UNIQUE", nil)
	t.Cleanup(func() { cypher(t, d, "DROP CONSTRAINT note_title IF EXISTS", nil) })
	batch := checkpoint.Batch{Schema: sch, Through: 5, Effects: []eventstream.Effect{
		up(4, "Note", "n4", map[string]any{"title": "four"}), up(5, "Note", "n5", map[string]any{"title": "one"}),
	}}
	err = s.Apply(ctx, batch)
	var rej *checkpoint.RejectedError
	if !errors.As(err, &rej) || rej.Index != -1 || !strings.Contains(rej.Reason, "ConstraintValidationFailed") {
		t.Fatalf("Apply of a duplicate title: %v, want a *checkpoint.RejectedError", err)
	}
	check(1, "n1")

	// Values that do not fit the schema are refused before anything is
	// sent, with the effect's index.
	err = s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 7, Effects: []eventstream.Effect{
		up(6, "Note", "n6", map[string]any{"title": "six"}), up(7, "Note", "n7", map[string]any{"title": int64(7)}),
	}})
	if !errors.As(err, &rej) || rej.Index != 1 || !strings.Contains(rej.Reason, "title") {
		t.Fatalf("Apply of an int64 title: %v, want a *checkpoint.RejectedError for effect 1", err)
	}
	err = s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 7, Effects: []eventstream.Effect{up(7, "Nope", "x", map[string]any{})}})
	if !errors.As(err, &rej) || rej.Index != 0 || !strings.Contains(rej.Reason, "Nope") {
		t.Fatalf("Apply to a collection outside the schema: %v", err)
	}
	check(1, "n1")

	// Cut short by its context: an error the runner retries, nothing in.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = s.Apply(cctx, checkpoint.Batch{Schema: sch, Through: 3, Effects: []eventstream.Effect{up(2, "Note", "n2", map[string]any{"title": "two"})}})
	if err == nil || errors.Is(err, checkpoint.ErrRejected) {
		t.Fatalf("Apply with an ended context: %v", err)
	}
	check(1, "n1")

	// Through the runner: the duplicate is parked, the rest applied with
	// the checkpoint.
	src := &slice{effects: []eventstream.Effect{
		up(2, "Note", "n2", map[string]any{"title": "two"}), del(3, "Note", "n1"),
		up(4, "Note", "n4", map[string]any{"title": "four"}), up(5, "Note", "n5", map[string]any{"title": "two"}),
		up(6, "Note", "n6", map[string]any{"title": "six"}),
	}}
	cfg := checkpoint.DefaultConfig()
	cfg.RetryMin = time.Millisecond
	parking := checkpoint.NewMemoryParking()
	r, err := checkpoint.New(cfg, src, s, static{sch}, parking)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	check(6, "n2", "n4", "n6")
	if parked, err := parking.List(ctx, "ckpt"); err != nil || len(parked) != 1 || parked[0].Effect.LSN != 5 {
		t.Fatalf("parked %+v, %v: want LSN 5", parked, err)
	}

	// A stale batch changes nothing; Reset forgets the checkpoint only.
	apply(t, s, sch, up(2, "Note", "n2", map[string]any{"title": "stale"}))
	check(6, "n2", "n4", "n6")
	if p := node(t, d, "Note", "n2"); p["title"] != "two" {
		t.Fatalf("a stale batch rewrote n2: %v", p)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	check(0, "n2", "n4", "n6")
}

// slice is an effect log in memory.
type slice struct{ effects []eventstream.Effect }

func (l *slice) Read(_ context.Context, from uint64, max int) ([]eventstream.Effect, error) {
	var out []eventstream.Effect
	for _, e := range l.effects {
		if e.LSN >= from && len(out) < max {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *slice) Wait(ctx context.Context, _ uint64) error { <-ctx.Done(); return ctx.Err() }

func (l *slice) LastLSN() uint64 { return l.effects[len(l.effects)-1].LSN }

type static struct{ s *schema.Schema }

func (s static) Schema() *schema.Schema { return s.s }

func TestConfig(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{
		{URL: "bolt://127.0.0.1:1"},
		{URL: "http://127.0.0.1:7474", Name: "x"},
		{URL: "bolt://127.0.0.1:7687", Name: "x", BatchSize: -1},
	} {
		if s, err := New(ctx, cfg); err == nil {
			s.Close(ctx)
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := New(cctx, Config{URL: "bolt://127.0.0.1:1", Name: "x"}); err == nil {
		t.Error("New connected to a closed port")
	}
}
