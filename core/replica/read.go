package replica

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// Document is a materialized document with its provenance.
type Document struct {
	Collection string         `json:"collection"`
	ID         string         `json:"id"`
	Fields     map[string]any `json:"fields"`
	Deleted    bool           `json:"deleted,omitempty"`
	LastChange core.ID        `json:"last_change"`
	Author     string         `json:"author"`
	HLC        string         `json:"hlc"`
}

func makeDocument(s *schema.Schema, coll, id string, st *core.DocState) Document {
	d := Document{Collection: coll, ID: id, LastChange: st.Last.Change, Author: st.Last.Author.String(), HLC: st.Last.HLC.String()}
	if st.Alive() {
		d.Fields = image(s, coll, st)
	} else {
		d.Deleted = true
	}
	return d
}

// Get returns a document; ok is false when it does not exist (never
// created, or deleted).
func (r *Replica) Get(coll, id string) (Document, bool, error) {
	v := r.view.Load()
	var doc Document
	var ok bool
	err := r.db.View(func(txn *badger.Txn) error {
		var st core.DocState
		if err := getValue(txn, docKey(coll, id), &st); err != nil {
			if err == ErrNotFound {
				return nil
			}
			return err
		}
		doc = makeDocument(v.schema, coll, id, &st)
		ok = !doc.Deleted
		return nil
	})
	if err != nil {
		return doc, false, fmt.Errorf("get %s/%s: %w", coll, id, err)
	}
	return doc, ok, nil
}

