package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tributary-sync/tributary/adapters/adaptertest"
	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/eventstream"
)

// TestEnumColumns: an enum field is a text column (a list or set of one a
// text[] column) with a CHECK constraint admitting its values; an upgrade
// that adds a value widens the constraint on the existing table, with its
// rows in place, and an older schema never narrows it again.
func TestEnumColumns(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	conn := connect(t, url)
	s := open(t, Config{URL: url, Name: "enums"})
	v1, v2 := mustSchema(t, adaptertest.TypesSchema), mustSchema(t, adaptertest.TypesSchemaV2)
	apply := func(sch string, through uint64, es ...eventstream.Effect) {
		t.Helper()
		b := checkpoint.Batch{Schema: v1, Through: through, Effects: es}
		if sch == "v2" {
			b.Schema = v2
		}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatalf("apply through %d: %v", through, err)
		}
	}
	// refused runs sql and wants PostgreSQL's check_violation.
	refused := func(sql string) {
		t.Helper()
		_, err := conn.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23514" {
			t.Fatalf("%s: %v, want a check_violation (23514)", sql, err)
		}
	}
	allowed := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	apply("v1", 1, up(1, "Loan", "l1", map[string]any{"status": "OPEN", "history": []any{"OPEN", "RETURNED"}, "seen": []any{"OPEN"}, "contact": "a@b"}))

	var udt, hudt string
	if err := conn.QueryRow(ctx, `SELECT (SELECT udt_name::text FROM information_schema.columns WHERE table_name = 'loan' AND column_name = 'status'),
		(SELECT udt_name::text FROM information_schema.columns WHERE table_name = 'loan' AND column_name = 'history')`).Scan(&udt, &hudt); err != nil {
		t.Fatal(err)
	}
	if udt != "text" || hudt != "_text" {
		t.Fatalf("status is %s, history %s: want text and _text", udt, hudt)
	}
	allowed(`UPDATE public.loan SET status = 'RETURNED', history = '{}', seen = NULL`)
	refused(`UPDATE public.loan SET status = 'LOST'`)
	refused(`UPDATE public.loan SET status = 'open'`)
	refused(`UPDATE public.loan SET history = ARRAY['OPEN', 'LOST']`)
	refused(`UPDATE public.loan SET seen = ARRAY['LOST']`)
	allowed(`UPDATE public.loan SET contact = 'not checked here'`) // named scalars: the replica checks them, see doc.go

	// The upgrade adds LOST (and the Medium enum): the same table takes it.
	apply("v2", 2, up(2, "Loan", "l2", map[string]any{"status": "LOST", "seen": []any{"LOST", "OPEN"}, "medium": "AUDIO"}))
	allowed(`UPDATE public.loan SET status = 'LOST', history = ARRAY['LOST']`)
	refused(`UPDATE public.loan SET status = 'FOUND'`)
	refused(`UPDATE public.loan SET medium = 'VIDEO'`)
	row, ok, err := s.Row(ctx, "Loan", "l2")
	if err != nil || !ok || row.Fields["status"] != "LOST" || row.Fields["medium"] != "AUDIO" {
		t.Fatalf("l2 = %+v, %v, %v", row, ok, err)
	}

	// A sink that sees the old schema again (a second instance that has
	// not caught up) keeps the wider constraint: rows hold LOST.
	s2 := open(t, Config{URL: url, Name: "enums"})
	if err := s2.Prepare(ctx, v1); err != nil {
		t.Fatal(err)
	}
	allowed(`UPDATE public.loan SET status = 'LOST' WHERE id = 'l1'`)
	var comment string
	if err := conn.QueryRow(ctx, `SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname = 'status_enum'`).Scan(&comment); err != nil {
		t.Fatal(err)
	}
	if comment != "tributary enum LoanStatus: OPEN RETURNED LOST" {
		t.Fatalf("constraint comment %q", comment)
	}

	// A CHECK of that name the sink did not make stops it, naming it.
	allowed(`CREATE SCHEMA other; CREATE TABLE other.loan (id text PRIMARY KEY, status text CONSTRAINT status_enum CHECK (status <> ''))`)
	s3 := open(t, Config{URL: url, Name: "other", Schema: "other"})
	err = s3.Prepare(ctx, v1)
	if err == nil || !strings.Contains(err.Error(), "status_enum") || !strings.Contains(err.Error(), "did not make") {
		t.Fatalf("prepare over a foreign constraint: %v", err)
	}
}
