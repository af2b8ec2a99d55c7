package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/adapters/adaptertest"
	"github.com/tributary-sync/tributary/adapters/internal/naming"
	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// harness gives each target name a PostgreSQL schema of its own in a
// database of the test's own.
type harness struct {
	url string

	mu      sync.Mutex
	readers map[string]*Sink
}

func newHarness(t testing.TB) *harness {
	h := &harness{url: pgtest.Database(t), readers: map[string]*Sink{}}
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range h.readers {
			s.Close(context.Background())
		}
	})
	return h
}

func (h *harness) Name() string { return "postgres" }

func (h *harness) config(target string, claim checkpoint.Claim) Config {
	return Config{URL: h.url, Name: claim.Sink, Space: claim.Space, Node: claim.Node, Schema: "s_" + target}
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
	s, err := New(context.Background(), h.config(target, claim))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// reader is a read-only sink instance of its own: it takes no fence.
func (h *harness) reader(t testing.TB, name string) *Sink {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.readers[name]; s != nil {
		return s
	}
	cfg := h.config(name, adaptertest.ClaimFor(name))
	cfg.ReadOnly = true
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open reader %s: %v", name, err)
	}
	h.readers[name] = s
	return s
}

func (h *harness) Read(t testing.TB, sinkName, collection string) map[string]map[string]any {
	t.Helper()
	rows, err := h.reader(t, sinkName).Rows(context.Background(), collection)
	if err != nil {
		t.Fatalf("read %s: %v", collection, err)
	}
	out := make(map[string]map[string]any, len(rows))
	for id, r := range rows {
		out[id] = r.Fields
	}
	return out
}

func (h *harness) Poison() (eventstream.Effect, bool) {
	return eventstream.Effect{Collection: "Book", Kind: eventstream.Upsert, Doc: map[string]any{"title": "NUL \x00 inside", "year": int64(2001)}}, true
}

func TestConformance(t *testing.T) { adaptertest.Run(t, newHarness(t)) }

func TestSharedTarget(t *testing.T) { adaptertest.RunShared(t, newHarness(t)) }

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

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func up(lsn uint64, coll, id string, doc map[string]any) eventstream.Effect {
	return eventstream.Effect{LSN: lsn, Collection: coll, DocID: id, Kind: eventstream.Upsert, Doc: doc,
		Changes: []string{fmt.Sprint("c", lsn)}, LastChange: fmt.Sprint("c", lsn), Author: "alice", HLC: fmt.Sprint(lsn, ".0")}
}

