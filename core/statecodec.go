package core

import (
	"errors"
	"fmt"
)

// How a document's state is stored (a replica's own business: it never
// travels, is never hashed, and no other replica reads it).
//
// The plain encoding of a DocState is its CBOR as a 6-array, in which every
// WriteKey spells out its clock, its author's 32 bytes and its change's 32
// bytes: a document created by one op repeats the same author and change
// once per field, set element and provenance, about 600 bytes for three
// fields. The compact encoding (stateVersion 2), written since, lists each
// distinct (clock, author, change) once and refers to it by number:
//
//	[2, keys, exists, delete, fields, counters, sets, last]
//	keys     [[wall, logical, author(32 bytes), change(32 bytes)], ...]
//	ref      uint op*len(keys) + index into keys  (null: the zero WriteKey)
//	exists   [[ref, value], ...]                    the Exists register
//	delete   ref                                    DeleteKey
//	fields   {name: [[ref, value], ...] or null}    registers, null for a nil one
//	counters {name: [[ref, delta], ...]}
//	sets     {name: [[value, [ref, ...], [ref, ...]], ...]}  value, adds, removes
//	last     ref
//
// Maps are in canonical key order and keys are numbered in the order the
// encoder meets them, so equal states give equal bytes. The decoder reads
// both encodings: states stored before the compact one stay readable, and
// are written compact the next time their document changes.

const stateVersion = 2

// stateKeys numbers the distinct (clock, author, change) of a state. A
// state rarely holds more than a few, so they are searched in order; past
// a handful, through a map.
type stateKeys struct {
	index map[stateKeyID]uint64 // nil while order is short
	order []stateKeyID
}

type stateKeyID struct {
	hlc    HLC
	author PublicKey
	change ID
}

const stateKeysScanned = 8

func (t *stateKeys) find(id *stateKeyID) (uint64, bool) {
	if t.index != nil {
		i, ok := t.index[*id]
		return i, ok
	}
	for i := range t.order {
		if t.order[i] == *id {
			return uint64(i), true
		}
	}
	return 0, false
}

func (t *stateKeys) note(k *WriteKey) {
	if *k == (WriteKey{}) {
		return
	}
	id := stateKeyID{k.HLC, k.Author, k.Change}
	if _, ok := t.find(&id); ok {
		return
	}
	t.order = append(t.order, id)
	switch {
	case t.index != nil:
		t.index[id] = uint64(len(t.order) - 1)
	case len(t.order) > stateKeysScanned:
		t.index = make(map[stateKeyID]uint64, 2*len(t.order))
		for i, o := range t.order {
			t.index[o] = uint64(i)
		}
	}
}

func (t *stateKeys) appendRef(b []byte, k *WriteKey) []byte {
	if *k == (WriteKey{}) {
		return append(b, cborNull)
	}
	i, _ := t.find(&stateKeyID{k.HLC, k.Author, k.Change})
	return appendHead(b, cborUint, uint64(k.Op)*uint64(len(t.order))+i)
}

