package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/core/schema"
)

// Provenance columns, after the fields of every table.
const (
	ColLSN    = "_lsn"    // LSN of the effect that wrote the row
	ColChange = "_change" // CID of the change holding the newest write
	ColAuthor = "_author" // its author
	ColHLC    = "_hlc"    // its hybrid logical clock
)

var provenance = []column{
	{name: ColLSN, typ: "bigint", udt: "int8"},
	{name: ColChange, typ: "text", udt: "text"},
	{name: ColAuthor, typ: "text", udt: "text"},
	{name: ColHLC, typ: "text", udt: "text"},
}

// column is one column of a collection's table.
type column struct {
	field *schema.Field // nil for id and provenance
	name  string
	typ   string // SQL type
	udt   string // its information_schema.columns.udt_name
}

// table is how one collection is stored.
type table struct {
	coll   *schema.Collection
	name   string
	fields []column // in field order
	// SQL, built once.
	stage    string   // temporary staging table for upserts
	stageDDL string   // creates it
	copyCol  []string // id, fields, provenance
	upsert   string   // INSERT INTO table SELECT FROM stage ON CONFLICT
	delete   string
}

// layout is how a schema is stored.
type layout struct {
	schemaID string
	tables   map[string]*table // by collection name
	order    []*table          // schema order
}

func scalarType(k schema.Kind) (typ, udt string) {
	switch k {
	case schema.String, schema.Ref:
		return "text", "text"
	case schema.Int, schema.Counter:
		return "bigint", "int8"
	case schema.Float:
		return "double precision", "float8"
	case schema.Boolean:
		return "boolean", "bool"
	case schema.DateTime:
		return "timestamptz", "timestamptz"
	case schema.Bytes:
		return "bytea", "bytea"
	case schema.JSON:
		return "jsonb", "jsonb"
	}
	return "", ""
}

// columnType is the SQL type of a field: lists and sets are arrays of
// their element type.
func columnType(f *schema.Field) (typ, udt string, err error) {
	switch f.Kind {
	case schema.List, schema.Set:
		typ, udt = scalarType(f.Elem)
		typ, udt = typ+"[]", "_"+udt
	default:
		typ, udt = scalarType(f.Kind)
	}
	if typ == "" || udt == "_" {
		return "", "", fmt.Errorf("field %s: no PostgreSQL type for %s", f.Name, f.Kind)
	}
	return typ, udt, nil
}

// plan lays a schema out: a table per collection (lower-cased name, with
// the prefix, unless Config.Tables names it) and a column per field
// (lower-cased; a field whose lower-cased name is taken by an earlier field
// keeps its exact spelling).
func (s *Sink) plan(sch *schema.Schema) (*layout, error) {
	l := &layout{schemaID: sch.ID, tables: map[string]*table{}}
	tableNames := map[string]bool{s.cfg.CheckpointTable: true}
	for _, c := range sch.Collections {
		name, ok := s.cfg.Tables[c.Name]
		if !ok {
			name = s.cfg.TablePrefix + strings.ToLower(c.Name)
			if tableNames[name] {
				name = s.cfg.TablePrefix + c.Name
			}
		}
		if tableNames[name] {
			return nil, fmt.Errorf("collection %s: table name %q is taken (set Config.Tables)", c.Name, name)
		}
		tableNames[name] = true
		t := &table{coll: c, name: name}
		colNames := map[string]bool{"id": true}
		for _, p := range provenance {
			colNames[p.name] = true
		}
		for _, f := range c.Fields {
			col := strings.ToLower(f.Name)
			if colNames[col] {
				col = f.Name
			}
			if colNames[col] {
				return nil, fmt.Errorf("field %s.%s: column %q is taken", c.Name, f.Name, col)
			}
			colNames[col] = true
			typ, udt, err := columnType(f)
			if err != nil {
				return nil, fmt.Errorf("collection %s: %w", c.Name, err)
			}
			t.fields = append(t.fields, column{field: f, name: col, typ: typ, udt: udt})
		}
		t.buildSQL(s.cfg.Schema)
		l.tables[c.Name] = t
		l.order = append(l.order, t)
	}
	return l, nil
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

func (t *table) qualified(pgSchema string) string { return pgx.Identifier{pgSchema, t.name}.Sanitize() }

func (t *table) columns() []column {
	cols := append([]column{{name: "id", typ: "text", udt: "text"}}, t.fields...)
	return append(cols, provenance...)
}

func (t *table) buildSQL(pgSchema string) {
	cols := t.columns()
	var names, sets []string
	h := fnv.New64a()
	fmt.Fprintf(h, "%s.%s", pgSchema, t.name)
	for _, c := range cols {
		names = append(names, quote(c.name))
		t.copyCol = append(t.copyCol, c.name)
		if c.name != "id" {
			sets = append(sets, quote(c.name)+" = EXCLUDED."+quote(c.name))
		}
		fmt.Fprintf(h, "|%s %s", c.name, c.typ)
	}
	t.stage = fmt.Sprintf("_tributary_stage_%016x", h.Sum64())
	t.stageDDL = t.stageSQL()
	list := strings.Join(names, ", ")
	t.upsert = fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT (id) DO UPDATE SET %s",
		t.qualified(pgSchema), list, list, quote(t.stage), strings.Join(sets, ", "))
	t.delete = fmt.Sprintf("DELETE FROM %s WHERE id = ANY($1)", t.qualified(pgSchema))
}