func TestTypeMapping(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema+`
type BookReview @collection {
  firstName: String
  FirstName: Int
  ID: String
}`)
	s := open(t, Config{URL: url, Name: "types", Schema: "lib", TablePrefix: "t_", Tables: map[string]string{"Author": "writers"}})
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 2, Effects: []eventstream.Effect{
		up(1, "Book", "b1", map[string]any{"title": "Dune", "year": int64(1965), "tags": []any{"a", "b"}}),
		up(2, "BookReview", "r1", map[string]any{"firstName": "Ann", "FirstName": int64(7), "ID": "x"}),
	}}); err != nil {
		t.Fatal(err)
	}

	conn := connect(t, url)
	rows, err := conn.Query(ctx, `SELECT table_name::text, column_name::text, data_type::text, udt_name::text, is_nullable::text
		FROM information_schema.columns WHERE table_schema = 'lib' ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var order []string
	for rows.Next() {
		var tn, cn, dt, udt, null string
		if err := rows.Scan(&tn, &cn, &dt, &udt, &null); err != nil {
			t.Fatal(err)
		}
		got[tn+"."+cn] = dt + " " + udt + " " + null
		if tn == "t_book" {
			order = append(order, cn)
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	want := map[string]string{
		"tributary_checkpoints.sink":       "text text NO",
		"tributary_checkpoints.lsn":        "bigint int8 NO",
		"tributary_checkpoints.updated_at": "timestamp with time zone timestamptz NO",
		"tributary_checkpoints.space":      "text text YES",
		"tributary_checkpoints.node":       "text text YES",
		"tributary_checkpoints.fence":      "bigint int8 NO",
		"tributary_tables.space":           "text text NO",
		"tributary_tables.node":            "text text NO",
		"tributary_tables.sink":            "text text NO",
		"tributary_tables.collection":      "text text NO",
		"tributary_tables.tbl":             "text text NO",
		"tributary_columns.tbl":            "text text NO",
		"tributary_columns.field":          "text text NO",
		"tributary_columns.col":            "text text NO",
		"writers.id":                       "text text NO",
		"writers.name":                     "text text YES",
		"writers.born":                     "timestamp with time zone timestamptz YES",
		"t_book.id":                        "text text NO",
		"t_book.title":                     "text text YES",
		"t_book.year":                      "bigint int8 YES",
		"t_book.price":                     "double precision float8 YES",
		"t_book.available":                 "boolean bool YES",
		"t_book.cover":                     "bytea bytea YES",
		"t_book.meta":                      "jsonb jsonb YES",
		"t_book.author":                    "text text YES",
		"t_book.tags":                      "ARRAY _text YES",
		"t_book.likes":                     "bigint int8 YES",
		"t_book.editions":                  "ARRAY _int8 YES",
		"t_book._lsn":                      "bigint int8 NO",
		"t_book._change":                   "text text YES",
		"t_book._author":                   "text text YES",
		"t_book._hlc":                      "text text YES",
		"t_sample.text":                    "text text YES",
		"t_sample.whole":                   "bigint int8 YES",
		"t_sample.real":                    "double precision float8 YES",
		"t_sample.flag":                    "boolean bool YES",
		"t_sample.moment":                  "timestamp with time zone timestamptz YES",
		"t_sample.blob":                    "bytea bytea YES",
		"t_sample.data":                    "jsonb jsonb YES",
		"t_sample.writer":                  "text text YES",
		"t_sample.hits":                    "bigint int8 YES",
		"t_sample.texts":                   "ARRAY _text YES",
		"t_sample.wholes":                  "ARRAY _int8 YES",
		"t_sample.reals":                   "ARRAY _float8 YES",
		"t_sample.flags":                   "ARRAY _bool YES",
		"t_sample.moments":                 "ARRAY _timestamptz YES",
		"t_sample.blobs":                   "ARRAY _bytea YES",
		"t_sample.datas":                   "ARRAY _jsonb YES",
		"t_sample.writers":                 "ARRAY _text YES",
		"t_sample.textset":                 "ARRAY _text YES",
		"t_sample.wholeset":                "ARRAY _int8 YES",
		"t_sample.realset":                 "ARRAY _float8 YES",
		"t_sample.flagset":                 "ARRAY _bool YES",
		"t_sample.momentset":               "ARRAY _timestamptz YES",
		"t_sample.blobset":                 "ARRAY _bytea YES",
		"t_sample.writerset":               "ARRAY _text YES",
		"t_bookreview.firstname":           "text text YES",
		// Taken once folded to lower case (by firstName, by the id
		// column): a hash of the exact name tells them apart.
		"t_bookreview." + naming.Suffixed("firstname", "FirstName", 1, 63): "bigint int8 YES",
		"t_bookreview." + naming.Suffixed("id", "ID", 1, 63):               "text text YES",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !strings.HasSuffix(k, ".id") && !strings.Contains(k, "._") {
			t.Errorf("unexpected column %s (%s)", k, got[k])
		}
	}
	if w := "id title year price available cover meta author tags likes editions _lsn _change _author _hlc"; strings.Join(order, " ") != w {
		t.Errorf("t_book columns %q, want %q", strings.Join(order, " "), w)
	}
	var pk string
	if err := conn.QueryRow(ctx, `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = 'lib.t_book'::regclass AND i.indisprimary`).Scan(&pk); err != nil || pk != "id" {
		t.Errorf("primary key of t_book: %q, %v", pk, err)
	}

	// Provenance and values as stored.
	r, ok, err := s.Row(ctx, "Book", "b1")
	if err != nil || !ok {
		t.Fatalf("Row: %v, %v", ok, err)
	}
	if r.ID != "b1" || r.LSN != 1 || r.Change != "c1" || r.Author != "alice" || r.HLC != "1.0" ||
		r.Fields["title"] != "Dune" || r.Fields["year"] != int64(1965) || len(r.Fields) != 3 {
		t.Fatalf("row %+v", r)
	}
	var tags []string
	if err := conn.QueryRow(ctx, `SELECT tags FROM lib.t_book WHERE 'b' = ANY(tags)`).Scan(&tags); err != nil || strings.Join(tags, ",") != "a,b" {
		t.Fatalf("tags as a text[]: %v, %v", tags, err)
	}
	if _, ok, err := s.Row(ctx, "Book", "nope"); ok || err != nil {
		t.Fatalf("Row of a missing document: %v, %v", ok, err)
	}
	if got, err := s.Rows(ctx, "NoSuchCollection"); err != nil || len(got) != 0 {
		t.Fatalf("Rows of a missing table: %v, %v", got, err)
	}
}

// A column of the wrong type is reported, not silently written.
func TestConflictingTable(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	if _, err := connect(t, url).Exec(ctx, `CREATE TABLE public.item (id text PRIMARY KEY, qty text)`); err != nil {
		t.Fatal(err)
	}
	s := open(t, Config{URL: url, Name: "c"})
	err := s.Apply(ctx, checkpoint.Batch{Schema: mustSchema(t, `type Item @collection { qty: Int }`), Through: 1,
		Effects: []eventstream.Effect{up(1, "Item", "i1", map[string]any{"qty": int64(1)})}})
	if err == nil || errors.Is(err, checkpoint.ErrRejected) || !strings.Contains(err.Error(), "qty") {
		t.Fatalf("apply over a conflicting column: %v", err)
	}
}

func TestCheckpointCommitsWithData(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	s := open(t, Config{URL: url, Name: "atomic"})
	conn := connect(t, url)
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 1, Effects: []eventstream.Effect{up(1, "Book", "b1", map[string]any{"title": "one"})}}); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		t.Helper()
		rows, err := s.Rows(ctx, "Book")
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, id := range []string{"b1", "b2", "b3"} {
			if r, ok := rows[id]; ok {
				parts = append(parts, fmt.Sprintf("%s=%v", id, r.Fields["title"]))
			}
		}
		return fmt.Sprintf("checkpoint %d %s", c, strings.Join(parts, " "))
	}
	before := state()
	batch := checkpoint.Batch{Schema: sch, Through: 3, Effects: []eventstream.Effect{
		up(2, "Book", "b2", map[string]any{"title": "two"}),
		up(3, "Book", "b1", map[string]any{"title": "one, updated"}),
	}}

	// The checkpoint write fails: the rows must not land either.
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'checkpoint refused'; END $$`)
	exec(`CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON public.tributary_checkpoints FOR EACH ROW EXECUTE FUNCTION fail()`)
	err := s.Apply(ctx, batch)
	if err == nil || errors.Is(err, checkpoint.ErrRejected) || !strings.Contains(err.Error(), "checkpoint refused") {
		t.Fatalf("apply with a failing checkpoint write: %v", err)
	}
	if got := state(); got != before {
		t.Fatalf("after a failed checkpoint write: %s, want %s", got, before)
	}
	exec(`DROP TRIGGER refuse ON public.tributary_checkpoints`)

	// A row the table refuses (a constraint violation): rejected, and
	// nothing of the batch, checkpoint included, is written.
	exec(`CREATE FUNCTION refuse_two() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.title = 'two' THEN RAISE EXCEPTION 'no two' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$`)
	exec(`CREATE TRIGGER refuse_two BEFORE INSERT OR UPDATE ON public.book FOR EACH ROW EXECUTE FUNCTION refuse_two()`)
	err = s.Apply(ctx, batch)
	var rej *checkpoint.RejectedError
	if !errors.As(err, &rej) || !strings.Contains(rej.Reason, "no two") || !strings.Contains(rej.Reason, "23514") {
		t.Fatalf("apply of a refused row: %v", err)
	}
	if got := state(); got != before {
		t.Fatalf("after a rejected batch: %s, want %s", got, before)
	}
	exec(`DROP TRIGGER refuse_two ON public.book`)

	if err := s.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if got, want := state(), "checkpoint 3 b1=one, updated b2=two"; got != want {
		t.Fatalf("after the batch: %s, want %s", got, want)
	}
}

