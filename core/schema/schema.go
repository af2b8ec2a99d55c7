package schema

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// ErrInvalid marks a schema text that cannot be used.
var ErrInvalid = errors.New("invalid schema")

// MaxTextBytes bounds a schema's text.
const MaxTextBytes = 256 << 10

// Kind is a field's type.
type Kind uint8

const (
	String Kind = iota + 1
	Int
	Float
	Boolean
	DateTime
	Bytes
	JSON
	Ref
	List
	Counter
	Set
)

var kindNames = map[Kind]string{String: "String", Int: "Int", Float: "Float", Boolean: "Boolean",
	DateTime: "DateTime", Bytes: "Bytes", JSON: "JSON", Ref: "reference", List: "list", Counter: "counter", Set: "set"}

var scalarKinds = map[string]Kind{"String": String, "ID": String, "Int": Int, "Float": Float, "Boolean": Boolean,
	"DateTime": DateTime, "Bytes": Bytes, "JSON": JSON}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Field is one typed field of a collection with its rules.
type Field struct {
	Name     string
	Kind     Kind
	Elem     Kind   // element kind of a List or Set
	Ref      string // referenced collection (Kind Ref, or Elem Ref)
	Required bool
	ValueRules
	Default any // canonical value, nil when none
	// Former are the names the field had in earlier schema versions
	// (@renamed(from: ...)); values written under them are its values.
	Former   []string
	Existing Policy // @existing(policy: ...): documents written before a tightened rule
	Type     *Type  // operator-defined type of the values (Kind or Elem its base), nil for built-ins
}

// ScalarKind is the kind of one value of the field: Elem for lists and sets,
// Int for counters, else Kind.
func (f *Field) ScalarKind() Kind {
	switch f.Kind {
	case List, Set:
		return f.Elem
	case Counter:
		return Int
	}
	return f.Kind
}

// Collection is a named set of fields, in declaration order, with who
// may write it and the rules its writes obey.
type Collection struct {
	Name   string
	Fields []*Field
	// Writers are the roles @write(roles: [...]) lets write the
	// collection (admin always may); nil when every role that writes may.
	Writers []string
	rules   [4]*Rule // by Action
	byName  map[string]*Field
}

// Rule returns the collection's rule for an action, nil when it has none.
func (c *Collection) Rule(a Action) *Rule {
	if int(a) >= len(c.rules) {
		return nil
	}
	return c.rules[a]
}

// Field looks a field up by name.
func (c *Collection) Field(name string) (*Field, bool) {
	f, ok := c.byName[name]
	return f, ok
}

// CheckRequired reports the first required field missing (or null) in the
// fields of a create.
func (c *Collection) CheckRequired(fields map[string]any) error {
	for _, f := range c.Fields {
		if f.Required && f.Default == nil {
			if v, ok := fields[f.Name]; !ok || v == nil {
				return fmt.Errorf("%s.%s is required", c.Name, f.Name)
			}
		}
	}
	return nil
}

// Schema is a parsed schema; ID addresses its text.
type Schema struct {
	ID          string
	Text        string
	Collections []*Collection
	// Roles are the roles the schema declares (extend schema
	// @roles(names: [...])), besides the built-in admin, writer, reader.
	Roles []string
	// Types are the operator-defined scalars and enums (types.go), in
	// declaration order.
	Types   []*Type
	types   map[string]*Type
	byName  map[string]*Collection
	indexed map[string][]string // collection -> fields rules look documents up by
	rules   int
}

// Collection looks a collection up by name.
func (s *Schema) Collection(name string) (*Collection, bool) {
	if s == nil {
		return nil, false
	}
	c, ok := s.byName[name]
	return c, ok
}

// TextID is the content address of a schema text: CIDv1, raw codec, SHA-256.
func TextID(text string) string {
	sum := sha256.Sum256([]byte(text))
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		panic(err) // cannot happen for a 32-byte SHA-256 digest
	}
	return cid.NewCidV1(cid.Raw, mh).String()
}