// stageSQL creates the staging table of t on the session, once; it is
// emptied at every commit.
func (t *table) stageSQL() string {
	var defs []string
	for _, c := range t.columns() {
		defs = append(defs, quote(c.name)+" "+c.typ)
	}
	return fmt.Sprintf("CREATE TEMPORARY TABLE IF NOT EXISTS %s (%s) ON COMMIT DELETE ROWS", quote(t.stage), strings.Join(defs, ", "))
}

func (t *table) createSQL(pgSchema string) string {
	defs := []string{`"id" text PRIMARY KEY`}
	for _, c := range t.fields {
		defs = append(defs, quote(c.name)+" "+c.typ)
	}
	defs = append(defs, quote(ColLSN)+" bigint NOT NULL")
	for _, c := range provenance[1:] {
		defs = append(defs, quote(c.name)+" "+c.typ)
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", t.qualified(pgSchema), strings.Join(defs, ", "))
}

// errSchemaConflict marks a target table whose columns the sink cannot use.
var errSchemaConflict = errors.New("target table conflicts with the schema")

// ensure creates the tables of sch and adds the columns they lack, in a
// transaction of its own (DDL is idempotent and never part of a batch).
// Sinks on the same PostgreSQL schema serialise their DDL on an advisory
// lock. Done once per schema per Sink.
func (s *Sink) ensure(ctx context.Context, sch *schema.Schema) (*layout, error) {
	s.layoutMu.Lock()
	cur := s.layout
	s.layoutMu.Unlock()
	if cur != nil && cur.schemaID == sch.ID {
		return cur, nil
	}
	l, err := s.plan(sch)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSchemaConflict, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "tributary ddl "+s.cfg.Schema); err != nil {
			return err
		}
		var b pgx.Batch
		names := make([]string, 0, len(l.order))
		for _, t := range l.order {
			b.Queue(t.createSQL(s.cfg.Schema))
			names = append(names, t.name)
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT table_name::text, column_name::text, udt_name::text FROM information_schema.columns
			WHERE table_schema = $1 AND table_name = ANY($2)`, s.cfg.Schema, names)
		if err != nil {
			return err
		}
		have := map[string]map[string]string{} // table -> column -> udt
		for rows.Next() {
			var tn, cn, udt string
			if err := rows.Scan(&tn, &cn, &udt); err != nil {
				return err
			}
			if have[tn] == nil {
				have[tn] = map[string]string{}
			}
			have[tn][cn] = udt
		}
		if err := rows.Err(); err != nil {
			return err
		}
		b = pgx.Batch{}
		for _, t := range l.order {
			var adds []string
			for _, c := range t.columns() {
				udt, ok := have[t.name][c.name]
				if !ok {
					adds = append(adds, "ADD COLUMN IF NOT EXISTS "+quote(c.name)+" "+c.typ)
				} else if udt != c.udt {
					return fmt.Errorf("%w: column %s.%s is %s, the sink needs %s (alter or drop the column)", errSchemaConflict, t.qualified(s.cfg.Schema), quote(c.name), udt, c.typ)
				}
			}
			if len(adds) > 0 {
				b.Queue("ALTER TABLE " + t.qualified(s.cfg.Schema) + " " + strings.Join(adds, ", "))
			}
		}
		if b.Len() > 0 {
			return tx.SendBatch(ctx, &b).Close()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create tables for schema %s: %w", sch.ID, err)
	}
	s.layoutMu.Lock()
	s.layout = l
	s.layoutMu.Unlock()
	return l, nil
}
