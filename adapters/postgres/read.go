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
)

// Row is one stored document.
type Row struct {
	ID string
	// Fields maps column names to canonical values (string, int64,
	// float64, bool, []byte, []any; DateTime as RFC 3339 UTC text, JSON as
	// compact text with sorted keys); NULL columns are left out.
	Fields map[string]any
	LSN    uint64 // provenance columns
	Change string
	Author string
	HLC    string
}

// TableName is the table (without the schema) that holds a collection
// under the newest schema the sink has applied, or by the default rule
// (lower-cased, prefixed) before it has applied any.
func (s *Sink) TableName(collection string) string {
	s.layoutMu.Lock()
	l := s.layout
	s.layoutMu.Unlock()
	if l != nil {
		if t, ok := l.tables[collection]; ok {
			return t.name
		}
	}
	if t, ok := s.cfg.Tables[collection]; ok {
		return t
	}
	return s.cfg.TablePrefix + strings.ToLower(collection)
}

// Rows reads every row of a collection's table, by id. A table that does
// not exist reads as empty.
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
	tname := s.TableName(collection)
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
	out := map[string]Row{}
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
			r.Fields[cols[i]] = c
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
