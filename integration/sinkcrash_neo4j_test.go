package integration

import (
	"context"
	"testing"

	"github.com/tributary-sync/tributary/adapters/neo4j"
	"github.com/tributary-sync/tributary/adapters/neo4j/neo4jtest"
	"github.com/tributary-sync/tributary/core/schema"
)

// TestNeo4jSinkSurvivesKills runs the crash test against a real Neo4j from
// Neo4j's own test harness.
func TestNeo4jSinkSurvivesKills(t *testing.T) {
	crashTest(t, target{typ: "neo4j", kills: 6, start: neo4jtest.Start,
		read: func(t *testing.T, url string, sch *schema.Schema) (map[string]map[string]map[string]any, uint64) {
			ctx := context.Background()
			s, err := neo4j.New(ctx, neo4j.Config{URL: url, Name: "crash", ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			out := map[string]map[string]map[string]any{}
			for _, c := range sch.Collections {
				docs, err := s.Documents(ctx, c)
				if err != nil {
					t.Fatal(err)
				}
				out[c.Name] = map[string]map[string]any{}
				for id, d := range docs {
					out[c.Name][id] = d.Fields
				}
			}
			ckpt, err := s.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return out, ckpt
		}})
}
