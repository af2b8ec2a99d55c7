package schema

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const typesSchema = `
scalar Email @pattern(regex: "^[^@ ]+@[^@ ]+$") @length(max: 20)
scalar Percent @base(type: Float) @range(min: 0, max: 100)
scalar Year @base(type: Int) @range(min: 1450)
scalar Isbn @base(type: "String") @length(min: 10, max: 13)
scalar Hash @base(type: Bytes) @length(min: 4, max: 4)
scalar When @base(type: DateTime)
enum LoanStatus { OPEN RETURNED LOST }
type Loan {
  status: LoanStatus! @default(value: OPEN)
  history: [LoanStatus!]
  seen: [LoanStatus!] @set
  email: Email
  emails: [Email!] @length(max: 2)
  short: Email @length(max: 8)
  pct: Percent
  year: Year
  isbn: Isbn
  hash: Hash
  at: When
}`

func TestParseTypes(t *testing.T) {
	s := mustParse(t, typesSchema)
	if len(s.Types) != 7 {
		t.Fatalf("%d types, want 7", len(s.Types))
	}
	want := map[string]Kind{"Email": String, "Percent": Float, "Year": Int, "Isbn": String, "Hash": Bytes, "When": DateTime, "LoanStatus": String}
	for name, k := range want {
		typ, ok := s.Type(name)
		if !ok || typ.Kind != k {
			t.Errorf("type %s: %+v, want base %s", name, typ, k)
		}
	}
	st, _ := s.Type("LoanStatus")
	if !st.IsEnum() || strings.Join(st.Values, " ") != "OPEN RETURNED LOST" || !st.Has("LOST") || st.Has("lost") {
		t.Errorf("LoanStatus = %+v", st)
	}
	if e, _ := s.Type("Email"); e.IsEnum() || e.Pattern == nil || *e.MaxLen != 20 {
		t.Errorf("Email = %+v", e)
	}
	for _, tc := range []struct {
		field      string
		kind, elem Kind
		typ        string
	}{
		{"status", String, 0, "LoanStatus"}, {"history", List, String, "LoanStatus"}, {"seen", Set, String, "LoanStatus"},
		{"email", String, 0, "Email"}, {"emails", List, String, "Email"}, {"pct", Float, 0, "Percent"},
		{"year", Int, 0, "Year"}, {"hash", Bytes, 0, "Hash"}, {"at", DateTime, 0, "When"},
	} {
		f := mustField(t, s, "Loan", tc.field)
		if f.Kind != tc.kind || f.Elem != tc.elem || f.Type == nil || f.Type.Name != tc.typ {
			t.Errorf("Loan.%s: kind %s elem %s type %v, want %s %s %s", tc.field, f.Kind, f.Elem, f.Type, tc.kind, tc.elem, tc.typ)
		}
	}
	if f := mustField(t, s, "Loan", "status"); f.Default != "OPEN" || !f.Required {
		t.Errorf("Loan.status default %v required %v", f.Default, f.Required)
	}
}

