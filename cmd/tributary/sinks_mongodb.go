package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tributary-sync/tributary/adapters/mongodb"
	"github.com/tributary-sync/tributary/checkpoint"
)

func init() {
	sinkOpeners["mongodb"] = func(ctx context.Context, sc sinkConfig) (checkpoint.Sink, error) {
		if err := knownOptions(sc, "chunk_size"); err != nil {
			return nil, err
		}
		cfg := mongodb.Config{URL: sc.URL, Name: sc.Name}
		if v, ok := sc.Options["chunk_size"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("option chunk_size %q: want 1 to 1000", v)
			}
			cfg.ChunkSize = n
		}
		return mongodb.New(ctx, cfg)
	}
}
