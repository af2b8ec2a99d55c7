package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tributary-sync/tributary/core"
)

// Normalize turns a user value (decoded JSON, with or without UseNumber, or
// a GraphQL literal) into the field's canonical value. nil stays nil.
// DateTime accepts RFC 3339 text, Bytes accepts base64 text, JSON accepts
// any JSON value; sets come back sorted and without duplicates.
func (f *Field) Normalize(v any) (any, error) {
	if err := core.CheckValueText(v); err != nil {
		// Refused, never repaired: a JSON encoder would quietly turn the
		// bad bytes into U+FFFD and store something else than was sent.
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	if v == nil {
		if f.Kind == Set {
			return []any{}, nil
		}
		if f.Kind == Counter {
			return int64(0), nil
		}
		return nil, nil
	}
	switch f.Kind {
	case List, Set:
		l, ok := v.([]any)
		if !ok {
			return nil, f.typeError(v)
		}
		out := make([]any, 0, len(l))
		for i, e := range l {
			if e == nil {
				return nil, fmt.Errorf("%s[%d]: null is not allowed in a %s", f.Name, i, f.Kind)
			}
			n, err := normalizeScalar(f.Elem, e)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %v", f.Name, i, err)
			}
			out = append(out, n)
		}
		if f.Kind == Set {
			slices.SortFunc(out, core.CompareValues)
			out = slices.CompactFunc(out, func(a, b any) bool { return core.CompareValues(a, b) == 0 })
		}
		return out, nil
	}
	n, err := normalizeScalar(f.ScalarKind(), v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", f.Name, err)
	}
	return n, nil
}

func (f *Field) typeError(v any) error {
	return fmt.Errorf("%s: want %s, got %s", f.Name, f.describe(), describeValue(v))
}

func (f *Field) describe() string {
	switch f.Kind {
	case List, Set:
		return fmt.Sprintf("a %s of %s", f.Kind, f.label(f.Elem))
	}
	return f.label(f.Kind)
}

// label names the type of one value of the field: its operator-defined
// type if it has one.
func (f *Field) label(k Kind) string {
	if f.Type != nil {
		return f.Type.Name
	}
	return kindLabel(k, f.Ref)
}

func kindLabel(k Kind, ref string) string {
	if k == Ref {
		return "an id of " + ref
	}
	return k.String()
}

func describeValue(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int64, int:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case []byte:
		return "bytes"
	}
	return fmt.Sprintf("%T", v)
}

func normalizeScalar(k Kind, v any) (any, error) {
	bad := func() error { return fmt.Errorf("want %s, got %s", k, describeValue(v)) }
	switch k {
	case String, Ref:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Int:
		switch n := v.(type) {
		case int64:
			return n, nil
		case int:
			return int64(n), nil
		case json.Number:
			i, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("want a 64-bit integer, got %s", n)
			}
			return i, nil
		case float64:
			if n != math.Trunc(n) || math.Abs(n) >= 1<<63 {
				return nil, fmt.Errorf("want a 64-bit integer, got %v", n)
			}
			return int64(n), nil
		}
	case Float:
		var x float64
		switch n := v.(type) {
		case float64:
			x = n
		case int64:
			x = float64(n)
		case int:
			x = float64(n)
		case json.Number:
			var err error
			if x, err = strconv.ParseFloat(string(n), 64); err != nil {
				return nil, fmt.Errorf("want a number, got %s", n)
			}
		default:
			return nil, bad()
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("want a finite number")
		}
		return x, nil
	case Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case DateTime:
		s, ok := v.(string)
		if !ok {
			return nil, bad()
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("want an RFC 3339 date-time such as 2024-05-01T12:00:00Z, got %q", s)
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	case Bytes:
		switch b := v.(type) {
		case []byte:
			return b, nil
		case string:
			out, err := base64.StdEncoding.DecodeString(b)
			if err != nil {
				if out, err = base64.RawStdEncoding.DecodeString(b); err != nil {
					return nil, fmt.Errorf("want base64 bytes: %v", err)
				}
			}
			return out, nil
		}
	case JSON:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, fmt.Errorf("want a JSON value: %v", err)
		}
		return string(bytes.TrimRight(buf.Bytes(), "\n")), nil
	}
	return nil, bad()
}

