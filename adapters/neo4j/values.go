package neo4j

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/tributary-sync/tributary/core/schema"
)

// offsetUTC makes the driver send a time.Time as a DATETIME with the
// offset Z (a location named "Offset" means a fixed offset to the driver);
// any other location is sent as a zone name, which would read back as
// 2024-01-02T03:04:05Z[UTC].
var offsetUTC = time.FixedZone("Offset", 0)

// property converts the canonical value of field f to the value stored as
// its node property:
//
//	String, JSON, reference   -> STRING (JSON as its compact text)
//	Int, counter              -> INTEGER
//	Float                     -> FLOAT
//	Boolean                   -> BOOLEAN
//	DateTime                  -> ZONED DATETIME with offset Z
//	Bytes                     -> byte array
//	list, set                 -> LIST of the element's type; Bytes
//	                             elements as base64 STRINGs (Neo4j cannot
//	                             store a list of byte arrays)
//
// A value that does not have its field's type is an error: the effect is
// refused before anything is sent.
func property(f *schema.Field, v any) (any, error) {
	switch f.Kind {
	case schema.List, schema.Set:
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: %T, want a list", f.Name, v)
		}
		out := make([]any, len(l))
		for i, e := range l {
			x, err := scalar(f.Elem, e)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %v", f.Name, i, err)
			}
			if b, ok := x.([]byte); ok {
				x = base64.StdEncoding.EncodeToString(b)
			}
			out[i] = x
		}
		return out, nil
	}
	x, err := scalar(f.ScalarKind(), v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", f.Name, err)
	}
	return x, nil
}

func scalar(k schema.Kind, v any) (any, error) {
	var ok bool
	switch k {
	case schema.String, schema.JSON, schema.Ref:
		_, ok = v.(string)
	case schema.Int, schema.Counter:
		_, ok = v.(int64)
	case schema.Float:
		_, ok = v.(float64)
	case schema.Boolean:
		_, ok = v.(bool)
	case schema.Bytes:
		_, ok = v.([]byte)
	case schema.DateTime:
		s, isString := v.(string)
		if !isString {
			break
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("DateTime %q: %v", s, err)
		}
		return t.In(offsetUTC), nil
	default:
		return nil, fmt.Errorf("unknown field kind %s", k)
	}
	if !ok {
		return nil, fmt.Errorf("%T, want %s", v, want(k))
	}
	return v, nil
}

func want(k schema.Kind) string {
	switch k {
	case schema.String, schema.JSON, schema.Ref, schema.DateTime:
		return "a string (" + k.String() + ")"
	case schema.Int, schema.Counter:
		return "an int64 (" + k.String() + ")"
	case schema.Float:
		return "a float64"
	case schema.Boolean:
		return "a bool"
	case schema.Bytes:
		return "a []byte"
	}
	return k.String()
}

// canonical converts a property read from Neo4j back to the canonical
// value of field f (the inverse of property).
func canonical(f *schema.Field, v any) (any, error) {
	switch f.Kind {
	case schema.List, schema.Set:
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: %T, want a list", f.Name, v)
		}
		out := make([]any, len(l))
		for i, e := range l {
			if f.Elem == schema.Bytes {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%s[%d]: %T, want a base64 string", f.Name, i, e)
				}
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return nil, fmt.Errorf("%s[%d]: %v", f.Name, i, err)
				}
				out[i] = b
				continue
			}
			x, err := canonicalScalar(f.Elem, e)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %v", f.Name, i, err)
			}
			out[i] = x
		}
		return out, nil
	}
	x, err := canonicalScalar(f.ScalarKind(), v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", f.Name, err)
	}
	return x, nil
}

func canonicalScalar(k schema.Kind, v any) (any, error) {
	if k == schema.DateTime {
		switch t := v.(type) {
		case time.Time:
			return t.UTC().Format(time.RFC3339Nano), nil
		case string: // written by someone else as ISO text
			p, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return nil, fmt.Errorf("DateTime %q: %v", t, err)
			}
			return p.UTC().Format(time.RFC3339Nano), nil
		}
		return nil, fmt.Errorf("%T, want a DATETIME", v)
	}
	if k == schema.Bytes {
		if b, ok := v.([]byte); ok {
			return b, nil
		}
	}
	return scalar(k, v)
}

// generic converts a property of no known field to a canonical-looking
// value (temporal values as RFC 3339 text).
func generic(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = generic(e)
		}
		return out
	}
	return v
}

// quote quotes a label, relationship type or property name for Cypher.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// RelationshipType is the type of the relationships a reference field
// makes: the field name in upper case (Book.author -> AUTHOR).
func RelationshipType(field string) string { return strings.ToUpper(field) }

// isRef tells whether f holds references (a reference, or a list or set of
// them).
func isRef(f *schema.Field) bool {
	return f.Kind == schema.Ref || ((f.Kind == schema.List || f.Kind == schema.Set) && f.Elem == schema.Ref)
}
