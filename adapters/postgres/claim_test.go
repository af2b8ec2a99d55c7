package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/adapters/adaptertest"
	"github.com/tributary-sync/tributary/adapters/internal/naming"
	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// Issue 9, finding 5: two nodes of one space (or two spaces) with a sink
// of the same name in the same database. The second is refused at start,
// naming the owner, instead of skipping the rows the first one's
// checkpoint covers.
func TestSecondNodeOfSameSinkNameIsRefused(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	first := open(t, Config{URL: url, Name: "reports", Space: "bafyspace1", Node: "node-1"})
	if err := first.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 40, Effects: []eventstream.Effect{up(40, "Book", "b1", map[string]any{"title": "one"})}}); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{URL: url, Name: "reports", Space: "bafyspace1", Node: "node-2"}, // another node of the space
		{URL: url, Name: "reports", Space: "bafyspace2", Node: "node-1"}, // another space of the node
		{URL: url, Name: "reports"},                                      // no claim at all
	} {
		s, err := New(ctx, cfg)
		if err == nil {
			s.Close(ctx)
			t.Fatalf("%+v was let in beside (bafyspace1, node-1, reports)", cfg)
		}
		var ce *checkpoint.ClaimedError
		if !errors.As(err, &ce) || ce.Owner != (checkpoint.Claim{Space: "bafyspace1", Node: "node-1", Sink: "reports"}) || !strings.Contains(err.Error(), "node-1") {
			t.Fatalf("refusal of %+v: %v", cfg, err)
		}
	}
	// The owner's checkpoint is untouched.
	if c, err := first.Checkpoint(ctx); c != 40 || err != nil {
		t.Fatalf("owner's checkpoint %d, %v", c, err)
	}
	// A read-only reader of the sink name sees the owner's rows and
	// checkpoint and fences nobody out.
	r := open(t, Config{URL: url, Name: "reports", ReadOnly: true})
	if c, err := r.Checkpoint(ctx); c != 40 || err != nil {
		t.Fatalf("reader's checkpoint %d, %v", c, err)
	}
	if rows, err := r.Rows(ctx, "Book"); err != nil || rows["b1"].Fields["title"] != "one" {
		t.Fatalf("reader's rows %v, %v", rows, err)
	}
	if err := r.Apply(ctx, checkpoint.Batch{Through: 41}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("apply through a reader: %v", err)
	}
	if err := first.Apply(ctx, checkpoint.Batch{Through: 41}); err != nil {
		t.Fatalf("the owner after a reader opened: %v", err)
	}
	// A reader of a database the sink never wrote reads nothing, creates
	// nothing.
	empty := open(t, Config{URL: pgtest.Database(t), Name: "reports", ReadOnly: true})
	if c, err := empty.Checkpoint(ctx); c != 0 || err != nil {
		t.Fatalf("reader of an empty database: %d, %v", c, err)
	}
	if rows, err := empty.Rows(ctx, "Book"); err != nil || len(rows) != 0 {
		t.Fatalf("reader of an empty database: %v, %v", rows, err)
	}
}

// A checkpoint row written before claims existed (sink, lsn, updated_at)
// is adopted by the first claimant, with its LSN.
func TestLegacyCheckpointRowIsAdopted(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	exec(t, url, `CREATE TABLE public.tributary_checkpoints (sink text PRIMARY KEY, lsn bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO public.tributary_checkpoints (sink, lsn) VALUES ('old', 17)`)
	// A reader of the old table reads it as it is.
	r := open(t, Config{URL: url, Name: "old", ReadOnly: true})
	if c, err := r.Checkpoint(ctx); c != 17 || err != nil {
		t.Fatalf("reader of a table from before claims: %d, %v", c, err)
	}
	s := open(t, Config{URL: url, Name: "old", Space: "bafyspace", Node: "node-1"})
	if c, err := s.Checkpoint(ctx); c != 17 || err != nil {
		t.Fatalf("adopted checkpoint %d, %v", c, err)
	}
	if _, err := New(ctx, Config{URL: url, Name: "old", Space: "bafyspace", Node: "node-2"}); !errors.Is(err, checkpoint.ErrClaimed) {
		t.Fatalf("a second claimant after the adoption: %v", err)
	}
}

