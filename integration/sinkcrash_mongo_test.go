package integration

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tributary-sync/tributary/adapters/mongodb"
	"github.com/tributary-sync/tributary/adapters/mongodb/mongotest"
	"github.com/tributary-sync/tributary/core/schema"
)

// TestMongoSinkSurvivesKills runs the crash test against an embedded
// FerretDB (no transactions: the LSN-guarded writes carry exactly-once).
func TestMongoSinkSurvivesKills(t *testing.T) {
	crashTest(t, target{typ: "mongodb", kills: 8,
		start: func(t testing.TB) string { return mongotest.Start(t) + "crash" },
		read: func(t *testing.T, url string, sch *schema.Schema) (map[string]map[string]map[string]any, uint64) {
			ctx := context.Background()
			client, err := mongo.Connect(ctx, options.Client().ApplyURI(url))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Disconnect(ctx)
			db := client.Database("crash")
			out := map[string]map[string]map[string]any{}
			for _, c := range sch.Collections {
				out[c.Name] = map[string]map[string]any{}
				cur, err := db.Collection(c.Name).Find(ctx, bson.D{})
				if err != nil {
					t.Fatal(err)
				}
				for cur.Next(ctx) {
					id, fields, deleted, err := mongodb.DecodeDoc(c, cur.Current)
					if err != nil {
						t.Fatal(err)
					}
					if !deleted {
						out[c.Name][id] = fields
					}
				}
				if err := cur.Err(); err != nil {
					t.Fatal(err)
				}
				cur.Close(ctx)
			}
			s, err := mongodb.New(ctx, mongodb.Config{URL: url, Name: "crash", ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			ckpt, err := s.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return out, ckpt
		}})
}
