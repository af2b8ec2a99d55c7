package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tributary-sync/tributary/adapters/neo4j"
	"github.com/tributary-sync/tributary/checkpoint"
)

func init() {
	sinkOpeners["neo4j"] = func(ctx context.Context, sc sinkConfig) (checkpoint.Sink, error) {
		if err := knownOptions(sc, "username", "password", "database", "batch_size"); err != nil {
			return nil, err
		}
		cfg := neo4j.Config{URL: sc.URL, Name: sc.Name, Username: sc.Options["username"], Password: sc.Options["password"], Database: sc.Options["database"]}
		if v, ok := sc.Options["batch_size"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100000 {
				return nil, fmt.Errorf("option batch_size %q: want 1 to 100000", v)
			}
			cfg.BatchSize = n
		}
		return neo4j.New(ctx, cfg)
	}
}