// appendCompact appends the state's compact encoding.
func (d *DocState) appendCompact(b []byte) ([]byte, error) {
	// Two passes: a reference counts in units of the final number of keys,
	// so every key is numbered before the first is referred to.
	var t stateKeys
	for i := range d.Exists.Writes {
		t.note(&d.Exists.Writes[i].Key)
	}
	t.note(&d.DeleteKey)
	for _, name := range sortedKeys(d.Fields) {
		if r := d.Fields[name]; r != nil {
			for i := range r.Writes {
				t.note(&r.Writes[i].Key)
			}
		}
	}
	for _, name := range sortedKeys(d.Counters) {
		for i := range d.Counters[name] {
			t.note(&d.Counters[name][i].Key)
		}
	}
	for _, name := range sortedKeys(d.Sets) {
		for i := range d.Sets[name] {
			e := &d.Sets[name][i]
			for j := range e.Adds {
				t.note(&e.Adds[j])
			}
			for j := range e.Removes {
				t.note(&e.Removes[j])
			}
		}
	}
	t.note(&d.Last)

	b = append(b, cborArray|8)
	b = appendHead(b, cborUint, stateVersion)
	b = appendHead(b, cborArray, uint64(len(t.order)))
	for _, k := range t.order {
		b = append(b, cborArray|4)
		b = appendHead(b, cborUint, k.hlc.Wall)
		b = appendHead(b, cborUint, uint64(k.hlc.Logical))
		b = appendBytes(b, k.author[:])
		b = appendBytes(b, k.change[:])
	}
	writes := func(b []byte, ws []Write) ([]byte, error) {
		b = appendHead(b, cborArray, uint64(len(ws)))
		var err error
		for i := range ws {
			b = append(b, cborArray|2)
			b = t.appendRef(b, &ws[i].Key)
			if b, err = appendValue(b, ws[i].Value); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	refs := func(b []byte, ks []WriteKey) []byte {
		b = appendHead(b, cborArray, uint64(len(ks)))
		for i := range ks {
			b = t.appendRef(b, &ks[i])
		}
		return b
	}
	var err error
	if b, err = writes(b, d.Exists.Writes); err != nil {
		return nil, err
	}
	b = t.appendRef(b, &d.DeleteKey)
	b, err = appendMap(b, d.Fields, func(b []byte, r *Register) ([]byte, error) {
		if r == nil {
			return append(b, cborNull), nil
		}
		return writes(b, r.Writes)
	})
	if err != nil {
		return nil, err
	}
	b, _ = appendMap(b, d.Counters, func(b []byte, incs []Increment) ([]byte, error) {
		b = appendHead(b, cborArray, uint64(len(incs)))
		for i := range incs {
			b = append(b, cborArray|2)
			b = t.appendRef(b, &incs[i].Key)
			b = appendInt(b, incs[i].Delta)
		}
		return b, nil
	})
	b, err = appendMap(b, d.Sets, func(b []byte, els []SetElement) ([]byte, error) {
		b = appendHead(b, cborArray, uint64(len(els)))
		var err error
		for i := range els {
			b = append(b, cborArray|3)
			if b, err = appendValue(b, els[i].Value); err != nil {
				return nil, err
			}
			b = refs(b, els[i].Adds)
			b = refs(b, els[i].Removes)
		}
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return t.appendRef(b, &d.Last), nil
}

// compactState is the compact encoding as the decoder reads it.
type compactState struct {
	_        struct{} `cbor:",toarray"`
	Version  uint64
	Keys     []compactKey
	Exists   []compactWrite
	Delete   *uint64
	Fields   map[string]*[]compactWrite
	Counters map[string][]compactIncrement
	Sets     map[string][]compactElement
	Last     *uint64
}

type compactKey struct {
	_       struct{} `cbor:",toarray"`
	Wall    uint64
	Logical uint32
	Author  PublicKey
	Change  ID
}

type compactWrite struct {
	_     struct{} `cbor:",toarray"`
	Ref   *uint64
	Value any
}

type compactIncrement struct {
	_     struct{} `cbor:",toarray"`
	Ref   *uint64
	Delta int64
}

type compactElement struct {
	_       struct{} `cbor:",toarray"`
	Value   any
	Adds    []*uint64
	Removes []*uint64
}

var errStateRef = errors.New("document state: key reference out of range")

// decodeState reads either encoding of a state.
func decodeState(data []byte, d *DocState) error {
	if len(data) == 0 || data[0] != cborArray|8 {
		return decMode.Unmarshal(data, d) // the plain encoding
	}
	var c compactState
	if err := decMode.Unmarshal(data, &c); err != nil {
		return err
	}
	if c.Version != stateVersion {
		return fmt.Errorf("document state: encoding version %d: this build reads %d", c.Version, stateVersion)
	}
	n := uint64(len(c.Keys))
	var bad bool
	key := func(ref *uint64) WriteKey {
		if ref == nil {
			return WriteKey{}
		}
		if n == 0 || *ref/n > 0xffffffff {
			bad = true
			return WriteKey{}
		}
		k := &c.Keys[*ref%n]
		return WriteKey{HLC: HLC{Wall: k.Wall, Logical: k.Logical}, Author: k.Author, Change: k.Change, Op: uint32(*ref / n)}
	}
	writes := func(ws []compactWrite) []Write {
		if len(ws) == 0 {
			return nil
		}
		out := make([]Write, len(ws))
		for i := range ws {
			out[i] = Write{Key: key(ws[i].Ref), Value: ws[i].Value}
		}
		return out
	}
	keys := func(refs []*uint64) []WriteKey {
		if len(refs) == 0 {
			return nil
		}
		out := make([]WriteKey, len(refs))
		for i, r := range refs {
			out[i] = key(r)
		}
		return out
	}
	*d = DocState{Exists: Register{Writes: writes(c.Exists)}, DeleteKey: key(c.Delete), Last: key(c.Last)}
	if len(c.Fields) > 0 {
		d.Fields = make(map[string]*Register, len(c.Fields))
		for name, ws := range c.Fields {
			if ws == nil {
				d.Fields[name] = nil
				continue
			}
			d.Fields[name] = &Register{Writes: writes(*ws)}
		}
	}
	if len(c.Counters) > 0 {
		d.Counters = make(map[string][]Increment, len(c.Counters))
		for name, incs := range c.Counters {
			out := make([]Increment, len(incs))
			for i := range incs {
				out[i] = Increment{Key: key(incs[i].Ref), Delta: incs[i].Delta}
			}
			d.Counters[name] = out
		}
	}
	if len(c.Sets) > 0 {
		d.Sets = make(map[string][]SetElement, len(c.Sets))
		for name, els := range c.Sets {
			out := make([]SetElement, len(els))
			for i := range els {
				out[i] = SetElement{Value: els[i].Value, Adds: keys(els[i].Adds), Removes: keys(els[i].Removes)}
			}
			d.Sets[name] = out
		}
	}
	if bad {
		return errStateRef
	}
	return nil
}
