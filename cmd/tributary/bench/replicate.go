package bench

import (
	"context"
	"fmt"
	"time"
)

// runReplicate: n documents loaded at A flow over libp2p to B and through
// B's postgres sink into its database: rows/s from the start of A's load
// to the last row at B; beside it a pgx unnest upsert of the same rows
// into a scratch table of the same database.
func runReplicate(ctx context.Context, t *trial) error {
	n := t.h.cfg.ReplicateDocs
	a, b, space, err := t.pair(ctx)
	if err != nil {
		return err
	}
	url, err := t.database(ctx)
	if err != nil {
		return err
	}
	cfg, err := t.sinkConfig("B", space, url)
	if err != nil {
		return err
	}
	file, _, err := t.items("r", n)
	if err != nil {
		return err
	}
	an, err := t.startNode(ctx, a, "A", nodeOptions{})
	if err != nil {
		return err
	}
	bn, err := t.startB(ctx, an, b, space, cfg, false)
	if err != nil {
		return err
	}
	const warm = 10
	if err := t.warmUp(ctx, an, space, url, "rw", warm); err != nil {
		return err
	}
	if err := t.measure(); err != nil {
		return err
	}
	loaded := make(chan error, 1)
	var loadTime time.Duration
	go func() {
		var err error
		_, loadTime, err = t.load(ctx, a, space, file, n)
		loaded <- err
	}()
	wait, err := t.waitRows(ctx, url, warm+n, "B's PostgreSQL")
	if lerr := <-loaded; lerr != nil {
		return lerr
	}
	if err != nil {
		return fmt.Errorf("%w; %s", err, meshSummary(ctx, bn))
	}
	raw, err := rawUpsert(ctx, url, t.h.cfg.Seed, "r", n, t.h.cfg.PGBatch)
	if err != nil {
		return err
	}
	total := wait.all // from the load's start to the last row
	cs := fmt.Sprintf("n=%d", n)
	t.add(Result{Case: cs, Metric: "A load -> rows in B's Postgres", Unit: "rows/s", Value: perSecond(n, total),
		Note: fmt.Sprintf("first row after %.2fs; A's load took %.2fs, the last row came %.2fs after", wait.first.Seconds(), loadTime.Seconds(), (total - loadTime).Seconds())},
		&Baseline{What: fmt.Sprintf("pgx unnest upsert, %d rows per txn", t.h.cfg.PGBatch), Value: raw})
	return nil
}
