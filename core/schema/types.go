package schema

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/vektah/gqlparser/v2/ast"
)

// MaxEnumValues bounds the values of one enum.
const MaxEnumValues = 1024

// Type is an operator-defined type: a named scalar (a built-in base kind
// with rules) or an enum (a closed set of names, stored as strings).
//
//	scalar Email @pattern(regex: "^[^@ ]+@[^@ ]+$") @length(max: 254)
//	scalar Percent @base(type: Float) @range(min: 0, max: 100)
//	enum LoanStatus { OPEN RETURNED LOST }
//
// A field of such a type has Kind (or Elem, in a list or set) the base
// kind and Field.Type set; Field.Check applies the type's rules to every
// value, in lists and sets element by element, besides the field's own.
type Type struct {
	Name string
	Kind Kind // base kind: String for an enum
	// Values are an enum's values in declaration order; nil for a scalar.
	Values []string
	// The rules of a scalar, the same as a field's and checked by the same
	// code, but always per value: @length counts a value's characters or
	// bytes, never a list's elements.
	ValueRules
	// Existing is @existing(policy: ...) on the declaration: what an
	// upgrade that tightens the type does to documents written before.
	Existing Policy
	values   map[string]bool
}

// IsEnum tells an enum from a named scalar.
func (t *Type) IsEnum() bool { return t.Values != nil }

// Has tells whether v is one of an enum's values.
func (t *Type) Has(v string) bool { return t.values[v] }

// Type looks an operator-defined type up by name.
func (s *Schema) Type(name string) (*Type, bool) {
	if s == nil {
		return nil, false
	}
	t, ok := s.types[name]
	return t, ok
}

// declareType parses a scalar or enum definition into s.Types. A
// declaration of a built-in scalar without directives is accepted and
// ignored (SDL tools like to see them).
func (s *Schema) declareType(d *ast.Definition) error {
	if _, builtin := scalarKinds[d.Name]; builtin {
		if d.Kind == ast.Scalar && len(d.Directives) == 0 {
			return nil
		}
		return fmt.Errorf("%w: %s %s: the name is a built-in scalar (declare a new name, e.g. scalar Age @base(type: Int) @range(min: 0))", ErrInvalid, strings.ToLower(string(d.Kind)), d.Name)
	}
	if err := checkName("type", d.Name); err != nil {
		return err
	}
	if _, dup := s.types[d.Name]; dup {
		return fmt.Errorf("%w: type %s is defined twice", ErrInvalid, d.Name)
	}
	var t *Type
	var err error
	if d.Kind == ast.Enum {
		t, err = parseEnum(d)
	} else {
		t, err = parseScalar(d)
	}
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrInvalid, strings.ToLower(string(d.Kind)), d.Name, err)
	}
	s.types[d.Name] = t
	s.Types = append(s.Types, t)
	return nil
}

func parseEnum(d *ast.Definition) (*Type, error) {
	var existing Policy
	for i, dir := range d.Directives {
		if dir.Name != "existing" || i > 0 {
			return nil, fmt.Errorf("unknown directive @%s (an enum takes only @existing(policy: ...) once: its values are its rule)", dir.Name)
		}
		args, err := directiveArgs(dir)
		if err != nil {
			return nil, err
		}
		if existing, err = existingArg(args); err != nil {
			return nil, err
		}
	}
	if len(d.EnumValues) == 0 {
		return nil, errors.New("an enum needs at least one value")
	}
	if len(d.EnumValues) > MaxEnumValues {
		return nil, fmt.Errorf("%d values, at most %d allowed", len(d.EnumValues), MaxEnumValues)
	}
	t := &Type{Name: d.Name, Kind: String, Values: make([]string, 0, len(d.EnumValues)), values: map[string]bool{}, Existing: existing}
	for _, v := range d.EnumValues {
		switch {
		case v.Name == "true" || v.Name == "false" || v.Name == "null":
			return nil, fmt.Errorf("value %s: true, false and null cannot be enum values", v.Name)
		case t.values[v.Name]:
			return nil, fmt.Errorf("value %s is declared twice", v.Name)
		case len(v.Directives) > 0:
			return nil, fmt.Errorf("value %s: enum values take no directives", v.Name)
		}
		t.values[v.Name] = true
		t.Values = append(t.Values, v.Name)
	}
	return t, nil
}

