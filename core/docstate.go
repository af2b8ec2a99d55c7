package core

import (
	"bytes"
	"slices"
)

// Ancestry answers causal questions about changes already known. The
// materializer needs it to tell an overwrite from a concurrent write.
type Ancestry interface {
	// IsAncestor reports whether a is in the strict causal past of b.
	IsAncestor(a, b ID) bool
}

// WriteKey orders writes: clock, then author, then change, then op index.
// Causally later writes always have greater keys (clocks grow along the
// DAG), concurrent ones are ordered by data in the change alone.
type WriteKey struct {
	_      struct{} `cbor:",toarray"`
	HLC    HLC
	Author PublicKey
	Change ID
	Op     uint32
}

// Compare orders keys.
func (k WriteKey) Compare(o WriteKey) int {
	if c := k.HLC.Compare(o.HLC); c != 0 {
		return c
	}
	if c := bytes.Compare(k.Author[:], o.Author[:]); c != 0 {
		return c
	}
	if c := k.Change.Compare(o.Change); c != 0 {
		return c
	}
	switch {
	case k.Op < o.Op:
		return -1
	case k.Op > o.Op:
		return 1
	}
	return 0
}

// IsZero reports whether the key is unset.
func (k WriteKey) IsZero() bool { return k.Change.IsZero() }

// precedes reports whether write a is causally before write b: an earlier
// op of the same change, or an op of an ancestor change.
func precedes(a, b WriteKey, anc Ancestry) bool {
	if a.Change == b.Change {
		return a.Op < b.Op
	}
	return anc.IsAncestor(a.Change, b.Change)
}

// Write is one value written to a register.
type Write struct {
	_     struct{} `cbor:",toarray"`
	Key   WriteKey
	Value any
}

// Register is a multi-value LWW register: it keeps the frontier of writes
// no other write causally follows, sorted by key. The last is the winner;
// more than one means an open conflict, resolved by any write that follows
// them all.
type Register struct {
	_      struct{} `cbor:",toarray"`
	Writes []Write
}

// apply adds w unless a frontier write follows it, and drops the frontier
// writes w follows. The result does not depend on arrival order.
func (r *Register) apply(w Write, anc Ancestry) {
	kept := r.Writes[:0:0]
	for _, f := range r.Writes {
		if f.Key == w.Key || precedes(w.Key, f.Key, anc) {
			return
		}
		if !precedes(f.Key, w.Key, anc) {
			kept = append(kept, f)
		}
	}
	kept = append(kept, w)
	slices.SortFunc(kept, func(a, b Write) int { return a.Key.Compare(b.Key) })
	r.Writes = kept
}

// Winner returns the winning write, if any.
func (r *Register) Winner() (Write, bool) {
	if len(r.Writes) == 0 {
		return Write{}, false
	}
	return r.Writes[len(r.Writes)-1], true
}

// Increment is one counter delta.
type Increment struct {
	_     struct{} `cbor:",toarray"`
	Key   WriteKey
	Delta int64
}

// SetElement is one element of an add-wins set with the adds that put it
// there and the removes that took adds away.
type SetElement struct {
	_       struct{} `cbor:",toarray"`
	Value   any
	Adds    []WriteKey // adds not followed by any remove
	Removes []WriteKey // maximal removes seen (a late add may precede them)
}

// FieldClass says which CRDT holds a field.
type FieldClass uint8

// Field classes.
const (
	ClassRegister FieldClass = iota
	ClassCounter
	ClassSet
)

// DocState is the merged state of one document: the CRDTs of its fields,
// whether it exists, and the key of the newest delete. It is a pure
// function of the set of valid ops applied to it.
type DocState struct {
	_         struct{} `cbor:",toarray"`
	Exists    Register // create writes true, delete writes false
	DeleteKey WriteKey // newest delete; field writes at or below it are gone
	Fields    map[string]*Register
	Counters  map[string][]Increment
	Sets      map[string][]SetElement
	Last      WriteKey // newest write of any kind: provenance
}

