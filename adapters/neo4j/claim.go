package neo4j

import (
	"context"
	"fmt"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/tributary-sync/tributary/checkpoint"
)

// Claim is the sink's claim: (Config.Space, Config.Node, Config.Name).
func (s *Sink) Claim() checkpoint.Claim {
	return checkpoint.Claim{Space: s.cfg.Space, Node: s.cfg.Node, Sink: s.cfg.Name}
}

// owns tells whether mapping nodes of claim c are the sink's.
func (s *Sink) owns(c checkpoint.Claim) bool {
	if s.cfg.ReadOnly && s.cfg.Space == "" && s.cfg.Node == "" {
		return c.Sink == s.cfg.Name
	}
	return c == s.Claim()
}

// claim makes the checkpoint node the sink's, or finds it another
// claim's, and takes a new fence, in one transaction.
func (s *Sink) claim(ctx context.Context) error {
	sess := s.session(ctx, neo4j.AccessModeWrite)
	defer sess.Close(context.WithoutCancel(ctx))
	v, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		rec, err := single(ctx, tx, `MERGE (c:`+quote(CheckpointLabel)+` {sink: $sink})
ON CREATE SET c.lsn = 0
SET c.lsn = coalesce(c.lsn, 0)
RETURN c.space, c.node, coalesce(c.fence, 0)`, map[string]any{"sink": s.cfg.Name})
		if err != nil {
			return nil, err
		}
		space, hasSpace := rec.Values[0].(string)
		node, hasNode := rec.Values[1].(string)
		if hasSpace && hasNode && (space != s.cfg.Space || node != s.cfg.Node) {
			return nil, &checkpoint.ClaimedError{
				What:  fmt.Sprintf("checkpoint node (:%s {sink: %q})", CheckpointLabel, s.cfg.Name),
				Owner: checkpoint.Claim{Space: space, Node: node, Sink: s.cfg.Name},
				By:    s.Claim(),
				Hint: fmt.Sprintf("name this sink otherwise or give it a database of its own; to hand the target over, delete that node and the owner's :%s nodes",
					MappingLabel),
			}
		}
		// Ours, or written before claims existed: take the next fence.
		rec, err = single(ctx, tx, `MATCH (c:`+quote(CheckpointLabel)+` {sink: $sink})
SET c.space = $space, c.node = $node, c.fence = coalesce(c.fence, 0) + 1
RETURN c.fence`, map[string]any{"sink": s.cfg.Name, "space": s.cfg.Space, "node": s.cfg.Node})
		if err != nil {
			return nil, err
		}
		return rec.Values[0], nil
	})
	if err != nil {
		return err
	}
	fence, ok := v.(int64)
	if !ok {
		return fmt.Errorf("claim: the checkpoint node holds fence %v (%T)", v, v)
	}
	s.fence = fence
	return nil
}

// errFenced is the error of a sink whose fence the target no longer holds;
// held is nil when the checkpoint node is gone.
func (s *Sink) errFenced(held any) error {
	if held == nil {
		return fmt.Errorf("neo4j sink %s: its checkpoint node is gone: %w", s.cfg.Name, checkpoint.ErrFenced)
	}
	return fmt.Errorf("neo4j sink %s: fence %d, the checkpoint node holds %v: %w", s.cfg.Name, s.fence, held, checkpoint.ErrFenced)
}

// lockCheckpoint locks the sink's checkpoint node in tx (a SET takes its
// write lock) and returns its LSN, or ErrFenced unless it holds the
// sink's fence.
func (s *Sink) lockCheckpoint(ctx context.Context, tx neo4j.ManagedTransaction) (int64, error) {
	res, err := tx.Run(ctx, "MATCH (c:"+quote(CheckpointLabel)+" {sink: $sink}) SET c.lsn = coalesce(c.lsn, 0) RETURN c.lsn, c.fence",
		map[string]any{"sink": s.cfg.Name})
	if err != nil {
		return 0, err
	}
	recs, err := res.Collect(ctx)
	if err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, s.errFenced(nil)
	}
	if f, ok := recs[0].Values[1].(int64); !ok || f != s.fence {
		return 0, s.errFenced(recs[0].Values[1])
	}
	ckpt, ok := recs[0].Values[0].(int64)
	if !ok || ckpt < 0 {
		return 0, fmt.Errorf("checkpoint node holds lsn %v (%T)", recs[0].Values[0], recs[0].Values[0])
	}
	return ckpt, nil
}
