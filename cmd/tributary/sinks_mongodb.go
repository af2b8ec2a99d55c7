package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tributary-sync/tributary/adapters/mongodb"
	"github.com/tributary-sync/tributary/checkpoint"
)

func init() {
	sinkOpeners["mongodb"] = func(sc sinkConfig, claim checkpoint.Claim) (func(context.Context) (checkpoint.Sink, error), error) {
		if err := knownOptions(sc, "chunk_size"); err != nil {
			return nil, err
		}
		cfg := mongodb.Config{URL: sc.URL, Name: sc.Name, Space: claim.Space, Node: claim.Node, Collections: sc.Tables}
		if v, ok := sc.Options["chunk_size"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > mongodb.MaxChunkSize {
				return nil, fmt.Errorf("option chunk_size %q: want 1 to %d", v, mongodb.MaxChunkSize)
			}
			cfg.ChunkSize = n
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return func(ctx context.Context) (checkpoint.Sink, error) {
			s, err := mongodb.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return s, nil
		}, nil
	}
}