// Alive reports whether the document exists.
func (d *DocState) Alive() bool {
	w, ok := d.Exists.Winner()
	if !ok {
		return false
	}
	b, _ := w.Value.(bool)
	return b
}

// Classifier tells the materializer which CRDT a field uses.
type Classifier func(coll, field string) FieldClass

// Apply merges one validated data op, written at key, into the state.
func (d *DocState) Apply(op *Op, key WriteKey, class Classifier, anc Ancestry) {
	if d.Last.Compare(key) < 0 {
		d.Last = key
	}
	switch op.Kind {
	case OpCreate:
		d.Exists.apply(Write{Key: key, Value: true}, anc)
		for _, f := range sortedKeys(op.Fields) {
			switch class(op.Coll, f) {
			case ClassCounter:
				if n, ok := op.Fields[f].(int64); ok && n != 0 {
					d.increment(f, Increment{Key: key, Delta: n})
				}
			case ClassSet:
				vals, _ := op.Fields[f].([]any)
				for _, v := range vals {
					d.add(f, v, key, anc)
				}
			default:
				d.set(f, Write{Key: key, Value: op.Fields[f]}, anc)
			}
		}
	case OpSet:
		d.set(op.Field, Write{Key: key, Value: op.Value}, anc)
	case OpIncrement:
		d.increment(op.Field, Increment{Key: key, Delta: op.Delta})
	case OpAdd:
		d.add(op.Field, op.Value, key, anc)
	case OpRemove:
		d.remove(op.Field, op.Value, key, anc)
	case OpDelete:
		d.Exists.apply(Write{Key: key, Value: false}, anc)
		if key.Compare(d.DeleteKey) > 0 {
			d.DeleteKey = key
			d.pruneBelowDelete()
		}
	}
}

func (d *DocState) set(field string, w Write, anc Ancestry) {
	if d.Fields == nil {
		d.Fields = map[string]*Register{}
	}
	r := d.Fields[field]
	if r == nil {
		r = &Register{}
		d.Fields[field] = r
	}
	r.apply(w, anc)
}

func (d *DocState) increment(field string, inc Increment) {
	if inc.Key.Compare(d.DeleteKey) <= 0 {
		return
	}
	if d.Counters == nil {
		d.Counters = map[string][]Increment{}
	}
	for _, have := range d.Counters[field] {
		if have.Key == inc.Key {
			return
		}
	}
	incs := append(d.Counters[field], inc)
	slices.SortFunc(incs, func(a, b Increment) int { return a.Key.Compare(b.Key) })
	d.Counters[field] = incs
}

func (d *DocState) element(field string, v any) *SetElement {
	if d.Sets == nil {
		d.Sets = map[string][]SetElement{}
	}
	elems := d.Sets[field]
	i, found := slices.BinarySearchFunc(elems, v, func(e SetElement, v any) int { return CompareValues(e.Value, v) })
	if !found {
		elems = slices.Insert(elems, i, SetElement{Value: v})
		d.Sets[field] = elems
	}
	return &d.Sets[field][i]
}

func (d *DocState) add(field string, v any, key WriteKey, anc Ancestry) {
	if key.Compare(d.DeleteKey) <= 0 {
		return
	}
	e := d.element(field, v)
	for _, r := range e.Removes {
		if precedes(key, r, anc) {
			return // a remove already saw this add
		}
	}
	if !slices.Contains(e.Adds, key) {
		e.Adds = append(e.Adds, key)
		slices.SortFunc(e.Adds, WriteKey.Compare)
	}
}

