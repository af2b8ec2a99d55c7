package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// runCatchup: B (with its postgres sink) goes offline, A writes n
// documents, B starts again: the time until all rows are in B's
// Postgres, the reconciliation round trips B made and the bytes it
// received (its /metrics) against the encoded size of the changes it
// lacked (a bundle of them from A), and rows/s against the pgx baseline.
func runCatchup(ctx context.Context, t *trial) error {
	for _, n := range t.h.cfg.CatchupDocs {
		if err := catchup(ctx, t, n); err != nil {
			return fmt.Errorf("n=%d: %w", n, err)
		}
	}
	return nil
}

// gossipWindow outlasts gossipsub's message cache.
const gossipWindow = 6 * time.Second

func catchup(ctx context.Context, t *trial, n int) error {
	defer func(dir string) { t.dir = dir }(t.dir)
	t.dir = filepath.Join(t.dir, fmt.Sprintf("n%d", n))
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return err
	}
	prefix := fmt.Sprintf("c%d-", n)
	file, _, err := t.items(prefix, n)
	if err != nil {
		return err
	}
	const warm = 10
	p, err := t.startCatchupPair(ctx, prefix+"w", warm)
	if err != nil {
		return err
	}
	an, url, space := p.an, p.url, p.space
	st, err := p.bn.API.status(ctx, space)
	if err != nil {
		return err
	}
	if err := t.stopNode(p.bn); err != nil {
		return err
	}
	t.h.logf("  B offline; A writes %d documents", n)
	if _, _, err := t.load(ctx, p.a, space, file, n); err != nil {
		return err
	}
	missing, changes, err := an.API.exportSize(ctx, space, st.Space.Heads)
	if err != nil {
		return err
	}
	before, start, ready, err := t.returnB(ctx, p)
	if err != nil {
		return err
	}
	bn := p.bn
	wait, err := t.waitRows(ctx, url, warm+n, "B's PostgreSQL after catch-up")
	if err != nil {
		return fmt.Errorf("%w; %s", err, meshSummary(ctx, bn))
	}
	total := time.Since(start)
	m, err := bn.API.metrics(ctx)
	if err != nil {
		return err
	}
	after, err := an.API.metrics(ctx)
	if err != nil {
		return err
	}
	// B is a new process (its counters start at 0); A's are taken as the
	// difference over the catch-up. Either side may start the sync.
	delta := func(k string) float64 { return after[k] - before[k] }
	rounds := m[seriesRounds] + delta(seriesRounds)
	raw, err := rawUpsert(ctx, url, t.h.cfg.Seed, prefix, n, t.h.cfg.PGBatch)
	if err != nil {
		return err
	}
	if err := t.finish(); err != nil {
		return err
	}
	cs := fmt.Sprintf("n=%d", n)
	t.add(Result{Case: cs, Metric: "B start -> all rows in B's Postgres", Unit: "s", Value: total.Seconds(),
		Note: fmt.Sprintf("B served its API after %.2fs, the first row came after %.2fs", ready.Seconds(), (ready + wait.first).Seconds())}, nil)
	t.add(Result{Case: cs, Metric: "catch-up into Postgres", Unit: "rows/s", Value: perSecond(n, total)},
		&Baseline{What: fmt.Sprintf("pgx unnest upsert, %d rows per txn", t.h.cfg.PGBatch), Value: raw})
	t.add(Result{Case: cs, Metric: "bytes B received in sync", Unit: "bytes", Value: m[seriesBytesReceived]},
		&Baseline{What: fmt.Sprintf("bundle of the %d missing changes", changes), Value: float64(missing)})
	t.add(Result{Case: cs, Metric: "reconcile round trips, A's and B's", Unit: "count", Value: rounds,
		Note: fmt.Sprintf("syncs started: %.0f by B, %.0f by A; B received %.0f changes", m[seriesSyncsStarted],
			delta(seriesSyncsStarted), m[seriesChangesReceived])}, nil)
	return nil
}