// Values the database refuses are rejected with their index when it can
// be told: by the sink's own checks, or from the line of the COPY that
// failed; the runner parks them and applies the rest.
func TestRejections(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	s := open(t, Config{URL: url, Name: "rej"})
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 1, Effects: []eventstream.Effect{up(1, "Book", "b0", map[string]any{"title": "zero"})}}); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, url).Exec(ctx, `ALTER TABLE public.book ADD CONSTRAINT positive_year CHECK (year > 0)`); err != nil {
		t.Fatal(err)
	}
	good := func(lsn uint64) eventstream.Effect {
		return up(lsn, "Book", fmt.Sprint("b", lsn), map[string]any{"title": fmt.Sprint("t", lsn), "year": int64(lsn)})
	}
	for _, tc := range []struct {
		name   string
		bad    eventstream.Effect
		index  int
		reason string
	}{
		{"NUL in text", up(5, "Book", "x", map[string]any{"title": "a\x00b"}), 3, "NUL"},
		{"NUL in a list element", up(5, "Book", "x", map[string]any{"title": "a", "tags": []any{"ok", "\x00"}}), 3, "NUL"},
		{"invalid UTF-8", up(5, "Book", "x", map[string]any{"title": "\xff"}), 3, "UTF-8"},
		{"NUL escaped in JSON", up(5, "Book", "x", map[string]any{"title": "a", "meta": `{"k":"\u0000"}`}), 3, "22P05"},
		{"check constraint (merge)", up(5, "Book", "x", map[string]any{"title": "a", "year": int64(-1)}), -1, "23514"},
		{"field not in the schema", up(5, "Book", "x", map[string]any{"title": "a", "nope": "x"}), 3, "not in the schema"},
		{"wrong value type", up(5, "Book", "x", map[string]any{"title": "a", "year": "1999"}), 3, "want Int"},
		{"collection not in the schema", up(5, "Nope", "x", map[string]any{"title": "a"}), 3, "not in the schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 7, Effects: []eventstream.Effect{good(2), good(3), good(4), tc.bad, good(6), good(7)}})
			var rej *checkpoint.RejectedError
			if !errors.As(err, &rej) || !errors.Is(err, checkpoint.ErrRejected) {
				t.Fatalf("got %v, want a rejection", err)
			}
			if rej.Index != tc.index || !strings.Contains(rej.Reason, tc.reason) {
				t.Fatalf("rejection %d %q, want index %d and %q", rej.Index, rej.Reason, tc.index, tc.reason)
			}
			if c, _ := s.Checkpoint(ctx); c != 1 {
				t.Fatalf("checkpoint %d after a rejection", c)
			}
			if r, ok, _ := s.Row(ctx, "Book", "b2"); ok {
				t.Fatalf("part of a rejected batch landed: %+v", r)
			}
		})
	}
	// The JSON error comes from the database: its index comes from COPY.
	err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 7, Effects: []eventstream.Effect{good(2), good(3), good(4), up(5, "Book", "x", map[string]any{"title": "a", "meta": `"\u0000"`}), good(6)}})
	var rej *checkpoint.RejectedError
	if !errors.As(err, &rej) || rej.Index != 3 || !strings.Contains(rej.Reason, "COPY") {
		t.Fatalf("JSON refused by the database: %v", err)
	}
}