func (d *DocState) remove(field string, v any, key WriteKey, anc Ancestry) {
	if key.Compare(d.DeleteKey) <= 0 {
		return // every add it could remove is already gone with the delete
	}
	e := d.element(field, v)
	for _, r := range e.Removes {
		if r == key || precedes(key, r, anc) {
			return
		}
	}
	removes := e.Removes[:0:0]
	for _, r := range e.Removes {
		if !precedes(r, key, anc) {
			removes = append(removes, r)
		}
	}
	e.Removes = append(removes, key)
	slices.SortFunc(e.Removes, WriteKey.Compare)
	adds := e.Adds[:0:0]
	for _, a := range e.Adds {
		if !precedes(a, key, anc) {
			adds = append(adds, a) // concurrent add wins
		}
	}
	e.Adds = adds
}

// pruneBelowDelete drops increments, adds and removes at or below the
// newest delete, and then empty entries, so the state is the same whether
// the delete arrived before or after them.
func (d *DocState) pruneBelowDelete() {
	below := func(k WriteKey) bool { return k.Compare(d.DeleteKey) <= 0 }
	for f, incs := range d.Counters {
		if incs = slices.DeleteFunc(incs, func(i Increment) bool { return below(i.Key) }); len(incs) == 0 {
			delete(d.Counters, f)
		} else {
			d.Counters[f] = incs
		}
	}
	for f, elems := range d.Sets {
		for i := range elems {
			elems[i].Adds = slices.DeleteFunc(elems[i].Adds, below)
			elems[i].Removes = slices.DeleteFunc(elems[i].Removes, below)
		}
		elems = slices.DeleteFunc(elems, func(e SetElement) bool { return len(e.Adds) == 0 && len(e.Removes) == 0 })
		if len(elems) == 0 {
			delete(d.Sets, f)
		} else {
			d.Sets[f] = elems
		}
	}
	if len(d.Counters) == 0 {
		d.Counters = nil
	}
	if len(d.Sets) == 0 {
		d.Sets = nil
	}
}

// Empty reports whether no op has been applied to the state.
func (d *DocState) Empty() bool {
	return len(d.Exists.Writes) == 0 && d.DeleteKey.IsZero() && len(d.Fields) == 0 &&
		len(d.Counters) == 0 && len(d.Sets) == 0 && d.Last.IsZero()
}

// Counter returns a counter field's value.
func (d *DocState) Counter(field string) int64 {
	var n int64
	for _, inc := range d.Counters[field] {
		n += inc.Delta
	}
	return n
}

// SetValues returns a set field's elements in canonical order.
func (d *DocState) SetValues(field string) []any {
	out := []any{}
	for _, e := range d.Sets[field] {
		if len(e.Adds) > 0 {
			out = append(out, e.Value)
		}
	}
	return out
}

// FieldValue returns a register field's value, or ok=false when it was
// never written or the write is older than the newest delete.
func (d *DocState) FieldValue(field string) (Write, bool) {
	r := d.Fields[field]
	if r == nil {
		return Write{}, false
	}
	w, ok := r.Winner()
	if !ok || w.Key.Compare(d.DeleteKey) <= 0 {
		return Write{}, false
	}
	return w, true
}

// Conflict is an open concurrent overwrite of one field: writes no other
// write follows. The winner is the greatest key; an ordinary write that
// follows all of them resolves it.
type Conflict struct {
	Field  string
	Winner Write
	Losers []Write
}

// Conflicts lists open conflicts, by field name. "_exists" names a create
// concurrent with a delete.
// HasConflicts reports whether any register holds concurrent writes.
func (d *DocState) HasConflicts() bool {
	if len(d.Exists.Writes) > 1 {
		return true
	}
	for _, r := range d.Fields {
		if len(r.Writes) > 1 {
			return true
		}
	}
	return false
}

func (d *DocState) Conflicts() []Conflict {
	var out []Conflict
	add := func(name string, r *Register) {
		if len(r.Writes) > 1 {
			n := len(r.Writes)
			out = append(out, Conflict{Field: name, Winner: r.Writes[n-1], Losers: slices.Clone(r.Writes[:n-1])})
		}
	}
	add("_exists", &d.Exists)
	for _, f := range sortedKeys(d.Fields) {
		add(f, d.Fields[f])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
