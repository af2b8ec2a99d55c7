package neo4j

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/adapters/adaptertest"
	"github.com/tributary-sync/tributary/adapters/internal/naming"
	"github.com/tributary-sync/tributary/adapters/neo4j/neo4jtest"
	"github.com/tributary-sync/tributary/checkpoint"
)

// Two nodes (or two spaces) with a sink of one name in one database: the
// second is refused at start, naming the owner; a read-only reader
// fences nobody out; a checkpoint node written before claims is adopted.
func TestSecondClaimantRefused(t *testing.T) {
	url := neo4jtest.Shared(t)
	neo4jtest.Wipe(t, url)
	ctx := context.Background()
	sch := mustSchema(t, "type Note @collection { title: String! }")
	first := open(t, Config{URL: url, Name: "graph", Space: "bafyspace1", Node: "node-1"})
	apply(t, first, sch, up(5, "Note", "n1", map[string]any{"title": "one"}))
	for _, cfg := range []Config{
		{URL: url, Name: "graph", Space: "bafyspace1", Node: "node-2"},
		{URL: url, Name: "graph", Space: "bafyspace2", Node: "node-1"},
	} {
		s, err := New(ctx, cfg)
		if err == nil {
			s.Close(ctx)
			t.Fatalf("%s/%s let in beside (bafyspace1, node-1)", cfg.Space, cfg.Node)
		}
		var ce *checkpoint.ClaimedError
		if !errors.As(err, &ce) || ce.Owner != (checkpoint.Claim{Space: "bafyspace1", Node: "node-1", Sink: "graph"}) {
			t.Fatalf("refusal: %v", err)
		}
	}
	r := open(t, Config{URL: url, Name: "graph", ReadOnly: true})
	if c, err := r.Checkpoint(ctx); c != 5 || err != nil {
		t.Fatalf("reader's checkpoint %d, %v", c, err)
	}
	if docs, err := r.Documents(ctx, sch.Collections[0]); err != nil || docs["n1"].Fields["title"] != "one" {
		t.Fatalf("reader's documents %v, %v", docs, err)
	}
	if err := r.Apply(ctx, checkpoint.Batch{Through: 6}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("apply through a reader: %v", err)
	}
	apply(t, first, sch, up(6, "Note", "n2", map[string]any{"title": "two"}))

	// A checkpoint node from before claims: {sink, lsn} only.
	cypher(t, first.Driver(), "CREATE (:"+quote(CheckpointLabel)+" {sink: 'old', lsn: 17})", nil)
	old := open(t, Config{URL: url, Name: "old", Space: "bafyspace1", Node: "node-1"})
	if c, err := old.Checkpoint(ctx); c != 17 || err != nil {
		t.Fatalf("adopted checkpoint %d, %v", c, err)
	}
	if _, err := New(ctx, Config{URL: url, Name: "old", Space: "bafyspace2"}); !errors.Is(err, checkpoint.ErrClaimed) {
		t.Fatalf("second claimant after the adoption: %v", err)
	}
}

