package replica

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// ErrBatchTooLarge: an atomic batch that does not fit one transaction of
// the store. Nothing of it was written.
var ErrBatchTooLarge = errors.New("batch too large")

// Mutation kinds.
const (
	MutPut    = "put"    // create the document, or merge the given fields into it
	MutDelete = "delete" // delete the document (it must exist)
)

// Mutation is one document write of an atomic batch, in user terms: the
// replica turns it into ops against the document's current state.
type Mutation struct {
	Op         string         `json:"op"`
	Collection string         `json:"collection"`
	ID         string         `json:"id,omitempty"`  // empty for a put: a new time-ordered id
	Fields     map[string]any `json:"doc,omitempty"` // put: values as decoded from JSON
}

// MutationResult says what one mutation did.
type MutationResult struct {
	ID      string `json:"id"`
	Created bool   `json:"created,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	Changed bool   `json:"changed"` // false: the document already held these values
}

// MutationError names the mutation of a batch that cannot be applied.
// Nothing of the batch was written.
type MutationError struct {
	Index int // position in the batch, from 0
	Err   error
}

func (e *MutationError) Error() string { return fmt.Sprintf("operation %d: %v", e.Index+1, e.Err) }
func (e *MutationError) Unwrap() error { return e.Err }

// Mutate applies a batch of mutations by key's owner atomically: every
// one is planned against the state the earlier ones leave (reading the
// stored documents under the writer's lock, so concurrent writers never
// plan from the same stale read), checked, and written as one or more
// signed changes committed in one transaction; or, if any is invalid,
// nothing is written and the error is a *MutationError naming it. It
// returns the result of each mutation and the last change written (zero
// when nothing needed writing).
//
// Concurrent calls are committed together (group commit): whoever holds
// the writer's lock takes every batch waiting for it, plans each on its
// own (a bad batch fails alone), writes their ops as one signed change
// per author, and commits them in one transaction, so one fsync serves
// them all.
func (r *Replica) Mutate(ctx context.Context, key core.PrivateKey, muts []Mutation, nowMillis uint64) ([]MutationResult, core.ID, error) {
	if err := r.guard(); err != nil {
		return nil, core.ID{}, err
	}
	req := &mutation{ctx: ctx, key: key, muts: muts, now: nowMillis, done: make(chan struct{})}
	r.pendMu.Lock()
	r.pending = append(r.pending, req)
	r.pendMu.Unlock()
	r.mu.Lock()
	select {
	case <-req.done: // a leader committed it while we waited for the lock
	default:
		r.pendMu.Lock()
		group := r.pending
		r.pending = nil
		r.pendMu.Unlock()
		r.commitGroup(group)
	}
	r.mu.Unlock()
	<-req.done
	return req.res, req.last, req.err
}

// mutation is one Mutate call waiting for, or in, a group commit.
type mutation struct {
	ctx  context.Context
	key  core.PrivateKey
	muts []Mutation
	now  uint64
	ops  []core.Op
	// opMut maps each of ops to the mutation it came from.
	opMut []int

	res  []MutationResult
	last core.ID
	err  error
	done chan struct{}
}

func (m *mutation) finish(err error) {
	m.err = err
	if err != nil {
		m.res, m.last = nil, core.ID{}
	}
	close(m.done)
}

// commitGroup plans and commits a group of mutations (with r.mu held).
func (r *Replica) commitGroup(group []*mutation) {
	if len(group) == 0 {
		return
	}
	switch {
	case r.closed:
		for _, m := range group {
			m.finish(ErrClosed)
		}
		return
	case r.genesis == nil:
		for _, m := range group {
			m.finish(ErrNoGenesis)
		}
		return
	}
	err := r.tryGroup(group)
	if err == nil {
		return
	}
	if errors.Is(err, badger.ErrTxnTooBig) {
		var open []*mutation
		for _, m := range group {
			if !isClosed(m.done) {
				m.ops, m.res = nil, nil
				open = append(open, m)
			}
		}
		if len(open) > 1 { // too much together: halves, each in its own transaction
			r.commitGroup(open[:len(open)/2])
			r.commitGroup(open[len(open)/2:])
			return
		}
		for _, m := range open {
			m.finish(fmt.Errorf("%w: %d operations do not fit one transaction of the store; split them into smaller batches", ErrBatchTooLarge, len(m.muts)))
		}
		return
	}
	if len(group) == 1 || isStoreError(err) {
		for _, m := range group {
			if !isClosed(m.done) {
				m.finish(err)
			}
		}
		return
	}
	// The shared change failed as a whole (rare: a check only the full
	// change reveals). Each batch goes again on its own.
	for _, m := range group {
		if isClosed(m.done) {
			continue
		}
		m.ops, m.res = nil, nil
		if err := r.tryGroup([]*mutation{m}); err != nil && !isClosed(m.done) {
			m.finish(err)
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// tryGroup writes the group in one transaction. Batches that fail
// planning are finished with their error and left out; an error returned
// means nothing of the rest was committed (they are not finished).
func (r *Replica) tryGroup(group []*mutation) (err error) {
	defer recoverStoreError(&err)
	w := r.begin()
	w.planned = true
	defer w.discard()
	p := newPlanner(w, r.current, r.sortedHeads(w.txn))
	var ok []*mutation
	for _, m := range group {
		if err := m.ctx.Err(); err != nil {
			m.finish(err)
			continue
		}
		if err := p.planBatch(m); err != nil {
			m.finish(err)
			continue
		}
		ok = append(ok, m)
	}
	// One change (split only past the size limits) per author.
	var ids []core.ID
	for len(ok) > 0 {
		key := ok[0].key
		var ops []core.Op
		var mine, rest []*mutation
		for _, m := range ok {
			if string(m.key) == string(key) {
				ops = append(ops, m.ops...)
				mine = append(mine, m)
			} else {
				rest = append(rest, m)
			}
		}
		var last core.ID
		offset := 0
		for _, chunk := range chunkOps(ops) {
			if len(chunk) == 0 {
				continue
			}
			written, err := w.writeSplitting(key, chunk, ok[0].now)
			if err != nil {
				if len(group) == 1 {
					return ok[0].mutationError(err, offset)
				}
				return fmt.Errorf("group write: %w", err)
			}
			offset += len(chunk)
			ids = append(ids, written...)
			last = written[len(written)-1]
		}
		for _, m := range mine {
			if len(m.ops) > 0 {
				m.last = last
			}
		}
		ok = rest
	}
	if len(ids) > 0 {
		if err := w.commit(); err != nil {
			return err
		}
		r.notify(true, ids)
	}
	for _, m := range group {
		if !isClosed(m.done) {
			m.finish(nil)
		}
	}
	return nil
}

// mutationError names the mutation an error about op offset+i (an
// *opError) of the batch's ops is about.
func (m *mutation) mutationError(err error, offset int) error {
	var oe *opError
	if errors.As(err, &oe) {
		if i := offset + oe.op; i >= 0 && i < len(m.opMut) {
			return &MutationError{Index: m.opMut[i], Err: oe.plain}
		}
	}
	return err
}

// chunkOps cuts ops into runs of at most core.MaxOps.
func chunkOps(ops []core.Op) [][]core.Op {
	var out [][]core.Op
	for len(ops) > core.MaxOps {
		out = append(out, ops[:core.MaxOps])
		ops = ops[core.MaxOps:]
	}
	return append(out, ops)
}

// writeSplitting writes ops as one change, or, when that change would pass
// core.MaxChangeBytes, as two halves (recursively).
func (w *writeTxn) writeSplitting(key core.PrivateKey, ops []core.Op, nowMillis uint64) ([]core.ID, error) {
	id, err := w.write(key, ops, nowMillis)
	if err == nil {
		return []core.ID{id}, nil
	}
	if !errors.Is(err, core.ErrTooLarge) || len(ops) < 2 {
		return nil, err
	}
	a, err := w.writeSplitting(key, ops[:len(ops)/2], nowMillis)
	if err != nil {
		return nil, err
	}
	b, err := w.writeSplitting(key, ops[len(ops)/2:], nowMillis)
	if err != nil {
		var oe *opError
		if errors.As(err, &oe) {
			return nil, &opError{op: oe.op + len(ops)/2, err: oe.err, plain: oe.plain}
		}
		return nil, err
	}
	return append(a, b...), nil
}

// planner turns mutations into ops against the documents as the
// batches planned before leave them.
type planner struct {
	w       *writeTxn
	s       *schema.Schema
	docs    map[string]*plannedDoc
	created map[string]bool // documents created by earlier ops of the group
	heads   []core.ID       // the parents references are checked against

	// undo restores what the batch being planned changed, if it fails.
	undoDocs    map[string]*plannedDoc
	undoCreated []string
}

func newPlanner(w *writeTxn, s *schema.Schema, heads []core.ID) *planner {
	return &planner{w: w, s: s, docs: map[string]*plannedDoc{}, created: map[string]bool{}, heads: heads}
}

// planBatch plans every mutation of m, or none: on error the planner is as
// before and the error is a *MutationError.
func (p *planner) planBatch(m *mutation) error {
	p.undoDocs, p.undoCreated = map[string]*plannedDoc{}, nil
	m.res, m.ops, m.opMut = make([]MutationResult, len(m.muts)), nil, nil
	for i := range m.muts {
		res, ops, err := p.plan(&m.muts[i], m.now)
		if err != nil {
			for name, d := range p.undoDocs {
				if d == nil {
					delete(p.docs, name)
				} else {
					p.docs[name] = d
				}
			}
			for _, k := range p.undoCreated {
				delete(p.created, k)
			}
			m.ops, m.opMut = nil, nil
			return &MutationError{Index: i, Err: err}
		}
		m.res[i] = res
		m.ops = append(m.ops, ops...)
		for range ops {
			m.opMut = append(m.opMut, i)
		}
	}
	return nil
}

type plannedDoc struct {
	alive  bool
	fields map[string]any
}

func (p *planner) doc(coll, id string) (*plannedDoc, error) {
	name := docName(coll, id)
	if d, ok := p.docs[name]; ok {
		if _, saved := p.undoDocs[name]; !saved {
			p.undoDocs[name] = &plannedDoc{alive: d.alive, fields: maps.Clone(d.fields)}
		}
		return d, nil
	}
	p.undoDocs[name] = nil // not planned before this batch
	d := &plannedDoc{}
	var st core.DocState
	switch err := getValue(p.w.txn, docKey(coll, id), &st); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, storeError{err}
	case st.Alive():
		d.alive, d.fields = true, image(p.s, coll, &st)
	}
	p.docs[name] = d
	return d, nil
}

func (p *planner) plan(m *Mutation, nowMillis uint64) (MutationResult, []core.Op, error) {
	coll, ok := p.s.Collection(m.Collection)
	if !ok {
		return MutationResult{}, nil, fmt.Errorf("%w: unknown collection %q", core.ErrSchemaViolation, m.Collection)
	}
	id := m.ID
	switch m.Op {
	case MutPut:
		if id == "" {
			if v, ok := m.Fields["id"].(string); ok {
				id = v
			} else {
				id = NewDocID(nowMillis)
			}
		}
	case MutDelete:
		if id == "" {
			return MutationResult{}, nil, fmt.Errorf("%w: delete needs an id", core.ErrInvalidChange)
		}
	default:
		return MutationResult{}, nil, fmt.Errorf("%w: unknown operation %q: want %q or %q", core.ErrInvalidChange, m.Op, MutPut, MutDelete)
	}
	if err := core.CheckDocID(id); err != nil {
		return MutationResult{}, nil, fmt.Errorf("%w: %v", core.ErrInvalidChange, err)
	}
	d, err := p.doc(coll.Name, id)
	if err != nil {
		return MutationResult{}, nil, err
	}
	res := MutationResult{ID: id}
	if m.Op == MutDelete {
		if !d.alive {
			return res, nil, fmt.Errorf("%s/%s: %w", coll.Name, id, ErrNotFound)
		}
		d.alive, d.fields = false, nil
		res.Deleted, res.Changed = true, true
		return res, []core.Op{{Kind: core.OpDelete, Coll: coll.Name, Doc: id}}, nil
	}
	values, err := normalizeFields(coll, m.Fields)
	if err != nil {
		return res, nil, err
	}
	var existing map[string]any
	if d.alive {
		existing = d.fields
	} else {
		// A create records the defaults of the schema it is written
		// under: a later upgrade that changes a default applies to the
		// documents created under it, not to these.
		for _, f := range coll.Fields {
			if _, given := values[f.Name]; !given && f.Default != nil {
				values[f.Name] = f.Default
			}
		}
	}
	ops := PlanPut(coll, id, values, existing)
	for i := range ops {
		if err := p.w.checkOp(p.s, &ops[i], p.heads, p.created); err != nil {
			return res, nil, fmt.Errorf("%w: %s/%s: %v", core.ErrSchemaViolation, coll.Name, id, err)
		}
		if k := coll.Name + "\x00" + id; ops[i].Kind == core.OpCreate && !p.created[k] {
			p.created[k] = true
			p.undoCreated = append(p.undoCreated, k)
		}
	}
	res.Created, res.Changed = !d.alive, len(ops) > 0
	if !d.alive {
		d.alive, d.fields = true, map[string]any{}
		for _, f := range coll.Fields {
			if f.Default != nil {
				d.fields[f.Name] = f.Default
			}
		}
	}
	maps.Copy(d.fields, values)
	return res, ops, nil
}

// normalizeFields turns user values into canonical ones, refusing unknown
// fields; "id" is the document's id, not a field.
func normalizeFields(coll *schema.Collection, input map[string]any) (map[string]any, error) {
	values := map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(input)) {
		if name == "id" {
			continue
		}
		f, ok := coll.Field(name)
		if !ok {
			if g, renamed := coll.FieldByAnyName(name); renamed {
				return nil, fmt.Errorf("%w: unknown field %s.%s (renamed to %s)", core.ErrSchemaViolation, coll.Name, name, g.Name)
			}
			return nil, fmt.Errorf("%w: unknown field %s.%s", core.ErrSchemaViolation, coll.Name, name)
		}
		v, err := f.Normalize(input[name])
		if err != nil {
			return nil, fmt.Errorf("%w: %s.%v", core.ErrSchemaViolation, coll.Name, err)
		}
		values[name] = v
	}
	return values, nil
}

// PlanPut turns canonical field values into ops: a create for a new
// document (existing nil), or the set/increment/add/remove ops that make
// the given fields of an existing document equal to the values given
// (none when they already are). It is a pure function.
func PlanPut(coll *schema.Collection, id string, values, existing map[string]any) []core.Op {
	if existing == nil {
		return []core.Op{{Kind: core.OpCreate, Coll: coll.Name, Doc: id, Fields: values}}
	}
	var ops []core.Op
	for _, name := range slices.Sorted(maps.Keys(values)) {
		f, _ := coll.Field(name)
		v := values[name]
		switch f.Kind {
		case schema.Counter:
			cur, _ := existing[name].(int64)
			if n, _ := v.(int64); n != cur {
				ops = append(ops, core.Op{Kind: core.OpIncrement, Coll: coll.Name, Doc: id, Field: name, Delta: n - cur})
			}
		case schema.Set:
			cur, _ := existing[name].([]any)
			want, _ := v.([]any)
			for _, e := range want {
				if !slices.ContainsFunc(cur, func(x any) bool { return core.CompareValues(x, e) == 0 }) {
					ops = append(ops, core.Op{Kind: core.OpAdd, Coll: coll.Name, Doc: id, Field: name, Value: e})
				}
			}
			for _, e := range cur {
				if !slices.ContainsFunc(want, func(x any) bool { return core.CompareValues(x, e) == 0 }) {
					ops = append(ops, core.Op{Kind: core.OpRemove, Coll: coll.Name, Doc: id, Field: name, Value: e})
				}
			}
		default:
			// Always written, even when equal: rewriting the winning value
			// is how a user resolves a conflict.
			ops = append(ops, core.Op{Kind: core.OpSet, Coll: coll.Name, Doc: id, Field: name, Value: v})
		}
	}
	return ops
}

// NewDocID makes a time-ordered random id: 48 bits of milliseconds then 80
// random bits, base32 (26 characters), so ids sort by creation time.
func NewDocID(nowMillis uint64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], nowMillis<<16)
	_, _ = rand.Read(b[6:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
