package adaptertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// Harness adapts one target to the suite.
type Harness interface {
	// Name names the target in messages ("postgres").
	Name() string
	// Open returns a sink named name over the target kept for name: the
	// same data and checkpoint each time it is called with that name.
	Open(t testing.TB, name string) checkpoint.Sink
	// Read returns the target's documents of collection written by the
	// sink named sinkName, as id -> fields in canonical values.
	Read(t testing.TB, sinkName, collection string) map[string]map[string]any
	// Poison returns an upsert of a Book that the target refuses (ok false
	// fails the poison scenario: every target refuses something).
	Poison() (eventstream.Effect, bool)
}

// Schema is the suite's schema: Author and Book as a small application
// would declare them, and Sample with every field kind and every list and
// set element kind.
const Schema = `type Author @collection {
  name: String!
  born: DateTime
}

type Book @collection {
  title: String!
  year: Int
  price: Float
  available: Boolean
  cover: Bytes
  meta: JSON
  author: Author
  tags: [String!] @set
  likes: Int @counter
  editions: [Int!]
}

type Sample @collection {
  text: String
  whole: Int
  real: Float
  flag: Boolean
  moment: DateTime
  blob: Bytes
  data: JSON
  writer: Author
  hits: Int @counter
  texts: [String!]
  wholes: [Int!]
  reals: [Float!]
  flags: [Boolean!]
  moments: [DateTime!]
  blobs: [Bytes!]
  datas: [JSON!]
  writers: [Author!]
  textset: [String!] @set
  wholeset: [Int!] @set
  realset: [Float!] @set
  flagset: [Boolean!] @set
  momentset: [DateTime!] @set
  blobset: [Bytes!] @set
  writerset: [Author!] @set
}
`

// SchemaV2 upgrades Schema: Book gains isbn and the Publisher collection
// is added.
var SchemaV2 = strings.Replace(Schema, "  editions: [Int!]\n}", "  editions: [Int!]\n  isbn: String\n}", 1) +
	"\ntype Publisher @collection {\n  name: String!\n  founded: Int\n}\n"

// Run runs the conformance suite against h.
func Run(t *testing.T, h Harness) {
	for _, sc := range []struct {
		name string
		run  func(*fixture)
	}{
		{"apply_all", testApplyAll},
		{"replay", testReplay},
		{"ordering", testOrdering},
		{"deletes", testDeletes},
		{"schema_upgrade", testSchemaUpgrade},
		{"schema_rename", testRename},
		{"crash_resume", testCrashResume},
		{"poison", testPoison},
		{"back_pressure", testBackPressure},
		{"values", testValues},
		{"names", testNames},
		{"retry", testRetry},
		{"types", testTypes},
	} {
		t.Run(sc.name, func(t *testing.T) {
			sc.run(newFixture(t, h, sc.name))
		})
	}
}

func mustParse(t testing.TB, text string) *schema.Schema {
	t.Helper()
	s, err := schema.Parse(text)
	if err != nil {
		t.Fatalf("adaptertest: parse schema: %v", err)
	}
	return s
}

// openLog opens an in-memory effect log, closed with t.
func openLog(t testing.TB) *eventstream.Log {
	t.Helper()
	l, closeLog, err := eventstream.OpenMemory()
	if err != nil {
		t.Fatalf("adaptertest: %v", err)
	}
	t.Cleanup(func() { closeLog() })
	return l
}

// appendLog appends effects in chunks that fit a Badger transaction.
func appendLog(t testing.TB, l *eventstream.Log, effects []eventstream.Effect) []eventstream.Effect {
	t.Helper()
	out := make([]eventstream.Effect, 0, len(effects))
	for chunk := range slices.Chunk(effects, 1000) {
		es, err := l.Append(chunk)
		if err != nil {
			t.Fatalf("adaptertest: append effects: %v", err)
		}
		out = append(out, es...)
	}
	return out
}

// fixture is one scenario: an effect log, the schema in force, the parking
// and the expected state the log defines.
type fixture struct {
	t       *testing.T
	h       Harness
	name    string // sink name
	log     *eventstream.Log
	schema  atomic.Pointer[schema.Schema]
	parking *checkpoint.MemoryParking

	mu       sync.Mutex
	effects  []eventstream.Effect // appended, in LSN order
	rejected map[uint64]bool      // LSNs the target must refuse
	clock    int
}

func newFixture(t *testing.T, h Harness, name string) *fixture {
	f := &fixture{t: t, h: h, name: name, log: openLog(t), parking: checkpoint.NewMemoryParking(), rejected: map[uint64]bool{}}
	f.schema.Store(mustParse(t, Schema))
	return f
}

// Schema implements checkpoint.SchemaSource.
func (f *fixture) Schema() *schema.Schema { return f.schema.Load() }

