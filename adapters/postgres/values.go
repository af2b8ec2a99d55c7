package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// row converts an upsert into the staging row: id, fields, provenance.
func (t *table) row(e *eventstream.Effect) ([]any, error) {
	for name, v := range e.Doc {
		if _, ok := t.coll.Field(name); !ok && v != nil {
			return nil, fmt.Errorf("%s.%s is not in the schema", t.coll.Name, name)
		}
	}
	row := make([]any, 0, len(t.fields)+5)
	if err := checkText(e.DocID); err != nil {
		return nil, fmt.Errorf("%s id: %v", t.coll.Name, err)
	}
	row = append(row, e.DocID)
	for _, c := range t.fields {
		v, err := toPG(c.field, e.Doc[c.field.Name])
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %v", t.coll.Name, c.field.Name, err)
		}
		row = append(row, v)
	}
	row = append(row, int64(e.LSN))
	for _, p := range []string{e.LastChange, e.Author, e.HLC} {
		if p == "" {
			row = append(row, nil)
			continue
		}
		if err := checkText(p); err != nil {
			return nil, fmt.Errorf("provenance: %v", err)
		}
		row = append(row, p)
	}
	return row, nil
}

// checkText refuses what a PostgreSQL text value cannot hold.
func checkText(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("text contains a NUL character (\\x00), which PostgreSQL text cannot store")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("text is not valid UTF-8")
	}
	return nil
}

// toPG converts a canonical value to the value pgx writes to the field's
// column; nil is NULL.
func toPG(f *schema.Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if f.Kind != schema.List && f.Kind != schema.Set {
		return scalarToPG(f.ScalarKind(), v)
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a %s, got %T", f.Kind, v)
	}
	var err error
	switch f.Elem {
	case schema.String, schema.Ref, schema.JSON:
		return elems[string](f.Elem, l)
	case schema.Int:
		return elems[int64](f.Elem, l)
	case schema.Float:
		return elems[float64](f.Elem, l)
	case schema.Boolean:
		return elems[bool](f.Elem, l)
	case schema.DateTime:
		return elems[time.Time](f.Elem, l)
	case schema.Bytes:
		return elems[[]byte](f.Elem, l)
	default:
		err = fmt.Errorf("no PostgreSQL type for a %s of %s", f.Kind, f.Elem)
	}
	return nil, err
}

// elems converts list elements to a typed slice (a PostgreSQL array).
func elems[T any](k schema.Kind, l []any) ([]T, error) {
	out := make([]T, len(l))
	for i, e := range l {
		if e == nil {
			return nil, fmt.Errorf("element %d is null", i)
		}
		v, err := scalarToPG(k, e)
		if err != nil {
			return nil, fmt.Errorf("element %d: %v", i, err)
		}
		out[i] = v.(T)
	}
	return out, nil
}

func scalarToPG(k schema.Kind, v any) (any, error) {
	bad := func() (any, error) { return nil, fmt.Errorf("want %s, got %T", k, v) }
	switch k {
	case schema.String, schema.Ref:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if err := checkText(s); err != nil {
			return nil, err
		}
		return s, nil
	case schema.Int, schema.Counter:
		if n, ok := v.(int64); ok {
			return n, nil
		}
	case schema.Float:
		if x, ok := v.(float64); ok {
			return x, nil
		}
	case schema.Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case schema.DateTime:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("date-time %q: %v", s, err)
		}
		return t, nil
	case schema.Bytes:
		if b, ok := v.([]byte); ok {
			if b == nil {
				b = []byte{}
			}
			return b, nil
		}
	case schema.JSON:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if !json.Valid([]byte(s)) {
			return nil, fmt.Errorf("not valid JSON text")
		}
		return s, nil
	}
	return bad()
}
