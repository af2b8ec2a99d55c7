package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
)

// Report says what Receive did with a batch of changes.
type Report struct {
	Applied    int `json:"applied"`    // stored (valid or not)
	Invalid    int `json:"invalid"`    // stored, but with no effect (see Verdict)
	Duplicates int `json:"duplicates"` // already held
	Held       int `json:"held"`       // waiting for missing parents
	// Released counts changes held from earlier batches (waiting for
	// parents) that this batch let through, and StillHeld those still
	// waiting: with them Applied + Duplicates + Held + len(Rejected) is
	// the batch.
	Released  int         `json:"released,omitempty"`
	StillHeld int         `json:"still_held,omitempty"`
	Rejected  []Rejection `json:"rejected,omitempty"`
	IDs       []core.ID   `json:"-"` // stored, in the order applied
}

// Rejection is a change refused outright: undecodable, forged, or breaking a
// structural rule. Nothing of it is stored.
type Rejection struct {
	ID  core.ID `json:"id"`
	Err error   `json:"-"`
	Msg string  `json:"error"`
}

// Receive takes changes from any untrusted source (a peer, a bundle file):
// decodes, verifies signatures in one batch, checks structure, holds those
// whose parents are missing, and stores and materializes the rest in
// causal order. It returns an error only when the store fails; bad input is
// reported per change in Report.Rejected.
func (r *Replica) Receive(ctx context.Context, envelopes [][]byte) (Report, error) {
	var rep Report
	type item struct {
		s  core.Signed
		c  *core.Change
		id core.ID
	}
	var items []item
	seen := map[core.ID]bool{}
	for _, b := range envelopes {
		s, err := core.DecodeSigned(b)
		if err != nil {
			rep.reject(core.ID{}, err)
			continue
		}
		id := s.ID()
		if seen[id] {
			rep.Duplicates++
			continue
		}
		seen[id] = true
		c, err := s.Decode()
		if err != nil {
			rep.reject(id, err)
			continue
		}
		items = append(items, item{s, c, id})
	}
	if err := r.guard(); err != nil {
		return rep, err
	}
	// Drop what is already stored, then verify signatures, before taking
	// the writer's lock: a batch verifies while another applies.
	fresh := items[:0]
	err := r.db.View(func(txn *badger.Txn) error {
		for _, it := range items {
			if _, err := txn.Get(idKey(pChange, it.id)); err == nil {
				rep.Duplicates++
				continue
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			fresh = append(fresh, it)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("receive: %w", err)
	}
	pubs := make([]core.PublicKey, len(fresh))
	ids := make([]core.ID, len(fresh))
	sigs := make([][]byte, len(fresh))
	for i, it := range fresh {
		pubs[i], ids[i], sigs[i] = it.c.Author, it.id, it.s.Sig
	}
	ok := core.VerifyBatch(pubs, ids, sigs)
	verified := fresh[:0]
	for i, it := range fresh {
		if !ok[i] {
			rep.reject(it.id, fmt.Errorf("change %s: %w", it.id, core.ErrBadSignature))
			continue
		}
		if err := it.c.CheckShape(); err != nil {
			rep.reject(it.id, fmt.Errorf("change %s: %w", it.id, err))
			continue
		}
		verified = append(verified, it)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return rep, ErrClosed
	}
	pending := map[core.ID]pendingChange{}
	err = r.db.View(func(txn *badger.Txn) error {
		for _, it := range verified {
			if _, held := r.orphans[it.id]; held {
				rep.Duplicates++
				continue
			}
			// Stored by a concurrent Receive since the check above.
			if _, err := txn.Get(idKey(pChange, it.id)); err == nil {
				rep.Duplicates++
				continue
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			pending[it.id] = pendingChange{s: it.s, c: it.c, id: it.id}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("receive: %w", err)
	}
	for id, s := range r.orphans {
		if _, ok := pending[id]; ok {
			continue
		}
		c, err := s.Decode()
		if err == nil {
			pending[id] = pendingChange{s: s, c: c, id: id, wasOrphan: true}
		}
	}
	if err := r.ingest(ctx, pending, &rep); err != nil {
		return rep, err
	}
	r.notify(false, rep.IDs)
	return rep, nil
}

func (rep *Report) reject(id core.ID, err error) {
	rep.Rejected = append(rep.Rejected, Rejection{ID: id, Err: err, Msg: err.Error()})
}

type pendingChange struct {
	s         core.Signed
	c         *core.Change
	id        core.ID
	wasOrphan bool
}

// ingest stores every pending change whose parents are (or become)
// available, in height order, committing in bounded transactions; the rest
// are held as orphans.
func (r *Replica) ingest(ctx context.Context, pending map[core.ID]pendingChange, rep *Report) (err error) {
	defer recoverStoreError(&err)
	order := make([]pendingChange, 0, len(pending))
	for _, p := range pending {
		order = append(order, p)
	}
	slices.SortFunc(order, func(a, b pendingChange) int {
		if a.c.Height != b.c.Height {
			if a.c.Height < b.c.Height {
				return -1
			}
			return 1
		}
		return a.id.Compare(b.id)
	})
	w := r.begin()
	defer w.discard()
	stored := map[core.ID]bool{}
	progress := true
	for progress {
		progress = false
		rest := order[:0]
		for _, p := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			ready, err := w.parentsStored(p.c, stored)
			if err != nil {
				return err
			}
			if !ready {
				rest = append(rest, p)
				continue
			}
			progress = true
			if p.wasOrphan {
				w.txnDelete(idKey(pOrphan, p.id))
				delete(r.orphans, p.id)
			}
			valid, err := w.apply(p.s, p.c, p.id)
			if err != nil {
				if isStoreError(err) {
					return err
				}
				rep.reject(p.id, err)
				continue
			}
			stored[p.id] = true
			if p.wasOrphan {
				rep.Released++
			} else {
				rep.Applied++
			}
			rep.IDs = append(rep.IDs, p.id)
			if !valid {
				rep.Invalid++
			}
			if w.full() {
				if err := w.commit(); err != nil {
					return err
				}
				w = r.begin()
			}
		}
		order = rest
	}
	for _, p := range order {
		if p.wasOrphan {
			rep.StillHeld++
			continue
		}
		if len(r.orphans) >= r.opts.MaxOrphans {
			rep.reject(p.id, fmt.Errorf("change %s: %w (limit %d)", p.id, ErrOrphanLimit, r.opts.MaxOrphans))
			continue
		}
		b, err := p.s.Encode()
		if err != nil {
			return err
		}
		w.txnSet(idKey(pOrphan, p.id), b)
		r.orphans[p.id] = p.s
		rep.Held++
	}
	return w.commit()
}

// storeError marks failures of the store itself (as opposed to bad input).
type storeError struct{ err error }

func (e storeError) Error() string { return "replica store: " + e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// recoverStoreError turns a storeError panic (raised by writeTxn's
// setters, so store failures need not be threaded through every helper)
// back into an error.
func recoverStoreError(err *error) {
	if p := recover(); p != nil {
		se, ok := p.(storeError)
		if !ok {
			panic(p)
		}
		*err = se
	}
}

func isStoreError(err error) bool {
	var se storeError
	return errors.As(err, &se)
}

// Write builds, signs and stores a change of ops by key's owner on top of
// the current heads. The change goes through the same checks as one
// received from a peer (core.Signed.Check, then placement, schema and
// membership in apply); a change that would be refused or stored without
// effect returns an error and nothing is written.
func (r *Replica) Write(ctx context.Context, key core.PrivateKey, ops []core.Op, nowMillis uint64) (_ core.ID, err error) {
	defer recoverStoreError(&err)
	if err := r.guard(); err != nil {
		return core.ID{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return core.ID{}, ErrClosed
	}
	if r.genesis == nil {
		return core.ID{}, ErrNoGenesis
	}
	w := r.begin()
	defer w.discard()
	id, err := w.write(key, ops, nowMillis)
	if err != nil {
		return core.ID{}, err
	}
	if err := w.commit(); err != nil {
		return core.ID{}, err
	}
	r.notify(true, []core.ID{id})
	return id, nil
}

// write builds, signs, checks and applies one local change inside w.
func (w *writeTxn) write(key core.PrivateKey, ops []core.Op, nowMillis uint64) (core.ID, error) {
	c, err := w.build(key.Public(), ops, nowMillis)
	if err != nil {
		return core.ID{}, err
	}
	if err := c.CheckShape(); err != nil {
		return core.ID{}, err
	}
	// Judged before signing: the attestation of the rules goes into the
	// signed change. The change's own ID is not known yet, and nothing
	// judged here depends on it.
	if err := w.precheck(c, pendingID); err != nil {
		return core.ID{}, err
	}
	pre, err := w.prejudge(c)
	if err != nil {
		return core.ID{}, err
	}
	s, id, err := core.Sign(c, key)
	if err != nil {
		return core.ID{}, err
	}
	if _, err := s.Check(); err != nil { // exactly what a receiver runs
		return core.ID{}, err
	}
	w.pre = pre
	valid, err := w.apply(s, c, id)
	w.pre = nil
	if err != nil {
		return core.ID{}, err
	}
	if !valid {
		m, err := w.r.meta(w.txn, id)
		if err != nil {
			return core.ID{}, storeError{err}
		}
		switch {
		case m.SchemaErr != "":
			return core.ID{}, fmt.Errorf("%w (%s)", core.ErrSchemaViolation, m.Reason)
		case m.AuthErr == "" && m.RuleErr != "":
			return core.ID{}, fmt.Errorf("%w (%s)", core.ErrRuleViolation, m.Reason)
		case m.AuthErr == "" && m.Lost != "":
			return core.ID{}, fmt.Errorf("%w (%s)", core.ErrRolledBack, m.Reason)
		}
		return core.ID{}, fmt.Errorf("%w (%s)", core.ErrUnauthorized, m.Reason)
	}
	return id, nil
}

// Found creates the space: it signs the genesis change naming schemaText
// and the founding admins (key's owner plus extra) and stores it. It
// returns the space ID.
func (r *Replica) Found(ctx context.Context, key core.PrivateKey, name, schemaText string, extraAdmins []core.PublicKey, nowMillis uint64) (core.ID, error) {
	g := &core.Change{
		Version: core.ChangeVersion, Author: key.Public(), Seq: 1, Height: 1,
		HLC: core.HLC{Wall: nowMillis},
		Ops: []core.Op{{Kind: core.OpGenesis, Schema: schemaText, Admins: extraAdmins, Name: name}},
	}
	if err := g.CheckShape(); err != nil {
		return core.ID{}, err
	}
	s, id, err := core.Sign(g, key)
	if err != nil {
		return core.ID{}, err
	}
	b, err := s.Encode()
	if err != nil {
		return core.ID{}, err
	}
	rep, err := r.Receive(ctx, [][]byte{b})
	if err != nil {
		return core.ID{}, err
	}
	if len(rep.Rejected) > 0 {
		return core.ID{}, rep.Rejected[0].Err
	}
	return id, nil
}
