package main

import (
	"context"
	"fmt"

	"github.com/tributary-sync/tributary/adapters/postgres"
	"github.com/tributary-sync/tributary/checkpoint"
)

func init() {
	sinkOpeners["postgres"] = func(ctx context.Context, sc sinkConfig) (checkpoint.Sink, error) {
		if err := knownOptions(sc, "schema", "table_prefix", "checkpoint_table"); err != nil {
			return nil, err
		}
		return postgres.New(ctx, postgres.Config{URL: sc.URL, Name: sc.Name, Schema: sc.Options["schema"],
			TablePrefix: sc.Options["table_prefix"], CheckpointTable: sc.Options["checkpoint_table"]})
	}
}

// knownOptions refuses options a sink type does not take.
func knownOptions(sc sinkConfig, known ...string) error {
	for k := range sc.Options {
		ok := false
		for _, kn := range known {
			ok = ok || k == kn
		}
		if !ok {
			return fmt.Errorf("unknown option %q for a %s sink (known: %v)", k, sc.Type, known)
		}
	}
	return nil
}