// A dropped connection is an error to retry, not a rejection.
func TestConnectionLoss(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	s := open(t, Config{URL: url, Name: "conn", MaxConns: 1})
	apply := func(lsn uint64) error {
		return s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: lsn, Effects: []eventstream.Effect{up(lsn, "Book", fmt.Sprint("b", lsn), map[string]any{"title": "t"})}})
	}
	if err := apply(1); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, url).Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	var errs []error
	for i := 0; ; i++ {
		err := apply(2)
		if err == nil {
			break
		}
		if errors.Is(err, checkpoint.ErrRejected) {
			t.Fatalf("a lost connection is reported as a rejection: %v", err)
		}
		errs = append(errs, err)
		if i > 5 {
			t.Fatalf("apply keeps failing: %v", errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c, err := s.Checkpoint(ctx); c != 2 || err != nil {
		t.Fatalf("checkpoint %d, %v", c, err)
	}
	t.Logf("errors before the reconnect: %v", errs)

	// A cancelled context is an error too, and nothing is written.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := s.Apply(cctx, checkpoint.Batch{Schema: sch, Through: 3, Effects: []eventstream.Effect{up(3, "Book", "b3", map[string]any{"title": "t"})}})
	if err == nil || errors.Is(err, checkpoint.ErrRejected) {
		t.Fatalf("apply with a cancelled context: %v", err)
	}
	if c, _ := s.Checkpoint(ctx); c != 2 {
		t.Fatalf("checkpoint %d after a cancelled apply", c)
	}
}

func TestResetReplays(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	s := open(t, Config{URL: url, Name: "reset"})
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 2, Effects: []eventstream.Effect{
		up(1, "Book", "b1", map[string]any{"title": "one"}), up(2, "Book", "b2", map[string]any{"title": "two"}),
	}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Checkpoint(ctx); c != 0 || err != nil {
		t.Fatalf("checkpoint after reset: %d, %v", c, err)
	}
	// The replay from the start rewrites the rows.
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 3, Effects: []eventstream.Effect{
		up(1, "Book", "b1", map[string]any{"title": "one"}), up(3, "Book", "b2", map[string]any{"title": "two again"}),
	}}); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := s.Row(ctx, "Book", "b2"); r.Fields["title"] != "two again" || r.LSN != 3 {
		t.Fatalf("b2 after replay: %+v", r)
	}
	if c, _ := s.Checkpoint(ctx); c != 3 {
		t.Fatalf("checkpoint %d", c)
	}
}

