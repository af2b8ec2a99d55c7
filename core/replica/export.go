package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
)

// Export returns the envelopes of every stored change not in the causal
// past of since (all changes when since is empty), in height order, so an
// importer can apply them in one pass, then the held orphans. It holds
// them all in memory: for large exports use ExportTo.
func (r *Replica) Export(since []core.ID) ([][]byte, error) {
	var out [][]byte
	err := r.ExportTo(context.Background(), since, func(env []byte) error {
		out = append(out, bytes.Clone(env))
		return nil
	})
	return out, err
}

// ExportTo hands fn, one at a time, the envelope of every stored change
// not in the causal past of since (all changes when since is empty), in
// height order, then the envelopes of the changes held for missing
// parents, by ID. env is valid only during the call. fn's error stops the
// export and is returned.
//
// The walk reads one Badger snapshot and does not hold the replica's
// lock, so writers and readers carry on during a long export, and the
// export is still consistent: it is exactly what was stored when it
// began, so every exported change's parents are exported before it or lie
// in the past of since. (Walking in chunks under the lock would instead
// see changes received meanwhile on one side of the cursor but not the
// other, and could export a change without its parent.) The only cost is
// that Badger keeps the versions the snapshot reads until it ends.
func (r *Replica) ExportTo(ctx context.Context, since []core.ID, fn func(env []byte) error) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	err := r.db.View(func(txn *badger.Txn) error {
		s := snapshot{txn: txn, authorIx: map[core.PublicKey]authorSlot{}}
		known, err := s.knownHeads(since)
		if err != nil {
			return err
		}
		var n int
		err = scanKeys(txn, []byte(pHeight), func(k []byte) error {
			if n++; n%1024 == 1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			h := binary.BigEndian.Uint64(k[len(pHeight):])
			var id core.ID
			copy(id[:], k[len(pHeight)+8:])
			if past, err := s.inPastOf(id, h, known); err != nil || past {
				return err
			}
			item, err := txn.Get(idKey(pChange, id))
			if err != nil {
				return fmt.Errorf("change %s: %w", id, err)
			}
			return item.Value(fn)
		})
		if err != nil {
			return err
		}
		// Held orphans travel too: a joiner's own grant waits here for the
		// space's history, and the peer it syncs with may have it.
		return scan(txn, []byte(pOrphan), func(_, v []byte) error { return fn(v) })
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// snapshot answers ancestry from one read transaction alone, without the
// replica's caches (which belong to the writer, under its lock). The rule
// is txnAncestry's.
type snapshot struct {
	txn      *badger.Txn
	authorIx map[core.PublicKey]authorSlot
}

type authorSlot struct {
	ix uint32
	ok bool
}

// knownHead is a since head the replica holds.
type knownHead struct {
	id     core.ID
	height uint64
	vv     []uint64
}

func (s *snapshot) knownHeads(since []core.ID) ([]knownHead, error) {
	var known []knownHead
	for _, id := range since {
		var m meta
		if err := getValue(s.txn, idKey(pMeta, id), &m); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // a head this replica never saw tells nothing
			}
			return nil, err
		}
		var vv []uint64
		if err := getValue(s.txn, idKey(pVV, id), &vv); err != nil {
			return nil, fmt.Errorf("version vector of %s: %w", id, err)
		}
		known = append(known, knownHead{id: id, height: m.Height, vv: vv})
	}
	return known, nil
}

// inPastOf reports whether change id (at height h) is one of known or an
// ancestor of one.
func (s *snapshot) inPastOf(id core.ID, h uint64, known []knownHead) (bool, error) {
	var m *meta
	for _, k := range known {
		if k.id == id {
			return true, nil
		}
		if h >= k.height {
			continue // an ancestor is lower than its descendant
		}
		if m == nil {
			m = new(meta)
			if err := getValue(s.txn, idKey(pMeta, id), m); err != nil {
				return false, fmt.Errorf("meta of %s: %w", id, err)
			}
		}
		slot, err := s.author(m.Author)
		if err != nil {
			return false, err
		}
		if slot.ok && int(slot.ix) < len(k.vv) && k.vv[slot.ix] >= m.Seq {
			return true, nil
		}
	}
	return false, nil
}

func (s *snapshot) author(a core.PublicKey) (authorSlot, error) {
	if slot, ok := s.authorIx[a]; ok {
		return slot, nil
	}
	var slot authorSlot
	err := getValue(s.txn, append([]byte(pAuthorIx), a[:]...), &slot.ix)
	switch {
	case err == nil:
		slot.ok = true
	case !errors.Is(err, ErrNotFound):
		return slot, fmt.Errorf("author index of %s: %w", a, err)
	}
	s.authorIx[a] = slot
	return slot, nil
}