func TestCheckTypes(t *testing.T) {
	s := mustParse(t, typesSchema)
	tests := []struct {
		field string
		v     any
		err   string // "" means valid
	}{
		{"status", "OPEN", ""},
		{"status", "LOST", ""},
		{"status", "open", `status: "open" is not a value of enum LoanStatus (OPEN, RETURNED, LOST)`},
		{"status", "", "not a value of enum LoanStatus"},
		{"status", int64(1), "status: want LoanStatus, got a number"},
		{"status", nil, "status is required"},
		{"history", []any{"OPEN", "RETURNED", "OPEN"}, ""},
		{"history", []any{"OPEN", "GONE"}, `history[1]: "GONE" is not a value of enum LoanStatus`},
		{"history", []any{true}, "history[0]: want LoanStatus, got a boolean"},
		{"seen", []any{"LOST"}, ""},
		{"seen", []any{"MAYBE"}, "seen[0]: \"MAYBE\" is not a value"},
		{"email", "a@b", ""},
		{"email", "ab", `email: Email: "ab" does not match the pattern`},
		{"email", "aaaaaaaaaaaaaaaa@bbbb", "email: Email: 21 characters, at most 20 allowed"},
		{"emails", []any{"a@b", "c@d"}, ""},
		{"emails", []any{"a@b", "cd"}, `emails[1]: Email: "cd" does not match`},
		{"emails", []any{"a@b", "c@d", "e@f"}, "emails: 3 elements, at most 2 allowed"},           // the field's @length counts elements
		{"emails", []any{"aaaaaaaaaaaaaaaa@bbbb"}, "emails[0]: Email: 21 characters, at most 20"}, // the type's counts characters
		{"short", "abcd@efg", ""},
		{"short", "abcd@efgh", "short: 9 characters, at most 8"}, // both rules apply
		{"pct", 0.0, ""},
		{"pct", 100.0, ""},
		{"pct", 100.5, "pct: Percent: 100.5 is above the maximum 100"},
		{"pct", int64(5), "pct: want Percent, got a number"},
		{"year", int64(1450), ""},
		{"year", int64(1449), "year: Year: 1449 is below the minimum 1450"},
		{"isbn", "123456789X", ""},
		{"isbn", "123", "isbn: Isbn: 3 characters, at least 10 allowed"},
		{"hash", []byte{1, 2, 3, 4}, ""},
		{"hash", []byte{1, 2, 3}, "hash: Hash: 3 bytes, at least 4 allowed"},
		{"at", "2024-05-01T12:00:00Z", ""},
		{"at", "2024-05-01T14:00:00+02:00", "not a canonical"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s=%v", tc.field, tc.v), func(t *testing.T) {
			err := mustField(t, s, "Loan", tc.field).Check(tc.v)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Check(%#v) = %v, want %q", tc.v, err, tc.err)
			}
		})
	}
	// Normalize takes the base kind's input and leaves the rules to Check.
	f := mustField(t, s, "Loan", "history")
	v, err := f.Normalize(decodeJSON(t, `["OPEN", "LOST"]`))
	if err != nil || f.Check(v) != nil {
		t.Fatalf("Normalize then Check: %v, %v", v, err)
	}
	if _, err := mustField(t, s, "Loan", "pct").Normalize(decodeJSON(t, `"50"`)); err == nil || !strings.Contains(err.Error(), "want Float") {
		t.Errorf("Normalize of a string into Percent: %v", err)
	}
}

