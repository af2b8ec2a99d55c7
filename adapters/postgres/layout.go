package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/adapters/internal/naming"
	"github.com/tributary-sync/tributary/checkpoint"
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

// reservedColumn tells the columns every table has besides the fields.
func reservedColumn(name string) bool {
	if name == "id" {
		return true
	}
	for _, p := range provenance {
		if p.name == name {
			return true
		}
	}
	return false
}

// querier is a transaction or the pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// mapping is what the mapping tables hold that the sink needs.
type mapping struct {
	tables  map[string]string            // collection -> table, the sink's claim's
	columns map[string]map[string]string // table -> field -> column, of those tables
	owners  map[string]checkpoint.Claim  // table -> owner, every table mapped in the schema
}

// loadMapping reads the mapping of the sink's claim and who owns every
// mapped table of the PostgreSQL schema.
func (s *Sink) loadMapping(ctx context.Context, q querier) (*mapping, error) {
	m := &mapping{tables: map[string]string{}, columns: map[string]map[string]string{}, owners: map[string]checkpoint.Claim{}}
	rows, err := q.Query(ctx, "SELECT space, node, sink, collection, tbl FROM "+s.qualify(TablesTable))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.qualify(TablesTable), err)
	}
	var ours []string
	for rows.Next() {
		var c checkpoint.Claim
		var coll, tbl string
		if err := rows.Scan(&c.Space, &c.Node, &c.Sink, &coll, &tbl); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read %s: %w", s.qualify(TablesTable), err)
		}
		m.owners[tbl] = c
		if s.owns(c) {
			m.tables[coll] = tbl
			ours = append(ours, tbl)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.qualify(TablesTable), err)
	}
	rows, err = q.Query(ctx, "SELECT tbl, field, col FROM "+s.qualify(ColumnsTable)+" WHERE tbl = ANY($1)", ours)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.qualify(ColumnsTable), err)
	}
	defer rows.Close()
	for rows.Next() {
		var tbl, field, col string
		if err := rows.Scan(&tbl, &field, &col); err != nil {
			return nil, fmt.Errorf("read %s: %w", s.qualify(ColumnsTable), err)
		}
		if m.columns[tbl] == nil {
			m.columns[tbl] = map[string]string{}
		}
		m.columns[tbl][field] = col
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.qualify(ColumnsTable), err)
	}
	return m, nil
}

// owns tells whether mapping rows of claim c are the sink's.
func (s *Sink) owns(c checkpoint.Claim) bool {
	if s.cfg.ReadOnly && s.cfg.Space == "" && s.cfg.Node == "" {
		return c.Sink == s.cfg.Name
	}
	return c == s.Claim()
}

// reservedTable tells the sink's own tables, never given to a collection.
func (s *Sink) reservedTable(name string) bool {
	return name == s.cfg.CheckpointTable || name == TablesTable || name == ColumnsTable
}

// claimedBy refuses table, which owner holds.
func (s *Sink) claimedBy(table, coll string, owner checkpoint.Claim) error {
	return &checkpoint.ClaimedError{
		What:  fmt.Sprintf("table %s (wanted for collection %s)", s.qualify(table), coll),
		Owner: owner,
		By:    s.Claim(),
		Hint:  "give this sink a schema of its own (option schema), a table_prefix, or name its table under tables:",
	}
}

// checkOverrides checks Config.Tables against the mapping: a collection
// keeps the table it was mapped to, and a table of another claim is not
// taken.
func (s *Sink) checkOverrides(ctx context.Context, q querier) error {
	if len(s.cfg.Tables) == 0 {
		return nil
	}
	m, err := s.loadMapping(ctx, q)
	if err != nil {
		return err
	}
	for coll, t := range s.cfg.Tables {
		if cur, ok := m.tables[coll]; ok && cur != t {
			return fmt.Errorf("tables: collection %s is stored in table %s already, not %s: a collection's table never changes (to move it, rename the table and its row of %s by hand)",
				coll, s.qualify(cur), s.qualify(t), s.qualify(TablesTable))
		}
		if owner, ok := m.owners[t]; ok && !s.owns(owner) {
			return s.claimedBy(t, coll, owner)
		}
		for other, cur := range m.tables {
			if cur == t && other != coll {
				return fmt.Errorf("tables: table %s holds collection %s, not %s", s.qualify(t), other, coll)
			}
		}
	}
	return nil
}

