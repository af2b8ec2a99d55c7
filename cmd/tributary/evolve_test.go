package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type violationOut struct {
	Collection string `json:"collection"`
	ID         string `json:"id"`
	Field      string `json:"field"`
	Reason     string `json:"reason"`
}

// TestSchemaEvolutionThroughTheBinary: the user path of a schema change.
// An upgrade that drops a field or changes a type is refused naming the
// field; one that renames a field, changes a default and tightens a rule
// with the flag policy is accepted; a member who has not seen it yet
// keeps writing the old name, and after the exchange both homes read his
// value under the new name; `violations` lists the flagged document on
// both homes until a put fixes it.
func TestSchemaEvolutionThroughTheBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1 := write("v1.graphql", `type Book {
  name: String!
  pages: Int
  status: String @default(value: "draft")
}`)
	alice, _ := newHome(t, "alice")
	var created struct {
		Space string `json:"space"`
	}
	ok(t, alice, &created, "space", "create", "--schema", v1, "--name", "shelf")
	space := created.Space
	bob, bobKey := joinAs(t, alice, space, dir, "bob")
	ok(t, alice, nil, "member", "grant", "--space", space, bobKey, "--role", "writer")
	put(t, alice, space, "Book", `{"name":"Dune","pages":0}`, "--id", "b1")
	exchange(t, alice, bob, space, filepath.Join(dir, "a1.trb"))

	for file, want := range map[string][]string{
		"drop.graphql":  {"upgrade drops field Book.name", `@renamed(from: "name")`},
		"type.graphql":  {"changes the type of Book.pages from Int to String"},
		"tight.graphql": {"Book.pages: @range min goes from none to 1", "@existing(policy: keep)"},
	} {
		text := map[string]string{
			"drop.graphql":  "type Book {\n  title: String!\n  pages: Int\n  status: String @default(value: \"draft\")\n}",
			"type.graphql":  "type Book {\n  name: String!\n  pages: String\n  status: String @default(value: \"draft\")\n}",
			"tight.graphql": "type Book {\n  name: String!\n  pages: Int @range(min: 1)\n  status: String @default(value: \"draft\")\n}",
		}[file]
		fails(t, alice, append([]string{"schema upgrade"}, want...), "space", "upgrade", "--space", space, "--schema", write(file, text))
	}
	v2 := write("v2.graphql", `type Book {
  title: String! @renamed(from: "name")
  pages: Int @range(min: 1) @existing(policy: flag)
  status: String @default(value: "new")
}`)
	ok(t, alice, nil, "space", "upgrade", "--space", space, "--schema", v2)
	fails(t, alice, []string{"unknown field Book.name", "renamed to title"}, "put", "--space", space, "Book", `{"name":"x"}`, "--id", "b1")
	put(t, alice, space, "Book", `{"title":"Children of Dune","pages":444}`, "--id", "b3")

	// bob has not seen the upgrade: he writes the old name.
	put(t, bob, space, "Book", `{"name":"Dune (revised)"}`, "--id", "b1")
	put(t, bob, space, "Book", `{"name":"Dune Messiah","pages":331}`, "--id", "b2")
	exchange(t, bob, alice, space, filepath.Join(dir, "b1.trb"))
	exchange(t, alice, bob, space, filepath.Join(dir, "a2.trb"))

	for _, home := range []string{alice, bob} {
		b1 := get(t, home, space, "Book", "b1")
		if b1["title"] != "Dune (revised)" || b1["name"] != nil || b1["status"] != "draft" {
			t.Fatalf("b1 on %s: %v, want bob's title under the new name and the old default", filepath.Base(home), b1)
		}
		if b2 := get(t, home, space, "Book", "b2"); b2["title"] != "Dune Messiah" || b2["status"] != "draft" {
			t.Fatalf("b2 on %s: %v", filepath.Base(home), b2)
		}
		if b3 := get(t, home, space, "Book", "b3"); b3["status"] != "new" {
			t.Fatalf("b3 on %s: %v, want the new default", filepath.Base(home), b3)
		}
		var vs []violationOut
		ok(t, home, &vs, "violations", "--space", space)
		if len(vs) != 1 || vs[0].ID != "b1" || vs[0].Field != "pages" || vs[0].Reason == "" {
			t.Fatalf("violations on %s: %+v, want b1.pages", filepath.Base(home), vs)
		}
	}

	// The same over HTTP, with alice's node running (the CLI then goes
	// through it too).
	api := newAPIClient(t, alice, startNode(t, alice))
	auth := map[string]string{"Authorization": "Bearer " + api.token, "Content-Type": "application/json"}
	httpViolations := func() []violationOut {
		t.Helper()
		code, body := api.raw("GET", "/v1/spaces/"+space+"/violations", "", auth)
		var vs []violationOut
		if err := json.Unmarshal(body, &vs); code != http.StatusOK || err != nil {
			t.Fatalf("GET violations: %d %s", code, body)
		}
		return vs
	}
	if vs := httpViolations(); len(vs) != 1 || vs[0].ID != "b1" {
		t.Fatalf("GET violations: %+v, want b1.pages", vs)
	}
	bad, _ := json.Marshal(map[string]string{"schema": "type Book {\n  title: Int @renamed(from: \"name\")\n  pages: Int\n  status: String\n}"})
	code, body := api.raw("POST", "/v1/spaces/"+space+"/schema", string(bad), auth)
	if code < 400 || code >= 500 || !strings.Contains(string(body), "Book.title") {
		t.Fatalf("POST a hostile upgrade: %d %s, want a 4xx naming Book.title", code, body)
	}
	put(t, alice, space, "Book", `{"pages":412}`, "--id", "b1")
	var vs []violationOut
	ok(t, alice, &vs, "violations", "--space", space)
	if len(vs) != 0 || len(httpViolations()) != 0 {
		t.Fatalf("violations after the fix: %+v", vs)
	}
}