func TestParseTypeErrors(t *testing.T) {
	many := make([]string, MaxEnumValues+1)
	for i := range many {
		many[i] = fmt.Sprintf("V%d", i)
	}
	tests := []struct {
		name, text string
		want       []string
	}{
		{"undeclared type", "type A { x: Emial }", []string{"A.x", "unknown type Emial"}},
		{"undeclared type in list", "enum E { X } type A { x: [F!] }", []string{"A.x", "unknown type F"}},
		{"enum value twice", "enum E { A B A } type T { x: E }", []string{"enum E", "value A is declared twice"}},
		{"enum value true", "enum E { true } type T { x: E }", []string{"enum E", "true, false and null"}},
		{"enum value null", "enum E { A null } type T { x: E }", []string{"enum E", "true, false and null"}},
		{"enum without values", "enum E type T { x: E }", []string{"enum E", "at least one value"}},
		{"enum with directive", "enum E @x { A } type T { x: E }", []string{"enum E", "unknown directive @x", "only @existing"}},
		{"enum value with directive", "enum E { A @deprecated } type T { x: E }", []string{"enum E", "value A", "no directives"}},
		{"huge enum", "enum E { " + strings.Join(many, " ") + " } type T { x: E }", []string{"enum E", "1025 values, at most 1024"}},
		{"enum shadows a collection", "type E { x: String } enum E { A }", []string{"type E is defined twice"}},
		{"collection shadows an enum", "enum E { A } type E { x: String }", []string{"type E is defined twice"}},
		{"scalar shadows an enum", "enum E { A } scalar E type T { x: E }", []string{"type E is defined twice"}},
		{"enum defined twice", "enum E { A } enum E { B } type T { x: E }", []string{"type E is defined twice"}},
		{"scalar shadows a built-in", `scalar String @pattern(regex: "a") type T { x: String }`, []string{"scalar String", "built-in scalar"}},
		{"enum shadows a built-in", "enum Int { A } type T { x: Int }", []string{"enum Int", "built-in scalar"}},
		{"enum shadows ID", "enum ID { A } type T { x: ID }", []string{"enum ID", "built-in scalar"}},
		{"reserved type name", "enum _E { A } type T { x: _E }", []string{`"_E"`, "reserved"}},
		{"scalar based on itself", "scalar S @base(type: S) type T { x: S }", []string{"scalar S", "@base(type: S)", "never based on another named type"}},
		{"scalar based on another", "scalar A1 @length(max: 2) scalar S @base(type: A1) type T { x: S }", []string{"scalar S", "never based on another"}},
		{"scalar based on a collection", "scalar S @base(type: T) type T { x: S }", []string{"scalar S", "@base(type: T)"}},
		{"scalar based on an enum", "enum E { A } scalar S @base(type: E) type T { x: S }", []string{"scalar S", "@base(type: E)"}},
		{"base without type", "scalar S @base type T { x: S }", []string{"scalar S", "@base wants one argument type"}},
		{"invalid regex", `scalar S @pattern(regex: "a(") type T { x: S }`, []string{"scalar S", "@pattern", "missing closing )"}},
		{"pattern not a string", `scalar S @pattern(regex: 5) type T { x: S }`, []string{"scalar S", "@pattern wants one string argument"}},
		{"range on String base", `scalar S @range(min: 1) type T { x: S }`, []string{"scalar S", "@range applies to Int and Float, not String", "@base(type: ...)"}},
		{"pattern on Int base", `scalar S @base(type: Int) @pattern(regex: "1") type T { x: S }`, []string{"scalar S", "@pattern applies to String, not Int"}},
		{"length on Float base", `scalar S @base(type: Float) @length(max: 1) type T { x: S }`, []string{"scalar S", "@length applies to String and Bytes"}},
		{"range min above max", `scalar S @base(type: Int) @range(min: 2, max: 1) type T { x: S }`, []string{"scalar S", "min 2 is above max 1"}},
		{"scalar directive twice", `scalar S @length(max: 1) @length(max: 2) type T { x: S }`, []string{"scalar S", "@length given twice"}},
		{"enum bad policy", "enum E @existing(policy: drop) { A } type T { x: E }", []string{"enum E", "@existing wants policy: keep or policy: flag"}},
		{"enum other directive", "enum E @existing(policy: keep) @x { A } type T { x: E }", []string{"enum E", "unknown directive @x"}},
		{"scalar bad policy", "scalar S @existing type T { x: S }", []string{"scalar S", "@existing wants policy"}},
		{"scalar unknown directive", `scalar S @default(value: "a") type T { x: S }`, []string{"scalar S", "unknown directive @default"}},
		{"counter of a named scalar", `scalar S @base(type: Int) @range(max: 5) type T { x: S @counter }`, []string{"T.x", "@counter applies to Int, not S"}},
		{"enum field with pattern", `enum E { A } type T { x: E @pattern(regex: "A") }`, []string{"T.x", "E takes no @length, @range or @pattern"}},
		{"default not in enum", `enum E { A B } type T { x: E @default(value: C) }`, []string{"T.x", "@default", `"C" is not a value of enum E`}},
		{"default breaks scalar", `scalar S @length(max: 1) type T { x: S @default(value: "ab") }`, []string{"T.x", "@default", "S: 2 characters, at most 1"}},
		{"only types", "enum E { A } scalar S", []string{"no collections"}},
		{"rule compares an enum with a non-value", `enum E { OPEN SHUT } type T @update(if: "old.e == 'OPNE'") { e: E }`, []string{"@update", `"OPNE" is not a value of enum E (OPEN, SHUT)`}},
		{"rule compares a non-value with an enum", `enum E { OPEN SHUT } type T @update(if: "'open' != new.e") { e: E }`, []string{`"open" is not a value of enum E`}},
		{"rule in-list with a non-value", `enum E { OPEN SHUT } type T @create(if: "new.e in ['OPEN', 'CLOSED']") { e: E }`, []string{`"CLOSED" is not a value of enum E`}},
		{"rule contains a non-value", `enum E { OPEN SHUT } type T @create(if: "contains(new.h, 'GONE')") { h: [E!] }`, []string{`"GONE" is not a value of enum E`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.text)
			if err == nil {
				t.Fatalf("Parse succeeded (%d collections), want an error", len(s.Collections))
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

func TestParseTypesAccepts(t *testing.T) {
	for _, text := range []string{
		"scalar Plain type T { x: Plain }",                       // an alias of String
		"enum E { A } type T { x: Int }",                         // declared, unused
		"type T { x: E } enum E { A }",                           // used before declared
		"scalar DateTime scalar ID enum E { A } type T { x: E }", // built-in declarations still accepted
		"enum E { Open open OPEN } type T { x: E }",              // case matters
		"enum E { A } type T { x: [E!]! @length(min: 1) }",       // a list of an enum may bound its elements' count
	} {
		if _, err := Parse(text); err != nil {
			t.Errorf("Parse(%q): %v", text, err)
		}
	}
}

func TestCheckUpgradeTypes(t *testing.T) {
	const base = `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`
	tests := []struct {
		name, next string
		err        string // "" means allowed
	}{
		{"add enum value", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN RETURNED LOST }
type Loan { status: Status email: Email year: Year }`, ""},
		{"reorder enum values and add types", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
scalar Pages @base(type: Int) @range(min: 1)
enum Status { RETURNED OPEN }
enum Kind { BOOK DVD }
type Loan { status: Status email: Email year: Year kind: Kind pages: Pages }`, ""},
		{"loosen scalar rules", `
scalar Email @length(max: 60)
scalar Year @base(type: Int) @range(min: 1000)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`, ""},
		{"remove enum value under a policy", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status @existing(policy: flag) { OPEN }
type Loan { status: Status email: Email year: Year }`, ""},
		{"tighten scalar rules under a policy", `
scalar Email @pattern(regex: "^[a-z]+@[^@]+$") @length(min: 3, max: 40) @existing(policy: keep)
scalar Year @base(type: Int) @range(min: 1500, max: 2000) @existing(policy: flag)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`, ""},
		{"a field's policy does not cover its type", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN }
type Loan { status: Status @existing(policy: keep) email: Email year: Year }`, "enum Status loses value RETURNED"},
		{"remove enum value", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN }
type Loan { status: Status email: Email year: Year }`, "type Status: enum Status loses value RETURNED; declare what happens to documents written before on the type: enum Status @existing(policy: keep)"},
		{"tighten max length", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 40)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`, "type Email: @length max goes from 50 to 40"},
		{"add min length", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(min: 3, max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`, "type Email: @length min goes from none to 3"},
		{"raise range min", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1500, max: 2100)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`, "type Year: @range min goes from 1450 to 1500"},
		{"lower range max", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2000)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`, "type Year: @range max goes from 2100 to 2000; declare what happens to documents written before on the type: scalar Year @existing"},
		{"change pattern", `
scalar Email @pattern(regex: "^[^@]+@[^@]+\\.[a-z]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`, "type Email: @pattern becomes"},
		{"change base", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Float) @range(min: 1450, max: 2100)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Email year: Year }`, "changes type Year from a scalar based on Int to a scalar based on Float"},
		{"enum to scalar", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
scalar Status
type Loan { status: Status email: Email year: Year }`, "changes type Status from an enum to a scalar based on String"},
		{"drop type", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
type Loan { status: String email: Email year: Year }`, "drops type Status"},
		{"field leaves its type", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN RETURNED }
type Loan { status: Status email: String year: Year }`, "changes the type of Loan.email from Email to String"},
		{"field changes type", `
scalar Email @pattern(regex: "^[^@]+@[^@]+$") @length(max: 50)
scalar Other
scalar Year @base(type: Int) @range(min: 1450, max: 2100)
enum Status { OPEN RETURNED }
type Loan { status: Status email: Other year: Year }`, "changes the type of Loan.email from Email to Other"},
	}
	prev := mustParse(t, base)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckUpgrade(prev, mustParse(t, tc.next))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("CheckUpgrade: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("CheckUpgrade = %v, want an ErrInvalid containing %q", err, tc.err)
			}
		})
	}
	// A field that takes an enum at an upgrade is a new field: allowed.
	next := mustParse(t, strings.Replace(base, "year: Year }", "year: Year st2: [Status!] }", 1))
	if err := CheckUpgrade(prev, next); err != nil {
		t.Errorf("new field of an existing enum: %v", err)
	}
}