func parseScalar(d *ast.Definition) (*Type, error) {
	t := &Type{Name: d.Name, Kind: String}
	seen := map[string]bool{}
	for _, dir := range d.Directives {
		if seen[dir.Name] {
			return nil, fmt.Errorf("@%s given twice", dir.Name)
		}
		seen[dir.Name] = true
		args, err := directiveArgs(dir)
		if err != nil {
			return nil, err
		}
		switch dir.Name {
		case "base":
			name, ok := args["type"].(string)
			if !ok || len(args) != 1 {
				return nil, errors.New("@base wants one argument type: a built-in scalar, e.g. @base(type: Int)")
			}
			k, ok := scalarKinds[name]
			if !ok {
				return nil, fmt.Errorf("@base(type: %s): want a built-in scalar (String, Int, Float, Boolean, DateTime, Bytes, JSON); a scalar is never based on another named type", name)
			}
			t.Kind = k
		case "length", "range", "pattern":
			if err := t.ValueRules.parse(dir.Name, args); err != nil {
				return nil, err
			}
		case "existing":
			if t.Existing, err = existingArg(args); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown directive @%s (a scalar takes @base @length @range @pattern @existing)", dir.Name)
		}
	}
	if err := checkRuleKinds(t.Kind, t.MinLen != nil || t.MaxLen != nil, t.Min != nil || t.Max != nil, t.Pattern != nil); err != nil {
		if t.Kind == String && !seen["base"] {
			err = fmt.Errorf("%v (the base is String unless @base(type: ...) says otherwise)", err)
		}
		return nil, err
	}
	return t, nil
}

// patternArg compiles @pattern(regex: "...").
func patternArg(args map[string]any) (*regexp.Regexp, error) {
	re, ok := args["regex"].(string)
	if !ok || len(args) != 1 {
		return nil, errors.New(`@pattern wants one string argument regex: "..."`)
	}
	p, err := regexp.Compile(re)
	if err != nil {
		return nil, fmt.Errorf("@pattern: %v", err)
	}
	return p, nil
}

// checkRuleKinds says whether rules apply to values of kind k.
func checkRuleKinds(k Kind, length, rng, pattern bool) error {
	if length && k != String && k != Bytes {
		return fmt.Errorf("@length applies to String and Bytes, not %s", k)
	}
	if rng && k != Int && k != Float {
		return fmt.Errorf("@range applies to Int and Float, not %s", k)
	}
	if pattern && k != String {
		return fmt.Errorf("@pattern applies to String, not %s", k)
	}
	return nil
}

// check applies the type's rules to one canonical value of its base kind
// (which the caller has checked).
func (t *Type) check(v any) error {
	switch x := v.(type) {
	case string:
		if t.IsEnum() {
			if !t.values[x] {
				return fmt.Errorf("%q is not a value of enum %s (%s)", x, t.Name, t.valueList())
			}
			return nil
		}
		if err := checkLen(t.MinLen, t.MaxLen, utf8.RuneCountInString(x), "characters"); err != nil {
			return fmt.Errorf("%s: %v", t.Name, err)
		}
		if err := checkPattern(t.Pattern, x); err != nil {
			return fmt.Errorf("%s: %v", t.Name, err)
		}
	case []byte:
		if err := checkLen(t.MinLen, t.MaxLen, len(x), "bytes"); err != nil {
			return fmt.Errorf("%s: %v", t.Name, err)
		}
	case int64:
		if err := checkRange(t.Min, t.Max, float64(x)); err != nil {
			return fmt.Errorf("%s: %v", t.Name, err)
		}
	case float64:
		if err := checkRange(t.Min, t.Max, x); err != nil {
			return fmt.Errorf("%s: %v", t.Name, err)
		}
	}
	return nil
}

// valueList names an enum's values for an error, the first few of a long one.
func (t *Type) valueList() string {
	const show = 10
	if len(t.Values) <= show {
		return strings.Join(t.Values, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(t.Values[:show], ", "), len(t.Values)-show)
}

// checkTypeUpgrade decides whether next may replace prev: the same sort
// (enum or scalar) and base kind, and rules that accept every value they
// accepted before (an enum keeps its values and may gain more, a scalar's
// bounds only widen, a pattern is only dropped), unless next declares
// @existing(policy: keep|flag) for the documents written before.
func checkTypeUpgrade(prev, next *Type) error {
	if prev.IsEnum() != next.IsEnum() || prev.Kind != next.Kind {
		return fmt.Errorf("upgrade changes type %s from %s to %s", prev.Name, prev.describe(), next.describe())
	}
	why := TypeTightened(prev, next)
	if why == "" || next.Existing != PolicyNone {
		return nil
	}
	return fmt.Errorf("type %s: %s; declare what happens to documents written before on the type: %s %s @existing(policy: keep) or @existing(policy: flag)",
		prev.Name, why, map[bool]string{true: "enum", false: "scalar"}[next.IsEnum()], next.Name)
}

// TypeTightened says how next accepts fewer values than prev, "" when it
// does not. A changed pattern counts as tightened (regular languages are
// not compared). Every field of the type is concerned.
func TypeTightened(prev, next *Type) string {
	if prev.IsEnum() {
		var gone []string
		for _, v := range prev.Values {
			if !next.values[v] {
				gone = append(gone, v)
			}
		}
		if len(gone) > 0 {
			return fmt.Sprintf("enum %s loses value %s", prev.Name, strings.Join(gone, ", "))
		}
		return ""
	}
	return rulesTightened(prev.rules(), next.rules())
}

func typeName(f *Field) string {
	if f.Type == nil {
		return ""
	}
	return f.Type.Name
}

func (t *Type) describe() string {
	if t.IsEnum() {
		return "an enum"
	}
	return "a scalar based on " + t.Kind.String()
}
