package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core/replica"
)

// runLoad: `tributary load` of n documents into a running node A (the
// batch endpoint, batches of Config.LoadBatch); beside it the same
// batches through replica.Mutate in this process (the product without
// its CLI and HTTP), and the same lines written to raw Badger (the
// storage floor).
func runLoad(ctx context.Context, t *trial) error {
	n := t.h.cfg.LoadDocs
	home, space, err := t.single(ctx, "A")
	if err != nil {
		return err
	}
	file, size, err := t.items("l", n)
	if err != nil {
		return err
	}
	if _, err := t.startNode(ctx, home, "A", nodeOptions{}); err != nil {
		return err
	}
	if err := t.measure(); err != nil {
		return err
	}
	rep, el, err := t.load(ctx, home, space, file, n)
	if err != nil {
		return err
	}
	if err := t.finish(); err != nil {
		return err
	}
	mutate, err := rawMutate(ctx, filepath.Join(t.dir, "raw-mutate"), t.h.cfg.Seed, "l", n, t.h.cfg.LoadBatch)
	if err != nil {
		return err
	}
	raw, err := rawBadger(filepath.Join(t.dir, "raw-badger"), t.h.cfg.Seed, "l", n, t.h.cfg.LoadBatch)
	if err != nil {
		return err
	}
	cs := fmt.Sprintf("n=%d batch=%d", n, t.h.cfg.LoadBatch)
	note := fmt.Sprintf("%d batches, %d changes, %.1f MiB of NDJSON", rep.Batches, rep.Changes, float64(size)/(1<<20))
	prod := perSecond(n, el)
	t.add(Result{Case: cs, Metric: "tributary load via node", Unit: "docs/s", Value: prod, Note: note},
		&Baseline{What: "replica.Mutate in process, same batches", Value: mutate})
	t.add(Result{Case: cs, Metric: "tributary load via node", Unit: "docs/s", Value: prod},
		&Baseline{What: "raw Badger: the same lines, one synced txn per batch", Value: raw})
	return nil
}

// rawMutate founds a space in a fresh home and writes the documents
// through replica.Mutate in batches, timing only Mutate: the replica
// with its effect log, as the node opens it.
func rawMutate(ctx context.Context, dir string, seed uint64, prefix string, n, batch int) (float64, error) {
	h, _, err := node.InitHome(dir)
	if err != nil {
		return 0, err
	}
	now := func() uint64 { return uint64(time.Now().UnixMilli()) }
	staging, sp, err := h.CreateSpaceDir()
	if err != nil {
		return 0, err
	}
	id, err := sp.Replica.Found(ctx, h.Key, "bench", schemaSDL, nil, now())
	sp.Close()
	if err != nil {
		return 0, fmt.Errorf("raw Mutate baseline: found: %w", err)
	}
	if err := h.CommitSpace(staging, node.SpaceInfo{Space: id.String(), Name: "bench"}); err != nil {
		return 0, err
	}
	if sp, err = h.OpenSpace(ctx, id.String()); err != nil {
		return 0, err
	}
	defer sp.Close()
	var elapsed time.Duration
	for lo := 0; lo < n; lo += batch {
		muts := make([]replica.Mutation, min(batch, n-lo))
		for j := range muts {
			it := genItem(seed, prefix, lo+j)
			muts[j] = replica.Mutation{Op: replica.MutPut, Collection: collection, ID: it.ID, Fields: it.mutationFields()}
		}
		start := time.Now()
		_, _, err := sp.Replica.Mutate(ctx, h.Key, muts, now())
		elapsed += time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("raw Mutate baseline: %w", err)
		}
	}
	return perSecond(n, elapsed), nil
}

// rawBadger writes each document's NDJSON line under its key, one synced
// transaction per batch, with the options the replica opens Badger with.
func rawBadger(dir string, seed uint64, prefix string, n, batch int) (float64, error) {
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).
		WithNumVersionsToKeep(1).WithMetricsEnabled(false))
	if err != nil {
		return 0, fmt.Errorf("raw Badger baseline: %w", err)
	}
	defer db.Close()
	var elapsed time.Duration
	for lo := 0; lo < n; lo += batch {
		k := min(batch, n-lo)
		keys, vals := make([][]byte, k), make([][]byte, k)
		for j := range k {
			it := genItem(seed, prefix, lo+j)
			keys[j], vals[j] = []byte("d/"+collection+"/"+it.ID), it.line()
		}
		start := time.Now()
		txn := db.NewTransaction(true)
		for j := range k {
			if err := txn.Set(keys[j], vals[j]); err != nil {
				txn.Discard()
				return 0, fmt.Errorf("raw Badger baseline: %w", err)
			}
		}
		err := txn.Commit()
		elapsed += time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("raw Badger baseline: %w", err)
		}
	}
	return perSecond(n, elapsed), nil
}