// planTables names the table of every collection of sch: the mapped one;
// else the one Config.Tables names; else the prefixed lower-case name, cut
// to PostgreSQL's 63 bytes with a hash suffix when longer, and suffixed
// again when another collection of the sink or the sink itself has it. A
// table another claim owns is refused. It returns the names and the
// collections newly mapped.
func (s *Sink) planTables(sch *schema.Schema, m *mapping) (map[string]string, []string, error) {
	names := map[string]string{}
	used := map[string]bool{}
	for _, t := range m.tables {
		used[t] = true
	}
	var added []string
	free := func(t string) bool {
		_, owned := m.owners[t]
		return !owned && !used[t] && !s.reservedTable(t)
	}
	for _, c := range sch.Collections {
		if t, ok := m.tables[c.Name]; ok {
			names[c.Name] = t
			continue
		}
		t, ok := s.cfg.Tables[c.Name]
		if ok {
			if owner, owned := m.owners[t]; owned && !s.owns(owner) {
				return nil, nil, s.claimedBy(t, c.Name, owner)
			}
			if !free(t) {
				return nil, nil, fmt.Errorf("tables: table %q for collection %s is taken", t, c.Name)
			}
		} else {
			base := s.cfg.TablePrefix + strings.ToLower(c.Name)
			t = naming.Fit(base, c.Name, MaxIdentifier)
			if owner, owned := m.owners[t]; owned && !s.owns(owner) {
				return nil, nil, s.claimedBy(t, c.Name, owner)
			}
			for k := 1; !free(t); k++ {
				t = naming.Suffixed(base, c.Name, k, MaxIdentifier)
			}
		}
		names[c.Name] = t
		used[t] = true
		added = append(added, c.Name)
	}
	return names, added, nil
}

// planColumns lays the tables out: a column per field, the mapped one;
// else the lower-cased field name; else, when the table already has an
// unmapped column of the field's exact name (a table laid out before the
// mapping existed), that one; else the lower-cased name cut to 63 bytes
// with a hash suffix. A name taken by another field of the table or by
// the id and provenance columns is never given. A renamed field
// (schema.Field.Former) keeps the column of its former name. It returns
// the layout, the new rows of the columns mapping (tbl, field, col) and
// the renamed ones (tbl, former field, field).
func (s *Sink) planColumns(sch *schema.Schema, m *mapping, names map[string]string, have map[string]map[string]string) (*layout, [][]any, [][]any, error) {
	l := &layout{schemaID: sch.ID, tables: map[string]*table{}}
	var added, renamed [][]any
	for _, c := range sch.Collections {
		t := &table{coll: c, name: names[c.Name]}
		mapped := m.columns[t.name]
		used := map[string]bool{}
		for _, col := range mapped {
			used[col] = true
		}
		free := func(col string) bool { return len(col) <= MaxIdentifier && !used[col] && !reservedColumn(col) }
		for _, f := range c.Fields {
			col, ok := mapped[f.Name]
			for _, former := range f.Former {
				if c, was := mapped[former]; !ok && was {
					col, ok = c, true
					renamed = append(renamed, []any{t.name, former, f.Name})
				}
			}
			if !ok {
				base := strings.ToLower(f.Name)
				_, exact := have[t.name][f.Name]
				switch {
				case free(base):
					col = base
				case exact && free(f.Name):
					col = f.Name
				default:
					col = naming.Suffixed(base, f.Name, 1, MaxIdentifier)
					for k := 2; !free(col); k++ {
						col = naming.Suffixed(base, f.Name, k, MaxIdentifier)
					}
				}
				added = append(added, []any{t.name, f.Name, col})
			}
			used[col] = true
			typ, udt, err := columnType(f)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("collection %s: %w", c.Name, err)
			}
			t.fields = append(t.fields, column{field: f, name: col, typ: typ, udt: udt})
		}
		t.buildSQL(s.cfg.Schema)
		l.tables[c.Name] = t
		l.order = append(l.order, t)
	}
	return l, added, renamed, nil
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

func (t *table) qualified(pgSchema string) string { return pgx.Identifier{pgSchema, t.name}.Sanitize() }

func (t *table) columns() []column {
	cols := append([]column{{name: "id", typ: "text", udt: "text"}}, t.fields...)
	return append(cols, provenance...)
}

func (t *table) buildSQL(pgSchema string) {
	cols := t.columns()
	var names, sets, differs []string
	h := fnv.New64a()
	fmt.Fprintf(h, "%s.%s", pgSchema, t.name)
	for _, c := range cols {
		names = append(names, quote(c.name))
		t.copyCol = append(t.copyCol, c.name)
		if c.name != "id" {
			sets = append(sets, quote(c.name)+" = EXCLUDED."+quote(c.name))
			differs = append(differs, c.differs("cur", "EXCLUDED"))
		}
		fmt.Fprintf(h, "|%s %s", c.name, c.typ)
	}
	t.stage = fmt.Sprintf("_tributary_stage_%016x", h.Sum64())
	t.stageDDL = t.stageSQL()
	list := strings.Join(names, ", ")
	// A row that already holds exactly the staged values is left alone
	// (no new row version, no WAL): a backfill after a reset, or a batch
	// replayed over rows it wrote, costs reads only, and a row that
	// drifted (edited by hand) is written again.
	t.upsert = fmt.Sprintf("INSERT INTO %s AS cur (%s) SELECT %s FROM %s ON CONFLICT (id) DO UPDATE SET %s WHERE %s",
		t.qualified(pgSchema), list, list, quote(t.stage), strings.Join(sets, ", "), strings.Join(differs, " OR "))
	t.delete = fmt.Sprintf("DELETE FROM %s WHERE id = ANY($1)", t.qualified(pgSchema))
}

