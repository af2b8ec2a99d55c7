package neo4j

import (
	"context"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// collection is the work of one collection in a batch.
type collection struct {
	name    string
	upserts []int // effect indexes
	deletes []int
}

// write runs the batch's transaction; it may run more than once (the
// driver retries transient errors). A Redo batch is written although the
// checkpoint covers it.
func (s *Sink) write(ctx context.Context, tx neo4j.ManagedTransaction, b checkpoint.Batch, l *layout, preps []prepared) error {
	ckpt, err := s.lockCheckpoint(ctx, tx)
	if err != nil {
		return err
	}
	if b.Through <= uint64(ckpt) && !b.Redo {
		return nil // applied already: a replay changes nothing
	}
	if b.Redo {
		ckpt = 0 // skip nothing
	}

	// The newest effect of each document above the checkpoint, grouped by
	// collection in order of first appearance.
	newest := make(map[string]int, len(b.Effects))
	for i := range b.Effects {
		newest[b.Effects[i].Key()] = i
	}
	var colls []*collection
	byName := map[string]*collection{}
	for i := range b.Effects {
		e := &b.Effects[i]
		if e.LSN <= uint64(ckpt) || newest[e.Key()] != i {
			continue
		}
		if preps[i].err != nil {
			return &checkpoint.RejectedError{Index: i, Reason: preps[i].err.Error()}
		}
		if e.Kind == eventstream.Delete {
			if _, ok := b.Schema.Collection(e.Collection); !ok {
				continue // nothing can exist in a collection the schema lacks
			}
		}
		c := byName[e.Collection]
		if c == nil {
			c = &collection{name: e.Collection}
			byName[e.Collection] = c
			colls = append(colls, c)
		}
		if e.Kind == eventstream.Delete {
			c.deletes = append(c.deletes, i)
		} else {
			c.upserts = append(c.upserts, i)
		}
	}

	referenced := map[string]bool{} // collections some reference field points to
	if b.Schema != nil {
		for _, c := range b.Schema.Collections {
			for _, f := range c.Fields {
				if isRef(f) {
					referenced[f.Ref] = true
				}
			}
		}
	}
	var stubs []any // element IDs of stubs that may have lost their last reference
	for _, c := range colls {
		sc, _ := b.Schema.Collection(c.name)
		hasRefs := false
		for _, f := range sc.Fields {
			hasRefs = hasRefs || isRef(f)
		}
		label := quote(l.colls[c.name].label)
		if len(c.upserts) > 0 {
			rows := make([]any, len(c.upserts))
			ids := make([]any, len(c.upserts))
			for k, i := range c.upserts {
				rows[k] = map[string]any{"id": b.Effects[i].DocID, "props": preps[i].props}
				ids[k] = b.Effects[i].DocID
			}
			if err := s.chunked(ctx, tx, "UNWIND $rows AS row MERGE (n:"+label+" {id: row.id}) SET n = row.props", rows, nil); err != nil {
				return err
			}
			if hasRefs {
				if err := s.chunked(ctx, tx, unlinkQuery(label), ids, &stubs); err != nil {
					return err
				}
				if err := s.link(ctx, tx, l, c.name, b.Effects, c.upserts, preps); err != nil {
					return err
				}
			}
		}
		if len(c.deletes) > 0 {
			ids := make([]any, len(c.deletes))
			for k, i := range c.deletes {
				ids[k] = b.Effects[i].DocID
			}
			if hasRefs {
				if err := s.chunked(ctx, tx, unlinkQuery(label), ids, &stubs); err != nil {
					return err
				}
			}
			if referenced[c.name] {
				// A document other documents still reference stays as a
				// stub: its id alone, like a referenced document that
				// does not exist yet.
				if err := s.chunked(ctx, tx, "UNWIND $rows AS id MATCH (n:"+label+" {id: id}) WHERE EXISTS { (n)<--() } SET n = {id: id}", ids, nil); err != nil {
					return err
				}
				if err := s.chunked(ctx, tx, "UNWIND $rows AS id MATCH (n:"+label+" {id: id}) WHERE NOT EXISTS { (n)<--() } DETACH DELETE n", ids, nil); err != nil {
					return err
				}
			} else if err := s.chunked(ctx, tx, "UNWIND $rows AS id MATCH (n:"+label+" {id: id}) DETACH DELETE n", ids, nil); err != nil {
				return err
			}
		}
	}
	if len(stubs) > 0 {
		if err := s.chunked(ctx, tx, `UNWIND $rows AS eid MATCH (m) WHERE elementId(m) = eid
WITH m WHERE m.`+quote(PropLSN)+` IS NULL AND NOT EXISTS { (m)--() }
DELETE m`, stubs, nil); err != nil {
			return err
		}
	}
	_, err = single(ctx, tx, "MATCH (c:"+quote(CheckpointLabel)+" {sink: $sink}) SET c.lsn = CASE WHEN $through > c.lsn THEN $through ELSE c.lsn END, c.updated = datetime() RETURN c.lsn",
		map[string]any{"sink": s.cfg.Name, "through": int64(b.Through)})
	return err
}

// unlinkQuery deletes the outgoing relationships (the references) of the
// documents $rows and returns the stubs they pointed to.
func unlinkQuery(label string) string {
	return "UNWIND $rows AS id MATCH (n:" + label + " {id: id})-[r]->(m) DELETE r\n" +
		"WITH DISTINCT m WHERE m." + quote(PropLSN) + " IS NULL RETURN collect(elementId(m)) AS stubs"
}

// link creates the relationships of the references of the upserts of
// collection coll, one statement per reference field; a referenced
// document that does not exist yet is created as a stub (its id alone).
func (s *Sink) link(ctx context.Context, tx neo4j.ManagedTransaction, lay *layout, coll string, effects []eventstream.Effect, upserts []int, preps []prepared) error {
	type fieldRows struct {
		f    *schema.Field
		typ  string
		rows []any
	}
	var order []*fieldRows
	byField := map[*schema.Field]*fieldRows{}
	for _, i := range upserts {
		for _, l := range preps[i].links {
			fr := byField[l.field]
			if fr == nil {
				fr = &fieldRows{f: l.field, typ: l.typ}
				byField[l.field] = fr
				order = append(order, fr)
			}
			fr.rows = append(fr.rows, map[string]any{"id": effects[i].DocID, "to": l.to, "i": l.index})
		}
	}
	for _, fr := range order {
		q := "UNWIND $rows AS row MATCH (n:" + quote(lay.colls[coll].label) + " {id: row.id}) MERGE (m:" + quote(lay.colls[fr.f.Ref].label) + " {id: row.to})\n" +
			"CREATE (n)-[r:" + quote(fr.typ) + "]->(m)"
		if fr.f.Kind != schema.Ref {
			q += " SET r." + quote(PropIndex) + " = row.i"
		}
		if err := s.chunked(ctx, tx, q, fr.rows, nil); err != nil {
			return err
		}
	}
	return nil
}

// chunked runs q with $rows bound to successive chunks of rows of at most
// BatchSize; with stubs set, q returns one list per run whose elements are
// appended to it.
func (s *Sink) chunked(ctx context.Context, tx neo4j.ManagedTransaction, q string, rows []any, stubs *[]any) error {
	for start := 0; start < len(rows); start += s.cfg.BatchSize {
		chunk := rows[start:min(start+s.cfg.BatchSize, len(rows))]
		res, err := tx.Run(ctx, q, map[string]any{"rows": chunk})
		if err != nil {
			return err
		}
		if stubs == nil {
			if _, err := res.Consume(ctx); err != nil {
				return err
			}
			continue
		}
		recs, err := res.Collect(ctx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if l, ok := r.Values[0].([]any); ok {
				*stubs = append(*stubs, l...)
			}
		}
	}
	return nil
}

// single runs q and returns its one record.
func single(ctx context.Context, tx neo4j.ManagedTransaction, q string, params map[string]any) (*neo4j.Record, error) {
	res, err := tx.Run(ctx, q, params)
	if err != nil {
		return nil, err
	}
	return res.Single(ctx)
}