// A replay (after a reset, or of a batch the sink wrote already) leaves a
// row that holds the effect's values as it is: no new row version. A row
// that differs in any column (edited by hand, -0 where 0 was, 1.00 where
// JSON held 1.0, a list element, a provenance column) is written again.
func TestReplayWritesOnlyChangedRows(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	s := open(t, Config{URL: url, Name: "replay"})
	doc := func(title string, price float64, tags ...any) map[string]any {
		return map[string]any{"title": title, "year": int64(1999), "price": price, "available": true, "cover": []byte{1, 2},
			"meta": `{"a":[1,2]}`, "tags": append([]any{}, tags...), "editions": []any{int64(1), int64(2)}}
	}
	effects := []eventstream.Effect{
		up(1, "Book", "same", doc("same", 1.5, "x", "y")),
		up(2, "Book", "edited", doc("edited", 2.5, "x")),
		up(3, "Book", "zero", doc("zero", 0)),
		up(4, "Book", "tags", doc("tags", 3, "x")),
		up(5, "Book", "prov", doc("prov", 4)),
		up(6, "Book", "nulls", map[string]any{"title": "nulls"}),
		up(7, "Book", "json", map[string]any{"title": "json", "meta": `{"a":1.0}`}),
	}
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 7, Effects: effects}); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	versions := func() map[string]string {
		rows, err := conn.Query(ctx, "SELECT id, ctid::text || '/' || xmin::text FROM public.book")
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv [2]string, err error) {
			err = r.Scan(&kv[0], &kv[1])
			return kv, err
		})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, kv := range out {
			m[kv[0]] = kv[1]
		}
		return m
	}
	before := versions()
	if _, err := conn.Exec(ctx, "UPDATE public.book SET title = 'by hand' WHERE id = 'edited'"); err != nil {
		t.Fatal(err)
	}
	edited := versions()["edited"]
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	replay := slices.Clone(effects)
	replay[2] = up(3, "Book", "zero", doc("zero", math.Copysign(0, -1)))
	replay[3] = up(4, "Book", "tags", doc("tags", 3, "x", "z"))
	replay[4].HLC = "5.1"
	replay[6].Doc = map[string]any{"title": "json", "meta": `{"a":1.00}`}
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 7, Effects: replay}); err != nil {
		t.Fatal(err)
	}
	after := versions()
	for _, id := range []string{"same", "nulls"} {
		if after[id] != before[id] {
			t.Errorf("%s: an unchanged row got a new version (%s, was %s)", id, after[id], before[id])
		}
	}
	if after["edited"] == edited {
		t.Errorf("edited: the row edited by hand was not written again")
	}
	for _, id := range []string{"zero", "tags", "prov", "json"} {
		if after[id] == before[id] {
			t.Errorf("%s: a changed row was not written", id)
		}
	}
	rows, err := s.Rows(ctx, "Book")
	if err != nil {
		t.Fatal(err)
	}
	if got := rows["edited"].Fields["title"]; got != "edited" {
		t.Errorf("edited: title %v after the replay, want the effect's", got)
	}
	if p, _ := rows["zero"].Fields["price"].(float64); p != 0 || !math.Signbit(p) {
		t.Errorf("zero: price %v, want -0", rows["zero"].Fields["price"])
	}
	if got := rows["tags"].Fields["tags"]; fmt.Sprint(got) != "[x z]" {
		t.Errorf("tags: %v, want [x z]", got)
	}
	if got := rows["json"].Fields["meta"]; got != `{"a":1.00}` {
		t.Errorf("json: meta %v, want {\"a\":1.00}", got)
	}
	if r := rows["prov"]; r.HLC != "5.1" {
		t.Errorf("prov: HLC %q, want 5.1", r.HLC)
	}
}