func (f *fixture) setSchema(text string) {
	s := mustParse(f.t, text)
	f.schema.Store(s)
	if sf, ok := f.h.(SchemaFollower); ok {
		sf.Follow(s)
	}
}

// SchemaFollower is a Harness told the schema in force when a scenario
// upgrades it, for a Read that needs the fields' kinds (optional).
type SchemaFollower interface {
	Follow(s *schema.Schema)
}

func (f *fixture) ctx() context.Context { return context.Background() }

// upsert builds an upsert of coll/id with doc (canonical values; nil
// values are dropped), checked against the schema in force.
func (f *fixture) upsert(coll, id string, doc map[string]any) eventstream.Effect {
	f.t.Helper()
	sch := f.Schema()
	c, ok := sch.Collection(coll)
	if !ok {
		f.t.Fatalf("adaptertest: no collection %s", coll)
	}
	clean := map[string]any{}
	for k, v := range doc {
		if v == nil {
			continue
		}
		fld, ok := c.Field(k)
		if !ok {
			f.t.Fatalf("adaptertest: %s has no field %s", coll, k)
		}
		if err := fld.Check(v); err != nil {
			f.t.Fatalf("adaptertest: %s/%s: %v", coll, id, err)
		}
		clean[k] = v
	}
	if err := c.CheckRequired(clean); err != nil {
		f.t.Fatalf("adaptertest: %s/%s: %v", coll, id, err)
	}
	return f.stamp(eventstream.Effect{Collection: coll, DocID: id, Kind: eventstream.Upsert, Doc: clean})
}

func (f *fixture) del(coll, id string) eventstream.Effect {
	return f.stamp(eventstream.Effect{Collection: coll, DocID: id, Kind: eventstream.Delete})
}

// stamp fills the provenance of e.
func (f *fixture) stamp(e eventstream.Effect) eventstream.Effect {
	f.mu.Lock()
	f.clock++
	n := f.clock
	f.mu.Unlock()
	change := fmt.Sprintf("bafyreichange%06d", n)
	e.Changes = []string{change}
	e.LastChange = change
	e.Author = []string{"alice", "bob", "carol"}[n%3]
	e.HLC = fmt.Sprintf("%016x.%04d", 1_700_000_000_000+n, n%7)
	e.SchemaID = f.Schema().ID
	return e
}

// append appends effects to the log and returns them with their LSNs.
func (f *fixture) append(effects ...eventstream.Effect) []eventstream.Effect {
	f.t.Helper()
	out := appendLog(f.t, f.log, effects)
	f.mu.Lock()
	f.effects = append(f.effects, out...)
	f.mu.Unlock()
	return out
}

// appendRejected appends effects the target must refuse.
func (f *fixture) appendRejected(effects ...eventstream.Effect) []eventstream.Effect {
	f.t.Helper()
	out := f.append(effects...)
	f.mu.Lock()
	for _, e := range out {
		f.rejected[e.LSN] = true
	}
	f.mu.Unlock()
	return out
}

// accept marks effects appended as refused as applied after all (they
// were retried).
func (f *fixture) accept(lsns ...uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range lsns {
		delete(f.rejected, n)
	}
}

// skip marks effects as handled without being applied (an empty batch
// records them).
func (f *fixture) skip(effects []eventstream.Effect) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range effects {
		f.rejected[e.LSN] = true
	}
}

func (f *fixture) last() uint64 { return f.log.LastLSN() }

// want returns the state the log defines through LSN through: coll -> id
// -> fields.
func (f *fixture) want(through uint64) map[string]map[string]map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]map[string]any{}
	for _, e := range f.effects {
		if e.LSN > through {
			break
		}
		if f.rejected[e.LSN] {
			continue
		}
		if out[e.Collection] == nil {
			out[e.Collection] = map[string]map[string]any{}
		}
		if e.Kind == eventstream.Delete {
			delete(out[e.Collection], e.DocID)
		} else {
			out[e.Collection][e.DocID] = e.Doc
		}
	}
	return out
}

