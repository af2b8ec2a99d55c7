package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tributary-sync/tributary/adapters/neo4j"
	"github.com/tributary-sync/tributary/checkpoint"
)

func init() {
	sinkOpeners["neo4j"] = func(sc sinkConfig, claim checkpoint.Claim) (func(context.Context) (checkpoint.Sink, error), error) {
		if err := knownOptions(sc, "username", "password", "database", "batch_size", "label_prefix"); err != nil {
			return nil, err
		}
		cfg := neo4j.Config{URL: sc.URL, Name: sc.Name, Space: claim.Space, Node: claim.Node, Username: sc.Options["username"],
			Password: sc.Options["password"], Database: sc.Options["database"], LabelPrefix: sc.Options["label_prefix"], Labels: sc.Tables}
		if v, ok := sc.Options["batch_size"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > neo4j.MaxBatchSize {
				return nil, fmt.Errorf("option batch_size %q: want 1 to %d", v, neo4j.MaxBatchSize)
			}
			cfg.BatchSize = n
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return func(ctx context.Context) (checkpoint.Sink, error) {
			s, err := neo4j.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return s, nil
		}, nil
	}
}
