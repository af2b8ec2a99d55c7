package adaptertest

import (
	"fmt"
	"strings"

	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// RenameSchema is the first version of the rename scenario: Volume has a
// field of each CRDT and a reference.
const RenameSchema = `type Shelf @collection {
  label: String!
}

type Volume @collection {
  title: String!
  pages: Int
  shelf: Shelf
  likes: Int @counter
  tags: [String!] @set
}
`

// RenameSchemaV2 renames every field of Volume but pages
// (@renamed(from: ...)) and adds isbn.
var RenameSchemaV2 = strings.NewReplacer(
	"title: String!", `heading: String! @renamed(from: "title")`,
	"shelf: Shelf", `place: Shelf @renamed(from: "shelf")`,
	"likes: Int @counter", `hearts: Int @counter @renamed(from: "likes")`,
	"tags: [String!] @set", "labels: [String!] @set @renamed(from: \"tags\")\n  isbn: String",
).Replace(RenameSchema)

// RenameSchemaV3 renames Volume.heading again: a chain of renames.
var RenameSchemaV3 = strings.Replace(RenameSchemaV2, `heading: String! @renamed(from: "title")`,
	`headline: String! @renamed(from: ["heading", "title"])`, 1)

// renamedTo is the field names of RenameSchema under each later version.
var renamedTo = map[string]map[string]string{
	"v2": {"title": "heading", "shelf": "place", "likes": "hearts", "tags": "labels"},
	"v3": {"title": "headline", "shelf": "place", "likes": "hearts", "tags": "labels"},
}

func volume(i, v int, names map[string]string) map[string]any {
	d := map[string]any{
		"title": fmt.Sprintf("Volume %d v%d", i, v), "pages": int64(100 + i + v),
		"shelf": fmt.Sprintf("shelf-%d", i%3), "likes": int64(i * v),
		"tags": []any{fmt.Sprintf("t%d", i%4), fmt.Sprintf("v%d", v)},
	}
	for old, name := range names {
		d[name] = d[old]
		delete(d, old)
	}
	return d
}

// testRename: a schema upgrade renames fields (a register, a reference,
// a counter, a set), then renames one again. The documents written before
// and never written again read under the new names: the target kept the
// column, property or document field of each renamed field (a new one
// would hold nothing for them), across a restart too.
func testRename(f *fixture) {
	f.setSchema(RenameSchema)
	s := f.open()
	r := f.runner(s, config(50))
	var es []eventstream.Effect
	for i := range 3 {
		es = append(es, f.upsert("Shelf", fmt.Sprintf("shelf-%d", i), map[string]any{"label": fmt.Sprintf("Shelf %d", i)}))
	}
	for i := range 10 {
		es = append(es, f.upsert("Volume", fmt.Sprintf("vol-%d", i), volume(i, 0, nil)))
	}
	f.append(es...)
	f.catchUp(r)
	f.check(s, f.last())

	// Effects written under the first version that the sink has not
	// applied yet when the upgrade comes reach it under the new names.
	es = nil
	for i := 10; i < 13; i++ {
		es = append(es, f.upsert("Volume", fmt.Sprintf("vol-%d", i), volume(i, 0, nil)))
	}
	f.append(es...)
	f.setSchema(RenameSchemaV2)
	es = nil
	for i := range 4 {
		d := volume(i, 1, renamedTo["v2"])
		d["isbn"] = fmt.Sprintf("978-%d", i)
		es = append(es, f.upsert("Volume", fmt.Sprintf("vol-%d", i), d))
	}
	f.append(es...)
	f.catchUp(r)
	f.check(s, f.last())

	// A new instance under the second rename carries on over the target.
	f.close(s)
	f.setSchema(RenameSchemaV3)
	s2 := f.open()
	f.append(f.upsert("Volume", "vol-4", volume(4, 2, renamedTo["v3"])), f.upsert("Volume", "vol-13", volume(13, 2, renamedTo["v3"])), f.upsert("Volume", "vol-10", volume(10, 2, renamedTo["v3"])))
	r2 := f.runner(s2, config(50))
	f.catchUp(r2)
	f.check(s2, f.last())
}

// underNames is doc under the names of c (the state the effects define
// under c).
func underNames(c *schema.Collection, doc map[string]any) map[string]any {
	out, _ := c.Rename(doc)
	return out
}
