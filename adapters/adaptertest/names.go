package adaptertest

import (
	"context"
	"fmt"
	"strings"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// Names that targets find hard, used by the names scenario.
var (
	// LongPrefix is 63 bytes, PostgreSQL's identifier limit: the two
	// fields that start with it differ only past it.
	LongPrefix = "reviewFieldWith" + strings.Repeat("VeryLong", 6)
	// LongCollection is a 72-byte collection name.
	LongCollection = "Catalogue" + strings.Repeat("Entry", 12) + "Xyz"
)

// NamesSchema has names that collide once folded to lower case (Title
// and the title NamesSchemaV2 adds; pageCount and PageCount; ID and the
// id every target keeps; BookReview and bookreview), fields that share a
// 63-byte prefix, a 72-byte collection name, a collection named like
// PostgreSQL's checkpoint table, and two reference fields whose
// relationship types would collide in Neo4j (writer, and Writer in V2).
var NamesSchema = fmt.Sprintf(`type Person @collection {
  name: String
}

type BookReview @collection {
  Title: String
  pageCount: Int
  PageCount: String
  ID: String
  %[1]sOne: String
  %[1]sTwo: Int
  writer: Person
}

type bookreview @collection {
  text: String
}

type tributary_checkpoints @collection {
  note: String
}

type %[2]s @collection {
  value: Int
}
`, LongPrefix, LongCollection)

// NamesSchemaV2 is an additive upgrade of NamesSchema: BookReview gains
// title (beside Title) and Writer (beside writer), its fields PageCount and
// pageCount swap places, and the collection BOOKREVIEW is added.
var NamesSchemaV2 = fmt.Sprintf(`type Person @collection {
  name: String
}

type BookReview @collection {
  PageCount: String
  Title: String
  pageCount: Int
  ID: String
  %[1]sTwo: Int
  %[1]sOne: String
  writer: Person
  title: String
  Writer: Person
}

type bookreview @collection {
  text: String
}

type BOOKREVIEW @collection {
  text: String
}

type tributary_checkpoints @collection {
  note: String
}

type %[2]s @collection {
  value: Int
}
`, LongPrefix, LongCollection)

// testNames writes every hard name through an additive upgrade that adds
// colliding names and reorders fields: each field must land in its own
// place and come back under its own name, before and after the upgrade,
// through the same and through a new instance.
func testNames(f *fixture) {
	f.setSchema(NamesSchema)
	one, two := LongPrefix+"One", LongPrefix+"Two"
	f.append(
		f.upsert("Person", "p1", map[string]any{"name": "Pat"}),
		f.upsert("Person", "p2", map[string]any{"name": "Sam"}),
		f.upsert("BookReview", "r1", map[string]any{"Title": "Upper", "pageCount": int64(10), "PageCount": "ten", "ID": "the ID field", one: "first", two: int64(2), "writer": "p1"}),
		f.upsert("BookReview", "r2", map[string]any{"pageCount": int64(20), one: "only one"}),
		f.upsert("bookreview", "r1", map[string]any{"text": "the lower-case collection"}),
		f.upsert("tributary_checkpoints", "t1", map[string]any{"note": "not a checkpoint"}),
		f.upsert(LongCollection, "c1", map[string]any{"value": int64(72)}),
	)
	s := f.open()
	r := f.runner(s, config(3))
	f.catchUp(r)
	f.check(s, f.last())

	// The upgrade, through the same instance.
	f.setSchema(NamesSchemaV2)
	f.append(
		f.upsert("BookReview", "r1", map[string]any{"Title": "Upper 2", "title": "lower 2", "pageCount": int64(11), "PageCount": "eleven", "ID": "ID 2", one: "first 2", two: int64(3), "writer": "p1", "Writer": "p2"}),
		f.upsert("BookReview", "r3", map[string]any{"title": "only the lower title", "PageCount": "p"}),
		f.upsert("BOOKREVIEW", "r1", map[string]any{"text": "the upper-case collection"}),
		f.upsert("bookreview", "r2", map[string]any{"text": "another"}),
		f.upsert("tributary_checkpoints", "t2", map[string]any{"note": "still not a checkpoint"}),
		f.upsert(LongCollection, "c2", map[string]any{"value": int64(73)}),
		f.del("BookReview", "r2"),
	)
	f.catchUp(r)
	f.check(s, f.last())

	// A new instance under the new schema finds every name where it was.
	f.close(s)
	s2 := f.open()
	f.checkState(f.last())
	f.append(
		f.upsert("BookReview", "r2", map[string]any{"Title": "back", "title": "again", "pageCount": int64(21), "PageCount": "twenty-one", two: int64(-1), "Writer": "p1"}),
		f.upsert("BOOKREVIEW", "r2", map[string]any{"text": "more"}),
	)
	r2 := f.runner(s2, config(50))
	f.catchUp(r2)
	f.check(s2, f.last())
}

// refusing is a sink that refuses the documents named in ids, before the
// sink it wraps sees them, until they are allowed.
type refusing struct {
	checkpoint.Sink
	ids map[string]bool // guarded by the fixture's runner: one Apply at a time
}

// Prepare passes checkpoint.Preparer through.
func (r *refusing) Prepare(ctx context.Context, sch *schema.Schema) error {
	return prepare(ctx, r.Sink, sch)
}

func (r *refusing) Apply(ctx context.Context, b checkpoint.Batch) error {
	for i, e := range b.Effects {
		if r.ids[e.DocID] {
			return &checkpoint.RejectedError{Index: i, Reason: "refused by the suite: " + e.DocID}
		}
	}
	return r.Sink.Apply(ctx, b)
}

// testRetry parks effects, then retries them (tributary sink retry): the
// sink must apply again an effect its checkpoint already covers (a
// Batch.Redo), new document and update alike, while a superseded one is
// dropped and one still refused stays parked.
func testRetry(f *fixture) {
	ref := &refusing{Sink: f.open(), ids: map[string]bool{}}
	r := f.runner(ref, config(100))
	var es []eventstream.Effect
	for i := range 8 {
		es = append(es, f.upsert("Book", bookID(i), book(i, 0)))
	}
	f.append(es...)
	f.catchUp(r)

	for _, id := range []string{bookID(1), bookID(2), bookID(3), "book-new"} {
		ref.ids[id] = true
	}
	fresh := f.appendRejected(f.upsert("Book", "book-new", book(100, 0)))       // a new document
	update := f.appendRejected(f.upsert("Book", bookID(1), book(1, 1)))         // an update
	superseded := f.appendRejected(f.upsert("Book", bookID(2), book(2, 1)))     // updated again below
	stubborn := f.appendRejected(f.upsert("Book", bookID(3), book(3, 1)))       // refused for good
	f.append(f.upsert("Book", bookID(4), book(4, 1)), f.del("Book", bookID(5))) // unaffected
	f.catchUp(r)
	f.check(ref, f.last())
	delete(ref.ids, bookID(2))
	newer := f.append(f.upsert("Book", bookID(2), book(2, 2)))
	f.catchUp(r)
	f.check(ref, f.last())

	delete(ref.ids, bookID(1))
	delete(ref.ids, "book-new")
	out, err := r.Retry(f.ctx())
	if err != nil {
		f.t.Fatalf("%s: retry: %v", f.h.Name(), err)
	}
	want := map[uint64]string{fresh[0].LSN: checkpoint.RetryApplied, update[0].LSN: checkpoint.RetryApplied,
		superseded[0].LSN: checkpoint.RetrySuperseded, stubborn[0].LSN: checkpoint.RetryRefused}
	if len(out) != len(want) {
		f.t.Fatalf("%s: retry outcomes %+v, want 4", f.h.Name(), out)
	}
	for _, o := range out {
		if o.Outcome != want[o.Effect.LSN] {
			f.t.Errorf("%s: parked LSN %d (%s): %s, want %s", f.h.Name(), o.Effect.LSN, o.Effect.DocID, o.Outcome, want[o.Effect.LSN])
		}
		if o.Outcome == checkpoint.RetrySuperseded && o.By != newer[0].LSN {
			f.t.Errorf("%s: superseded by LSN %d, want %d", f.h.Name(), o.By, newer[0].LSN)
		}
	}
	f.accept(fresh[0].LSN, update[0].LSN)
	f.check(ref, f.last())
	parked, err := f.parking.List(f.ctx(), f.name)
	if err != nil || len(parked) != 1 || parked[0].Effect.LSN != stubborn[0].LSN {
		f.t.Fatalf("%s: still parked %+v (%v), want only LSN %d", f.h.Name(), parked, err, stubborn[0].LSN)
	}

	// A second retry changes nothing; the runner carries on.
	if out, err := r.Retry(f.ctx()); err != nil || len(out) != 1 || out[0].Outcome != checkpoint.RetryRefused {
		f.t.Fatalf("%s: second retry: %+v, %v", f.h.Name(), out, err)
	}
	f.append(f.upsert("Book", bookID(6), book(6, 5)))
	f.catchUp(r)
	f.check(ref, f.last())
}
