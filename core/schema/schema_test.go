package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
)

func mustParse(t *testing.T, text string) *Schema {
	t.Helper()
	s, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, text)
	}
	return s
}

func mustField(t *testing.T, s *Schema, coll, name string) *Field {
	t.Helper()
	c, ok := s.Collection(coll)
	if !ok {
		t.Fatalf("no collection %s", coll)
	}
	f, ok := c.Field(name)
	if !ok {
		t.Fatalf("no field %s.%s", coll, name)
	}
	return f
}

// decodeJSON decodes text the way an API would: with json.Number.
func decodeJSON(t *testing.T, text string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", text, err)
	}
	return v
}

func fp(x float64) *float64 { return &x }
func ip(n int) *int         { return &n }

func eqFloatPtr(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func eqIntPtr(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func showF(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func showI(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// wantField describes the expected shape of one parsed field.
type wantField struct {
	name       string
	kind, elem Kind
	ref        string
	required   bool
	minLen     *int
	maxLen     *int
	min, max   *float64
	pattern    string
	def        any
}

func checkFields(t *testing.T, c *Collection, want []wantField) {
	t.Helper()
	if len(c.Fields) != len(want) {
		names := []string{}
		for _, f := range c.Fields {
			names = append(names, f.Name)
		}
		t.Fatalf("%s: fields %v, want %d fields", c.Name, names, len(want))
	}
	for i, w := range want {
		f := c.Fields[i]
		if f.Name != w.name {
			t.Errorf("%s field %d: name %q, want %q (declaration order)", c.Name, i, f.Name, w.name)
			continue
		}
		if g, ok := c.Field(w.name); !ok || g != f {
			t.Errorf("%s.%s: Field lookup does not return the declared field", c.Name, w.name)
		}
		if f.Kind != w.kind {
			t.Errorf("%s.%s: kind %v, want %v", c.Name, w.name, f.Kind, w.kind)
		}
		if f.Elem != w.elem {
			t.Errorf("%s.%s: elem %v, want %v", c.Name, w.name, f.Elem, w.elem)
		}
		if f.Ref != w.ref {
			t.Errorf("%s.%s: ref %q, want %q", c.Name, w.name, f.Ref, w.ref)
		}
		if f.Required != w.required {
			t.Errorf("%s.%s: required %v, want %v", c.Name, w.name, f.Required, w.required)
		}
		if !eqIntPtr(f.MinLen, w.minLen) || !eqIntPtr(f.MaxLen, w.maxLen) {
			t.Errorf("%s.%s: length [%v, %v], want [%v, %v]", c.Name, w.name,
				showI(f.MinLen), showI(f.MaxLen), showI(w.minLen), showI(w.maxLen))
		}
		if !eqFloatPtr(f.Min, w.min) || !eqFloatPtr(f.Max, w.max) {
			t.Errorf("%s.%s: range [%v, %v], want [%v, %v]", c.Name, w.name,
				showF(f.Min), showF(f.Max), showF(w.min), showF(w.max))
		}
		switch {
		case w.pattern == "" && f.Pattern != nil:
			t.Errorf("%s.%s: pattern %s, want none", c.Name, w.name, f.Pattern)
		case w.pattern != "" && (f.Pattern == nil || f.Pattern.String() != w.pattern):
			t.Errorf("%s.%s: pattern %v, want %s", c.Name, w.name, f.Pattern, w.pattern)
		}
		if !reflect.DeepEqual(f.Default, w.def) {
			t.Errorf("%s.%s: default %#v, want %#v", c.Name, w.name, f.Default, w.def)
		}
	}
}

func TestParseLibrary(t *testing.T) {
	text, err := os.ReadFile("../replica/testdata/library.graphql")
	if err != nil {
		t.Fatal(err)
	}
	s := mustParse(t, string(text))
	if s.Text != string(text) {
		t.Error("Text is not the parsed text")
	}
	if s.ID != TextID(string(text)) {
		t.Errorf("ID %s, want TextID %s", s.ID, TextID(string(text)))
	}
	var names []string
	for _, c := range s.Collections {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"Author", "Book"}) {
		t.Fatalf("collections %v, want [Author Book]", names)
	}
	if _, ok := s.Collection("Nope"); ok {
		t.Error("Collection(Nope) found")
	}
	author, _ := s.Collection("Author")
	checkFields(t, author, []wantField{
		{name: "name", kind: String, required: true, minLen: ip(1), maxLen: ip(200)},
		{name: "born", kind: DateTime},
	})
	book, _ := s.Collection("Book")
	checkFields(t, book, []wantField{
		{name: "title", kind: String, required: true, minLen: ip(1), maxLen: ip(500)},
		{name: "year", kind: Int, min: fp(-3000), max: fp(3000)},
		{name: "price", kind: Float, min: fp(0)},
		{name: "author", kind: Ref, ref: "Author"},
		{name: "tags", kind: Set, elem: String},
		{name: "likes", kind: Counter},
		{name: "meta", kind: JSON},
	})
	if _, ok := book.Field("nope"); ok {
		t.Error("Field(nope) found")
	}
}

const allKinds = `
scalar DateTime
scalar Bytes
scalar JSON

"""A person."""
type Person @collection {
  name: String! @length(min: 2, max: 10) @pattern(regex: "^[A-Z]")
  age: Int @range(min: 0, max: 150)
  score: Float @range(min: -1.5, max: 1.5)
  active: Boolean
  born: DateTime
  avatar: Bytes @length(max: 4)
  extra: JSON
  friend: Person
  friends: [Person!]
  scores: [Int!] @range(min: 0, max: 10) @length(max: 3)
  tags: [String!] @pattern(regex: "^#") @length(max: 2)
  labels: [String!] @set
  numbers: [Int] @set
  visits: Int @counter
  code: ID
  pet: Pet
  nickname: String @default(value: "anon")
  level: Int! @default(value: 3)
  ratio: Float @default(value: 2)
  verified: Boolean @default(value: true)
  since: DateTime @default(value: "2024-05-01T14:00:00.500+02:00")
  key: Bytes @default(value: "AQID")
  settings: JSON @default(value: {b: 1, a: [true, null, "x"], c: {}})
  roles: [String!] @default(value: ["user", "admin"])
  empty: [Int!] @default(value: [])
}

type Pet {
  kind: String!
  owner: Person!
}
`

func TestParseAllKinds(t *testing.T) {
	s := mustParse(t, allKinds)
	if len(s.Collections) != 2 || s.Collections[0].Name != "Person" || s.Collections[1].Name != "Pet" {
		t.Fatalf("collections %v", s.Collections)
	}
	checkFields(t, s.Collections[0], []wantField{
		{name: "name", kind: String, required: true, minLen: ip(2), maxLen: ip(10), pattern: "^[A-Z]"},
		{name: "age", kind: Int, min: fp(0), max: fp(150)},
		{name: "score", kind: Float, min: fp(-1.5), max: fp(1.5)},
		{name: "active", kind: Boolean},
		{name: "born", kind: DateTime},
		{name: "avatar", kind: Bytes, maxLen: ip(4)},
		{name: "extra", kind: JSON},
		{name: "friend", kind: Ref, ref: "Person"},
		{name: "friends", kind: List, elem: Ref, ref: "Person"},
		{name: "scores", kind: List, elem: Int, min: fp(0), max: fp(10), maxLen: ip(3)},
		{name: "tags", kind: List, elem: String, pattern: "^#", maxLen: ip(2)},
		{name: "labels", kind: Set, elem: String},
		{name: "numbers", kind: Set, elem: Int},
		{name: "visits", kind: Counter},
		{name: "code", kind: String},
		{name: "pet", kind: Ref, ref: "Pet"},
		{name: "nickname", kind: String, def: "anon"},
		{name: "level", kind: Int, required: true, def: int64(3)},
		{name: "ratio", kind: Float, def: float64(2)},
		{name: "verified", kind: Boolean, def: true},
		{name: "since", kind: DateTime, def: "2024-05-01T12:00:00.5Z"},
		{name: "key", kind: Bytes, def: []byte{1, 2, 3}},
		{name: "settings", kind: JSON, def: `{"a":[true,null,"x"],"b":1,"c":{}}`},
		{name: "roles", kind: List, elem: String, def: []any{"user", "admin"}},
		{name: "empty", kind: List, elem: Int, def: []any{}},
	})
	checkFields(t, s.Collections[1], []wantField{
		{name: "kind", kind: String, required: true},
		{name: "owner", kind: Ref, ref: "Person", required: true},
	})
}

func TestScalarKindAndString(t *testing.T) {
	s := mustParse(t, allKinds)
	for _, tc := range []struct {
		field string
		want  Kind
	}{
		{"name", String}, {"age", Int}, {"friend", Ref}, {"friends", Ref},
		{"scores", Int}, {"labels", String}, {"visits", Int}, {"extra", JSON},
	} {
		if got := mustField(t, s, "Person", tc.field).ScalarKind(); got != tc.want {
			t.Errorf("%s.ScalarKind() = %v, want %v", tc.field, got, tc.want)
		}
	}
	for k, want := range map[Kind]string{String: "String", Ref: "reference", List: "list",
		Counter: "counter", Set: "set", Kind(0): "kind(0)", Kind(99): "kind(99)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func TestSchemaID(t *testing.T) {
	a := "type A { x: String }"
	tests := []struct {
		name string
		x, y string
		same bool
	}{
		{"same text", a, a, true},
		{"extra space", a, "type A {  x: String }", false},
		{"trailing newline", a, a + "\n", false},
		{"different field", a, "type A { y: String }", false},
		{"different type", a, "type A { x: Int }", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sx, sy := mustParse(t, tc.x), mustParse(t, tc.y)
			for _, id := range []string{sx.ID, sy.ID} {
				if !strings.HasPrefix(id, "b") || len(id) < 50 {
					t.Errorf("ID %q is not a base32 CIDv1", id)
				}
				if strings.ToLower(id) != id {
					t.Errorf("ID %q is not lower-case base32", id)
				}
			}
			if (sx.ID == sy.ID) != tc.same {
				t.Errorf("IDs %s and %s: same=%v, want %v", sx.ID, sy.ID, sx.ID == sy.ID, tc.same)
			}
			if sx.ID != TextID(tc.x) || sy.ID != TextID(tc.y) {
				t.Error("ID differs from TextID of the text")
			}
		})
	}
	// A known value pins the encoding (CIDv1, raw codec 0x55, SHA-256).
	if got, want := TextID(""), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"; got != want {
		t.Errorf("TextID(\"\") = %s, want %s", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"syntax error", "type A { x: String", []string{"schema:1"}},
		{"syntax garbage", "type A { x: String } }}}", []string{"Unexpected"}},
		{"unknown type", "type A { x: Foo }", []string{"A.x", "unknown type Foo"}},
		{"unknown list type", "type A { x: [Foo!] }", []string{"A.x", "unknown type Foo"}},
		{"unknown directive", "type A { x: String @foo }", []string{"A.x", "unknown directive @foo"}},
		{"unknown type directive", "type A @foo { x: String }", []string{"type A", "unknown directive @foo"}},
		{"collection with arguments", "type A @collection(x: 1) { x: String }", []string{"unknown directive @collection"}},
		{"set on non-list", "type A { x: String @set }", []string{"A.x", "@set"}},
		{"set with arguments", "type A { x: [String] @set(a: 1) }", []string{"A.x", "@set takes no arguments"}},
		{"counter on Float", "type A { x: Float @counter }", []string{"A.x", "@counter"}},
		{"counter on list", "type A { x: [Int] @counter }", []string{"A.x", "@counter"}},
		{"range on String", "type A { x: String @range(min: 1) }", []string{"A.x", "@range applies to Int and Float"}},
		{"range on counter", "type A { x: Int @counter @range(min: 1) }", []string{"A.x", "@range applies"}},
		{"range not a number", `type A { x: Int @range(min: "a") }`, []string{"A.x", "@range(min): want a number"}},
		{"range unknown argument", "type A { x: Int @range(low: 1) }", []string{"A.x", "unknown argument low"}},
		{"range min above max", "type A { x: Int @range(min: 5, max: 1) }", []string{"A.x", "min 5 is above max 1"}},
		{"length on Int", "type A { x: Int @length(max: 3) }", []string{"A.x", "@length applies to strings, bytes and lists"}},
		{"length on set", "type A { x: [String!] @set @length(max: 3) }", []string{"A.x", "@length applies"}},
		{"length negative", "type A { x: String @length(min: -1) }", []string{"A.x", "@length(min): want a non-negative integer"}},
		{"length float", "type A { x: String @length(max: 1.5) }", []string{"A.x", "@length(max)"}},
		{"length min above max", "type A { x: String @length(min: 5, max: 1) }", []string{"A.x", "min 5 is above max 1"}},
		{"pattern bad regex", `type A { x: String @pattern(regex: "a(") }`, []string{"A.x", "@pattern", "missing closing )"}},
		{"pattern not a string", `type A { x: String @pattern(regex: 5) }`, []string{"A.x", "@pattern wants one string argument"}},
		{"pattern on Int", `type A { x: Int @pattern(regex: "a") }`, []string{"A.x", "@pattern applies to String"}},
		{"directive twice", `type A { x: String @pattern(regex: "a") @pattern(regex: "b") }`, []string{"A.x", "@pattern given twice"}},
		{"argument twice", "type A { x: Int @range(min: 1, min: 2) }", []string{"A.x", "argument min given twice"}},
		{"duplicate field", "type A { x: String x: Int }", []string{"A.x is declared twice"}},
		{"duplicate type", "type A { x: String } type A { y: String }", []string{"type A is defined twice"}},
		{"field named id", "type A { id: String }", []string{"A.id", `"id"`, "reserved"}},
		{"field starting _", "type A { _x: String }", []string{"A._x", "reserved"}},
		{"type starting _", "type _A { x: String }", []string{`"_A"`, "reserved"}},
		{"type named like a scalar", "type Int { x: String }", []string{"type Int", "built-in scalar"}},
		{"field arguments", "type A { x(a: Int): String }", []string{"A.x", "fields take no arguments"}},
		{"interface", "interface Node { x: String } type A { x: String }", []string{"interface Node", "only object types"}},
		{"input", "input In { x: String } type A { x: String }", []string{"In", "only object types"}},
		{"union", "union U = A type A { x: String }", []string{"union U", "only object types"}},
		{"schema definition", "schema { query: A } type A { x: String }", []string{"schema definitions and extensions"}},
		{"type extension", "type A { x: String } extend type A { y: Int }", []string{"extensions are not supported"}},
		{"no types", "", []string{"no collections"}},
		{"only comments", "# nothing here\n", []string{"no collections"}},
		{"only scalars", "scalar JSON", []string{"no collections"}},
		{"type without fields", "type A", []string{"type A has no fields"}},
		{"required counter", "type A { x: Int! @counter }", []string{"A.x", "a counter cannot be required"}},
		{"required set", "type A { x: [String!]! @set }", []string{"A.x", "a set cannot be required"}},
		{"set of JSON", "type A { x: [JSON!] @set }", []string{"A.x", "set of JSON"}},
		{"lists of lists", "type A { x: [[String!]] }", []string{"A.x", "lists of lists are not supported"}},
		{"default wrong type", `type A { x: Int @default(value: "a") }`, []string{"A.x", "@default", "want Int, got a string"}},
		{"default non-integral Int", `type A { x: Int @default(value: 1.5) }`, []string{"A.x", "@default", "64-bit integer"}},
		{"default bad date", `type A { x: DateTime @default(value: "yesterday") }`, []string{"A.x", "@default", "RFC 3339"}},
		{"default bad base64", `type A { x: Bytes @default(value: "!!") }`, []string{"A.x", "@default", "base64"}},
		{"default null", "type A { x: String @default(value: null) }", []string{"A.x", "null is not a default"}},
		{"default variable", "type A { x: String @default(value: $v) }", []string{"Unexpected $"}},
		{"default null in list", "type A { x: [Int] @default(value: [1, null]) }", []string{"A.x", "x[1]: null"}},
		{"default out of range", "type A { x: Int @range(max: 5) @default(value: 9) }", []string{"A.x", "@default", "above the maximum 5"}},
		{"default too long", `type A { x: String @length(max: 2) @default(value: "abc") }`, []string{"A.x", "@default", "at most 2"}},
		{"default pattern mismatch", `type A { x: String @pattern(regex: "^a") @default(value: "b") }`, []string{"A.x", "@default", "does not match"}},
		{"default on counter", "type A { x: Int @counter @default(value: 1) }", []string{"A.x", "counter takes no @default"}},
		{"default on set", `type A { x: [String!] @set @default(value: ["a"]) }`, []string{"A.x", "set takes no @default"}},
		{"default without value", "type A { x: Int @default(v: 1) }", []string{"A.x", "@default wants one argument value"}},
		{"default empty reference", `type A { x: A @default(value: "") }`, []string{"A.x", "@default", "reference"}},
		{"int overflow", "type A { x: Int @range(max: 99999999999999999999) }", []string{"A.x", "@range(max)"}},
		{"too long", "type A { x: String }" + strings.Repeat(" ", MaxTextBytes), []string{"bytes of text"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.text)
			if err == nil {
				t.Fatalf("Parse succeeded (%d collections), want an error", len(s.Collections))
			}
			if s != nil {
				t.Error("Parse returned a schema with its error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	// Edge cases that are valid.
	tests := []struct{ name, text string }{
		{"no @collection", "type A { x: String }"},
		{"forward reference", "type A { b: B } type B { x: String }"},
		{"self reference list", "type A { kids: [A!] }"},
		{"built-in scalar declarations", "scalar String scalar ID type A { x: ID }"},
		{"comments and descriptions", "# c\n\"\"\"doc\"\"\" type A { \"f\" x: String # c\n }"},
		{"length zero", "type A { x: String @length(min: 0, max: 0) }"},
		{"length on bytes", "type A { x: Bytes @length(min: 1) }"},
		{"range float bounds", "type A { x: Float @range(min: -0.5, max: 1e3) }"},
		{"range on list", "type A { x: [Float!] @range(max: 1) }"},
		{"pattern on set", `type A { x: [String!] @set @pattern(regex: "^a") }`},
		{"just under the size limit", "type A { x: String }" + strings.Repeat(" ", MaxTextBytes-20)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.text); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

const valueSchema = `
type T {
  name: String! @length(min: 2, max: 10) @pattern(regex: "^[A-Z]")
  text: String
  age: Int @range(min: 0, max: 150)
  score: Float @range(min: -1.5, max: 1.5)
  ok: Boolean
  at: DateTime
  blob: Bytes @length(max: 4)
  data: JSON
  ref: T
  refs: [T!]
  scores: [Int!] @range(min: 0, max: 10) @length(min: 1, max: 3)
  tags: [String!] @pattern(regex: "^#") @length(max: 2)
  labels: [String!] @set
  ints: [Int!] @set
  blobs: [Bytes!] @set
  visits: Int @counter
  level: Int! @default(value: 1)
}
`

func TestNormalize(t *testing.T) {
	s := mustParse(t, valueSchema)
	tests := []struct {
		name  string
		field string
		in    any
		want  any
		err   string // substring; "" means success
	}{
		{"nil optional", "text", nil, nil, ""},
		{"nil required stays nil", "name", nil, nil, ""},
		{"nil set is empty", "labels", nil, []any{}, ""},
		{"nil counter is zero", "visits", nil, int64(0), ""},
		{"string", "text", "héllo", "héllo", ""},
		{"string from number", "text", json.Number("1"), nil, "text: want String, got a number"},
		{"int json.Number", "age", decodeJSON(t, "42"), int64(42), ""},
		{"int json.Number negative", "age", decodeJSON(t, "-7"), int64(-7), ""},
		{"int json.Number min", "age", json.Number("-9223372036854775808"), int64(math.MinInt64), ""},
		{"int json.Number overflow", "age", json.Number("9223372036854775808"), nil, "age: want a 64-bit integer"},
		{"int json.Number fraction", "age", decodeJSON(t, "1.5"), nil, "age: want a 64-bit integer, got 1.5"},
		{"int json.Number exponent", "age", decodeJSON(t, "1e3"), nil, "age: want a 64-bit integer"},
		{"int float64 integral", "age", float64(3), int64(3), ""},
		{"int float64 negative integral", "age", float64(-12), int64(-12), ""},
		{"int float64 fraction", "age", 3.5, nil, "age: want a 64-bit integer, got 3.5"},
		{"int float64 huge", "age", 1e19, nil, "age: want a 64-bit integer"},
		{"int float64 NaN", "age", math.NaN(), nil, "age: want a 64-bit integer"},
		{"int float64 Inf", "age", math.Inf(1), nil, "age: want a 64-bit integer"},
		{"int int", "age", 7, int64(7), ""},
		{"int int64", "age", int64(8), int64(8), ""},
		{"int string", "age", "7", nil, "age: want Int, got a string"},
		{"int bool", "age", true, nil, "age: want Int, got a boolean"},
		{"float json.Number", "score", decodeJSON(t, "0.25"), 0.25, ""},
		{"float json.Number integer", "score", decodeJSON(t, "1"), float64(1), ""},
		{"float json.Number exponent", "score", decodeJSON(t, "-1e-2"), -0.01, ""},
		{"float json.Number overflow", "score", json.Number("1e400"), nil, "score: want a number"},
		{"float int64", "score", int64(4), float64(4), ""},
		{"float int", "score", 5, float64(5), ""},
		{"float NaN", "score", math.NaN(), nil, "score: want a finite number"},
		{"float Inf", "score", math.Inf(-1), nil, "score: want a finite number"},
		{"float string", "score", "1.0", nil, "score: want Float, got a string"},
		{"bool", "ok", true, true, ""},
		{"bool string", "ok", "true", nil, "ok: want Boolean, got a string"},
		{"datetime UTC", "at", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z", ""},
		{"datetime offset to UTC", "at", "2024-05-01T14:30:00+02:00", "2024-05-01T12:30:00Z", ""},
		{"datetime negative offset crosses day", "at", "2024-12-31T23:30:00.250-01:00", "2025-01-01T00:30:00.25Z", ""},
		{"datetime trailing zeros trimmed", "at", "2024-05-01T12:00:00.000000000Z", "2024-05-01T12:00:00Z", ""},
		{"datetime nanoseconds", "at", "2024-05-01T12:00:00.123456789Z", "2024-05-01T12:00:00.123456789Z", ""},
		{"datetime date only", "at", "2024-05-01", nil, "at: want an RFC 3339 date-time"},
		{"datetime number", "at", json.Number("1714564800"), nil, "at: want DateTime, got a number"},
		{"bytes base64", "blob", "AQID", []byte{1, 2, 3}, ""},
		{"bytes base64 padded", "blob", "AQI=", []byte{1, 2}, ""},
		{"bytes base64 raw", "blob", "AQI", []byte{1, 2}, ""},
		{"bytes empty", "blob", "", []byte{}, ""},
		{"bytes passthrough", "blob", []byte{9}, []byte{9}, ""},
		{"bytes bad base64", "blob", "!!!", nil, "blob: want base64 bytes"},
		{"bytes number", "blob", json.Number("1"), nil, "blob: want Bytes, got a number"},
		{"json object sorted compact", "data",
			decodeJSON(t, `{ "b": 1, "a": { "d": [1, 2.50, "x"], "c": "x<y&z" }, "0": null }`),
			`{"0":null,"a":{"c":"x<y&z","d":[1,2.50,"x"]},"b":1}`, ""},
		{"json string", "data", "hi", `"hi"`, ""},
		{"json number", "data", decodeJSON(t, "12345678901234567890"), "12345678901234567890", ""},
		{"json bool", "data", false, "false", ""},
		{"json list", "data", decodeJSON(t, `[ {"z":1,"y":2} ]`), `[{"y":2,"z":1}]`, ""},
		{"json NaN", "data", math.NaN(), nil, "data: want a JSON value"},
		{"ref", "ref", "doc-1", "doc-1", ""},
		{"ref number", "ref", json.Number("1"), nil, "ref: want reference, got a number"},
		{"list of refs", "refs", decodeJSON(t, `["b", "a", "b"]`), []any{"b", "a", "b"}, ""},
		{"list of ints fraction literal", "scores", decodeJSON(t, `[3, 1, 3.0]`), nil, "scores[2]: want a 64-bit integer"},
		{"list of ints", "scores", decodeJSON(t, `[3, 1, 3]`), []any{int64(3), int64(1), int64(3)}, ""},
		{"list empty", "scores", decodeJSON(t, `[]`), []any{}, ""},
		{"list null element", "refs", decodeJSON(t, `["a", null]`), nil, "refs[1]: null is not allowed in a list"},
		{"list wrong element", "scores", decodeJSON(t, `[1, "2"]`), nil, "scores[1]: want Int, got a string"},
		{"list not a list", "scores", json.Number("1"), nil, "scores: want a list of Int, got a number"},
		{"list of refs not a list", "refs", "a", nil, "refs: want a list of an id of T, got a string"},
		{"set sorted deduplicated", "labels", decodeJSON(t, `["b", "a", "c", "b", "a"]`), []any{"a", "b", "c"}, ""},
		{"set of ints exponent literal", "ints", decodeJSON(t, `[10, -1, 2, 10, 2.0e0]`), nil, "ints[4]: want a 64-bit integer"},
		{"set of ints", "ints", decodeJSON(t, `[10, -1, 2, 10]`), []any{int64(-1), int64(2), int64(10)}, ""},
		{"set of bytes", "blobs", decodeJSON(t, `["Ag==", "AQ==", "Ag=="]`), []any{[]byte{1}, []byte{2}}, ""},
		{"set empty", "labels", decodeJSON(t, `[]`), []any{}, ""},
		{"set null element", "labels", []any{"a", nil}, nil, "labels[1]: null is not allowed in a set"},
		{"set not a list", "labels", "a", nil, "labels: want a set of String, got a string"},
		{"set object", "labels", decodeJSON(t, `{"a":1}`), nil, "labels: want a set of String, got an object"},
		{"counter", "visits", json.Number("5"), int64(5), ""},
		{"counter fraction", "visits", 0.5, nil, "visits: want a 64-bit integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mustField(t, s, "T", tc.field)
			got, err := f.Normalize(tc.in)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("Normalize(%#v) = %#v, want error %q", tc.in, got, tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Normalize(%#v) error %q, want it to contain %q", tc.in, err, tc.err)
				}
				if got != nil {
					t.Errorf("Normalize returned %#v with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(%#v): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Normalize(%#v) = %#v (%T), want %#v (%T)", tc.in, got, got, tc.want, tc.want)
			}
			// Normalizing a canonical value again changes nothing (except
			// Bytes and JSON, whose canonical forms are not their inputs).
			if f.ScalarKind() != Bytes && f.ScalarKind() != JSON && got != nil {
				again, err := f.Normalize(got)
				if err != nil || !reflect.DeepEqual(again, got) {
					t.Errorf("Normalize is not idempotent: %#v -> %#v, %v", got, again, err)
				}
			}
		})
	}
}

func TestNormalizeJSONIsValidAndStable(t *testing.T) {
	s := mustParse(t, valueSchema)
	f := mustField(t, s, "T", "data")
	inputs := []string{
		`{"b":[1,2,{"y":null,"x":true}],"a":"\u00e9\"\\"}`,
		`[]`, `{}`, `"<tag>"`, `-0.0`, `1e100`,
	}
	for _, in := range inputs {
		v1, err := f.Normalize(decodeJSON(t, in))
		if err != nil {
			t.Fatalf("Normalize(%s): %v", in, err)
		}
		text, _ := v1.(string)
		if !json.Valid([]byte(text)) {
			t.Errorf("Normalize(%s) = %q, not valid JSON", in, text)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(text)); err != nil || compact.String() != text {
			t.Errorf("Normalize(%s) = %q, not compact", in, text)
		}
		// The same value decoded again normalizes to the same text.
		v2, err := f.Normalize(decodeJSON(t, text))
		if err != nil || v2 != v1 {
			t.Errorf("Normalize(%s): %q, then %q (%v)", in, v1, v2, err)
		}
		if err := f.Check(v1); err != nil {
			t.Errorf("Check(Normalize(%s)): %v", in, err)
		}
	}
}

func TestCheck(t *testing.T) {
	s := mustParse(t, valueSchema)
	tests := []struct {
		name  string
		field string
		v     any
		err   string // substring; "" means valid
	}{
		{"string ok", "name", "Ab", ""},
		{"string max ok", "name", "Abcdefghij", ""},
		{"string too short", "name", "A", "name: 1 characters, at least 2 allowed"},
		{"string too long", "name", "Abcdefghijk", "name: 11 characters, at most 10 allowed"},
		{"runes not bytes", "name", "Aééééééééé", ""}, // 10 characters, 19 bytes
		{"runes too many", "name", "Aéééééééééé", "11 characters, at most 10"},
		{"multi-byte short", "name", "É", "1 characters, at least 2"}, // 2 bytes, 1 character
		{"pattern mismatch", "name", "abc", `name: "abc" does not match the pattern ^[A-Z]`},
		{"invalid UTF-8", "name", "A\xff", "name: text is not valid UTF-8"},
		{"string wrong type", "name", int64(1), "name: want String, got a number"},
		{"required nil", "name", nil, "name is required and cannot be cleared"},
		{"required with default nil", "level", nil, "level is required"},
		{"optional nil", "text", nil, ""},
		{"optional empty string", "text", "", ""},
		{"int ok", "age", int64(150), ""},
		{"int zero", "age", int64(0), ""},
		{"int above", "age", int64(151), "age: 151 is above the maximum 150"},
		{"int below", "age", int64(-1), "age: -1 is below the minimum 0"},
		{"int not canonical", "age", 5, "age: want Int, got a number"},
		{"int float64", "age", float64(5), "age: want Int"},
		{"float ok", "score", -1.5, ""},
		{"float above", "score", 1.6, "score: 1.6 is above the maximum 1.5"},
		{"float below", "score", -2.0, "below the minimum -1.5"},
		{"float NaN", "score", math.NaN(), "score: want a finite number"},
		{"float Inf", "score", math.Inf(1), "finite"},
		{"float int64", "score", int64(1), "score: want Float"},
		{"bool ok", "ok", false, ""},
		{"bool wrong", "ok", "false", "ok: want Boolean, got a string"},
		{"datetime canonical", "at", "2024-05-01T12:00:00Z", ""},
		{"datetime canonical fraction", "at", "2024-05-01T12:00:00.5Z", ""},
		{"datetime offset", "at", "2024-05-01T14:00:00+02:00", `at: "2024-05-01T14:00:00+02:00" is not a canonical`},
		{"datetime zero offset", "at", "2024-05-01T12:00:00+00:00", "not a canonical"},
		{"datetime trailing zeros", "at", "2024-05-01T12:00:00.500Z", "not a canonical"},
		{"datetime garbage", "at", "soon", "not a canonical"},
		{"datetime wrong type", "at", int64(1), "at: want DateTime"},
		{"bytes ok", "blob", []byte{1, 2, 3, 4}, ""},
		{"bytes empty", "blob", []byte{}, ""},
		{"bytes too long", "blob", []byte{1, 2, 3, 4, 5}, "blob: 5 bytes, at most 4 allowed"},
		{"bytes as string", "blob", "AQID", "blob: want Bytes, got a string"},
		{"json ok", "data", `{"a":[1,null]}`, ""},
		{"json scalar ok", "data", `"x"`, ""},
		{"json invalid", "data", `{a:1}`, "data: not valid JSON text"},
		{"json empty", "data", ``, "not valid JSON"},
		{"json not text", "data", map[string]any{"a": 1}, "data: want JSON, got an object"},
		{"ref ok", "ref", "doc-1", ""},
		{"ref empty", "ref", "", `ref: reference "": want an id of 1 to 256 bytes`},
		{"ref max", "ref", strings.Repeat("r", 256), ""},
		{"ref too long", "ref", strings.Repeat("r", 257), "want an id of 1 to 256 bytes"},
		{"ref wrong type", "ref", int64(1), "ref: want an id of T, got a number"},
		{"list ok", "scores", []any{int64(0), int64(10), int64(5)}, ""},
		{"list too long", "scores", []any{int64(1), int64(2), int64(3), int64(4)}, "scores: 4 elements, at most 3 allowed"},
		{"list too short", "scores", []any{}, "scores: 0 elements, at least 1 allowed"},
		{"list element above", "scores", []any{int64(1), int64(11)}, "scores[1]: 11 is above the maximum 10"},
		{"list element wrong type", "scores", []any{"1"}, "scores[0]: want Int, got a string"},
		{"list element nil", "scores", []any{nil}, "scores[0]: want Int, got null"},
		{"list not a list", "scores", int64(1), "scores: want a list of Int, got a number"},
		{"list element pattern", "tags", []any{"#a", "b"}, `tags[1]: "b" does not match`},
		{"list length counts elements", "tags", []any{"#abcdefgh", "#ijklmnop"}, ""},
		{"list length over", "tags", []any{"#a", "#b", "#c"}, "tags: 3 elements, at most 2"},
		{"list of refs bad", "refs", []any{"a", ""}, "refs[1]: reference"},
		{"set ok", "labels", []any{"a", "b"}, ""},
		{"set empty", "labels", []any{}, ""},
		{"set element wrong", "labels", []any{"a", true}, "labels[1]: want String, got a boolean"},
		{"set not a list", "labels", "a", "labels: want a set of String"},
		{"set of bytes", "blobs", []any{[]byte{1, 2, 3, 4, 5, 6}}, ""},
		{"counter ok", "visits", int64(-3), ""},
		{"counter wrong", "visits", 1.0, "visits: want Int"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mustField(t, s, "T", tc.field)
			err := f.Check(tc.v)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Check(%#v): %v", tc.v, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%#v) passed, want error %q", tc.v, tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Check(%#v) error %q, want it to contain %q", tc.v, err, tc.err)
			}
		})
	}
}

// TestNormalizeThenCheck runs user input through both steps, as a write does.
func TestNormalizeThenCheck(t *testing.T) {
	s := mustParse(t, valueSchema)
	tests := []struct {
		field, in string // in is JSON
		ok        bool
	}{
		{"at", `"2024-05-01T14:00:00+02:00"`, true},
		{"at", `"2024-05-01T14:00:00.000+02:00"`, true},
		// Normalizes into year -1, which has no RFC 3339 form.
		{"at", `"0000-01-01T00:00:00+01:00"`, false},
		{"at", `"9999-12-31T23:59:59-01:00"`, false},
		{"age", `12.0`, false}, // json.Number "12.0" is not an integer literal
		{"age", `12`, true},
		{"age", `151`, false},
		{"score", `1`, true},
		{"name", `"Zoë"`, true},
		{"name", `"zoë"`, false},
		{"blob", `"AQIDBA=="`, true},
		{"blob", `"AQIDBAU="`, false},
		{"data", `{"k": [1, {"b": 2, "a": 1}]}`, true},
		{"labels", `["x", "x", "y"]`, true},
		{"scores", `[]`, false},
		{"scores", `[1, 2, 3]`, true},
	}
	for _, tc := range tests {
		f := mustField(t, s, "T", tc.field)
		v, err := f.Normalize(decodeJSON(t, tc.in))
		if err == nil {
			err = f.Check(v)
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s = %s: error %v, want ok=%v", tc.field, tc.in, err, tc.ok)
		}
	}
}

func TestCheckRequired(t *testing.T) {
	s := mustParse(t, `
type A {
  name: String!
  note: String
  level: Int! @default(value: 1)
  visits: Int @counter
  tags: [String!] @set
  refs: [A!]!
}`)
	c, _ := s.Collection("A")
	tests := []struct {
		name   string
		fields map[string]any
		err    string
	}{
		{"all required", map[string]any{"name": "x", "refs": []any{}}, ""},
		{"with optional and defaulted", map[string]any{"name": "x", "refs": []any{"a"}, "note": "n", "level": int64(2)}, ""},
		{"defaulted may be null", map[string]any{"name": "x", "refs": []any{}, "level": nil}, ""},
		{"empty", map[string]any{}, "A.name is required"},
		{"nil map", nil, "A.name is required"},
		{"null required", map[string]any{"name": nil, "refs": []any{}}, "A.name is required"},
		{"second required missing", map[string]any{"name": "x"}, "A.refs is required"},
		{"only optional", map[string]any{"note": "n", "visits": int64(1)}, "A.name is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.CheckRequired(tc.fields)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("CheckRequired: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("CheckRequired error %v, want %q", err, tc.err)
			}
		})
	}
}

func TestCheckUpgrade(t *testing.T) {
	const base = `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Author
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
}`
	tests := []struct {
		name, next string
		err        string // "" means allowed
	}{
		{"add collection and optional field", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Author
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
  pages: Int
}
type Shelf { books: [Book!] }`, ""},
		{"change rules and order", `
type Book {
  ids: [Int!] @range(min: 0) @existing(policy: keep)
  likes: Int @counter
  tags: [String!] @set
  author: Author
  year: Int @range(min: 0, max: 3000) @existing(policy: flag)
  title: String! @length(max: 200)
}
type Author { name: String! @length(min: 1) @existing(policy: keep) }`, ""},
		{"add required field with default", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Author
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
  lang: String! @default(value: "en")
}`, ""},
		{"add required field without default", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Author
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
  lang: String!
}`, "new field Book.lang is required but has no @default"},
		{"new collection may have required fields", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Author
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
}
type Shelf { name: String! }`, ""},
		{"drop field", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
}`, "upgrade drops field Book.year"},
		{"drop collection", `
type Book {
  title: String! @length(max: 100)
  year: Int
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
}`, "upgrade drops collection Author"},
		{"change scalar type", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Float
  author: Author
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
}`, "changes the type of Book.year from Int to Float"},
		{"counter to plain Int", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Author
  tags: [String!] @set
  likes: Int
  ids: [Int!]
}`, "changes the type of Book.likes from counter to Int"},
		{"set to list", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Author
  tags: [String!]
  likes: Int @counter
  ids: [Int!]
}`, "changes the type of Book.tags from a set of String to a list of String"},
		{"list element type", `
type Author { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Author
  tags: [String!] @set
  likes: Int @counter
  ids: [Float!]
}`, "changes the type of Book.ids from a list of Int to a list of Float"},
		{"reference target", `
type Author { name: String! }
type Person { name: String! }
type Book {
  title: String! @length(max: 100)
  year: Int
  author: Person
  tags: [String!] @set
  likes: Int @counter
  ids: [Int!]
}`, "changes the type of Book.author from an id of Author to an id of Person"},
		{"same schema", base, "already in force"},
	}
	prev := mustParse(t, base)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := mustParse(t, tc.next)
			err := CheckUpgrade(prev, next)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("CheckUpgrade: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckUpgrade passed, want %q", tc.err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q, want it to contain %q", err, tc.err)
			}
		})
	}
}