// Query returns the live documents of a collection whose fields equal every
// value in where (canonical values), sorted by id.
func (r *Replica) Query(coll string, where map[string]any) ([]Document, error) {
	var out []Document
	s := r.view.Load().schema
	err := r.db.View(func(txn *badger.Txn) error {
		prefix := []byte(pDoc + coll + "\x00")
		return scan(txn, prefix, func(k, v []byte) error {
			var st core.DocState
			if err := core.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("document %q: %w", k, err)
			}
			if !st.Alive() {
				return nil
			}
			d := makeDocument(s, coll, string(k[len(prefix):]), &st)
			for f, want := range where {
				if core.CompareValues(d.Fields[f], want) != 0 {
					return nil
				}
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", coll, err)
	}
	return out, nil
}

// replay rebuilds a document from the valid changes that touched it; with
// at set, only from at and its causal past (the document as of at).
func (r *Replica) replay(txn *badger.Txn, coll, doc string, at *core.ID) (*core.DocState, error) {
	st := &core.DocState{}
	anc := txnAncestry{r: r, txn: txn}
	prefix := docIndexPrefix(coll, doc)
	var ids []core.ID
	err := scanKeys(txn, prefix, func(k []byte) error {
		var id core.ID
		copy(id[:], k[len(k)-len(id):])
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if at != nil && id != *at && !anc.IsAncestor(id, *at) {
			continue
		}
		m, err := r.meta(txn, id)
		if err != nil {
			return nil, err
		}
		if !m.Valid {
			continue
		}
		c, err := r.loadChange(txn, id)
		if err != nil {
			return nil, err
		}
		for i := range c.Ops {
			op := &c.Ops[i]
			if op.Kind.IsData() && op.Coll == coll && op.Doc == doc {
				r.apply(st, op, core.WriteKey{HLC: c.HLC, Author: c.Author, Change: id, Op: uint32(i)}, anc)
			}
		}
	}
	return st, nil
}

// At returns the document as it was at change at: the merge of at and its
// causal past.
func (r *Replica) At(coll, doc string, at core.ID) (Document, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d Document
	err := r.db.View(func(txn *badger.Txn) error {
		if _, err := r.meta(txn, at); err != nil {
			return fmt.Errorf("change %s: %w", at, err)
		}
		st, err := r.replay(txn, coll, doc, &at)
		if err != nil {
			return err
		}
		d = makeDocument(r.current, coll, doc, st)
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("read %s/%s at %s: %w", coll, doc, at.Short(), err)
	}
	return d, nil
}

// Entry is one change in a document's (or the space's) history.
type Entry struct {
	Change  core.ID   `json:"change"`
	Author  string    `json:"author"`
	Seq     uint64    `json:"seq"`
	Height  uint64    `json:"height"`
	HLC     string    `json:"hlc"`
	Valid   bool      `json:"valid"`
	Reason  string    `json:"reason,omitempty"`
	Parents []core.ID `json:"parents"`
	Ops     []OpView  `json:"ops"`
}

// OpView is an op as history shows it.
type OpView struct {
	Kind   string         `json:"kind"`
	Coll   string         `json:"collection,omitempty"`
	Doc    string         `json:"id,omitempty"`
	Field  string         `json:"field,omitempty"`
	Value  any            `json:"value,omitempty"`
	Fields map[string]any `json:"fields,omitempty"`
	Delta  int64          `json:"delta,omitempty"`
	Member string         `json:"member,omitempty"`
	Role   string         `json:"role,omitempty"`
	// Reads is the attestation: what the rules guarding this op's action
	// relied on when its author wrote it.
	Reads []core.Fact `json:"reads,omitempty"`
}

func (r *Replica) entry(txn *badger.Txn, id core.ID, filter func(*core.Op) bool) (Entry, error) {
	m, err := r.meta(txn, id)
	if err != nil {
		return Entry{}, err
	}
	c, err := r.loadChange(txn, id)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Change: id, Author: c.Author.String(), Seq: c.Seq, Height: c.Height, HLC: c.HLC.String(), Valid: m.Valid, Reason: m.Reason, Parents: c.Parents}
	for i := range c.Ops {
		op := &c.Ops[i]
		if filter != nil && !filter(op) {
			continue
		}
		v := OpView{Kind: op.Kind.String(), Coll: op.Coll, Doc: op.Doc, Field: op.Field, Value: op.Value, Fields: op.Fields, Delta: op.Delta, Role: op.Role, Reads: op.Reads}
		if !op.Member.IsZero() {
			v.Member = op.Member.String()
		}
		e.Ops = append(e.Ops, v)
	}
	return e, nil
}

// History lists every change that touched a document, oldest first (by
// height, then ID), valid or not.
func (r *Replica) History(coll, doc string) ([]Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Entry
	err := r.db.View(func(txn *badger.Txn) error {
		return scanKeys(txn, docIndexPrefix(coll, doc), func(k []byte) error {
			var id core.ID
			copy(id[:], k[len(k)-len(id):])
			e, err := r.entry(txn, id, func(op *core.Op) bool { return op.Coll == coll && op.Doc == doc })
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s/%s: %w", coll, doc, err)
	}
	return out, nil
}

// Log lists the space's changes by height, newest last; limit 0 means all.
func (r *Replica) Log(limit int) ([]Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Entry
	err := r.db.View(func(txn *badger.Txn) error {
		return scanKeys(txn, []byte(pHeight), func(k []byte) error {
			var id core.ID
			copy(id[:], k[len(k)-len(id):])
			e, err := r.entry(txn, id, nil)
			if err != nil {
				return err
			}
			out = append(out, e)
			if limit > 0 && len(out) > limit {
				out = out[1:]
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return out, nil
}

// ConflictView is an open conflict on one document field.
type ConflictView struct {
	Collection string      `json:"collection"`
	ID         string      `json:"id"`
	Field      string      `json:"field"`
	Winner     WriteView   `json:"winner"`
	Losers     []WriteView `json:"losers"`
}

// WriteView is one of the concurrent writes of a conflict.
type WriteView struct {
	Value  any     `json:"value"`
	Change core.ID `json:"change"`
	Author string  `json:"author"`
	HLC    string  `json:"hlc"`
}

func writeView(w core.Write) WriteView {
	return WriteView{Value: w.Value, Change: w.Key.Change, Author: w.Key.Author.String(), HLC: w.Key.HLC.String()}
}

// Conflicts lists open conflicts across the space, by collection, id,
// field. A renamed field's conflicts are those of the writes under all
// its names (renamedConflicts): the collections with a renamed field are
// read whole, the others through the conflict markers.
func (r *Replica) Conflicts() ([]ConflictView, error) {
	var out []ConflictView
	s := r.view.Load().schema
	renamed := renamedFields(s)
	if len(renamed) > 0 {
		r.mu.Lock() // ancestry reads the meta cache
		defer r.mu.Unlock()
	}
	err := r.db.View(func(txn *badger.Txn) error {
		err := scanKeys(txn, []byte(pConflict), func(k []byte) error {
			coll, doc, _ := strings.Cut(string(k[len(pConflict):]), "\x00")
			if renamed[coll] != nil {
				return nil
			}
			var st core.DocState
			if err := getValue(txn, docKey(coll, doc), &st); err != nil {
				return err
			}
			out = appendConflicts(out, coll, doc, st.Conflicts())
			return nil
		})
		if err != nil {
			return err
		}
		anc := txnAncestry{r: r, txn: txn}
		for _, coll := range slices.Sorted(maps.Keys(renamed)) {
			prefix := []byte(pDoc + coll + "\x00")
			err := scan(txn, prefix, func(k, v []byte) error {
				var st core.DocState
				if err := core.Unmarshal(v, &st); err != nil {
					return fmt.Errorf("document %q: %w", k, err)
				}
				out = appendConflicts(out, coll, string(k[len(prefix):]), renamedConflicts(&st, renamed[coll], anc))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("conflicts: %w", err)
	}
	slices.SortStableFunc(out, func(a, b ConflictView) int {
		return cmp.Or(strings.Compare(a.Collection, b.Collection), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func appendConflicts(out []ConflictView, coll, doc string, cs []core.Conflict) []ConflictView {
	for _, c := range cs {
		v := ConflictView{Collection: coll, ID: doc, Field: c.Field, Winner: writeView(c.Winner)}
		for _, l := range c.Losers {
			v.Losers = append(v.Losers, writeView(l))
		}
		out = append(out, v)
	}
	return out
}

// renamedFields lists, by collection, the fields of s that have former
// names.
func renamedFields(s *schema.Schema) map[string][]*schema.Field {
	out := map[string][]*schema.Field{}
	for _, c := range s.Collections {
		for _, f := range c.Fields {
			if len(f.Former) > 0 {
				out[c.Name] = append(out[c.Name], f)
			}
		}
	}
	return out
}

// renamedConflicts is a document's open conflicts when fields were
// renamed: a renamed field's writes under all its names form one
// frontier (the writes no other of them causally follows, above the
// newest delete), listed under its name when it holds more than one; the
// other registers as DocState.Conflicts lists them.
func renamedConflicts(st *core.DocState, fields []*schema.Field, anc core.Ancestry) []core.Conflict {
	family := map[string]bool{}
	for _, f := range fields {
		for _, n := range f.Names() {
			family[n] = true
		}
	}
	var out []core.Conflict
	for _, c := range st.Conflicts() {
		if !family[c.Field] {
			out = append(out, c)
		}
	}
	for _, f := range fields {
		var ws []core.Write
		for _, n := range f.Names() {
			if reg := st.Fields[n]; reg != nil {
				for _, w := range reg.Writes {
					if w.Key.Compare(st.DeleteKey) > 0 {
						ws = append(ws, w)
					}
				}
			}
		}
		var frontier []core.Write
		for _, w := range ws {
			if !slices.ContainsFunc(ws, func(o core.Write) bool { return o.Key != w.Key && writePrecedes(w.Key, o.Key, anc) }) {
				frontier = append(frontier, w)
			}
		}
		if len(frontier) > 1 {
			slices.SortFunc(frontier, func(a, b core.Write) int { return a.Key.Compare(b.Key) })
			n := len(frontier)
			out = append(out, core.Conflict{Field: f.Name, Winner: frontier[n-1], Losers: frontier[:n-1]})
		}
	}
	return out
}

// writePrecedes reports whether write a is causally before write b.
func writePrecedes(a, b core.WriteKey, anc core.Ancestry) bool {
	if a.Change == b.Change {
		return a.Op < b.Op
	}
	return anc.IsAncestor(a.Change, b.Change)
}

// Schema returns the schema in force (the newest accepted).
func (r *Replica) Schema() *schema.Schema { return r.view.Load().schema }

// Space returns the space ID: the genesis held, else the one expected
// (Options.Space, a joiner's), else zero.
func (r *Replica) Space() core.ID { return r.view.Load().space }

// Heads returns the current heads, sorted by ID.
func (r *Replica) Heads() []core.ID { return slices.Clone(r.view.Load().heads) }

// Status summarises the replica.
type Status struct {
	Space       core.ID       `json:"space"`
	Name        string        `json:"name"`
	SchemaID    string        `json:"schema"`
	Changes     int           `json:"changes"`
	Invalid     int           `json:"invalid"`
	Heads       []core.ID     `json:"heads"`
	MaxHeight   uint64        `json:"max_height"`
	Orphans     int           `json:"orphans"`
	Members     []core.Member `json:"members"`
	Invites     []core.Invite `json:"invites"`
	Contested   int           `json:"contested_invites"`
	Equivocated []string      `json:"equivocating_authors"`
}

// Status counts changes and lists heads, members, invites and
// equivocating authors. It reads the published view: no scan, no lock.
func (r *Replica) Status() (Status, error) {
	v := r.view.Load()
	st := Status{Space: v.genesisID, Orphans: v.orphans, Equivocated: []string{}}
	if v.genesis == nil {
		return st, nil
	}
	st.Name = v.genesis.Ops[0].Name
	st.SchemaID = v.schema.ID
	st.Members = v.members.Members()
	st.Invites = slices.Clone(v.members.Invites)
	inviteKeys := map[core.PublicKey]bool{}
	for _, inv := range st.Invites {
		inviteKeys[inv.Key] = true
		if inv.State == core.InviteContested {
			st.Contested++
		}
	}
	for _, a := range v.equivocal {
		if !inviteKeys[a] { // two uses of one code: a contested invite, shown as such
			st.Equivocated = append(st.Equivocated, a.String())
		}
	}
	st.Heads = slices.Clone(v.heads)
	st.Changes, st.Invalid, st.MaxHeight = v.counts.changes, v.counts.invalid, v.counts.maxHeight
	return st, nil
}

// Verdict reports whether a stored change has effect, and why not.
func (r *Replica) Verdict(id core.ID) (valid bool, reason string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	err = r.db.View(func(txn *badger.Txn) error {
		m, err := r.meta(txn, id)
		if err != nil {
			return err
		}
		valid, reason = m.Valid, m.Reason
		return nil
	})
	return valid, reason, err
}

// Has reports whether a change is stored.
func (r *Replica) Has(id core.ID) bool {
	err := r.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(idKey(pChange, id))
		return err
	})
	return err == nil
}

// Heights returns the heights of stored changes, in the order of ids
// (what a reconciliation index needs of the changes a Watch callback
// names). It fails, naming the change, if one is not stored.
func (r *Replica) Heights(ids []core.ID) ([]uint64, error) {
	out := make([]uint64, len(ids))
	err := r.db.View(func(txn *badger.Txn) error {
		for i, id := range ids {
			var m meta
			if err := getValue(txn, idKey(pMeta, id), &m); err != nil {
				return fmt.Errorf("height of change %s: %w", id.Short(), err)
			}
			out[i] = m.Height
		}
		return nil
	})
	return out, err
}

// Range lists (height, ID) of stored changes with height in [from, to),
// in order: the raw material of set reconciliation.
func (r *Replica) Range(from, to uint64, fn func(height uint64, id core.ID) bool) error {
	return r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pHeight)})
		defer it.Close()
		start := binary.BigEndian.AppendUint64([]byte(pHeight), from)
		for it.Seek(start); it.Valid(); it.Next() {
			k := it.Item().Key()
			h := binary.BigEndian.Uint64(k[len(pHeight):])
			if h >= to {
				return nil
			}
			var id core.ID
			copy(id[:], k[len(pHeight)+8:])
			if !fn(h, id) {
				return nil
			}
		}
		return nil
	})
}

// Envelope returns a stored change's envelope bytes.
func (r *Replica) Envelope(id core.ID) ([]byte, error) {
	var b []byte
	err := r.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(idKey(pChange, id))
		if err != nil {
			return err
		}
		b, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("change %s: %w", id, ErrNotFound)
	}
	return b, nil
}

// Change describes one stored change.
func (r *Replica) Change(id core.ID) (Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var e Entry
	err := r.db.View(func(txn *badger.Txn) error {
		var err error
		e, err = r.entry(txn, id, nil)
		return err
	})
	if err != nil {
		return e, fmt.Errorf("change %s: %w", id, err)
	}
	return e, nil
}

// IsMember reports whether key is a current member: it holds a role
// (admin or writer) at the frontier of what this replica knows, and is
// not revoked. Invite keys are never members. This is the admission rule
// of transports.
func (r *Replica) IsMember(key core.PublicKey) bool {
	m := r.view.Load().members
	return m != nil && m.IsMember(key)
}

// Role returns key's current role ("" for strangers and revoked members).
func (r *Replica) Role(key core.PublicKey) string {
	m := r.view.Load().members
	if m == nil {
		return ""
	}
	return m.Role(key)
}

// Invites lists every invite of the space and what became of it.
func (r *Replica) Invites() []core.Invite {
	m := r.view.Load().members
	if m == nil {
		return nil
	}
	return slices.Clone(m.Invites)
}

// HasGenesis reports whether the replica holds its space's genesis change
// (a joiner does not until its first sync).
func (r *Replica) HasGenesis() bool { return r.view.Load().genesis != nil }