func exec(t testing.TB, url, sql string) {
	t.Helper()
	if _, err := connect(t, url).Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// columnsOf lists the columns of table, in order.
func columnNames(t testing.TB, url, pgSchema, table string) []string {
	t.Helper()
	rows, err := connect(t, url).Query(context.Background(), `SELECT column_name::text FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, pgSchema, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		rows.Scan(&c)
		out = append(out, c)
	}
	return out
}

// Issue 9, finding 6: names PostgreSQL cannot take as they are. Every
// name fits 63 bytes, case collisions and reserved names get a hash
// suffix, the mapping is stored in the target and a reordering upgrade
// moves nothing.
func TestNameMapping(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	v1, v2 := mustSchema(t, adaptertest.NamesSchema), mustSchema(t, adaptertest.NamesSchemaV2)
	one, two := adaptertest.LongPrefix+"One", adaptertest.LongPrefix+"Two"
	s := open(t, Config{URL: url, Name: "names", Schema: "n"})
	apply := func(s *Sink, sch *schema.Schema, es ...eventstream.Effect) {
		t.Helper()
		if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: es[len(es)-1].LSN, Effects: es}); err != nil {
			t.Fatal(err)
		}
	}
	apply(s, v1,
		up(1, "BookReview", "r1", map[string]any{"Title": "T", "pageCount": int64(10), "PageCount": "ten", "ID": "i", one: "1", two: int64(2)}),
		up(2, "bookreview", "r1", map[string]any{"text": "lower"}),
		up(3, "tributary_checkpoints", "t1", map[string]any{"note": "n"}),
		up(4, adaptertest.LongCollection, "c1", map[string]any{"value": int64(1)}),
	)
	tables := map[string]string{}
	for _, c := range []string{"Person", "BookReview", "bookreview", "tributary_checkpoints", adaptertest.LongCollection} {
		name, err := s.TableName(ctx, c)
		if err != nil || name == "" || len(name) > 63 {
			t.Fatalf("table of %s: %q, %v", c, name, err)
		}
		tables[c] = name
	}
	wantTables := map[string]string{
		"Person":                   "person",
		"BookReview":               "bookreview",
		"bookreview":               naming.Suffixed("bookreview", "bookreview", 1, 63),
		"tributary_checkpoints":    naming.Suffixed("tributary_checkpoints", "tributary_checkpoints", 1, 63),
		adaptertest.LongCollection: naming.Fit(strings.ToLower(adaptertest.LongCollection), adaptertest.LongCollection, 63),
	}
	for c, w := range wantTables {
		if tables[c] != w {
			t.Errorf("table of %s: %q, want %q", c, tables[c], w)
		}
	}
	wantCols := []string{"id", "title", "pagecount", naming.Suffixed("pagecount", "PageCount", 1, 63), naming.Suffixed("id", "ID", 1, 63),
		naming.Fit(strings.ToLower(one), one, 63), naming.Suffixed(strings.ToLower(adaptertest.LongPrefix+"two"), two, 1, 63), "writer", "_lsn", "_change", "_author", "_hlc"}
	// The two long fields share their first 63 bytes: the first keeps
	// the cut name with its hash, the second too, with its own hash.
	wantCols[5] = naming.Suffixed(strings.ToLower(one), one, 1, 63)
	if got := columnNames(t, url, "n", "bookreview"); !slices.Equal(got, wantCols) {
		t.Fatalf("bookreview columns\n%q, want\n%q", got, wantCols)
	}
	for _, c := range columnNames(t, url, "n", "bookreview") {
		if len(c) > 63 {
			t.Fatalf("column %q is longer than 63 bytes", c)
		}
	}
	// The checkpoint row is not a document's.
	if c, _ := s.Checkpoint(ctx); c != 4 {
		t.Fatalf("checkpoint %d", c)
	}

	// The upgrade adds title beside Title, Writer beside writer and
	// BOOKREVIEW, and swaps PageCount and pageCount; a new instance
	// applies it.
	s.Close(ctx)
	s = open(t, Config{URL: url, Name: "names", Schema: "n"})
	apply(s, v2,
		up(5, "BookReview", "r2", map[string]any{"Title": "Upper", "title": "lower", "pageCount": int64(20), "PageCount": "twenty"}),
		up(6, "BOOKREVIEW", "r1", map[string]any{"text": "UPPER"}),
	)
	if got := columnNames(t, url, "n", "bookreview"); !slices.Equal(got[:len(wantCols)], wantCols) ||
		!slices.Equal(got[len(wantCols):], []string{naming.Suffixed("title", "title", 1, 63), naming.Suffixed("writer", "Writer", 1, 63)}) {
		t.Fatalf("bookreview columns after the upgrade: %q", got)
	}
	var pagecount int64
	var pageCount string
	if err := connect(t, url).QueryRow(ctx, `SELECT pagecount, "`+naming.Suffixed("pagecount", "PageCount", 1, 63)+`" FROM n.bookreview WHERE id = 'r2'`).Scan(&pagecount, &pageCount); err != nil || pagecount != 20 || pageCount != "twenty" {
		t.Fatalf("after reordering: pagecount = %d, PageCount's column = %q (%v)", pagecount, pageCount, err)
	}
	rows, err := s.Rows(ctx, "BookReview")
	if err != nil {
		t.Fatal(err)
	}
	if f := rows["r2"].Fields; f["Title"] != "Upper" || f["title"] != "lower" || f["pageCount"] != int64(20) || f["PageCount"] != "twenty" {
		t.Fatalf("r2 read back as %v", f)
	}
	if f := rows["r1"].Fields; f[one] != "1" || f[two] != int64(2) || f["ID"] != "i" {
		t.Fatalf("r1 read back as %v", f)
	}
	if name, _ := s.TableName(ctx, "BOOKREVIEW"); name != naming.Suffixed("bookreview", "BOOKREVIEW", 1, 63) {
		t.Fatalf("BOOKREVIEW is in %q", name)
	}

	// The mapping is in the target, one row per collection and field.
	var n int
	if err := connect(t, url).QueryRow(ctx, `SELECT count(*) FROM n.tributary_columns WHERE tbl = 'bookreview'`).Scan(&n); err != nil || n != 9 {
		t.Fatalf("%d mapping rows for bookreview's fields, want 9 (%v)", n, err)
	}
}

// Config.Tables (tables: in the run config) is checked at start against
// the mapping: a collection's table never changes, another claim's table
// is never taken, the sink's own tables are not for collections.
func TestTableOverrides(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	sch := mustSchema(t, adaptertest.Schema)
	s := open(t, Config{URL: url, Name: "a", Tables: map[string]string{"Book": "books"}})
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 1, Effects: []eventstream.Effect{up(1, "Book", "b1", map[string]any{"title": "t"})}}); err != nil {
		t.Fatal(err)
	}
	if name, _ := s.TableName(ctx, "Book"); name != "books" {
		t.Fatalf("Book is in %q", name)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: url, Name: "a", Tables: map[string]string{"Book": "livres"}}, "never changes"},
		{Config{URL: url, Name: "a", Tables: map[string]string{"Magazine": "books"}}, "holds collection Book"},
		{Config{URL: url, Name: "b", Tables: map[string]string{"Book": "books"}}, "belongs to"},
		{Config{URL: url, Name: "b", Tables: map[string]string{"Book": "tributary_tables"}}, "the sink's own"},
		{Config{URL: url, Name: "b", Tables: map[string]string{"Book": strings.Repeat("x", 64)}}, "over PostgreSQL's 63"},
		{Config{URL: url, Name: "b", Tables: map[string]string{"Book": "x", "Author": "x"}}, "both map to"},
	} {
		_, err := New(ctx, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error containing %q", tc.cfg.Tables, err, tc.want)
		}
	}
	// Another sink's collections with a prefix of their own do not
	// collide; without, they are refused at start.
	b := open(t, Config{URL: url, Name: "b", Space: "other", TablePrefix: "b_"})
	if err := b.Prepare(ctx, sch); err != nil {
		t.Fatal(err)
	}
	if name, _ := b.TableName(ctx, "Book"); name != "b_book" {
		t.Fatalf("prefixed Book in %q", name)
	}
	c := open(t, Config{URL: url, Name: "c", Space: "other"})
	if err := c.Prepare(ctx, sch); !errors.Is(err, checkpoint.ErrClaimed) || !strings.Contains(err.Error(), "sink a") {
		t.Fatalf("prepare over a's tables: %v", err)
	}
}

// A table laid out before the mapping existed (lower-cased columns, the
// exact spelling for a name taken) is adopted with its columns.
func TestLegacyTableIsAdopted(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	exec(t, url, `CREATE TABLE public.review (id text PRIMARY KEY, firstname text, "FirstName" bigint, "ID" text,
		_lsn bigint NOT NULL, _change text, _author text, _hlc text);
		INSERT INTO public.review (id, firstname, "FirstName", "ID", _lsn) VALUES ('r0', 'old', 1, 'x', 1)`)
	sch := mustSchema(t, "type Review @collection { firstName: String FirstName: Int ID: String }")
	s := open(t, Config{URL: url, Name: "legacy"})
	if err := s.Apply(ctx, checkpoint.Batch{Schema: sch, Through: 2, Effects: []eventstream.Effect{up(2, "Review", "r1", map[string]any{"firstName": "Ann", "FirstName": int64(7), "ID": "y"})}}); err != nil {
		t.Fatal(err)
	}
	if got := columnNames(t, url, "public", "review"); !slices.Equal(got, []string{"id", "firstname", "FirstName", "ID", "_lsn", "_change", "_author", "_hlc"}) {
		t.Fatalf("columns of the adopted table: %q", got)
	}
	rows, err := s.Rows(ctx, "Review")
	if err != nil {
		t.Fatal(err)
	}
	if f := rows["r0"].Fields; f["firstName"] != "old" || f["FirstName"] != int64(1) || f["ID"] != "x" {
		t.Fatalf("old row read back as %v", f)
	}
	if f := rows["r1"].Fields; f["firstName"] != "Ann" || f["FirstName"] != int64(7) {
		t.Fatalf("new row read back as %v", f)
	}
}