// Parse parses and checks schema text.
func Parse(text string) (s *Schema, err error) {
	if len(text) > MaxTextBytes {
		return nil, fmt.Errorf("%w: %d bytes of text, at most %d", ErrInvalid, len(text), MaxTextBytes)
	}
	doc, perr := parser.ParseSchemaWithLimit(&ast.Source{Name: "schema", Input: text}, 100000)
	if perr != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, perr)
	}
	defer func() { // ast.Value.Value panics on value kinds it does not know
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("%w: %v", ErrInvalid, p)
		}
	}()
	if len(doc.Schema)+len(doc.Extensions)+len(doc.DirectiveExtensions) > 0 {
		return nil, fmt.Errorf("%w: schema definitions and extensions are not supported (but extend schema @roles(names: [...]) declares roles)", ErrInvalid)
	}
	s = &Schema{ID: TextID(text), Text: text, byName: map[string]*Collection{}, indexed: map[string][]string{}, types: map[string]*Type{}}
	if err := s.parseRoles(doc.SchemaExtension); err != nil {
		return nil, err
	}
	var objects []*ast.Definition
	for _, d := range doc.Definitions {
		switch d.Kind {
		case ast.Object:
			if _, ok := scalarKinds[d.Name]; ok {
				return nil, fmt.Errorf("%w: type %s: the name is a built-in scalar", ErrInvalid, d.Name)
			}
			if _, dup := s.byName[d.Name]; dup {
				return nil, fmt.Errorf("%w: type %s is defined twice", ErrInvalid, d.Name)
			}
			if _, dup := s.types[d.Name]; dup {
				return nil, fmt.Errorf("%w: type %s is defined twice", ErrInvalid, d.Name)
			}
			if err := checkName("type", d.Name); err != nil {
				return nil, err
			}
			for _, dir := range d.Directives {
				if !typeDirectives[dir.Name] || (dir.Name == "collection" && len(dir.Arguments) > 0) {
					return nil, fmt.Errorf("%w: type %s: unknown directive @%s (types take @collection, @write, @create, @update, @delete)", ErrInvalid, d.Name, dir.Name)
				}
			}
			c := &Collection{Name: d.Name, byName: map[string]*Field{}}
			s.byName[d.Name] = c
			s.Collections = append(s.Collections, c)
			objects = append(objects, d)
		case ast.Scalar, ast.Enum:
			if _, dup := s.byName[d.Name]; dup {
				return nil, fmt.Errorf("%w: type %s is defined twice", ErrInvalid, d.Name)
			}
			if err := s.declareType(d); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: %s %s: only object types (collections), scalars and enums are supported", ErrInvalid, strings.ToLower(string(d.Kind)), d.Name)
		}
	}
	if len(s.Collections) == 0 {
		return nil, fmt.Errorf("%w: no collections (declare at least one type)", ErrInvalid)
	}
	for i, d := range objects {
		c := s.Collections[i]
		if len(d.Fields) == 0 {
			return nil, fmt.Errorf("%w: type %s has no fields", ErrInvalid, d.Name)
		}
		for _, fd := range d.Fields {
			f, err := s.field(d.Name, fd)
			if err != nil {
				return nil, fmt.Errorf("%w: %s.%s: %v", ErrInvalid, d.Name, fd.Name, err)
			}
			if _, dup := c.byName[f.Name]; dup {
				return nil, fmt.Errorf("%w: %s.%s is declared twice", ErrInvalid, d.Name, f.Name)
			}
			c.byName[f.Name] = f
			c.Fields = append(c.Fields, f)
		}
		if err := checkFormerNames(c); err != nil {
			return nil, err
		}
	}
	// Access and rules read the fields of every collection, so they come
	// once all are known.
	for i, d := range objects {
		if err := s.typeDirectives(s.Collections[i], d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func checkName(what, name string) error {
	if name == "id" || strings.HasPrefix(name, "_") {
		return fmt.Errorf("%w: %s name %q is reserved (\"id\" and names starting with \"_\")", ErrInvalid, what, name)
	}
	return nil
}

func (s *Schema) field(coll string, fd *ast.FieldDefinition) (*Field, error) {
	if err := checkName("field", fd.Name); err != nil {
		return nil, err
	}
	if len(fd.Arguments) > 0 || fd.DefaultValue != nil {
		return nil, errors.New("fields take no arguments")
	}
	f := &Field{Name: fd.Name, Required: fd.Type.NonNull}
	elemKind := func(t *ast.Type) (Kind, string, error) {
		if t.Elem != nil {
			return 0, "", errors.New("lists of lists are not supported")
		}
		if k, ok := scalarKinds[t.NamedType]; ok {
			return k, "", nil
		}
		if nt, ok := s.types[t.NamedType]; ok {
			f.Type = nt
			return nt.Kind, "", nil
		}
		if _, ok := s.byName[t.NamedType]; ok {
			return Ref, t.NamedType, nil
		}
		return 0, "", fmt.Errorf("unknown type %s", t.NamedType)
	}
	var err error
	if fd.Type.Elem != nil {
		f.Kind = List
		if f.Elem, f.Ref, err = elemKind(fd.Type.Elem); err != nil {
			return nil, err
		}
	} else if f.Kind, f.Ref, err = elemKind(fd.Type); err != nil {
		return nil, err
	}
	var defaultValue *ast.Value
	seen := map[string]bool{}
	for _, dir := range fd.Directives {
		if seen[dir.Name] {
			return nil, fmt.Errorf("@%s given twice", dir.Name)
		}
		seen[dir.Name] = true
		args, err := directiveArgs(dir)
		if err != nil {
			return nil, err
		}
		switch dir.Name {
		case "set":
			if f.Kind != List || len(args) > 0 {
				return nil, errors.New("@set takes no arguments and applies to a list type, e.g. [String!] @set")
			}
			f.Kind = Set
		case "counter":
			if f.Type != nil {
				return nil, fmt.Errorf("@counter applies to Int, not %s (a counter's total cannot be bounded under concurrent increments)", f.Type.Name)
			}
			if f.Kind != Int || len(args) > 0 {
				return nil, errors.New("@counter takes no arguments and applies to Int")
			}
			f.Kind = Counter
		case "length", "range", "pattern":
			if err := f.ValueRules.parse(dir.Name, args); err != nil {
				return nil, err
			}
		case "default":
			v, ok := dir.Arguments.ForName("value"), len(args) == 1
			if v == nil || !ok {
				return nil, errors.New("@default wants one argument value: ...")
			}
			defaultValue = v.Value
		case "renamed":
			if f.Former, err = renamedArg(args); err != nil {
				return nil, err
			}
		case "existing":
			if f.Existing, err = existingArg(args); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown directive @%s (known: @set @counter @length @range @pattern @default @renamed @existing)", dir.Name)
		}
	}
	sk := f.ScalarKind()
	if f.Type != nil && f.Type.IsEnum() && (f.Pattern != nil || f.Min != nil || f.Max != nil || (f.Kind != List && (f.MinLen != nil || f.MaxLen != nil))) {
		return nil, fmt.Errorf("an enum's values are its rule: %s takes no @length, @range or @pattern", f.Type.Name)
	}
	if f.MinLen != nil || f.MaxLen != nil {
		if f.Kind == Set || (f.Kind != List && sk != String && sk != Bytes) {
			return nil, fmt.Errorf("@length applies to strings, bytes and lists, not %s (a set's size cannot be bounded under concurrent adds)", f.Kind)
		}
	}
	if (f.Min != nil || f.Max != nil) && (f.Kind == Counter || (sk != Int && sk != Float)) {
		return nil, fmt.Errorf("@range applies to Int and Float fields and lists of them, not %s", f.Kind)
	}
	if f.Pattern != nil && sk != String {
		return nil, fmt.Errorf("@pattern applies to String fields, not %s", f.Kind)
	}
	if f.Kind == Set && f.Elem == JSON {
		return nil, errors.New("a set of JSON is not supported")
	}
	if f.Required && (f.Kind == Counter || f.Kind == Set) {
		return nil, fmt.Errorf("a %s cannot be required (it always has a value)", f.Kind)
	}
	if defaultValue != nil {
		if f.Kind == Counter || f.Kind == Set {
			return nil, fmt.Errorf("a %s takes no @default (it starts empty)", f.Kind)
		}
		raw, err := defaultValue.Value(nil)
		if err != nil {
			return nil, fmt.Errorf("@default: %v", err)
		}
		if f.Default, err = f.Normalize(fromGraphQL(raw)); err != nil {
			return nil, fmt.Errorf("@default: %v", err)
		}
		if f.Default == nil {
			return nil, errors.New("@default: null is not a default")
		}
		if err := f.Check(f.Default); err != nil {
			return nil, fmt.Errorf("@default: %v", err)
		}
	}
	return f, nil
}

func directiveArgs(dir *ast.Directive) (map[string]any, error) {
	out := map[string]any{}
	for _, a := range dir.Arguments {
		if _, dup := out[a.Name]; dup {
			return nil, fmt.Errorf("@%s: argument %s given twice", dir.Name, a.Name)
		}
		v, err := a.Value.Value(nil)
		if err != nil {
			return nil, fmt.Errorf("@%s(%s): %v", dir.Name, a.Name, err)
		}
		out[a.Name] = v
	}
	return out, nil
}

// ValueRules are the value rules a field and a named scalar share
// (@range, @length, @pattern), parsed and checked by the same code.
type ValueRules struct {
	Min, Max       *float64 // @range
	MinLen, MaxLen *int     // @length
	Pattern        *regexp.Regexp
}

// parse sets the rule of directive name ("length", "range" or "pattern").
func (r *ValueRules) parse(name string, args map[string]any) (err error) {
	switch name {
	case "length":
		r.MinLen, r.MaxLen, err = lengthArgs(args)
	case "range":
		r.Min, r.Max, err = rangeArgs(args)
	case "pattern":
		r.Pattern, err = patternArg(args)
	}
	return err
}

func lengthArgs(args map[string]any) (lo, hi *int, err error) {
	for name, v := range args {
		n, ok := v.(int64)
		if !ok || n < 0 || n > math.MaxInt32 {
			return nil, nil, fmt.Errorf("@length(%s): want a non-negative integer", name)
		}
		i := int(n)
		switch name {
		case "min":
			lo = &i
		case "max":
			hi = &i
		default:
			return nil, nil, fmt.Errorf("@length: unknown argument %s (min, max)", name)
		}
	}
	if lo == nil && hi == nil {
		return nil, nil, errors.New("@length wants min, max or both")
	}
	if lo != nil && hi != nil && *lo > *hi {
		return nil, nil, fmt.Errorf("@length: min %d is above max %d", *lo, *hi)
	}
	return lo, hi, nil
}

func rangeArgs(args map[string]any) (lo, hi *float64, err error) {
	for name, v := range args {
		var x float64
		switch n := v.(type) {
		case int64:
			x = float64(n)
		case float64:
			x = n
		default:
			return nil, nil, fmt.Errorf("@range(%s): want a number", name)
		}
		switch name {
		case "min":
			lo = &x
		case "max":
			hi = &x
		default:
			return nil, nil, fmt.Errorf("@range: unknown argument %s (min, max)", name)
		}
	}
	if lo == nil && hi == nil {
		return nil, nil, errors.New("@range wants min, max or both")
	}
	if lo != nil && hi != nil && *lo > *hi {
		return nil, nil, fmt.Errorf("@range: min %v is above max %v", *lo, *hi)
	}
	return lo, hi, nil
}

// fromGraphQL turns a parsed GraphQL literal into the JSON-like value
// Normalize accepts.
func fromGraphQL(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromGraphQL(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = fromGraphQL(e)
		}
		return out
	}
	return v
}
