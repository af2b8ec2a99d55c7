package checkpoint

import (
	"reflect"
	"testing"

	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// TestUnderSchema: an effect written before a rename reaches the sink
// with the value under the field's new name; effects under the schema,
// or with nothing to move, pass as they are, and the input is never
// modified.
func TestUnderSchema(t *testing.T) {
	v1, err := schema.Parse(`type Book { name: String, year: Int }`)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := schema.Parse(`type Book { title: String @renamed(from: "name"), year: Int }`)
	if err != nil {
		t.Fatal(err)
	}
	in := []eventstream.Effect{
		{Collection: "Book", DocID: "a", Kind: eventstream.Upsert, SchemaID: v1.ID, Doc: map[string]any{"name": "Dune", "year": int64(1965)}},
		{Collection: "Book", DocID: "b", Kind: eventstream.Upsert, SchemaID: v2.ID, Doc: map[string]any{"title": "Emma"}},
		{Collection: "Book", DocID: "c", Kind: eventstream.Delete, SchemaID: v1.ID},
		{Collection: "Book", DocID: "d", Kind: eventstream.Upsert, SchemaID: v1.ID, Doc: map[string]any{"year": int64(2000)}},
	}
	out := underSchema(v2, in)
	if want := map[string]any{"title": "Dune", "year": int64(1965)}; !reflect.DeepEqual(out[0].Doc, want) {
		t.Fatalf("renamed effect %v, want %v", out[0].Doc, want)
	}
	if in[0].Doc["name"] != "Dune" || in[0].Doc["title"] != nil {
		t.Fatalf("the input effect was modified: %v", in[0].Doc)
	}
	for i := 1; i < len(in); i++ {
		if !reflect.DeepEqual(out[i], in[i]) {
			t.Fatalf("effect %d changed: %+v", i, out[i])
		}
	}
	if got := underSchema(v1, in); &got[0] != &in[0] {
		t.Fatal("a schema without renames copied the batch")
	}
}
