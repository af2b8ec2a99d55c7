package replica

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

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
// decodes, verifies signatures in batches spread over every core, checks
// structure, holds those whose parents are missing, and stores and
// materializes the rest in causal order. Decoding and verification run
// before the writer's lock is taken, so one batch verifies while another
// commits. It returns an error only when the store fails; bad input is
// reported per change in Report.Rejected.
func (r *Replica) Receive(ctx context.Context, envelopes [][]byte) (Report, error) {
	var rep Report
	// Envelope and ID first (cheap), so duplicates cost no verification.
	ids := make([]core.ID, 0, len(envelopes))
	fresh := make([][]byte, 0, len(envelopes))
	seen := make(map[core.ID]bool, len(envelopes))
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
		ids, fresh = append(ids, id), append(fresh, b)
	}
	if err := r.guard(); err != nil {
		return rep, err
	}
	stored, err := r.storedAmong(ids)
	if err != nil {
		return rep, fmt.Errorf("receive: %w", err)
	}
	keep, keepIDs := fresh[:0], ids[:0]
	for i, b := range fresh {
		if stored[i] {
			rep.Duplicates++
			continue
		}
		keep, keepIDs = append(keep, b), append(keepIDs, ids[i])
	}
	vs, errs := openParallel(keep)
	verified := make([]core.Verified, 0, len(vs))
	for i, v := range vs {
		if err := errs[i]; err != nil {
			if !errors.Is(err, core.ErrBadSignature) {
				err = fmt.Errorf("change %s: %w", keepIDs[i], err)
			}
			rep.reject(keepIDs[i], err)
			continue
		}
		verified = append(verified, v)
	}
	return r.receiveVerified(ctx, verified, rep)
}

// ReceiveVerified is Receive for changes a transport already opened and
// verified at its door (core.OpenBatch): the same path less decoding and
// signature verification, so each change is verified once.
func (r *Replica) ReceiveVerified(ctx context.Context, changes []core.Verified) (Report, error) {
	var rep Report
	if err := r.guard(); err != nil {
		return rep, err
	}
	ids := make([]core.ID, 0, len(changes))
	keep := make([]core.Verified, 0, len(changes))
	seen := make(map[core.ID]bool, len(changes))
	for _, v := range changes {
		if v.Change() == nil {
			rep.reject(core.ID{}, fmt.Errorf("%w: not an opened change", core.ErrMalformed))
			continue
		}
		if seen[v.ID()] {
			rep.Duplicates++
			continue
		}
		seen[v.ID()] = true
		ids, keep = append(ids, v.ID()), append(keep, v)
	}
	stored, err := r.storedAmong(ids)
	if err != nil {
		return rep, fmt.Errorf("receive: %w", err)
	}
	fresh := keep[:0]
	for i, v := range keep {
		if stored[i] {
			rep.Duplicates++
			continue
		}
		fresh = append(fresh, v)
	}
	return r.receiveVerified(ctx, fresh, rep)
}

// storedAmong reports which of ids are stored already.
func (r *Replica) storedAmong(ids []core.ID) ([]bool, error) {
	out := make([]bool, len(ids))
	err := r.db.View(func(txn *badger.Txn) error {
		for i, id := range ids {
			if _, err := txn.Get(idKey(pChange, id)); err == nil {
				out[i] = true
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	return out, err
}

// openParallel is core.OpenBatch over every core: decoding (with its
// canonical re-encoding) and verification are most of a received change's
// CPU, and they need no lock.
func openParallel(envs [][]byte) ([]core.Verified, []error) {
	const minPart = 64 // smaller batches are not worth a goroutine
	parts := min(runtime.GOMAXPROCS(0), len(envs)/minPart)
	if parts <= 1 {
		return core.OpenBatch(envs)
	}
	vs := make([]core.Verified, len(envs))
	errs := make([]error, len(envs))
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(envs)/parts, (p+1)*len(envs)/parts
		wg.Go(func() {
			v, e := core.OpenBatch(envs[lo:hi])
			copy(vs[lo:hi], v)
			copy(errs[lo:hi], e)
		})
	}
	wg.Wait()
	return vs, errs
}

// receiveVerified stores verified changes not yet stored: it holds those
// whose parents are missing and applies the rest under the writer's lock.
func (r *Replica) receiveVerified(ctx context.Context, verified []core.Verified, rep Report) (Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return rep, ErrClosed
	}
	pending := map[core.ID]pendingChange{}
	err := r.db.View(func(txn *badger.Txn) error {
		for _, v := range verified {
			id := v.ID()
			if _, held := r.orphans[id]; held {
				rep.Duplicates++
				continue
			}
			// Stored by a concurrent Receive since the check above.
			if _, err := txn.Get(idKey(pChange, id)); err == nil {
				rep.Duplicates++
				continue
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			pending[id] = pendingChange{s: v.Signed(), c: v.Change(), id: id}
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
