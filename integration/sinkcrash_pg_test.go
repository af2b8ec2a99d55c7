package integration

import (
	"context"
	"testing"

	"github.com/tributary-sync/tributary/adapters/postgres"
	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
	"github.com/tributary-sync/tributary/core/schema"
)

func TestPostgresSinkSurvivesKills(t *testing.T) {
	crashTest(t, target{typ: "postgres", kills: 20, start: pgtest.Start,
		read: func(t *testing.T, url string, sch *schema.Schema) (map[string]map[string]map[string]any, uint64) {
			ctx := context.Background()
			s, err := postgres.New(ctx, postgres.Config{URL: url, Name: "crash", ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			out := map[string]map[string]map[string]any{}
			for _, c := range sch.Collections {
				rows, err := s.Rows(ctx, c.Name)
				if err != nil {
					t.Fatal(err)
				}
				out[c.Name] = map[string]map[string]any{}
				for id, r := range rows {
					out[c.Name][id] = r.Fields
				}
			}
			ckpt, err := s.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return out, ckpt
		}})
}