// open opens the scenario's sink; it is closed when the scenario ends.
func (f *fixture) open() checkpoint.Sink {
	f.t.Helper()
	s := f.h.Open(f.t, f.name)
	if s == nil {
		f.t.Fatalf("%s: Open returned no sink", f.h.Name())
	}
	if s.Name() != f.name {
		f.t.Fatalf("%s: Open(%q) returned a sink named %q", f.h.Name(), f.name, s.Name())
	}
	c := &closer{Sink: s}
	f.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// closer closes a sink once, however often the suite asks.
type closer struct {
	checkpoint.Sink
	once sync.Once
	err  error
}

// Prepare passes checkpoint.Preparer through the wrapper.
func (c *closer) Prepare(ctx context.Context, sch *schema.Schema) error {
	return prepare(ctx, c.Sink, sch)
}

// prepare calls s's Prepare if it has one: the suite's wrappers keep the
// optional interface of the sinks they wrap.
func prepare(ctx context.Context, s checkpoint.Sink, sch *schema.Schema) error {
	if p, ok := s.(checkpoint.Preparer); ok {
		return p.Prepare(ctx, sch)
	}
	return nil
}

func (c *closer) Close(ctx context.Context) error {
	c.once.Do(func() { c.err = c.Sink.Close(ctx) })
	return c.err
}

func (f *fixture) close(s checkpoint.Sink) {
	f.t.Helper()
	if err := s.Close(f.ctx()); err != nil {
		f.t.Fatalf("close sink: %v", err)
	}
}

// config is a runner configuration with quick retries.
func config(batch int) checkpoint.Config {
	cfg := checkpoint.DefaultConfig()
	cfg.BatchSize = batch
	cfg.Linger = time.Millisecond
	cfg.RetryMin = time.Millisecond
	cfg.RetryMax = 50 * time.Millisecond
	return cfg
}

func (f *fixture) runner(s checkpoint.Sink, cfg checkpoint.Config) *checkpoint.Runner {
	f.t.Helper()
	r, err := checkpoint.New(cfg, f.log, s, f, f.parking)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { r.Close() })
	return r
}

func (f *fixture) catchUp(r *checkpoint.Runner) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx(), 2*time.Minute)
	defer cancel()
	if err := r.CatchUp(ctx); err != nil {
		f.t.Fatalf("%s: catch up: %v", f.h.Name(), err)
	}
}

func (f *fixture) apply(s checkpoint.Sink, b checkpoint.Batch) {
	f.t.Helper()
	if b.Schema == nil {
		b.Schema = f.Schema()
	}
	if err := s.Apply(f.ctx(), b); err != nil {
		f.t.Fatalf("%s: apply %d effects through %d: %v", f.h.Name(), len(b.Effects), b.Through, err)
	}
}

func (f *fixture) checkpointOf(s checkpoint.Sink) uint64 {
	f.t.Helper()
	c, err := s.Checkpoint(f.ctx())
	if err != nil {
		f.t.Fatalf("%s: read checkpoint: %v", f.h.Name(), err)
	}
	return c
}

// check verifies that the sink's checkpoint is through and that the target
// holds exactly the state the log defines at through.
func (f *fixture) check(s checkpoint.Sink, through uint64) {
	f.t.Helper()
	if c := f.checkpointOf(s); c != through {
		f.t.Fatalf("%s: checkpoint %d, want %d", f.h.Name(), c, through)
	}
	f.checkState(through)
}

// checkState compares the target with the state at through.
func (f *fixture) checkState(through uint64) {
	f.t.Helper()
	if diffs := f.diff(through); len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
		}
		f.t.Fatalf("%s: target differs from the effect log at LSN %d:\n  %s", f.h.Name(), through, strings.Join(diffs, "\n  "))
	}
}

// diff lists the differences between the target and the state at through.
func (f *fixture) diff(through uint64) []string {
	f.t.Helper()
	want := f.want(through)
	sch := f.Schema()
	var diffs []string
	for _, c := range sch.Collections {
		got := f.h.Read(f.t, f.name, c.Name)
		w := want[c.Name]
		for _, id := range sortedKeys(w) {
			g, ok := got[id]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s/%s: missing", c.Name, id))
				continue
			}
			diffs = append(diffs, diffDoc(c, id, underNames(c, w[id]), g)...)
		}
		for _, id := range sortedKeys(got) {
			if _, ok := w[id]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s/%s: present, want absent (fields %v)", c.Name, id, got[id]))
			}
		}
	}
	return diffs
}

func sortedKeys[V any](m map[string]V) []string {
	ks := slices.Collect(maps.Keys(m))
	sort.Strings(ks)
	return ks
}

func diffDoc(c *schema.Collection, id string, want, got map[string]any) []string {
	var diffs []string
	for _, name := range sortedKeys(want) {
		w := want[name]
		g, ok := got[name]
		fld, _ := c.Field(name)
		switch {
		case !ok || g == nil:
			diffs = append(diffs, fmt.Sprintf("%s/%s.%s: missing, want %s", c.Name, id, name, show(w)))
		case fld == nil:
			diffs = append(diffs, fmt.Sprintf("%s/%s.%s: not in the schema", c.Name, id, name))
		case !fieldEqual(fld, w, g):
			diffs = append(diffs, fmt.Sprintf("%s/%s.%s: got %s, want %s", c.Name, id, name, show(g), show(w)))
		}
	}
	for _, name := range sortedKeys(got) {
		if _, ok := want[name]; !ok && got[name] != nil {
			diffs = append(diffs, fmt.Sprintf("%s/%s.%s: got %s, want absent", c.Name, id, name, show(got[name])))
		}
	}
	return diffs
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q (string)", x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprintf("%#v (%T)", v, v)
}