// Two instances of one sink applying the same batches at once (two bridge
// processes by mistake): the one opened last fences the other out, whose
// every batch fails with checkpoint.ErrFenced and writes nothing.
func TestConcurrentInstances(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	a := open(t, Config{URL: url, Name: "twin"})
	b := open(t, Config{URL: url, Name: "twin"})
	var batches []checkpoint.Batch
	lsn := uint64(0)
	for i := range 20 {
		var es []eventstream.Effect
		for j := range 50 {
			lsn++
			es = append(es, up(lsn, "Book", fmt.Sprint("b", j), map[string]any{"title": fmt.Sprint("v", i), "year": int64(lsn)}))
		}
		batches = append(batches, checkpoint.Batch{Schema: sch, Effects: es, Through: lsn})
	}
	var wg sync.WaitGroup
	results := make([][]error, 2)
	for k, s := range []*Sink{a, b} {
		wg.Go(func() {
			for _, batch := range batches {
				results[k] = append(results[k], s.Apply(ctx, batch))
			}
		})
	}
	wg.Wait()
	for i, err := range results[0] {
		if !errors.Is(err, checkpoint.ErrFenced) {
			t.Fatalf("batch %d of the fenced-out instance: %v", i, err)
		}
	}
	for i, err := range results[1] {
		if err != nil {
			t.Fatalf("batch %d of the current instance: %v", i, err)
		}
	}
	rows, err := b.Rows(ctx, "Book")
	if err != nil {
		t.Fatal(err)
	}
	for j := range 50 {
		r := rows[fmt.Sprint("b", j)]
		if r.Fields["title"] != "v19" || r.LSN != uint64(950+j+1) {
			t.Fatalf("b%d = %+v", j, r)
		}
	}
	if c, _ := b.Checkpoint(ctx); c != lsn {
		t.Fatalf("checkpoint %d, want %d", c, lsn)
	}
	if err := a.Reset(ctx); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("reset by the fenced-out instance: %v", err)
	}
}

func TestConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, Config{URL: "postgres://127.0.0.1:1/x"}); err == nil {
		t.Fatal("a sink without a name")
	}
	if _, err := New(ctx, Config{URL: "::not a url", Name: "x"}); err == nil {
		t.Fatal("a bad URL")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := New(cctx, Config{URL: "postgres://postgres@127.0.0.1:1/x?connect_timeout=2", Name: "x"}); err == nil {
		t.Fatal("a server that is not there")
	}
}

// BenchmarkSink measures the sink through the runner (adaptertest.Bench)
// and a raw pgx baseline writing the same rows with one unnest upsert per
// round, on the same server.
func BenchmarkSink(b *testing.B) {
	h := newHarness(b)
	rate := adaptertest.BenchRate(b, h)
	raw := rawRate(b, h.url, b.N)
	b.ReportMetric(rate, "effects/s")
	b.ReportMetric(raw, "raw-rows/s")
	b.ReportMetric(rate/raw, "ratio-vs-raw")
}