// Neo4j's names: labels, properties and relationship types tell case
// apart, so BookReview and bookreview keep their names; relationship
// types are upper-cased field names, so writer and Writer would share
// one: the second gets a hash suffix. The mapping is stored in the graph
// and a reordering upgrade moves nothing. Two spaces share a database
// with a label prefix; without one the second is refused at start.
func TestNameMapping(t *testing.T) {
	url := neo4jtest.Shared(t)
	neo4jtest.Wipe(t, url)
	ctx := context.Background()
	v1, v2 := mustSchema(t, adaptertest.NamesSchema), mustSchema(t, adaptertest.NamesSchemaV2)
	s := open(t, Config{URL: url, Name: "names"})
	apply(t, s, v1,
		up(1, "BookReview", "r1", map[string]any{"Title": "T", "pageCount": int64(1), "PageCount": "one", "writer": "p1"}),
		up(2, "bookreview", "r1", map[string]any{"text": "lower"}),
	)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{URL: url, Name: "names"})
	d := s.Driver()
	apply(t, s, v2,
		up(3, "BookReview", "r2", map[string]any{"Title": "Upper", "title": "lower", "pageCount": int64(2), "PageCount": "two", "writer": "p1", "Writer": "p2"}),
		up(4, "BOOKREVIEW", "r1", map[string]any{"text": "UPPER"}),
	)
	for _, coll := range []string{"BookReview", "bookreview", "BOOKREVIEW", adaptertest.LongCollection} {
		if l, err := s.Label(ctx, coll); l != coll || err != nil {
			t.Fatalf("label of %s: %q, %v", coll, l, err)
		}
	}
	upper := naming.Suffixed("WRITER", "Writer", 1, MaxName)
	if got := edges(t, d, "BookReview", "WRITER"); !slices.Equal(got, []string{"r1->p1", "r2->p1"}) {
		t.Fatalf("WRITER: %q", got)
	}
	if got := edges(t, d, "BookReview", upper); !slices.Equal(got, []string{"r2->p2"}) {
		t.Fatalf("%s: %q", upper, got)
	}
	r2 := node(t, d, "BookReview", "r2")
	if r2["Title"] != "Upper" || r2["title"] != "lower" || r2["pageCount"] != int64(2) || r2["PageCount"] != "two" {
		t.Fatalf("r2 as stored: %v", r2)
	}
	c, _ := v2.Collection("BookReview")
	docs, err := s.Documents(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if f := docs["r2"].Fields; f["writer"] != "p1" || f["Writer"] != "p2" || f["title"] != "lower" {
		t.Fatalf("r2 read back as %v", f)
	}
	rows := cypher(t, d, "MATCH (m:"+quote(MappingLabel)+" {collection: 'BookReview'}) RETURN m.fields AS f, m.types AS t", nil)
	if len(rows) != 1 {
		t.Fatalf("%d mapping nodes for BookReview", len(rows))
	}
	fields, types := rows[0]["f"].([]any), rows[0]["t"].([]any)
	if len(fields) != 9 || fields[0] != "Title" || fields[7] != "title" || fields[8] != "Writer" || types[6] != "WRITER" || types[8] != upper {
		t.Fatalf("mapping of BookReview: fields %v, types %v", fields, types)
	}

	// Another space in the same database: refused at start without a
	// prefix, side by side with one.
	intruder := open(t, Config{URL: url, Name: "names2", Space: "bafyotherspace"})
	if err := intruder.Prepare(ctx, v2); !errors.Is(err, checkpoint.ErrClaimed) || !strings.Contains(err.Error(), "sink names") {
		t.Fatalf("prepare over another claim's labels: %v", err)
	}
	beside := open(t, Config{URL: url, Name: "names3", Space: "bafyotherspace", LabelPrefix: "Other_"})
	apply(t, beside, v2, up(9, "BookReview", "r1", map[string]any{"Title": "theirs", "writer": "p9"}))
	if got := edges(t, d, "Other_BookReview", "WRITER"); !slices.Equal(got, []string{"r1->p9"}) {
		t.Fatalf("prefixed WRITER: %q", got)
	}
	if node(t, d, "BookReview", "r1")["Title"] != "T" {
		t.Fatal("the prefixed sink wrote the first one's node")
	}

	// Overrides are checked at start.
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "names", Labels: map[string]string{"BookReview": "Review"}}, "never changes"},
		{Config{Name: "names", Labels: map[string]string{"Magazine": "BookReview"}}, "holds collection BookReview"},
		{Config{Name: "names4", Space: "x", Labels: map[string]string{"Magazine": "BookReview"}}, "belongs to"},
		{Config{Name: "names4", Labels: map[string]string{"Magazine": MappingLabel}}, "the sink's own"},
	} {
		cfg := tc.cfg
		cfg.URL = url
		s, err := New(ctx, cfg)
		if err == nil {
			s.Close(ctx)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.cfg.Labels, err, tc.want)
		}
	}
}

// TestInterruptedConstraintRecovered: a node killed while Neo4j created
// one of the sink's uniqueness constraints leaves the constraint's backing
// index behind (named as the constraint, owned by none), and every later
// CREATE CONSTRAINT fails on that name. The next start must recover: drop
// the orphan and create the constraint. (Found by the SIGKILL test.)
func TestInterruptedConstraintRecovered(t *testing.T) {
	url := neo4jtest.Shared(t)
	neo4jtest.Wipe(t, url)
	ctx := context.Background()
	cfg := Config{URL: url, Name: "graph", Space: "bafyspace1", Node: "node-1"}
	s := open(t, cfg)
	d := s.Driver()
	owned := cypher(t, d, "SHOW CONSTRAINTS YIELD name, labelsOrTypes WHERE labelsOrTypes = [$l] RETURN name", map[string]any{"l": MappingLabel})
	if len(owned) != 1 {
		t.Fatalf("constraints on :%s: %v", MappingLabel, owned)
	}
	name := owned[0]["name"].(string)
	// What the interrupted creation leaves: the index without its constraint.
	cypher(t, d, "DROP CONSTRAINT "+quote(name), nil)
	cypher(t, d, "CREATE INDEX "+quote(name)+" FOR (n:"+quote(MappingLabel)+") ON (n.label)", nil)
	s.Close(ctx)

	again, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("start after an interrupted constraint creation: %v", err)
	}
	defer again.Close(ctx)
	d = again.Driver()
	got := cypher(t, d, "SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties WHERE labelsOrTypes = [$l] RETURN properties", map[string]any{"l": MappingLabel})
	if len(got) != 1 {
		t.Fatalf("after recovery, constraints on :%s: %v", MappingLabel, got)
	}
	orphans := cypher(t, d, "SHOW INDEXES YIELD name, owningConstraint WHERE name = $n AND owningConstraint IS NULL RETURN name", map[string]any{"n": name})
	if len(orphans) != 0 {
		t.Fatalf("the orphan index %s is still there", name)
	}
}