// TestRulesOverTypedFields: conditions compare enum values as strings and
// look documents up by a named scalar's field (the docs/RULES.md example).
func TestRulesOverTypedFields(t *testing.T) {
	s := mustParse(t, `
scalar Email @pattern(regex: "^[^@ ]+@[^@ ]+$") @length(max: 254)
scalar Isbn @pattern(regex: "^[0-9]{9}[0-9X]$|^97[89][0-9]{10}$")
scalar Stars @base(type: Int) @range(min: 1, max: 5)
enum Condition { NEW GOOD WORN DAMAGED }

type Copy @collection {
  isbn: Isbn!
  condition: Condition! @default(value: GOOD)
  history: [Condition!]
  contacts: [Email!] @length(max: 3)
}
type Loan @create(if: "exists(Copy c where c.isbn == new.isbn and c.condition != 'DAMAGED') and new.stars >= 1") {
  isbn: Isbn!
  stars: Stars
}`)
	if got := s.Indexed("Copy"); len(got) != 1 || got[0] != "isbn" {
		t.Errorf("Copy is looked up by %v, want [isbn]", got)
	}
	c, _ := s.Collection("Copy")
	f, _ := c.Field("contacts")
	if err := f.Check([]any{"a@b", "c@d", "e@f", "g@h"}); err == nil || !strings.Contains(err.Error(), "4 elements, at most 3") {
		t.Errorf("contacts: %v", err)
	}
	if f, _ := c.Field("condition"); f.Check("LOST") == nil {
		t.Error("condition LOST accepted")
	}
}

// BenchmarkCheckTyped measures Field.Check of one value: a plain String, an
// enum value, a named scalar with a pattern and length, and a list of 8
// enum values.
func BenchmarkCheckTyped(b *testing.B) {
	s, err := Parse(typesSchema + "\ntype P { s: String }")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		coll, field string
		v           any
	}{
		{"P", "s", "a@b"},
		{"Loan", "status", "RETURNED"},
		{"Loan", "email", "reader@example.org"},
		{"Loan", "history", []any{"OPEN", "RETURNED", "LOST", "OPEN", "RETURNED", "LOST", "OPEN", "RETURNED"}},
	} {
		c, _ := s.Collection(bc.coll)
		f, _ := c.Field(bc.field)
		b.Run(bc.field, func(b *testing.B) {
			for range b.N {
				if err := f.Check(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