var rawSeq int

func rawRate(b *testing.B, url string, rounds int) float64 {
	b.StopTimer()
	defer b.StartTimer()
	ctx := context.Background()
	conn := connect(b, url)
	rawSeq++
	ns := fmt.Sprintf("raw_%d", rawSeq)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.item (id text PRIMARY KEY, name text, qty bigint,
		price double precision, active boolean, updated timestamptz, note text,
		_lsn bigint NOT NULL, _change text, _author text, _hlc text)`, ns)); err != nil {
		b.Fatal(err)
	}
	sql := fmt.Sprintf(`INSERT INTO %s.item (id, name, qty, price, active, updated, note, _lsn, _change, _author, _hlc)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::bool[], $6::timestamptz[], $7::text[],
			$8::bigint[], $9::text[], $10::text[], $11::text[])
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, qty = EXCLUDED.qty, price = EXCLUDED.price, active = EXCLUDED.active,
			updated = EXCLUDED.updated, note = EXCLUDED.note, _lsn = EXCLUDED._lsn, _change = EXCLUDED._change,
			_author = EXCLUDED._author, _hlc = EXCLUDED._hlc`, ns)
	var elapsed time.Duration
	rows, lsn := 0, int64(0)
	for round := range rounds {
		es := adaptertest.BenchEffects(round)
		n := len(es)
		ids, names, notes := make([]string, n), make([]string, n), make([]*string, n)
		qty, lsns := make([]int64, n), make([]int64, n)
		price := make([]float64, n)
		active := make([]bool, n)
		updated := make([]time.Time, n)
		changes, authors, hlcs := make([]string, n), make([]string, n), make([]string, n)
		for i, e := range es {
			lsn++
			ids[i], names[i], qty[i], price[i], active[i] = e.DocID, e.Doc["name"].(string), e.Doc["qty"].(int64), e.Doc["price"].(float64), e.Doc["active"].(bool)
			updated[i], _ = time.Parse(time.RFC3339Nano, e.Doc["updated"].(string))
			if s, ok := e.Doc["note"].(string); ok {
				notes[i] = &s
			}
			lsns[i], changes[i], authors[i], hlcs[i] = lsn, e.LastChange, e.Author, e.HLC
		}
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql, ids, names, qty, price, active, updated, notes, lsns, changes, authors, hlcs)
			return err
		})
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	var count int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+ns+".item").Scan(&count); err != nil || count != adaptertest.BenchDocs(rounds-1) {
		b.Fatalf("raw baseline wrote %d rows (%v), want %d", count, err, adaptertest.BenchDocs(rounds-1))
	}
	return float64(rows) / elapsed.Seconds()
}

// A table dropped by hand is created again on the next attempt.
func TestTableDroppedByHand(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	s := open(t, Config{URL: url, Name: "dropped"})
	apply := func(lsn uint64) error {
		return s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: lsn, Effects: []eventstream.Effect{up(lsn, "Book", fmt.Sprint("b", lsn), map[string]any{"title": "t"})}})
	}
	if err := apply(1); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, url).Exec(ctx, `DROP TABLE public.book`); err != nil {
		t.Fatal(err)
	}
	err := apply(2)
	if err == nil || errors.Is(err, checkpoint.ErrRejected) {
		t.Fatalf("apply to a dropped table: %v", err)
	}
	if err := apply(2); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if rows, _ := s.Rows(ctx, "Book"); len(rows) != 1 || rows["b2"].LSN != 2 {
		t.Fatalf("rows %+v", rows)
	}
}

// BenchmarkCatchUp is a sink catching up on a backlog of 100k effects
// (a node that was offline), by the runner's batch size: the default
// (1000) and larger ones.
func BenchmarkCatchUp(b *testing.B) {
	h := newHarness(b)
	for _, batch := range []int{1000, 5000, 10_000, 50_000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			b.ReportMetric(adaptertest.BenchCatchUpRate(b, h, 100_000, batch), "rows/s")
		})
	}
}
