package schema

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func lendingSchema(t *testing.T) *Schema {
	t.Helper()
	text, err := os.ReadFile("../replica/testdata/lending.graphql")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLendingSchemaParses(t *testing.T) {
	s := lendingSchema(t)
	if !s.HasRules() {
		t.Fatal("HasRules is false")
	}
	if want := []string{"reader", "member", "librarian"}; !slices.Equal(s.Roles, want) {
		t.Errorf("roles %q, want %q", s.Roles, want)
	}
	if got := s.Indexed("Loan"); !slices.Equal(got, []string{"book"}) {
		t.Errorf("Loan is indexed by %q, want [book]", got)
	}
	if got := s.Indexed("Book"); len(got) != 0 {
		t.Errorf("Book is indexed by %q, want nothing (looked up by id)", got)
	}
	book, _ := s.Collection("Book")
	if book.Rule(ActionCreate) != nil || book.Rule(ActionDelete) == nil {
		t.Error("Book: want a @delete rule and no @create rule")
	}
	for _, tc := range []struct {
		role, coll string
		ok         bool
	}{
		{"admin", "Book", true}, {"librarian", "Book", true}, {"member", "Book", false}, {"writer", "Book", false},
		{"member", "Loan", true}, {"reader", "Loan", false}, {"stranger", "Loan", false},
	} {
		err := s.CheckWrite(tc.role, tc.coll)
		if (err == nil) != tc.ok {
			t.Errorf("CheckWrite(%s, %s) = %v, want ok=%v", tc.role, tc.coll, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrRole) {
			t.Errorf("CheckWrite error %v does not wrap ErrRole", err)
		}
	}
	plain, _ := Parse("type A { x: String }")
	if plain.HasRules() || plain.CheckWrite("writer", "A") != nil || plain.CheckWrite("reader", "A") == nil {
		t.Error("a schema without rules: writer writes, reader does not")
	}
	if err := s.CheckGrant("librarian", true); err != nil {
		t.Errorf("invite for librarian: %v", err)
	}
	for _, bad := range []struct {
		role   string
		invite bool
	}{{"admin", true}, {"invite", false}, {"ghost", false}, {"Bad", false}} {
		if err := s.CheckGrant(bad.role, bad.invite); !errors.Is(err, ErrRole) {
			t.Errorf("CheckGrant(%q, invite=%v) = %v, want ErrRole", bad.role, bad.invite, err)
		}
	}
}

func TestRuleParseErrors(t *testing.T) {
	const base = `extend schema @roles(names: ["member"])
type Book { title: String! tags: [String!] @set n: Int meta: JSON }
type Loan { book: Book! open: Boolean due: DateTime } `
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unknown name", `type X @create(if: "foo == 1") { a: String }`, []string{"type X", "@create(if)", "1:1", `unknown name "foo"`}},
		{"unknown collection", `type X @create(if: "exists(Bok b where b.id == new.a)") { a: String }`, []string{"unknown collection Bok"}},
		{"unknown field", `type X @create(if: "new.b == 1") { a: String }`, []string{`X has no field "b"`}},
		{"unknown alias field", `type X @create(if: "exists(Book b where b.id == new.a and b.titel == 'x')") { a: String }`, []string{`Book has no field "titel"`}},
		{"old in create", `type X @create(if: "old.a == 'x'") { a: String }`, []string{"old is not available in @create"}},
		{"new in delete", `type X @delete(if: "new.a == 'x'") { a: String }`, []string{"new is not available in @delete"}},
		{"not boolean", `type X @create(if: "new.a") { a: String }`, []string{"the condition is a String, want a Boolean"}},
		{"type mismatch", `type X @create(if: "new.a == 1") { a: String }`, []string{"cannot compare a String with a Int"}},
		{"bad date literal", `type X @create(if: "new.d < 'yesterday'") { d: DateTime }`, []string{"not an RFC 3339 date-time"}},
		{"no lookup key", `type X @create(if: "exists(Book b where b.title != new.a)") { a: String }`, []string{"needs an equality b.FIELD == VALUE", "not scanned"}},
		{"lookup key under or", `type X @create(if: "exists(Book b where b.title == new.a or b.n == 1)") { a: String }`, []string{"needs an equality"}},
		{"lookup on a set", `type X @create(if: "exists(Book b where b.tags == new.t)") { t: [String!] @set }`, []string{"can only be compared with null"}},
		{"no where", `type X @create(if: "exists(Book b)") { a: String }`, []string{"needs a where clause"}},
		{"alias reused", `type X @create(if: "exists(Book b where b.id == new.a and exists(Loan b where b.book == new.a))") { a: String }`, []string{"alias b is already used"}},
		{"alias reserved", `type X @create(if: "exists(Book new where new.id == 'x')") { a: String }`, []string{"new is a reserved name"}},
		{"unknown function", `type X @create(if: "size(new.a) > 1") { a: String }`, []string{"unknown function size"}},
		{"single equals", `type X @create(if: "new.a = 'x'") { a: String }`, []string{`"==`}},
		{"open string", `type X @create(if: "new.a == 'x") { a: String }`, []string{"string not closed"}},
		{"trailing tokens", `type X @create(if: "new.a == 'x' 'y'") { a: String }`, []string{"after the end of the condition"}},
		{"rule twice", `type X @create(if: "true") @create(if: "true") { a: String }`, []string{"@create given twice"}},
		{"rule without if", `type X @create(when: "true") { a: String }`, []string{`@create wants one argument if`}},
		{"write undeclared role", `type X @write(roles: ["ghost"]) { a: String }`, []string{`role "ghost" is not declared`}},
		{"write reader", `type X @write(roles: ["reader"]) { a: String }`, []string{`"reader" reads but never writes`}},
		{"write not a list", `type X @write(roles: "member") { a: String }`, []string{"@write wants one argument roles"}},
		{"roles twice", `extend schema @roles(names: ["x"]) @roles(names: ["y"])`, []string{"@roles is given twice"}},
		{"role reserved", `extend schema @roles(names: ["admin"])`, []string{`"admin" is reserved`}},
		{"role bad name", `extend schema @roles(names: ["Big Boss"])`, []string{"lowercase letter"}},
		{"role duplicate", `extend schema @roles(names: ["a", "a"])`, []string{`"a" is declared twice`}},
		{"schema extension with types", `extend schema @roles(names: ["a"]) { query: Book }`, []string{"no operation types"}},
		{"other schema directive", `extend schema @link(url: "x")`, []string{"unknown directive @link"}},
		{"ordering booleans", `type X @create(if: "new.a < true") { a: Boolean }`, []string{"orders numbers"}},
		{"and of strings", `type X @create(if: "new.a and true") { a: String }`, []string{"and joins Booleans"}},
		{"deep nesting", `type X @create(if: "` + strings.Repeat("not ", 100) + `true") { a: String }`, []string{"nested deeper than"}},
		{"creator of a value", `type X @update(if: "creator(new.a) == author") { a: String }`, []string{"creator wants a document"}},
		{"fields of author", `type X @create(if: "author.name == 'x'") { a: String }`, []string{"author has no fields"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := base + tc.text
			if strings.HasPrefix(tc.text, "extend schema") {
				text = tc.text + " type Y { a: String }"
			}
			s, err := Parse(text)
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

// mapSource is a view held in maps: collection -> id -> document.
type mapSource struct {
	docs    map[string]map[string]*Doc
	lookups int
	gets    int
}

func (m *mapSource) Doc(coll, id string) (*Doc, error) {
	m.gets++
	return m.docs[coll][id], nil
}

func (m *mapSource) Lookup(coll, field string, value any) ([]string, error) {
	m.lookups++
	var ids []string
	for id, d := range m.docs[coll] {
		if compare(tNull, d.Fields[field], value) == 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func TestRuleEvalLending(t *testing.T) {
	s := lendingSchema(t)
	loan, _ := s.Collection("Loan")
	review, _ := s.Collection("Review")
	book, _ := s.Collection("Book")
	src := &mapSource{docs: map[string]map[string]*Doc{
		"Book": {"b1": {ID: "b1", Fields: map[string]any{"title": "Dune"}}, "b2": {ID: "b2", Fields: map[string]any{"title": "Emma"}}},
		"Loan": {
			"l1": {ID: "l1", Fields: map[string]any{"book": "b1", "borrower": "ann", "returned": false}, Creator: "ann"},
			"l2": {ID: "l2", Fields: map[string]any{"book": "b2", "borrower": "bob", "returned": true}, Creator: "bob"},
		},
	}}
	now := uint64(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	newLoan := func(bookID, borrower string, due any) *Doc {
		f := map[string]any{"book": bookID, "borrower": borrower, "returned": false}
		if due != nil {
			f["due"] = due
		}
		return &Doc{ID: "new", Fields: f}
	}
	tests := []struct {
		name string
		rule *Rule
		env  Env
		ok   bool
		why  string
	}{
		{"loan of a free book", loan.Rule(ActionCreate), Env{Author: "cat", Role: "member", Now: now, New: newLoan("b2", "cat", nil)}, true, ""},
		{"loan of a lent book", loan.Rule(ActionCreate), Env{Author: "cat", Role: "member", Now: now, New: newLoan("b1", "cat", nil)}, false, "Loan/l1 matches"},
		{"loan of a missing book", loan.Rule(ActionCreate), Env{Author: "cat", Role: "member", Now: now, New: newLoan("b9", "cat", nil)}, false, "exists(Book b where b.id == new.book) is false"},
		{"loan for someone else", loan.Rule(ActionCreate), Env{Author: "cat", Role: "member", Now: now, New: newLoan("b2", "dan", nil)}, false, `new.borrower == author is false; role == "librarian" is false`},
		{"librarian lends for someone", loan.Rule(ActionCreate), Env{Author: "lib", Role: "librarian", Now: now, New: newLoan("b2", "dan", nil)}, true, ""},
		{"due within 30 days", loan.Rule(ActionCreate), Env{Author: "cat", Role: "member", Now: now, New: newLoan("b2", "cat", "2024-05-20T00:00:00Z")}, true, ""},
		{"due too late", loan.Rule(ActionCreate), Env{Author: "cat", Role: "member", Now: now, New: newLoan("b2", "cat", "2024-07-01T00:00:00Z")}, false, "new.due <= now + days(30)"},
		{"review by a borrower who returned", review.Rule(ActionCreate), Env{Author: "bob", Role: "member", Now: now, New: &Doc{ID: "r", Fields: map[string]any{"book": "b2", "stars": int64(4)}}}, true, ""},
		{"review by a non-borrower", review.Rule(ActionCreate), Env{Author: "cat", Role: "member", Now: now, New: &Doc{ID: "r", Fields: map[string]any{"book": "b2", "stars": int64(4)}}}, false, "no document matches"},
		{"review before returning", review.Rule(ActionCreate), Env{Author: "ann", Role: "member", Now: now, New: &Doc{ID: "r", Fields: map[string]any{"book": "b1", "stars": int64(4)}}}, false, "no document matches"},
		{"delete a lent book", book.Rule(ActionDelete), Env{Author: "lib", Role: "librarian", Now: now, ID: "b1", Old: src.docs["Book"]["b1"]}, false, "Loan/l1 matches"},
		{"delete a free book", book.Rule(ActionDelete), Env{Author: "lib", Role: "librarian", Now: now, ID: "b2", Old: src.docs["Book"]["b2"]}, true, ""},
		{"review edited by its creator", review.Rule(ActionUpdate), Env{Author: "bob", Old: &Doc{ID: "r", Creator: "bob"}, New: &Doc{ID: "r"}}, true, ""},
		{"review edited by another", review.Rule(ActionUpdate), Env{Author: "cat", Old: &Doc{ID: "r", Creator: "bob"}, New: &Doc{ID: "r"}}, false, "creator(old) == author is false"},
		{"return by the borrower", loan.Rule(ActionUpdate), Env{Author: "ann", Role: "member", Old: src.docs["Loan"]["l1"],
			New: &Doc{ID: "l1", Fields: map[string]any{"book": "b1", "borrower": "ann", "returned": true}}}, true, ""},
		{"reopen while another is open", loan.Rule(ActionUpdate), Env{Author: "lib", Role: "librarian", Old: &Doc{ID: "l9", Fields: map[string]any{"book": "b1", "borrower": "x", "returned": true}},
			New: &Doc{ID: "l9", Fields: map[string]any{"book": "b1", "borrower": "x", "returned": false}}}, false, "Loan/l1 matches"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.rule.Eval(tc.env, src)
			if err != nil {
				t.Fatal(err)
			}
			ok, why := out.OK, out.Why
			if ok != tc.ok {
				t.Fatalf("Eval = %v (%s), want %v", ok, why, tc.ok)
			}
			if !strings.Contains(why, tc.why) {
				t.Errorf("why %q does not contain %q", why, tc.why)
			}
		})
	}
}

func TestRuleEvalValues(t *testing.T) {
	s, err := Parse(`type X
	  @create(if: """
	    new.n + 1 == 3 and new.f > 1 and new.f < 2.5 and new.n in [1, 2] and new.s in ['a', "b"]
	    and contains(new.tags, 'red') and not contains(new.tags, 'blue')
	    and new.missing == null and not (new.missing == 'x') and new.missing != 'x' and not (new.missing < 'x')
	    and new.d - days(1) < '2024-05-01T00:00:00Z' and new.d - '2024-04-01T00:00:00Z' > days(29)
	    and now > new.d and -1 < new.n and 9007199254740993 > 9007199254740992
	  """) { n: Int f: Float s: String tags: [String!] @set missing: String d: DateTime }`)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := s.Collection("X")
	env := Env{Now: uint64(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC).UnixMilli()), New: &Doc{Fields: map[string]any{
		"n": int64(2), "f": 1.5, "s": "b", "tags": []any{"green", "red"}, "d": "2024-05-01T12:00:00Z",
	}}}
	out, err := x.Rule(ActionCreate).Eval(env, &mapSource{})
	if err != nil || !out.OK {
		t.Fatalf("Eval = %+v, %v; want true", out, err)
	}
	env.New.Fields["n"] = int64(3)
	if out, _ := x.Rule(ActionCreate).Eval(env, &mapSource{}); out.OK || !strings.Contains(out.Why, "new.n + 1 == 3 is false") {
		t.Fatalf("with n=3: Eval = %+v; want false naming new.n + 1 == 3", out)
	}
}

func TestRuleLookupIsIndexed(t *testing.T) {
	s := lendingSchema(t)
	loan, _ := s.Collection("Loan")
	src := &mapSource{docs: map[string]map[string]*Doc{"Book": {"b1": {ID: "b1"}}}}
	out, _ := loan.Rule(ActionCreate).Eval(Env{Author: "a", New: &Doc{Fields: map[string]any{"book": "b1", "borrower": "a"}}}, src)
	if !out.OK {
		t.Fatal("loan refused")
	}
	if want := [][2]string{{"Book", "b1"}}; !slices.Equal(out.Relied, want) {
		t.Errorf("relied on %q, want %q", out.Relied, want)
	}
	// One Doc for the book by id, one Lookup for the open loans: no scan.
	if src.gets != 1 || src.lookups != 1 {
		t.Errorf("%d gets and %d lookups, want 1 and 1", src.gets, src.lookups)
	}
}

// FuzzRuleCondition: any condition text either compiles or is refused with
// a position, and a compiled one evaluates on any documents without
// panicking.
func FuzzRuleCondition(f *testing.F) {
	for _, seed := range []string{
		"exists(Book b where b.id == new.book) and not exists(Loan l where l.book == new.book and l.returned == false)",
		"creator(old) == author or role in ['librarian', 'admin']",
		"new.due - now < days(3) + hours(2) and new.n + 1.5 > 2",
		"contains(new.tags, 'x') and (new.missing == null or new.missing != 'y')",
		"exists(Loan l where l.book == new.book and exists(Book b where b.id == l.book and b.n >= -3))",
		"not not (1 == 1.0)", "'a' < \"b\"", "((((", "new.", "exists(", "a = b", "'\\u00e9' == new.s",
	} {
		f.Add(seed)
	}
	base, err := Parse(`type Book { title: String n: Int tags: [String!] @set } type Loan { book: Book returned: Boolean due: DateTime n: Float s: String missing: String tags: [String!] @set }`)
	if err != nil {
		f.Fatal(err)
	}
	docs := &mapSource{docs: map[string]map[string]*Doc{
		"Book": {"b1": {ID: "b1", Fields: map[string]any{"title": "x", "n": int64(2), "tags": []any{"x"}}}},
		"Loan": {"l1": {ID: "l1", Fields: map[string]any{"book": "b1", "returned": false, "due": "2024-01-01T00:00:00Z", "n": 1.5}}},
	}}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := base.compileRule("Loan", ActionUpdate, text)
		if err != nil {
			var re *ruleError
			if !errors.As(err, &re) {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		d := docs.docs["Loan"]["l1"]
		if _, err := r.Eval(Env{Author: "a", Role: "r", Now: 1_700_000_000_000, Old: d, New: d}, docs); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Eval(Env{}, docs); err != nil {
			t.Fatal(err)
		}
	})
}
