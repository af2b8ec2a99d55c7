package mongodb_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tributary-sync/tributary/adapters/adaptertest"
	"github.com/tributary-sync/tributary/adapters/mongodb"
	"github.com/tributary-sync/tributary/adapters/mongodb/mongotest"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// harness runs sinks against one embedded FerretDB, one database per
// target name, and reads their documents back in canonical values.
type harness struct {
	uri    string
	client *mongo.Client

	mu      sync.Mutex
	dbs     map[string]string         // target name -> database
	schemas map[string]*schema.Schema // target name -> newest schema applied
	readers map[string]*mongodb.Sink  // target name -> read-only sink
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	uri := mongotest.Start(t)
	client, err := mongo.Connect(context.Background(), options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect to FerretDB: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	h := &harness{uri: uri, client: client, dbs: map[string]string{}, schemas: map[string]*schema.Schema{}, readers: map[string]*mongodb.Sink{}}
	t.Cleanup(func() {
		for _, r := range h.readers {
			_ = r.Close(context.Background())
		}
	})
	return h
}

func (h *harness) Name() string { return "mongodb" }

func (h *harness) db(sinkName string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dbLocked(sinkName)
}

func (h *harness) dbLocked(sinkName string) string {
	db, ok := h.dbs[sinkName]
	if !ok {
		db = fmt.Sprintf("sink%d", len(h.dbs))
		h.dbs[sinkName] = db
	}
	return db
}

func (h *harness) schema(sinkName string) *schema.Schema {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.schemas[sinkName]
}

// recording is the sink, noting the schema of each batch so that Read can
// tell DateTime and JSON fields apart.
type recording struct {
	*mongodb.Sink
	h      *harness
	target string
}

func (r recording) Apply(ctx context.Context, b checkpoint.Batch) error {
	if b.Schema != nil {
		r.h.mu.Lock()
		r.h.schemas[r.target] = b.Schema
		r.h.mu.Unlock()
	}
	return r.Sink.Apply(ctx, b)
}

func (h *harness) open(t testing.TB, name string, chunk int) recording {
	t.Helper()
	s, err := h.openAs(name, adaptertest.ClaimFor(name), chunk)
	if err != nil {
		t.Fatalf("open sink %s: %v", name, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func (h *harness) openAs(target string, claim checkpoint.Claim, chunk int) (recording, error) {
	s, err := mongodb.New(context.Background(), mongodb.Config{URL: h.uri + h.db(target), Name: claim.Sink, Space: claim.Space, Node: claim.Node, ChunkSize: chunk})
	if err != nil {
		return recording{}, err
	}
	return recording{Sink: s, h: h, target: target}, nil
}

func (h *harness) Open(t testing.TB, name string) checkpoint.Sink { return h.open(t, name, 0) }

func (h *harness) OpenAs(t testing.TB, target string, claim checkpoint.Claim) (checkpoint.Sink, error) {
	s, err := h.openAs(target, claim, 0)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// reader is a read-only sink of the target's owner: it takes no fence.
func (h *harness) reader(t testing.TB, target string) *mongodb.Sink {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.readers[target]; r != nil {
		return r
	}
	claim := adaptertest.ClaimFor(target)
	r, err := mongodb.New(context.Background(), mongodb.Config{URL: h.uri + h.dbLocked(target), Name: claim.Sink, Space: claim.Space, Node: claim.Node, ReadOnly: true})
	if err != nil {
		t.Fatalf("open reader %s: %v", target, err)
	}
	h.readers[target] = r
	return r
}

func (h *harness) Read(t testing.TB, sinkName, collection string) map[string]map[string]any {
	t.Helper()
	ctx := context.Background()
	var coll *schema.Collection
	if s := h.schema(sinkName); s != nil {
		coll, _ = s.Collection(collection)
	}
	name, err := h.reader(t, sinkName).CollectionName(ctx, collection)
	if err != nil {
		t.Fatal(err)
	}
	if name == "" {
		return map[string]map[string]any{} // never written
	}
	cur, err := h.client.Database(h.db(sinkName)).Collection(name).Find(ctx, mongodb.NotDeleted)
	if err != nil {
		t.Fatalf("read %s/%s: %v", sinkName, collection, err)
	}
	defer cur.Close(ctx)
	out := map[string]map[string]any{}
	for cur.Next(ctx) {
		id, fields, deleted, err := mongodb.DecodeDoc(coll, cur.Current)
		if err != nil {
			t.Fatalf("read %s/%s: %v", sinkName, collection, err)
		}
		if !deleted {
			out[id] = fields
		}
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("read %s/%s: %v", sinkName, collection, err)
	}
	return out
}

// Poison is a Book with a field name holding NUL, which BSON cannot encode
// (a document over 16 MiB would do too, but the effect log holds values of
// at most 1 MiB).
func (h *harness) Poison() (eventstream.Effect, bool) {
	return eventstream.Effect{Collection: "Book", Kind: eventstream.Upsert, Doc: map[string]any{"title": "poison", "no\x00key": "x"}}, true
}

func TestConformance(t *testing.T) { adaptertest.Run(t, newHarness(t)) }

func TestSharedTarget(t *testing.T) { adaptertest.RunShared(t, newHarness(t)) }

// The guarded writes MongoDB gets are exercised by the tests that run in
// both modes (bothModes): the whole suite through them over FerretDB,
// whose guarded writes scan their collection, would take minutes.

// BenchmarkSink runs the suite's benchmark. The figure measures the
// embedded FerretDB over SQLite, not MongoDB: FerretDB pushes only a bare
// {_id} filter down to SQLite, so every guarded write scans its collection.
func BenchmarkSink(b *testing.B) { adaptertest.Bench(b, newHarness(b)) }

// raw returns the stored document, tombstones included (nil if none).
func (h *harness) raw(t testing.TB, sinkName, collection, id string) bson.Raw {
	t.Helper()
	raw, err := h.client.Database(h.db(sinkName)).Collection(collection).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		t.Fatalf("find %s/%s/%s: %v", sinkName, collection, id, err)
	}
	return raw
}

const bookSDL = "type Book @collection { title: String! year: Int }"

func mustSchema(t testing.TB, sdl string) *schema.Schema {
	t.Helper()
	s, err := schema.Parse(sdl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func book(lsn uint64, id, title string) eventstream.Effect {
	return eventstream.Effect{
		LSN: lsn, Collection: "Book", DocID: id, Kind: eventstream.Upsert,
		Doc:     map[string]any{"title": title, "year": int64(lsn)},
		Changes: []string{fmt.Sprintf("c%d", lsn)}, Author: "alice", HLC: fmt.Sprintf("%d.0", lsn), LastChange: fmt.Sprintf("c%d", lsn),
	}
}

func del(lsn uint64, id string) eventstream.Effect {
	return eventstream.Effect{LSN: lsn, Collection: "Book", DocID: id, Kind: eventstream.Delete, Author: "bob", HLC: fmt.Sprintf("%d.0", lsn), LastChange: fmt.Sprintf("c%d", lsn)}
}

func apply(t testing.TB, s checkpoint.Sink, sch *schema.Schema, through uint64, effects ...eventstream.Effect) {
	t.Helper()
	if err := s.Apply(context.Background(), checkpoint.Batch{Effects: effects, Schema: sch, Through: through}); err != nil {
		t.Fatalf("apply through %d: %v", through, err)
	}
}

func ckpt(t testing.TB, s checkpoint.Sink) uint64 {
	t.Helper()
	c, err := s.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func titles(docs map[string]map[string]any) map[string]string {
	out := map[string]string{}
	for id, d := range docs {
		out[id], _ = d["title"].(string)
	}
	return out
}

// A replayed older batch never moves a document backwards nor brings a
// deleted one back, also when stale writes sit in the middle of a bulk
// chunk (FerretDB stops a bulk write at its first error).
func TestReplayNeverMovesBackwards(t *testing.T) { bothModes(t, testReplayNeverMovesBackwards) }

// bothModes runs test with guarded writes (MongoDB's path) and with batch
// rewrites (FerretDB's).
func bothModes(t *testing.T, test func(t *testing.T, rewrite bool)) {
	for _, rewrite := range []bool{false, true} {
		t.Run(map[bool]string{false: "guarded", true: "rewrite"}[rewrite], func(t *testing.T) { test(t, rewrite) })
	}
}

func (h *harness) openMode(t testing.TB, name string, chunk int, rewrite bool) recording {
	t.Helper()
	s := h.open(t, name, chunk)
	if !mongodb.Rewrite(s.Sink) {
		t.Fatal("FerretDB not detected")
	}
	mongodb.SetRewrite(s.Sink, rewrite)
	return s
}

func testReplayNeverMovesBackwards(t *testing.T, rewrite bool) {
	h := newHarness(t)
	s := h.openMode(t, "replay", 3, rewrite)
	sch := mustSchema(t, bookSDL)
	b1 := []eventstream.Effect{book(1, "a", "a1"), book(2, "b", "b1"), book(3, "c", "c1"), book(4, "d", "d1")}
	b2 := []eventstream.Effect{book(5, "a", "a2"), del(6, "b"), book(7, "e", "e1"), book(8, "c", "c2")}
	want := map[string]string{"a": "a2", "c": "c2", "d": "d1", "e": "e1"}

	apply(t, s, sch, 4, b1...)
	apply(t, s, sch, 8, b2...)
	if got := titles(h.Read(t, "replay", "Book")); !reflect.DeepEqual(got, want) {
		t.Fatalf("after two batches: %v, want %v", got, want)
	}
	apply(t, s, sch, 4, b1...) // the older batch again
	apply(t, s, sch, 8, b2...) // and the newer one
	apply(t, s, sch, 4, b1...)
	if got := titles(h.Read(t, "replay", "Book")); !reflect.DeepEqual(got, want) {
		t.Fatalf("after replays: %v, want %v", got, want)
	}
	if c := ckpt(t, s); c != 8 {
		t.Fatalf("checkpoint %d after replaying an older batch, want 8", c)
	}
	tomb := h.raw(t, "replay", "Book", "b")
	if tomb == nil || !tomb.Lookup("_deleted").Boolean() || tomb.Lookup("_lsn").Int64() != 6 {
		t.Fatalf("tombstone of b: %v", tomb)
	}
	if _, ok := tomb.Lookup("title").StringValueOK(); ok {
		t.Fatalf("tombstone keeps fields: %v", tomb)
	}

	// Stale writes first in a chunk, fresh ones after them in the same chunk.
	apply(t, s, sch, 11, book(2, "b", "b-stale"), book(3, "a", "a-stale"), book(9, "f", "f1"), book(1, "c", "c-stale"), book(10, "g", "g1"), book(11, "d", "d2"))
	want["f"], want["g"], want["d"] = "f1", "g1", "d2"
	if got := titles(h.Read(t, "replay", "Book")); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a mixed stale/fresh batch: %v, want %v", got, want)
	}
	for id, lsn := range map[string]int64{"a": 5, "b": 6, "c": 8, "d": 11, "e": 7, "f": 9, "g": 10} {
		if got := h.raw(t, "replay", "Book", id).Lookup("_lsn").Int64(); got != lsn {
			t.Errorf("%s: _lsn %d, want %d", id, got, lsn)
		}
	}

	// A newer upsert brings a deleted document back; an older delete does
	// not remove a newer document.
	apply(t, s, sch, 13, book(12, "b", "b2"), del(4, "a"))
	want["b"] = "b2"
	if got := titles(h.Read(t, "replay", "Book")); !reflect.DeepEqual(got, want) {
		t.Fatalf("after re-creating b: %v, want %v", got, want)
	}

	// A new instance resumes from the same checkpoint.
	if c := ckpt(t, h.openMode(t, "replay", 0, rewrite)); c != 13 {
		t.Fatalf("reopened checkpoint %d, want 13", c)
	}
}

const typesSDL = `
type Author @collection { name: String }
type Thing @collection {
	s: String
	i: Int
	f: Float
	whole: Float
	b: Boolean
	dt: DateTime
	dtus: DateTime
	by: Bytes
	obj: JSON
	arr: JSON
	str: JSON
	num: JSON
	odd: JSON
	author: Author
	ints: [Int!]
	tags: [String!] @set
	hits: Int @counter
	dts: [DateTime!]
	authors: [Author!]
	blobs: [Bytes!]
	docs: [JSON!]
	gone: String
}`

func TestTypeMapping(t *testing.T) {
	h := newHarness(t)
	s := h.open(t, "types", 0)
	sch := mustSchema(t, typesSDL)
	doc := map[string]any{
		"s": "text with \x00 NUL and ünïcode", "i": int64(-1) << 40, "f": 2.5, "whole": 3.0, "b": true,
		"dt":   "2024-05-01T12:30:45.123Z",
		"dtus": "2024-05-01T12:30:45.123456Z", // below the millisecond: kept in _ns
		"by":   []byte{0, 1, 2, 255},
		"obj":  `{"a":1,"b":[true,"x",null],"c":{"d":1.5,"e":"<&>"},"big":12345678901234567890}`,
		"arr":  `[1,"two",{"three":3}]`, "str": `"hello"`, "num": `42`,
		"odd":    `{"":0,"$where":1,"a.b":[[1]],"n\u0000ul":2}`, // kept as text: not every server stores these keys
		"author": "au1", "ints": []any{int64(3), int64(1), int64(2)}, "tags": []any{"a", "b", "c"}, "hits": int64(7),
		"dts":     []any{"1969-07-20T20:17:40.000001Z", "2000-01-01T00:00:00.5Z", "2000-01-01T00:00:00.999999999Z"},
		"authors": []any{"au1", "au2"}, "blobs": []any{[]byte("x"), []byte{}},
		"docs": []any{`{"k":"v"}`, `{"n":[1,2]}`, `[1]`, `[[]]`}, // arrays in the list's array are kept as text
		"gone": nil,
	}
	e := eventstream.Effect{LSN: 1, Collection: "Thing", DocID: "t1", Kind: eventstream.Upsert, Doc: doc,
		Author: "alice", HLC: "1.0", LastChange: "bafy-change"}
	apply(t, s, sch, 1, e)

	raw := h.raw(t, "types", "Thing", "t1")
	wantTypes := map[string]bsontype.Type{
		"_id": bsontype.String, "s": bsontype.String, "i": bsontype.Int64, "f": bsontype.Double, "whole": bsontype.Double,
		"b": bsontype.Boolean, "dt": bsontype.DateTime, "dtus": bsontype.DateTime, "_ns": bsontype.EmbeddedDocument, "by": bsontype.Binary, "obj": bsontype.EmbeddedDocument,
		"arr": bsontype.Array, "str": bsontype.String, "num": bsontype.Int64, "odd": bsontype.Binary, "author": bsontype.String,
		"ints": bsontype.Array, "tags": bsontype.Array, "hits": bsontype.Int64, "dts": bsontype.Array,
		"authors": bsontype.Array, "blobs": bsontype.Array, "docs": bsontype.Array,
		"_lsn": bsontype.Int64, "_change": bsontype.String, "_author": bsontype.String, "_hlc": bsontype.String,
	}
	elems, err := raw.Elements()
	if err != nil {
		t.Fatal(err)
	}
	if len(elems) != len(wantTypes) {
		t.Errorf("stored %d fields, want %d: %v", len(elems), len(wantTypes), raw)
	}
	for _, el := range elems {
		if want, ok := wantTypes[el.Key()]; !ok || el.Value().Type != want {
			t.Errorf("field %s is BSON %s, want %s", el.Key(), el.Value().Type, want)
		}
	}
	if got := raw.Lookup("dt").Time(); !got.Equal(time.Date(2024, 5, 1, 12, 30, 45, 123e6, time.UTC)) {
		t.Errorf("dt = %v", got)
	}
	if got := raw.Lookup("obj", "c", "d").Double(); got != 1.5 {
		t.Errorf("obj.c.d = %v", got)
	}
	if got := raw.Lookup("obj", "a").Int64(); got != 1 {
		t.Errorf("obj.a = %v", got)
	}
	if got := raw.Lookup("obj", "b").Array().Index(2).Value().Type; got != bsontype.Null {
		t.Errorf("obj.b[2] is %s, want null", got)
	}
	if got := raw.Lookup("dts").Array().Index(0).Value().Time(); !got.Equal(time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)) {
		t.Errorf("dts[0] = %v", got)
	}
	if got := raw.Lookup("dtus").Time(); !got.Equal(time.Date(2024, 5, 1, 12, 30, 45, 123e6, time.UTC)) {
		t.Errorf("dtus = %v", got)
	}
	if got := raw.Lookup("_ns", "dtus").Int32(); got != 456000 {
		t.Errorf("_ns.dtus = %v", got)
	}
	if got := raw.Lookup("_ns", "dts").String(); got != `[{"$numberInt":"1000"},{"$numberInt":"0"},{"$numberInt":"999999"}]` {
		t.Errorf("_ns.dts = %v", got)
	}
	if _, err := raw.LookupErr("_ns", "dt"); err == nil {
		t.Error("_ns holds a whole-millisecond DateTime")
	}
	if st, data := raw.Lookup("by").Binary(); st != 0 || string(data) != "\x00\x01\x02\xff" {
		t.Errorf("by = %d %x", st, data)
	}
	if st, data := raw.Lookup("odd").Binary(); st != mongodb.JSONTextSubtype || string(data) != doc["odd"] {
		t.Errorf("odd = %d %q", st, data)
	}
	for i, want := range []bsontype.Type{bsontype.EmbeddedDocument, bsontype.EmbeddedDocument, bsontype.Binary, bsontype.Binary} {
		if got := raw.Lookup("docs").Array().Index(uint(i)).Value().Type; got != want {
			t.Errorf("docs[%d] is %s, want %s", i, got, want)
		}
	}
	if got := raw.Lookup("_lsn").Int64(); got != 1 {
		t.Errorf("_lsn = %d", got)
	}
	if got := raw.Lookup("_change").StringValue(); got != "bafy-change" {
		t.Errorf("_change = %q", got)
	}

	// Back to canonical values: everything but the number JSON cannot keep
	// (an integer beyond int64 is a double, as encoding/json writes it).
	want := map[string]any{}
	for k, v := range doc {
		if v != nil {
			want[k] = v
		}
	}
	want["obj"] = `{"a":1,"b":[true,"x",null],"big":12345678901234567000,"c":{"d":1.5,"e":"<&>"}}`
	got := h.Read(t, "types", "Thing")["t1"]
	if !reflect.DeepEqual(got, want) {
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("%s: read back %#v, want %#v", k, got[k], want[k])
			}
		}
		t.Fatalf("read back %v, want %v", got, want)
	}

	// Without a schema, values map by Go type: DateTime and JSON stay text.
	apply(t, s, nil, 2, eventstream.Effect{LSN: 2, Collection: "Loose", DocID: "l1", Kind: eventstream.Upsert,
		Doc: map[string]any{"when": "2024-05-01T12:30:45Z", "n": int64(1), "l": []any{1.5, "x"}}})
	raw = h.raw(t, "types", "Loose", "l1")
	if ty := raw.Lookup("when").Type; ty != bsontype.String {
		t.Errorf("schemaless string stored as %s", ty)
	}
}

func TestRejections(t *testing.T) { bothModes(t, testRejections) }

func testRejections(t *testing.T, rewrite bool) {
	h := newHarness(t)
	s := h.openMode(t, "reject", 2, rewrite)
	sch := mustSchema(t, "type Note @collection { body: String score: Float code: String }")
	note := func(lsn uint64, id string, fields map[string]any) eventstream.Effect {
		return eventstream.Effect{LSN: lsn, Collection: "Note", DocID: id, Kind: eventstream.Upsert, Doc: fields}
	}
	apply(t, s, sch, 1, note(1, "ok", map[string]any{"body": "fine", "code": "taken"}))
	// A unique index of the user's on the target.
	_, err := h.client.Database(h.db("reject")).Collection("Note").Indexes().CreateOne(context.Background(),
		mongo.IndexModel{Keys: bson.D{{Key: "code", Value: 1}}, Options: options.Index().SetUnique(true)})
	if err != nil {
		t.Fatalf("create unique index: %v", err)
	}

	cases := []struct {
		name  string
		bad   eventstream.Effect
		where string // the reason must mention it
	}{
		// Refused before anything is written.
		{"over 16 MiB", note(5, "big", map[string]any{"body": strings.Repeat("x", 16<<20)}), "limit"},
		{"invalid collection", eventstream.Effect{LSN: 5, Collection: "bad$name", DocID: "x", Kind: eventstream.Upsert}, "collection name"},
		{"value of the wrong type", note(5, "type", map[string]any{"body": int64(1)}), "want String"},
		// Refused by the server (FerretDB), found by redoing the chunk.
		{"infinity", note(5, "inf", map[string]any{"score": math.Inf(1)}), "infinity"},
		{"unique index", note(5, "dup", map[string]any{"code": "taken"}), "duplicate key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Good effects around the bad one, spread over chunks of 2.
			batch := []eventstream.Effect{note(2, "g1", map[string]any{"body": "1"}), note(3, "g2", map[string]any{"body": "2"}), note(4, "g3", map[string]any{"body": "3"}), c.bad, note(6, "g4", map[string]any{"body": "4"})}
			before := ckpt(t, s)
			err := s.Apply(context.Background(), checkpoint.Batch{Effects: batch, Schema: sch, Through: 6})
			var rej *checkpoint.RejectedError
			if !errors.As(err, &rej) {
				t.Fatalf("Apply = %v, want a *checkpoint.RejectedError", err)
			}
			if rej.Index != 3 {
				t.Errorf("rejected index %d, want 3", rej.Index)
			}
			if !strings.Contains(rej.Reason, c.where) {
				t.Errorf("reason %q does not mention %q", rej.Reason, c.where)
			}
			t.Logf("reason: %s", rej.Reason)
			if c := ckpt(t, s); c != before {
				t.Errorf("checkpoint %d after a rejected batch, want %d", c, before)
			}
			if _, ok := h.Read(t, "reject", "Note")[c.bad.DocID]; ok {
				t.Errorf("rejected document %s was written", c.bad.DocID)
			}
			// As the runner does: the rest goes through without the bad effect.
			apply(t, s, sch, 5, batch[:3]...)
			apply(t, s, sch, 6, batch[4:]...)
		})
	}
	docs := h.Read(t, "reject", "Note")
	if len(docs) != 5 {
		t.Fatalf("documents %v, want ok and g1..g4", docs)
	}

	// A refused update leaves the document as it was (the rewrite path
	// deletes it before inserting the new state, and puts it back).
	err = s.Apply(context.Background(), checkpoint.Batch{Schema: sch, Through: 8, Effects: []eventstream.Effect{
		note(7, "g1", map[string]any{"body": "1b"}), note(8, "ok", map[string]any{"score": math.Inf(-1)})}})
	var rej *checkpoint.RejectedError
	if !errors.As(err, &rej) || rej.Index != 1 {
		t.Fatalf("Apply = %v, want effect 1 rejected", err)
	}
	if got := h.Read(t, "reject", "Note")["ok"]; !reflect.DeepEqual(got, map[string]any{"body": "fine", "code": "taken"}) {
		t.Fatalf("document after a refused update: %v", got)
	}
	if n := h.raw(t, "reject", "Note", "ok").Lookup("_lsn").Int64(); n != 1 {
		t.Fatalf("_lsn %d after a refused update, want 1", n)
	}
}

func TestCheckpointAndReset(t *testing.T) {
	h := newHarness(t)
	s := h.open(t, "ck", 0)
	if c := ckpt(t, s); c != 0 {
		t.Fatalf("fresh checkpoint %d", c)
	}
	if s.Transactions() {
		t.Fatal("FerretDB reported transactions")
	}
	sch := mustSchema(t, bookSDL)
	apply(t, s, sch, 5)
	if c := ckpt(t, s); c != 5 {
		t.Fatalf("checkpoint %d after an empty batch through 5", c)
	}
	apply(t, s, sch, 9, book(7, "a", "a"))
	if c := ckpt(t, s); c != 9 {
		t.Fatalf("checkpoint %d, want 9", c)
	}
	other := h.open(t, "ck-other", 0) // another sink's checkpoint is its own
	if c := ckpt(t, other); c != 0 {
		t.Fatalf("other sink's checkpoint %d", c)
	}
	if err := s.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := ckpt(t, s); c != 0 {
		t.Fatalf("checkpoint %d after Reset", c)
	}
	// Replaying from the start after a reset rewrites the same documents.
	apply(t, s, sch, 9, book(7, "a", "a"))
	if got := titles(h.Read(t, "ck", "Book")); !reflect.DeepEqual(got, map[string]string{"a": "a"}) {
		t.Fatalf("after reset and replay: %v", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConfig(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []mongodb.Config{
		{URL: "mongodb://127.0.0.1:1/", Name: "x"},
		{URL: "mongodb://127.0.0.1:1/db", Name: ""},
		{URL: "mongodb://127.0.0.1:1/db", Name: "x", ChunkSize: -1},
		{URL: "http://nope", Name: "x"},
	} {
		if s, err := mongodb.New(ctx, cfg); err == nil {
			_ = s.Close(ctx)
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	// An unreachable server is an error, not a hang.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if s, err := mongodb.New(ctx, mongodb.Config{URL: "mongodb://127.0.0.1:1/db?serverSelectionTimeoutMS=500", Name: "x"}); err == nil {
		_ = s.Close(ctx)
		t.Error("New against a closed port succeeded")
	}
}
