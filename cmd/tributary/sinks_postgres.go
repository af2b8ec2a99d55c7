package main

import (
	"context"

	"github.com/tributary-sync/tributary/adapters/postgres"
	"github.com/tributary-sync/tributary/checkpoint"
)

func init() {
	sinkOpeners["postgres"] = func(sc sinkConfig, claim checkpoint.Claim) (func(context.Context) (checkpoint.Sink, error), error) {
		if err := knownOptions(sc, "schema", "table_prefix", "checkpoint_table"); err != nil {
			return nil, err
		}
		cfg := postgres.Config{URL: sc.URL, Name: sc.Name, Space: claim.Space, Node: claim.Node, Schema: sc.Options["schema"],
			TablePrefix: sc.Options["table_prefix"], CheckpointTable: sc.Options["checkpoint_table"], Tables: sc.Tables}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return func(ctx context.Context) (checkpoint.Sink, error) {
			s, err := postgres.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return s, nil
		}, nil
	}
}
