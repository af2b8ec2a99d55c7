package schema

import (
	"errors"
	"strings"
	"testing"
)

// evolveBase is the first version of the collections the evolution tests
// upgrade; each case replaces Book.
const evolveBase = `
type Author { name: String! }
type Book {
  name: String! @length(max: 100)
  subtitle: String
  pages: Int @range(min: 0)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String
}`

func TestCheckUpgradeEvolution(t *testing.T) {
	book := func(fields string) string { return "type Author { name: String! }\ntype Book {\n" + fields + "\n}" }
	const rest = `  subtitle: String
  pages: Int @range(min: 0)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String`
	tests := []struct {
		name, next string
		err        string // "" means allowed
	}{
		{"rename", book(`  title: String! @length(max: 100) @renamed(from: "name")` + "\n" + rest), ""},
		{"rename with a list", book(`  title: String! @length(max: 100) @renamed(from: ["name"])` + "\n" + rest), ""},
		{"rename a reference", book(`  name: String! @length(max: 100)
  subtitle: String
  pages: Int @range(min: 0)
  writer: Author @renamed(from: "author")
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String`), ""},
		{"rename a set and a counter", book(`  name: String! @length(max: 100)
  subtitle: String
  pages: Int @range(min: 0)
  author: Author
  labels: [String!] @set @renamed(from: "tags")
  hearts: Int @counter @renamed(from: "likes")
  status: String @default(value: "draft")
  isbn: String`), ""},
		{"change a default", book(`  name: String! @length(max: 100)
  subtitle: String
  pages: Int @range(min: 0)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "new")
  isbn: String`), ""},
		{"loosen a rule", book(`  name: String! @length(max: 500)` + "\n" + rest), ""},
		{"tighten without a policy", book(`  name: String! @length(max: 50)` + "\n" + rest),
			"Book.name: @length max goes from 100 to 50; declare what happens to documents written before: @existing(policy: keep) or @existing(policy: flag)"},
		{"tighten with keep", book(`  name: String! @length(max: 50) @existing(policy: keep)` + "\n" + rest), ""},
		{"tighten with flag", book(`  name: String! @length(max: 50) @existing(policy: flag)` + "\n" + rest), ""},
		{"new pattern without a policy", book(`  name: String! @length(max: 100)
  subtitle: String
  pages: Int @range(min: 0)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String @pattern(regex: "^[0-9-]+$")`), `Book.isbn: @pattern becomes "^[0-9-]+$"`},
		{"raised minimum without a policy", book(`  name: String! @length(max: 100)
  subtitle: String
  pages: Int @range(min: 1)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String`), "Book.pages: @range min goes from 0 to 1"},
		{"optional made required without a policy", book(`  name: String! @length(max: 100)
  subtitle: String!
  pages: Int @range(min: 0)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String`), "Book.subtitle: it becomes required"},
		{"rename and tighten without a policy", book(`  title: String! @length(max: 10) @renamed(from: "name")` + "\n" + rest),
			"Book.title: @length max goes from 100 to 10"},
		{"rename to an existing name", book(`  subtitle: String @renamed(from: "name")
  pages: Int @range(min: 0)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String`), "Book.subtitle: renamed from name, but Book.subtitle already exists"},
		{"rename plus type change", book(`  title: Int @renamed(from: "name")` + "\n" + rest),
			"upgrade changes the type of Book.name from String to Int (renamed from name)"},
		{"rename a reference to another target", `type Author { name: String! }
type Person { name: String! }
type Book {
  name: String! @length(max: 100)
  subtitle: String
  pages: Int @range(min: 0)
  writer: Person @renamed(from: "author")
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String
}`, "changes the type of Book.author from an id of Author to an id of Person (renamed from author)"},
		{"rename into two sources", book(`  title: String! @length(max: 100) @renamed(from: ["name", "subtitle"])
  pages: Int @range(min: 0)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String`), "Book.title: renamed from both name and subtitle"},
		{"rename from a field that never existed", book(`  name: String! @length(max: 100)
  subtitle: String
  pages: Int @range(min: 0)
  author: Author
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  isbn: String
  summary: String @renamed(from: "blurb")`), `Book.summary: @renamed(from: "blurb"): Book has no field blurb to rename`},
		{"drop a field instead of renaming", book(`  title: String! @length(max: 100)` + "\n" + rest),
			`upgrade drops field Book.name (fields may only be added or renamed with @renamed(from: "name"))`},
	}
	prev := mustParse(t, evolveBase)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkUpgradeCase(t, prev, tc.next, tc.err)
		})
	}
}

