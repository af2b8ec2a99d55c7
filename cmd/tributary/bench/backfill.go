package bench

import (
	"context"
	"fmt"
	"time"
)

// runBackfill: a node with a postgres sink holds n documents, all in its
// database; `tributary sink reset` makes the sink rewrite them all from
// the (compacted) effect log: rows/s until its checkpoint is back at the
// end, beside the pgx baseline.
func runBackfill(ctx context.Context, t *trial) error {
	n := t.h.cfg.BackfillDocs
	home, space, err := t.single(ctx, "A")
	if err != nil {
		return err
	}
	url, err := t.database(ctx)
	if err != nil {
		return err
	}
	cfg, err := t.sinkConfig("A", space, url)
	if err != nil {
		return err
	}
	file, _, err := t.items("b", n)
	if err != nil {
		return err
	}
	an, err := t.startNode(ctx, home, "A", nodeOptions{config: cfg})
	if err != nil {
		return err
	}
	if _, _, err := t.load(ctx, home, space, file, n); err != nil {
		return err
	}
	if _, err := t.waitRows(ctx, url, n, "A's PostgreSQL"); err != nil {
		return err
	}
	caughtUp := func(min uint64) func() (bool, error) {
		return func() (bool, error) {
			s, err := an.API.sink(ctx, "pg")
			return err == nil && s.Running && s.Applied >= min && s.Checkpoint == s.LastLSN && s.LastLSN > 0, err
		}
	}
	if err := waitUntil(ctx, waitFor(n), "sink caught up before the reset", caughtUp(0)); err != nil {
		return err
	}
	if err := t.measure(); err != nil {
		return err
	}
	start := time.Now()
	if err := t.cli(ctx, home, nil, "sink", "reset", "pg"); err != nil {
		return err
	}
	if err := waitUntil(ctx, waitFor(n), "backfill after the reset", caughtUp(uint64(n))); err != nil {
		return err
	}
	el := time.Since(start)
	raw, err := rawUpsert(ctx, url, t.h.cfg.Seed, "b", n, t.h.cfg.PGBatch)
	if err != nil {
		return err
	}
	t.add(Result{Case: fmt.Sprintf("n=%d", n), Metric: "sink reset -> rows rewritten", Unit: "rows/s", Value: perSecond(n, el),
		Note: fmt.Sprintf("%.2fs", el.Seconds())},
		&Baseline{What: fmt.Sprintf("pgx unnest upsert, %d rows per txn", t.h.cfg.PGBatch), Value: raw})
	return nil
}
