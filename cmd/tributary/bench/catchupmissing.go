package bench

import (
	"context"
	"fmt"
	"time"
)

// runCatchupMissing: A and B both hold n documents, B (with its postgres
// sink) goes offline, A writes m more, B starts again: the catch-up of a
// small difference in a large set. The n held documents are loaded at A
// with B online and reach B over libp2p (each home keeps its own identity;
// nothing is copied between homes); the m missing ones are single-document
// PUTs at A, one change each, as an application writes. Reported: the time
// until all rows are in B's Postgres, the reconciliation round trips of
// both sides until B held every change, the bytes B received then against
// the encoded size of the m missing changes (a bundle of them from A),
// and rows/s against pgx.
func runCatchupMissing(ctx context.Context, t *trial) error {
	n, m := t.h.cfg.MissingHeld, t.h.cfg.MissingDocs
	file, _, err := t.items("h", n)
	if err != nil {
		return err
	}
	const warm = 10
	p, err := t.startCatchupPair(ctx, "hw", warm)
	if err != nil {
		return err
	}
	a, an, bn, url, space := p.a, p.an, p.bn, p.url, p.space
	t.h.logf("  A loads %d documents; B online holds them too", n)
	if _, _, err := t.load(ctx, a, space, file, n); err != nil {
		return err
	}
	if _, err := t.waitRows(ctx, url, warm+n, "B's PostgreSQL before B goes offline"); err != nil {
		return fmt.Errorf("%w; %s", err, meshSummary(ctx, bn))
	}
	sa, err := an.API.status(ctx, space)
	if err != nil {
		return err
	}
	var held spaceStatus
	if err := waitUntil(ctx, time.Minute, "B holds every change A holds", func() (bool, error) {
		var err error
		held, err = bn.API.status(ctx, space)
		return err == nil && held.Space.Changes == sa.Space.Changes, err
	}); err != nil {
		return err
	}
	if err := t.stopNode(bn); err != nil {
		return err
	}
	t.h.logf("  B offline; A writes %d documents, one PUT each", m)
	for i := range m {
		it := genItem(t.h.cfg.Seed, "hm", i)
		if err := an.API.put(ctx, space, it.ID, it.body()); err != nil {
			return fmt.Errorf("write %d of the missing documents: %w", i, err)
		}
	}
	missing, changes, err := an.API.exportSize(ctx, space, held.Space.Heads)
	if err != nil {
		return err
	}
	sa, err = an.API.status(ctx, space)
	if err != nil {
		return err
	}
	before, start, ready, err := t.returnB(ctx, p)
	if err != nil {
		return err
	}
	bn = p.bn
	// The sync's own figures are read as soon as B holds every change:
	// each side also checks the other every mesh.sync_interval (one round
	// when nothing differs), and those checks are no part of the catch-up.
	if err := waitUntil(ctx, waitFor(m), "B holds every change A holds", func() (bool, error) {
		st, err := bn.API.status(ctx, space)
		return err == nil && st.Space.Changes >= sa.Space.Changes, err
	}); err != nil {
		return fmt.Errorf("%w; %s", err, meshSummary(ctx, bn))
	}
	synced := time.Since(start)
	mb, err := bn.API.metrics(ctx)
	if err != nil {
		return err
	}
	ma, err := an.API.metrics(ctx)
	if err != nil {
		return err
	}
	wait, err := t.waitRows(ctx, url, warm+n+m, "B's PostgreSQL after catch-up")
	if err != nil {
		return fmt.Errorf("%w; %s", err, meshSummary(ctx, bn))
	}
	total := time.Since(start)
	endB, err := bn.API.metrics(ctx)
	if err != nil {
		return err
	}
	endA, err := an.API.metrics(ctx)
	if err != nil {
		return err
	}
	delta := func(k string) float64 { return ma[k] - before[k] }
	raw, err := rawUpsert(ctx, url, t.h.cfg.Seed, "hm", m, t.h.cfg.PGBatch)
	if err != nil {
		return err
	}
	if err := t.finish(); err != nil {
		return err
	}
	cs := fmt.Sprintf("held=%d missing=%d", n, m)
	t.add(Result{Case: cs, Metric: "B start -> all rows in B's Postgres", Unit: "s", Value: total.Seconds(),
		Note: fmt.Sprintf("B served its API after %.2fs, held every change after %.2fs, the first missing row came after %.2fs; both held %d changes before",
			ready.Seconds(), synced.Seconds(), (synced + wait.first).Seconds(), held.Space.Changes)}, nil)
	t.add(Result{Case: cs, Metric: "catch-up into Postgres", Unit: "rows/s", Value: perSecond(m, total)},
		&Baseline{What: fmt.Sprintf("pgx unnest upsert, %d rows per txn", t.h.cfg.PGBatch), Value: raw})
	t.add(Result{Case: cs, Metric: "bytes B received in sync", Unit: "bytes", Value: mb[seriesBytesReceived]},
		&Baseline{What: fmt.Sprintf("bundle of the %d missing changes", changes), Value: float64(missing)})
	t.add(Result{Case: cs, Metric: "reconcile round trips, A's and B's", Unit: "count", Value: mb[seriesRounds] + delta(seriesRounds),
		Note: fmt.Sprintf("until B held every change: B %.0f rounds in %.0f syncs, A %.0f in %.0f; until the last row, with the periodic checks: %.0f; B received %.0f changes",
			mb[seriesRounds], mb[seriesSyncsStarted], delta(seriesRounds), delta(seriesSyncsStarted),
			endB[seriesRounds]+endA[seriesRounds]-before[seriesRounds], endB[seriesChangesReceived])}, nil)
	return nil
}
