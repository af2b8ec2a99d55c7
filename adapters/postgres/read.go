package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Row is one stored document.
type Row struct {
	ID string
	// Fields maps field names to canonical values (string, int64,
	// float64, bool, []byte, []any; DateTime as RFC 3339 UTC text, JSON as
	// compact text with sorted keys); NULL columns are left out. Columns
	// the mapping does not know (added by hand) appear under their names.
	Fields map[string]any
	LSN    uint64 // provenance columns
	Change string
	Author string
	HLC    string
}

// TableName is the table (without the schema) the mapping stored in the
// target gives a collection of the sink's claim; "" when the collection
// is not mapped yet.
func (s *Sink) TableName(ctx context.Context, collection string) (string, error) {
	t, _, err := s.lookup(ctx, collection)
	return t, err
}

// lookup reads the mapping of one collection: its table and column ->
// field.
func (s *Sink) lookup(ctx context.Context, collection string) (string, map[string]string, error) {
	where, args := s.claimWhere("t", 2)
	rows, err := s.pool.Query(ctx, "SELECT t.tbl, c.field, c.col FROM "+s.qualify(TablesTable)+" t LEFT JOIN "+s.qualify(ColumnsTable)+
		" c ON c.tbl = t.tbl WHERE t.collection = $1 AND "+where, append([]any{collection}, args...)...)
	if err != nil {
		if s.cfg.ReadOnly && isUndefinedTable(err) {
			return "", nil, nil // nothing was ever written here
		}
		return "", nil, fmt.Errorf("postgres sink %s: read the mapping of %s: %w", s.cfg.Name, collection, err)
	}
	defer rows.Close()
	var table string
	fields := map[string]string{}
	for rows.Next() {
		var field, col *string
		if err := rows.Scan(&table, &field, &col); err != nil {
			return "", nil, fmt.Errorf("postgres sink %s: read the mapping of %s: %w", s.cfg.Name, collection, err)
		}
		if field != nil && col != nil {
			fields[*col] = *field
		}
	}
	if err := rows.Err(); err != nil {
		return "", nil, fmt.Errorf("postgres sink %s: read the mapping of %s: %w", s.cfg.Name, collection, err)
	}
	return table, fields, nil
}

// isUndefinedTable tells PostgreSQL's "relation does not exist".
func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// Rows reads every row of a collection's table, by id. A collection not
// mapped yet reads as empty.
func (s *Sink) Rows(ctx context.Context, collection string) (map[string]Row, error) {
	return s.read(ctx, collection, nil)
}

// Row reads one document; ok is false when its row does not exist.
func (s *Sink) Row(ctx context.Context, collection, id string) (Row, bool, error) {
	rows, err := s.read(ctx, collection, &id)
	if err != nil {
		return Row{}, false, err
	}
	r, ok := rows[id]
	return r, ok, nil
}

func (s *Sink) read(ctx context.Context, collection string, id *string) (map[string]Row, error) {
	out := map[string]Row{}
	tname, fields, err := s.lookup(ctx, collection)
	if err != nil || tname == "" {
		return out, err
	}
	q, err := s.pool.Query(ctx, `SELECT column_name::text, udt_name::text FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, s.cfg.Schema, tname)
	if err != nil {
		return nil, fmt.Errorf("postgres sink %s: read %s: %w", s.cfg.Name, tname, err)
	}
	var cols, udts []string
	for q.Next() {
		var c, u string
		if err := q.Scan(&c, &u); err != nil {
			return nil, err
		}
		cols, udts = append(cols, c), append(udts, u)
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("postgres sink %s: read %s: %w", s.cfg.Name, tname, err)
	}
	if len(cols) == 0 {
		return out, nil
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = quote(c)
		switch udts[i] { // JSON as its text, decoded below
		case "jsonb", "json":
			sel[i] += "::text"
		case "_jsonb", "_json":
			sel[i] += "::text[]"
		}
	}
	sql := "SELECT " + strings.Join(sel, ", ") + " FROM " + pgx.Identifier{s.cfg.Schema, tname}.Sanitize()
	var args []any
	if id != nil {
		sql += " WHERE id = $1"
		args = append(args, *id)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres sink %s: read %s: %w", s.cfg.Name, tname, err)
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		r := Row{Fields: map[string]any{}}
		for i, v := range vals {
			if v == nil {
				continue
			}
			json := udts[i] == "jsonb" || udts[i] == "json" || udts[i] == "_jsonb" || udts[i] == "_json"
			switch cols[i] {
			case "id":
				r.ID, _ = v.(string)
				continue
			case ColLSN:
				if n, ok := v.(int64); ok {
					r.LSN = uint64(n)
				}
				continue
			case ColChange:
				r.Change, _ = v.(string)
				continue
			case ColAuthor:
				r.Author, _ = v.(string)
				continue
			case ColHLC:
				r.HLC, _ = v.(string)
				continue
			}
			c, err := canonical(v, json)
			if err != nil {
				return nil, fmt.Errorf("postgres sink %s: read %s.%s: %w", s.cfg.Name, tname, cols[i], err)
			}
			name := cols[i]
			if f, ok := fields[name]; ok {
				name = f
			}
			r.Fields[name] = c
		}
		out[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres sink %s: read %s: %w", s.cfg.Name, tname, err)
	}
	return out, nil
}

// canonical converts a value pgx read to a canonical value.
func canonical(v any, isJSON bool) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := canonical(e, isJSON)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case string:
		if isJSON {
			return canonicalJSON(x)
		}
		return x, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case int64, float64, bool, []byte:
		return x, nil
	}
	return nil, fmt.Errorf("unexpected %T", v)
}

// canonicalJSON re-encodes JSON text as core does: compact, keys sorted,
// numbers as written, no HTML escaping.
func canonicalJSON(s string) (string, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return "", err
	}
	if d.More() {
		return "", errors.New("trailing data after JSON value")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimRight(buf.String(), "\n"), nil
}