// Check validates a canonical value against the field's type and rules.
// nil (clearing the field) is refused for required fields.
func (f *Field) Check(v any) error {
	if v == nil {
		if f.Required {
			return fmt.Errorf("%s is required and cannot be cleared", f.Name)
		}
		return nil
	}
	switch f.Kind {
	case List, Set:
		l, ok := v.([]any)
		if !ok {
			return f.typeError(v)
		}
		if f.Kind == List {
			if err := f.checkLen(len(l), "elements"); err != nil {
				return err
			}
		}
		for i, e := range l {
			if err := f.checkScalar(f.Elem, e); err != nil {
				return fmt.Errorf("%s[%d]: %v", f.Name, i, err)
			}
		}
		return nil
	}
	if err := f.checkScalar(f.ScalarKind(), v); err != nil {
		return fmt.Errorf("%s: %v", f.Name, err)
	}
	return nil
}

func (f *Field) checkLen(n int, unit string) error {
	if err := checkLen(f.MinLen, f.MaxLen, n, unit); err != nil {
		return fmt.Errorf("%s: %v", f.Name, err)
	}
	return nil
}

// checkLen, checkRange and checkPattern are the rules @length, @range and
// @pattern, for fields and named scalars alike.
func checkLen(lo, hi *int, n int, unit string) error {
	if lo != nil && n < *lo {
		return fmt.Errorf("%d %s, at least %d allowed", n, unit, *lo)
	}
	if hi != nil && n > *hi {
		return fmt.Errorf("%d %s, at most %d allowed", n, unit, *hi)
	}
	return nil
}

func checkRange(lo, hi *float64, x float64) error {
	if lo != nil && x < *lo {
		return fmt.Errorf("%v is below the minimum %v", x, *lo)
	}
	if hi != nil && x > *hi {
		return fmt.Errorf("%v is above the maximum %v", x, *hi)
	}
	return nil
}

func checkPattern(p *regexp.Regexp, s string) error {
	if p != nil && !p.MatchString(s) {
		return fmt.Errorf("%q does not match the pattern %s", s, p)
	}
	return nil
}

func (f *Field) checkScalar(k Kind, v any) error {
	bad := func() error { return fmt.Errorf("want %s, got %s", f.label(k), describeValue(v)) }
	scalar := f.Kind != List && f.Kind != Set
	switch k {
	case String:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if !utf8.ValidString(s) {
			return errors.New("text is not valid UTF-8")
		}
		if scalar {
			if err := f.checkLen(utf8.RuneCountInString(s), "characters"); err != nil {
				return err
			}
		}
		if err := checkPattern(f.Pattern, s); err != nil {
			return err
		}
	case Ref:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if s == "" || len(s) > 256 {
			return fmt.Errorf("reference %q: want an id of 1 to 256 bytes", s)
		}
	case Int:
		n, ok := v.(int64)
		if !ok {
			return bad()
		}
		if err := checkRange(f.Min, f.Max, float64(n)); err != nil {
			return err
		}
	case Float:
		x, ok := v.(float64)
		if !ok {
			return bad()
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("want a finite number")
		}
		if err := checkRange(f.Min, f.Max, x); err != nil {
			return err
		}
	case Boolean:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case DateTime:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || t.UTC().Format(time.RFC3339Nano) != s {
			return fmt.Errorf("%q is not a canonical UTC RFC 3339 date-time", s)
		}
	case Bytes:
		b, ok := v.([]byte)
		if !ok {
			return bad()
		}
		if scalar {
			if err := f.checkLen(len(b), "bytes"); err != nil {
				return err
			}
		}
	case JSON:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if !json.Valid([]byte(s)) {
			return errors.New("not valid JSON text")
		}
	default:
		return bad()
	}
	if f.Type != nil {
		return f.Type.check(v)
	}
	return nil
}