// fieldEqual compares a canonical value with one read from a target.
func fieldEqual(f *schema.Field, want, got any) bool {
	if f.Kind == schema.List || f.Kind == schema.Set {
		w, ok1 := want.([]any)
		g, ok2 := got.([]any)
		if !ok1 || !ok2 || len(w) != len(g) {
			return false
		}
		for i := range w {
			if !scalarEqual(f.Elem, w[i], g[i]) {
				return false
			}
		}
		return true
	}
	return scalarEqual(f.ScalarKind(), want, got)
}

func scalarEqual(k schema.Kind, want, got any) bool {
	switch k {
	case schema.String, schema.Ref:
		g, ok := got.(string)
		return ok && g == want.(string)
	case schema.Int, schema.Counter:
		g, ok := got.(int64)
		return ok && g == want.(int64)
	case schema.Float:
		g, ok := got.(float64)
		return ok && g == want.(float64)
	case schema.Boolean:
		g, ok := got.(bool)
		return ok && g == want.(bool)
	case schema.Bytes:
		g, ok := got.([]byte)
		return ok && bytes.Equal(g, want.([]byte))
	case schema.DateTime:
		g, ok := got.(string)
		if !ok {
			return false
		}
		tw, err1 := time.Parse(time.RFC3339Nano, want.(string))
		tg, err2 := time.Parse(time.RFC3339Nano, g)
		return err1 == nil && err2 == nil && tw.Equal(tg)
	case schema.JSON:
		g, ok := got.(string)
		if !ok {
			return false
		}
		vw, err1 := decodeJSON(want.(string))
		vg, err2 := decodeJSON(g)
		return err1 == nil && err2 == nil && reflect.DeepEqual(vw, vg)
	}
	return false
}

// decodeJSON decodes JSON text with numbers as float64 (so that 1.50 and
// 1.5 agree).
func decodeJSON(s string) (any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return numbersToFloat(v), nil
}

func numbersToFloat(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return string(x)
		}
		return f
	case []any:
		for i := range x {
			x[i] = numbersToFloat(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbersToFloat(x[k])
		}
	}
	return v
}

// Canonical value helpers for building documents.

// js is the canonical JSON text of v.
func js(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimRight(buf.String(), "\n")
}

// dt is the canonical DateTime text of an RFC 3339 time.
func dt(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// list builds a list value.
func list[T any](vs ...T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// set builds a set value: sorted canonically, without duplicates.
func set[T any](vs ...T) []any {
	out := list(vs...)
	slices.SortFunc(out, core.CompareValues)
	return slices.CompactFunc(out, func(a, b any) bool { return core.CompareValues(a, b) == 0 })
}

// author and book build documents of version v of the i-th author/book.
func author(i, v int) map[string]any {
	doc := map[string]any{"name": fmt.Sprintf("Author %d v%d", i, v)}
	if (i+v)%3 != 0 {
		doc["born"] = dt(fmt.Sprintf("19%02d-%02d-%02dT%02d:%02d:%02d.%06dZ", 20+i%80, 1+i%12, 1+i%28, v%24, i%60, v%60, (i*7919+v)%1000000))
	}
	return doc
}

func book(i, v int) map[string]any {
	doc := map[string]any{
		"title": fmt.Sprintf("Book %d, edition %d", i, v),
		"likes": int64(i*10 + v),
	}
	if (i+v)%4 != 0 {
		doc["year"] = int64(1900 + (i*7+v)%125)
	}
	if (i+v)%5 != 1 {
		doc["price"] = float64(i%50) + float64(v)/4
	}
	if v%2 == 0 {
		doc["available"] = i%2 == 0
	}
	if i%3 == 0 {
		doc["cover"] = []byte{byte(i), 0, byte(v), 0xff}
	}
	if (i+v)%3 == 1 {
		doc["meta"] = js(map[string]any{"v": v, "i": i, "tags": []any{"x", float64(v) / 2}, "nested": map[string]any{"ok": true, "none": nil}})
	}
	if i%4 != 3 {
		doc["author"] = fmt.Sprintf("author-%d", i%10)
	}
	tags := []string{"t" + strconv.Itoa(v%3)}
	if i%2 == 0 {
		tags = append(tags, "even", "b"+strconv.Itoa(i%7))
	}
	doc["tags"] = set(tags...)
	if v%3 != 2 {
		doc["editions"] = list(int64(v), int64(i), int64(-v*1000))
	}
	return doc
}

func bookID(i int) string   { return fmt.Sprintf("book-%d", i) }
func authorID(i int) string { return fmt.Sprintf("author-%d", i) }
