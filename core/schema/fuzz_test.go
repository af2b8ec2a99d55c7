package schema

import (
	"errors"
	"os"
	"testing"
)

// shape is the part of a parsed schema that must not vary between parses.
type shape struct {
	coll, field string
	kind, elem  Kind
	ref         string
	required    bool
}

func shapeOf(s *Schema) []shape {
	var out []shape
	for _, c := range s.Collections {
		for _, f := range c.Fields {
			out = append(out, shape{c.Name, f.Name, f.Kind, f.Elem, f.Ref, f.Required})
		}
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"library", "lending"} {
		if text, err := os.ReadFile("../replica/testdata/" + name + ".graphql"); err == nil {
			f.Add(string(text))
		}
	}
	for _, seed := range []string{
		allKinds,
		valueSchema,
		"type A { x: String }",
		"type A @collection { b: B } type B { a: [A!] @set }",
		`type A { n: Int @range(min: -1, max: 1) @default(value: 0) }`,
		`type A { s: String @length(min: 1) @pattern(regex: "^a+$") @default(value: "aa") }`,
		`type A { t: DateTime @default(value: "2024-05-01T14:00:00+02:00") }`,
		`type A { j: JSON @default(value: {z: [1, 2.5, "x"], a: null}) }`,
		`type A { b: Bytes @length(max: 3) @default(value: "AQI") }`,
		`type A { l: [Float!] @range(max: 1) @default(value: [0.5, 1]) }`,
		typesSchema,
		`scalar S @base(type: Int) @range(min: 0) enum E { A B } type T { s: [S!] e: E! @default(value: B) }`,
		// Invalid ones.
		"",
		"type A {",
		"type A { x: [[String]] }",
		"type A { id: String }",
		"type A { x: Int! @counter }",
		`type A { x: String @pattern(regex: "(") }`,
		`type A { x: Int @default(value: "a") }`,
		"enum E { A A } type A { x: E }",
		"scalar S @base(type: S) type A { x: S }",
		"schema { query: A } type A { x: String }",
		"type A { x: Int @range(min: 99999999999999999999) }",
		`type A @create(if: "exists(A a where a.id == new.x and (a.n + 1 > 2 or not contains(a.t, 'q')))") { x: A n: Int t: [String!] @set }`,
		`extend schema @roles(names: ["m"]) type A @write(roles: ["m"]) @delete(if: "creator(old) == author and now - days(1) < old.d") { d: DateTime }`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse returned a schema with error %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q does not wrap ErrInvalid", err)
			}
			if _, err2 := Parse(text); err2 == nil {
				t.Fatalf("Parse failed (%v), then succeeded", err)
			}
			return
		}
		if s.Text != text || s.ID != TextID(text) {
			t.Fatalf("schema text or ID does not match its text")
		}
		if len(s.Collections) == 0 {
			t.Fatal("Parse succeeded with no collections")
		}
		s2, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse succeeded, then failed: %v", err)
		}
		if s2.ID != s.ID {
			t.Fatalf("ID %s, then %s", s.ID, s2.ID)
		}
		a, b := shapeOf(s), shapeOf(s2)
		if len(a) != len(b) {
			t.Fatalf("%d fields, then %d", len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("field %d: %+v, then %+v", i, a[i], b[i])
			}
		}
		for _, c := range s.Collections {
			if got, ok := s.Collection(c.Name); !ok || got != c {
				t.Fatalf("Collection(%q) does not find it", c.Name)
			}
			if len(c.Fields) == 0 {
				t.Fatalf("collection %s has no fields", c.Name)
			}
			for _, fd := range c.Fields {
				if got, ok := c.Field(fd.Name); !ok || got != fd {
					t.Fatalf("%s.Field(%q) does not find it", c.Name, fd.Name)
				}
				if fd.Kind == Ref || fd.Elem == Ref {
					if _, ok := s.Collection(fd.Ref); !ok {
						t.Fatalf("%s.%s refers to unknown collection %q", c.Name, fd.Name, fd.Ref)
					}
				}
				if fd.Default == nil {
					continue
				}
				if err := fd.Check(fd.Default); err != nil {
					t.Fatalf("%s.%s: default %#v fails Check: %v", c.Name, fd.Name, fd.Default, err)
				}
			}
		}
		if err := CheckUpgrade(s, s2); err == nil {
			t.Fatal("CheckUpgrade to the same schema passed")
		}
	})
}