// differs is the SQL condition "column c of row a differs from that of
// row b", NULLs compared as values. Floats compare by their binary form,
// which tells -0 from 0 (equal to PostgreSQL's =), and JSON by its text,
// which tells 1.0 from 1.00 (equal as jsonb).
func (c column) differs(a, b string) string {
	x, y := a+"."+quote(c.name), b+"."+quote(c.name)
	switch c.udt {
	case "float8":
		x, y = "float8send("+x+")", "float8send("+y+")"
	case "_float8":
		x, y = "array_send("+x+")", "array_send("+y+")"
	case "jsonb", "_jsonb":
		x, y = x+"::text", y+"::text"
	}
	return x + " IS DISTINCT FROM " + y
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

// ensure maps the collections and fields of sch (planTables,
// planColumns), stores the new names in the mapping tables, creates the
// tables and adds the columns they lack, in a transaction of its own (DDL
// is idempotent and never part of a batch) that also checks the fence.
// Sinks on the same PostgreSQL schema serialise on an advisory lock, so
// two of them never take one name. Done once per schema per Sink.
func (s *Sink) ensure(ctx context.Context, sch *schema.Schema) (*layout, error) {
	s.layoutMu.Lock()
	cur := s.layout
	s.layoutMu.Unlock()
	if cur != nil && cur.schemaID == sch.ID {
		return cur, nil
	}
	var l *layout
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockDDL(ctx, tx); err != nil {
			return err
		}
		if _, err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		m, err := s.loadMapping(ctx, tx)
		if err != nil {
			return err
		}
		names, newTables, err := s.planTables(sch, m)
		if err != nil {
			return err
		}
		tables := make([]string, 0, len(names))
		for _, t := range names {
			tables = append(tables, t)
		}
		have, err := s.columnsOf(ctx, tx, tables)
		if err != nil {
			return err
		}
		var newCols, renamedCols [][]any
		if l, newCols, renamedCols, err = s.planColumns(sch, m, names, have); err != nil {
			return fmt.Errorf("%w: %v", errSchemaConflict, err)
		}
		var b pgx.Batch
		for _, coll := range newTables {
			b.Queue("INSERT INTO "+s.qualify(TablesTable)+" (space, node, sink, collection, tbl) VALUES ($1, $2, $3, $4, $5)",
				s.cfg.Space, s.cfg.Node, s.cfg.Name, coll, names[coll])
		}
		for _, row := range renamedCols {
			b.Queue("UPDATE "+s.qualify(ColumnsTable)+" SET field = $3 WHERE tbl = $1 AND field = $2", row...)
		}
		for _, row := range newCols {
			b.Queue("INSERT INTO "+s.qualify(ColumnsTable)+" (tbl, field, col) VALUES ($1, $2, $3)", row...)
		}
		for _, t := range l.order {
			b.Queue(t.createSQL(s.cfg.Schema))
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
		if have, err = s.columnsOf(ctx, tx, tables); err != nil {
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
			if err := tx.SendBatch(ctx, &b).Close(); err != nil {
				return err
			}
			b = pgx.Batch{}
		}
		if err := s.enumConstraints(ctx, tx, l, &b); err != nil {
			return err
		}
		if b.Len() > 0 {
			return tx.SendBatch(ctx, &b).Close()
		}
		return nil
	})
	if checkpoint.Fatal(err) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("create tables for schema %s: %w", sch.ID, err)
	}
	s.layoutMu.Lock()
	s.layout = l
	s.layoutMu.Unlock()
	return l, nil
}

// columnsOf reads the columns the tables have: table -> column -> udt.
func (s *Sink) columnsOf(ctx context.Context, q querier, tables []string) (map[string]map[string]string, error) {
	rows, err := q.Query(ctx, `SELECT table_name::text, column_name::text, udt_name::text FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = ANY($2)`, s.cfg.Schema, tables)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]map[string]string{}
	for rows.Next() {
		var tn, cn, udt string
		if err := rows.Scan(&tn, &cn, &udt); err != nil {
			return nil, err
		}
		if have[tn] == nil {
			have[tn] = map[string]string{}
		}
		have[tn][cn] = udt
	}
	return have, rows.Err()
}
