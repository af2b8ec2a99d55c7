package core

import (
	"fmt"
	"unicode/utf8"
)

// MaxDocIDBytes bounds a document id.
const MaxDocIDBytes = 256

// CheckDocID enforces the document id syntax, the same on every replica
// and for every writer: 1 to 256 bytes of valid UTF-8, no control
// characters (U+0000–U+001F, U+007F–U+009F), no '/', and not "." or "..".
// Ids travel in URL paths, file names of exports and target keys, so the
// rule keeps them printable and unambiguous.
func CheckDocID(id string) error {
	if id == "" || len(id) > MaxDocIDBytes {
		return fmt.Errorf("document id %q: want 1 to %d bytes", truncate(id), MaxDocIDBytes)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("document id %q: not valid UTF-8", truncate(id))
	}
	if id == "." || id == ".." {
		return fmt.Errorf("document id %q is reserved", id)
	}
	for _, r := range id {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '/' {
			return fmt.Errorf("document id %q: control characters and '/' are not allowed", truncate(id))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// checkText requires every text of an op, names and values alike, to be
// valid UTF-8: CBOR text strings must be, so a change holding anything
// else could be signed and stored but never decoded again by anyone.
func (o *Op) checkText() error {
	for _, t := range []struct{ what, s string }{
		{"collection", o.Coll}, {"document id", o.Doc}, {"field", o.Field},
		{"role", o.Role}, {"schema", o.Schema}, {"name", o.Name},
	} {
		if !utf8.ValidString(t.s) {
			return fmt.Errorf("%s %q is not valid UTF-8", t.what, truncate(t.s))
		}
	}
	if err := checkValueText(o.Value); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	for i, f := range o.Reads {
		for _, t := range []string{f.Coll, f.Doc, f.Field} {
			if !utf8.ValidString(t) {
				return fmt.Errorf("attestation fact %d: %q is not valid UTF-8", i, truncate(t))
			}
		}
		if err := checkValueText(f.Value); err != nil {
			return fmt.Errorf("attestation fact %d: %w", i, err)
		}
	}
	for k, v := range o.Fields {
		if !utf8.ValidString(k) {
			return fmt.Errorf("field name %q is not valid UTF-8", truncate(k))
		}
		if err := checkValueText(v); err != nil {
			return fmt.Errorf("field %s: %w", k, err)
		}
	}
	return nil
}

// CheckValueText reports the first text in v (a canonical value, or a
// decoded JSON value: strings, lists, maps) that is not valid UTF-8.
func CheckValueText(v any) error { return checkValueText(v) }

// checkValueText walks a value for invalid UTF-8 text.
func checkValueText(v any) error {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return fmt.Errorf("text %q is not valid UTF-8", truncate(x))
		}
	case []any:
		for i, e := range x {
			if err := checkValueText(e); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) {
				return fmt.Errorf("key %q is not valid UTF-8", truncate(k))
			}
			if err := checkValueText(e); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	return nil
}
