package bench

import (
	"context"
	"fmt"
	"time"
)

// startB starts node B on home b, dialling A, with cfg (a sink config or
// "") and waits until A and B see each other.
func (t *trial) startB(ctx context.Context, a *Node, b, space, cfg string, profileNow bool) (*Node, error) {
	bn, err := t.startNode(ctx, b, "B", nodeOptions{peers: a.Addrs, config: cfg, profileNow: profileNow})
	if err != nil {
		return nil, err
	}
	return bn, waitUntil(ctx, time.Minute, "A and B connected over libp2p", func() (bool, error) {
		sa, err := a.API.status(ctx, space)
		if err != nil {
			return false, err
		}
		sb, err := bn.API.status(ctx, space)
		return err == nil && sa.peers() > 0 && sb.peers() > 0, err
	})
}

// catchupPair is A and B, B with a postgres sink, both up and through a
// warm-up of warm documents: where every catch-up scenario starts.
type catchupPair struct {
	a, b, space, url, cfg string
	an, bn                *Node
}

func (t *trial) startCatchupPair(ctx context.Context, warmPrefix string, warm int) (*catchupPair, error) {
	p := &catchupPair{}
	var err error
	if p.a, p.b, p.space, err = t.pair(ctx); err != nil {
		return nil, err
	}
	if p.url, err = t.database(ctx); err != nil {
		return nil, err
	}
	if p.cfg, err = t.sinkConfig("B", p.space, p.url); err != nil {
		return nil, err
	}
	if p.an, err = t.startNode(ctx, p.a, "A", nodeOptions{}); err != nil {
		return nil, err
	}
	if p.bn, err = t.startB(ctx, p.an, p.b, p.space, p.cfg, false); err != nil {
		return nil, err
	}
	return p, t.warmUp(ctx, p.an, p.space, p.url, warmPrefix, warm)
}

// returnB starts B again after an outage that outlasts gossipsub's
// message cache (as after any real outage, what B lacks comes by
// reconciliation, not by gossip of recent messages). It returns A's
// metrics from just before, when B started and how long it took to
// serve its API; the measured part of the scenario starts here.
func (t *trial) returnB(ctx context.Context, p *catchupPair) (before map[string]float64, start time.Time, ready time.Duration, err error) {
	select {
	case <-ctx.Done():
		return nil, start, 0, ctx.Err()
	case <-time.After(gossipWindow):
	}
	if before, err = p.an.API.metrics(ctx); err != nil {
		return nil, start, 0, err
	}
	if err := t.measure(); err != nil {
		return nil, start, 0, err
	}
	start = time.Now()
	if p.bn, err = t.startB(ctx, p.an, p.b, p.space, p.cfg, true); err != nil {
		return nil, start, 0, err
	}
	return before, start, time.Since(start), nil
}

// warmUp writes k documents at A and waits until they are rows in the
// sink's database: the mesh and the sink are up and have done a round.
func (t *trial) warmUp(ctx context.Context, a *Node, space, url, prefix string, k int) error {
	for i := range k {
		it := genItem(t.h.cfg.Seed, prefix, i)
		if err := a.API.put(ctx, space, it.ID, it.body()); err != nil {
			return fmt.Errorf("warm-up write: %w", err)
		}
	}
	_, err := t.waitRows(ctx, url, k, "warm-up")
	return err
}

// waitUntil polls cond every 50ms until it holds, fails, or limit passes.
func waitUntil(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%s: not within %s: %w", what, limit, last)
			}
			return fmt.Errorf("%s: not within %s", what, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// meshSummary says what a node's mesh did, for an error about rows that
// never came.
func meshSummary(ctx context.Context, n *Node) string {
	m, err := n.API.metrics(ctx)
	if err != nil {
		return fmt.Sprintf("node %s metrics: %v", n.Name, err)
	}
	return fmt.Sprintf("node %s: %.0f syncs started, %.0f failed, %.0f changes received, %.0f applied (its log, kept with --dir, says why)",
		n.Name, m[seriesSyncsStarted], m[seriesSyncsFailed], m[seriesChangesReceived], m[seriesChangesApplied])
}