func checkUpgradeCase(t *testing.T, prev *Schema, text, want string) {
	t.Helper()
	next := mustParse(t, text)
	err := CheckUpgrade(prev, next)
	if want == "" {
		if err != nil {
			t.Fatalf("CheckUpgrade: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("CheckUpgrade passed, want %q", want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not wrap ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
}

// TestRenameChains upgrades twice: a second rename must list every name
// the field ever had, and none may be reused.
func TestRenameChains(t *testing.T) {
	v1 := mustParse(t, `type Book { name: String, year: Int }`)
	v2 := mustParse(t, `type Book { title: String @renamed(from: "name"), year: Int }`)
	checkUpgradeCase(t, v1, v2.Text, "")
	tests := []struct{ name, next, err string }{
		{"second rename keeps the history", `type Book { heading: String @renamed(from: ["title", "name"]), year: Int }`, ""},
		{"history in any order", `type Book { heading: String @renamed(from: ["name", "title"]), year: Int }`, ""},
		{"second rename forgets the first name", `type Book { heading: String @renamed(from: "title"), year: Int }`,
			`Book.heading: renamed from title must list every name the field had: @renamed(from: ["title", "name"])`},
		{"the field keeps its name and drops its history", `type Book { title: String, year: Int }`,
			"Book.title: @renamed must keep its former names name"},
		{"the field keeps its name and its history", `type Book { title: String @renamed(from: "name"), year: Int, pages: Int }`, ""},
		{"an old name reused for a new field", `type Book { title: String @renamed(from: "name"), year: Int, name: String }`,
			`Book.title: @renamed(from: "name") names the existing field Book.name`},
		{"an old name claimed by another field", `type Book { title: String @renamed(from: "name"), year: Int @renamed(from: "name") }`,
			"Book.title and Book.year are both @renamed from name"},
		{"a field claims a history it never had", `type Book { title: String @renamed(from: ["name", "label"]), year: Int }`,
			`Book.title: @renamed(from: "label") names a field Book.title never was`},
		{"rename back to the old name", `type Book { name: String @renamed(from: ["title"]), year: Int }`,
			`Book.name: name is a former name of Book.title; a name once used is never reused`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, err := Parse(tc.next)
			if err != nil { // some hostile texts are refused by Parse itself
				if tc.err == "" || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse: %v, want %q", err, tc.err)
				}
				return
			}
			checkUpgradeCase(t, v2, next.Text, tc.err)
		})
	}
}

// TestTwoRenamesFromOneField: a field cannot split into two; the text
// is refused before any upgrade is considered.
func TestTwoRenamesFromOneField(t *testing.T) {
	_, err := Parse(`type Book { title: String @renamed(from: "name"), heading: String @renamed(from: "name") }`)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Book.title and Book.heading are both @renamed from name") {
		t.Fatalf("Parse: %v", err)
	}
}

func TestParseEvolutionDirectives(t *testing.T) {
	s := mustParse(t, `type Book { title: String @renamed(from: ["name", "label"]) @existing(policy: flag), year: Int @existing(policy: "keep") }`)
	c, _ := s.Collection("Book")
	title, _ := c.Field("title")
	if strings.Join(title.Names(), ",") != "title,name,label" || title.Existing != PolicyFlag {
		t.Fatalf("title: names %v policy %v", title.Names(), title.Existing)
	}
	if f, ok := c.FieldByAnyName("label"); !ok || f != title {
		t.Fatal("FieldByAnyName(label) did not find title")
	}
	if _, ok := c.FieldByAnyName("nothing"); ok {
		t.Fatal("FieldByAnyName found a name nobody had")
	}
	year, _ := c.Field("year")
	if year.Existing != PolicyKeep || PolicyKeep.String() != "keep" {
		t.Fatalf("year policy %v", year.Existing)
	}
	for text, want := range map[string]string{
		`type Book { title: String @renamed }`:                     "@renamed wants from",
		`type Book { title: String @renamed(from: 3) }`:            "@renamed wants from",
		`type Book { title: String @renamed(from: []) }`:           "@renamed wants from",
		`type Book { title: String @renamed(from: ["a", "a"]) }`:   "@renamed: a named twice",
		`type Book { title: String @renamed(from: "_x") }`:         "reserved",
		`type Book { title: String @renamed(from: "title") }`:      "names the existing field Book.title",
		`type Book { title: String @existing(policy: drop) }`:      "@existing wants policy: keep or policy: flag",
		`type Book { title: String @existing }`:                    "@existing wants policy",
		`type Book { title: String @renamed(from: "a", to: "b") }`: "@renamed wants from",
	} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s): %v, want %q", text, err, want)
		}
	}
}
