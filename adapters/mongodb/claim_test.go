package mongodb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tributary-sync/tributary/adapters/internal/naming"
	"github.com/tributary-sync/tributary/adapters/mongodb"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/eventstream"
)

// Two nodes (or two spaces) with a sink of one name in one database: the
// second is refused at start, naming the owner; a read-only reader
// fences nobody out; a checkpoint written before claims is adopted.
func TestSecondClaimantRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	url := h.uri + h.db("reports")
	first, err := mongodb.New(ctx, mongodb.Config{URL: url, Name: "reports", Space: "bafyspace1", Node: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close(ctx)
	apply(t, first, mustSchema(t, bookSDL), 9, book(9, "b1", "one"))
	for _, cfg := range []mongodb.Config{
		{URL: url, Name: "reports", Space: "bafyspace1", Node: "node-2"},
		{URL: url, Name: "reports", Space: "bafyspace2", Node: "node-1"},
	} {
		s, err := mongodb.New(ctx, cfg)
		if err == nil {
			s.Close(ctx)
			t.Fatalf("%s/%s let in beside (bafyspace1, node-1)", cfg.Space, cfg.Node)
		}
		var ce *checkpoint.ClaimedError
		if !errors.As(err, &ce) || ce.Owner != (checkpoint.Claim{Space: "bafyspace1", Node: "node-1", Sink: "reports"}) {
			t.Fatalf("refusal: %v", err)
		}
	}
	r, err := mongodb.New(ctx, mongodb.Config{URL: url, Name: "reports", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if c, err := r.Checkpoint(ctx); c != 9 || err != nil {
		t.Fatalf("reader's checkpoint %d, %v", c, err)
	}
	if name, err := r.CollectionName(ctx, "Book"); name != "Book" || err != nil {
		t.Fatalf("reader's Book: %q, %v", name, err)
	}
	if err := r.Apply(ctx, checkpoint.Batch{Through: 10}); !errors.Is(err, mongodb.ErrReadOnly) {
		t.Fatalf("apply through a reader: %v", err)
	}
	apply(t, first, nil, 10)

	// A checkpoint from before claims: {_id, lsn} only.
	legacy := h.db("legacy")
	if _, err := h.client.Database(legacy).Collection(mongodb.CheckpointCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: "old"}, {Key: "lsn", Value: int64(17)}}); err != nil {
		t.Fatal(err)
	}
	s, err := mongodb.New(ctx, mongodb.Config{URL: h.uri + legacy, Name: "old", Space: "bafyspace1", Node: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if c := ckpt(t, s); c != 17 {
		t.Fatalf("adopted checkpoint %d", c)
	}
	if _, err := mongodb.New(ctx, mongodb.Config{URL: h.uri + legacy, Name: "old", Space: "bafyspace2", Node: "node-1"}); !errors.Is(err, checkpoint.ErrClaimed) {
		t.Fatalf("second claimant after the adoption: %v", err)
	}
}

// MongoDB's own name rules: a collection name longer than the server
// takes (235 bytes on FerretDB, 255 with the database on MongoDB) is cut
// with a hash suffix; the mapping is stored and listed per field,
// growing with an upgrade and unmoved by a reordering; overrides are
// checked at start.
func TestNameMapping(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	long := "Shelf" + strings.Repeat("Section", 40) // 285 bytes
	v1 := mustSchema(t, fmt.Sprintf("type %s @collection { a: String B: Int }\ntype Book @collection { title: String }", long))
	v2 := mustSchema(t, fmt.Sprintf("type %s @collection { B: Int a: String c: String A: String }\ntype Book @collection { title: String }", long))
	s := h.open(t, "names", 0)
	apply(t, s, v1, 1, eventstream.Effect{LSN: 1, Collection: long, DocID: "x", Kind: eventstream.Upsert, Doc: map[string]any{"a": "one", "B": int64(2)}})
	name, err := s.CollectionName(ctx, long)
	if err != nil {
		t.Fatal(err)
	}
	if want := naming.Suffixed(long, long, 1, mongodb.MaxCollectionName); name != want || len(name) > mongodb.MaxCollectionName {
		t.Fatalf("long collection in %q (%d bytes), want %q", name, len(name), want)
	}
	apply(t, s, v2, 2, eventstream.Effect{LSN: 2, Collection: long, DocID: "y", Kind: eventstream.Upsert, Doc: map[string]any{"a": "lower", "A": "upper", "B": int64(3), "c": "new"}})
	if got := h.Read(t, "names", long); got["x"]["a"] != "one" || got["x"]["B"] != int64(2) || got["y"]["a"] != "lower" || got["y"]["A"] != "upper" || got["y"]["c"] != "new" {
		t.Fatalf("read back %v", got)
	}
	var doc struct {
		Fields []struct{ Field, Name string } `bson:"fields"`
	}
	if err := h.client.Database(h.db("names")).Collection(mongodb.NamesCollection).FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range doc.Fields {
		listed = append(listed, f.Field+"="+f.Name)
	}
	if strings.Join(listed, " ") != "a=a B=B c=c A=A" {
		t.Fatalf("mapping lists %q", listed)
	}

	// Overrides.
	url := h.uri + h.db("names")
	claim := checkpoint.Claim{Space: "bafyspaceadaptertest", Node: "node-adaptertest", Sink: "names"}
	for _, tc := range []struct {
		cfg  mongodb.Config
		want string
	}{
		{mongodb.Config{Collections: map[string]string{"Book": "livres"}}, "never changes"},
		{mongodb.Config{Collections: map[string]string{"Magazine": "Book"}}, "holds collection Book"},
		{mongodb.Config{Collections: map[string]string{"Magazine": "system.x"}}, "reserved"},
		{mongodb.Config{Collections: map[string]string{"Magazine": "a$b"}}, "'$'"},
		{mongodb.Config{Collections: map[string]string{"Magazine": "_tributary_x"}}, "reserved"},
		{mongodb.Config{Collections: map[string]string{"Magazine": strings.Repeat("m", 240)}}, "over the"},
		{mongodb.Config{Collections: map[string]string{"Magazine": "m", "Comic": "m"}}, "both map to"},
		{mongodb.Config{Name: "intruder", Space: "other", Collections: map[string]string{"Novel": "Book"}}, "belongs to"},
	} {
		cfg := tc.cfg
		cfg.URL = url
		if cfg.Name == "" {
			cfg.Name, cfg.Space, cfg.Node = claim.Sink, claim.Space, claim.Node
		}
		s, err := mongodb.New(ctx, cfg)
		if err == nil {
			s.Close(ctx)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.cfg.Collections, err, tc.want)
		}
	}
	// A sink of another claim with its collections named apart runs
	// beside the first.
	other, err := mongodb.New(ctx, mongodb.Config{URL: url, Name: "other", Space: "bafyotherspace", Collections: map[string]string{"Book": "OtherBook", long: "OtherShelf"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if err := other.Prepare(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if name, _ := other.CollectionName(ctx, "Book"); name != "OtherBook" {
		t.Fatalf("other's Book in %q", name)
	}
}
