package replica

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// writeTxn is one Badger transaction of the ingest path: changes stored,
// documents merged (cached until flush), effects gathered. The in-memory
// view is updated as it goes; if the commit fails, Replica.load restores
// it from the store.
type writeTxn struct {
	r     *Replica
	txn   *badger.Txn
	docs  map[string]*docEntry
	order []string
	// read holds document states the planner read in this transaction
	// (nil: none stored), so doc need not read and decode them again.
	read    map[string]*core.DocState
	entries int
	bytes   int
	pending int // bytes the documents held until commit will add (an estimate)
	done    bool
	planned bool // ops come from the planner, which checked them (Mutate)

	pre     *ruleResult              // rules of the change being written, judged before signing
	decoded map[core.ID]*core.Change // changes read by rules
	// Rules scan indexes often. A Badger write transaction sorts all its
	// pending writes for every iterator, so they scan a read snapshot
	// taken with it instead, plus the keys this transaction added under
	// each prefix scanned (see scanIndex).
	snap      *badger.Txn
	added     map[string][][]byte // scan prefix -> suffixes set in this transaction
	untracked bool                // index keys were set before rules were on: scan the transaction itself
}

type docEntry struct {
	coll, id     string
	state        *core.DocState
	changes      []core.ID
	hadConflicts bool // its conflict marker key exists
}

const (
	txnMaxEntries = 20000
	txnMaxBytes   = 3 << 20
)

func (r *Replica) begin() *writeTxn {
	return &writeTxn{r: r, txn: r.db.NewTransaction(true), docs: map[string]*docEntry{}}
}

// full reports whether the transaction should commit before taking more:
// counting what it wrote and what the documents it holds will write at
// commit (their states and effects), so it stays well inside Badger's
// limit on one transaction.
func (w *writeTxn) full() bool {
	return w.entries+4*len(w.docs) > txnMaxEntries || w.bytes+w.pending > txnMaxBytes
}

func (w *writeTxn) txnSet(k, v []byte) {
	w.entries++
	w.bytes += len(k) + len(v)
	if err := w.txn.Set(k, v); err != nil {
		panic(storeError{err}) // recovered in commit path callers via apply
	}
}

func (w *writeTxn) txnDelete(k []byte) {
	w.entries++
	if err := w.txn.Delete(k); err != nil {
		panic(storeError{err})
	}
}

func (w *writeTxn) setValue(k []byte, v any) {
	b, err := core.Marshal(v)
	if err != nil {
		panic(storeError{err})
	}
	w.txnSet(k, b)
}

// indexSet sets key prefix+suffix (a key of an index rules scan by
// prefix) and notes it for scanIndex.
func (w *writeTxn) indexSet(prefix, suffix []byte) {
	w.txnSet(append(slices.Clip(prefix), suffix...), nil)
	if !w.r.rulesOn { // nothing scans them: spare rule-free writes the bookkeeping
		w.untracked = true
		return
	}
	if w.added == nil {
		w.added = map[string][][]byte{}
	}
	w.added[string(prefix)] = append(w.added[string(prefix)], slices.Clone(suffix))
}

// scanIndex calls fn with the suffix of every key under prefix (one that
// indexSet writes): those committed, then those this transaction added.
func (w *writeTxn) scanIndex(prefix []byte, fn func(suffix []byte) error) error {
	if w.untracked {
		return scanKeys(w.txn, prefix, func(k []byte) error { return fn(k[len(prefix):]) })
	}
	if w.snap == nil {
		w.snap = w.r.db.NewTransaction(false)
	}
	added := w.added[string(prefix)]
	var seen map[string]bool
	if len(added) > 0 {
		seen = map[string]bool{}
	}
	err := scanKeys(w.snap, prefix, func(k []byte) error {
		if seen != nil {
			seen[string(k[len(prefix):])] = true
		}
		return fn(k[len(prefix):])
	})
	if err != nil {
		return err
	}
	for _, sfx := range added {
		if !seen[string(sfx)] {
			seen[string(sfx)] = true
			if err := fn(sfx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *writeTxn) discard() {
	if w.snap != nil {
		w.snap.Discard()
		w.snap = nil
	}
	if !w.done {
		w.done = true
		w.txn.Discard()
		if w.entries > 0 {
			_ = w.r.load() // undo in-memory changes of the abandoned txn
		}
	}
}

// commit flushes merged documents, hands their effects to the effect
// writer inside the transaction, and commits.
func (w *writeTxn) commit() (err error) {
	defer func() {
		if err != nil {
			w.discard()
		}
	}()
	defer recoverStoreError(&err)
	effects, err := w.flushDocs()
	if err != nil {
		return err
	}
	if len(effects) > 0 && w.r.opts.Effects != nil {
		if err := w.r.opts.Effects.AppendTx(txnTx{w.txn}, effects); err != nil {
			return storeError{fmt.Errorf("write effects: %w", err)}
		}
	}
	if err := w.txn.Commit(); err != nil {
		return storeError{fmt.Errorf("commit: %w", err)}
	}
	w.done = true
	if w.snap != nil {
		w.snap.Discard()
		w.snap = nil
	}
	w.r.publish()
	if len(effects) > 0 && w.r.opts.Effects != nil {
		w.r.opts.Effects.Committed()
	}
	return nil
}

// txnTx is a Badger transaction as an EffectLog sees it.
type txnTx struct{ txn *badger.Txn }

func (t txnTx) Get(k []byte) ([]byte, error) {
	item, err := t.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (t txnTx) Set(k, v []byte) error { return t.txn.Set(k, v) }

func (w *writeTxn) anc() core.Ancestry { return txnAncestry{r: w.r, txn: w.txn} }

func (w *writeTxn) parentsStored(c *core.Change, batch map[core.ID]bool) (bool, error) {
	for _, p := range c.Parents {
		if batch[p] {
			continue
		}
		if _, err := w.r.meta(w.txn, p); err != nil {
			if errors.Is(err, ErrNotFound) {
				return false, nil
			}
			return false, storeError{err}
		}
	}
	return true, nil
}

// apply stores one change whose parents are stored and merges its ops if it
// is valid. It returns whether the change is valid; an error means the
// change was refused (nothing stored) or the store failed (storeError).
func (w *writeTxn) apply(s core.Signed, c *core.Change, id core.ID) (valid bool, err error) {
	defer recoverStoreError(&err)
	r := w.r
	if c.IsGenesis() {
		return w.applyGenesis(s, c, id)
	}
	if r.genesis == nil {
		return false, fmt.Errorf("change %s: %w", id, ErrNoGenesis)
	}
	if c.Space != r.genesisID {
		return false, fmt.Errorf("change %s is for space %s, this is %s: %w", id, c.Space, r.genesisID, ErrWrongSpace)
	}
	parents := make([]core.ParentMeta, len(c.Parents))
	var parentVVs [][]uint64
	for i, p := range c.Parents {
		m, err := r.meta(w.txn, p)
		if err != nil {
			return false, storeError{err}
		}
		parents[i] = core.ParentMeta{Height: m.Height, HLC: m.HLC}
		v, err := r.vv(w.txn, p)
		if err != nil {
			return false, storeError{err}
		}
		parentVVs = append(parentVVs, v)
	}
	maxAhead, err := w.clockBound(c, parents)
	if err != nil {
		return false, fmt.Errorf("change %s: %w", id, err)
	}
	if err := c.CheckPlacement(parents, maxAhead); err != nil {
		return false, fmt.Errorf("change %s: %w", id, err)
	}
	ix := w.authorIndex(c.Author)
	vv := mergeVV(parentVVs, int(ix)+1)
	if vv[ix] != c.Seq-1 {
		return false, fmt.Errorf("change %s: %w: sequence %d but the author's change %d is already in its past", id, core.ErrInvalidChange, c.Seq, vv[ix])
	}
	if c.Seq > 1 {
		pm, err := r.meta(w.txn, c.Prev)
		if err != nil || pm.Author != c.Author || pm.Seq != c.Seq-1 || !w.inPast(c.Prev, c.Parents) {
			return false, fmt.Errorf("change %s: %w: prev %s is not the author's change %d in its past", id, core.ErrInvalidChange, c.Prev.Short(), c.Seq-1)
		}
	}
	vv[ix] = c.Seq
	m := &meta{Height: c.Height, HLC: c.HLC, Author: c.Author, Seq: c.Seq, Admin: core.IsAdminChange(c), fresh: true}
	w.store(s, c, id, m, vv)
	if err := w.checkEquivocation(c, id); err != nil {
		return false, err
	}
	if err := w.checkOps(c, id); err != nil {
		m.SchemaErr = err.Error()
	} else {
		w.indexCreates(c, id)
	}
	w.indexValues(c)
	if m.Admin {
		return w.applyAdmin(c, id, m)
	}
	role, err := w.authorizeData(c, id, w.anc())
	m.AuthErr = errText(err)
	if err := w.applyRules(c, id, m, role); err != nil {
		return false, err
	}
	if m.Valid {
		w.merge(c, id)
	}
	return m.Valid, nil
}

// authorizeData is the authorization verdict of a data change: its
// author holds a role at it (core.Membership.Authorize), not an invite
// key's, that may write every collection it writes under the schema in
// force at it. It returns the role.
func (w *writeTxn) authorizeData(c *core.Change, id core.ID, anc core.Ancestry) (string, error) {
	role, err := w.r.members.Authorize(c.Author, id, anc)
	if err != nil {
		return "", err
	}
	if role == core.RoleInvite {
		return "", fmt.Errorf("%w: an invite key may only grant", core.ErrUnauthorized)
	}
	if err := checkAccess(w.schemaAt(c.Parents), c, role); err != nil {
		return "", err
	}
	return role, nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// clockBound is how far c's clock may run past its parents': the space's
// bound, except for the use of an invite, which a joiner signs offline
// and may date up to the invite's expiry. It reads c's parent only, so
// the verdict is a function of the change and its causal past; a use
// dated after the expiry is refused outright.
func (w *writeTxn) clockBound(c *core.Change, parents []core.ParentMeta) (uint64, error) {
	bound := w.r.maxAhead
	if c.Seq != 1 || len(c.Parents) != 1 || len(c.Ops) != 1 || c.Ops[0].Kind != core.OpGrant {
		return bound, nil
	}
	pm, err := w.r.meta(w.txn, c.Parents[0])
	if err != nil || !pm.Admin {
		return bound, nil
	}
	parent, err := w.r.loadChange(w.txn, c.Parents[0])
	if err != nil {
		return 0, storeError{err}
	}
	t, ok := core.InviteIn(core.MemberView(parent, c.Parents[0]), c.Author)
	if !ok {
		return bound, nil
	}
	if c.HLC.Wall > t.Expires {
		return 0, fmt.Errorf("%w: invite %s expired at %d ms, the grant using it is dated %d ms", core.ErrInvalidChange, t.Change.Short(), t.Expires, c.HLC.Wall)
	}
	return t.UseClockBound(parents[0].HLC.Wall, bound), nil
}

func (w *writeTxn) applyGenesis(s core.Signed, c *core.Change, id core.ID) (bool, error) {
	r := w.r
	if r.genesis != nil {
		return false, fmt.Errorf("genesis %s: this replica holds space %s: %w", id, r.genesisID, ErrWrongSpace)
	}
	if want := r.opts.Space; !want.IsZero() && want != id {
		return false, fmt.Errorf("genesis %s: expected space %s: %w", id, want, ErrWrongSpace)
	}
	if _, err := schema.Parse(c.Ops[0].Schema); err != nil {
		return false, fmt.Errorf("genesis %s: %w: %v", id, core.ErrSchemaViolation, err)
	}
	if err := r.setGenesis(id, c); err != nil {
		return false, err
	}
	if err := w.ensureIndexed(r.current); err != nil {
		return false, err
	}
	ix := w.authorIndex(c.Author)
	vv := make([]uint64, ix+1)
	vv[ix] = 1
	w.store(s, c, id, &meta{Height: 1, HLC: c.HLC, Author: c.Author, Seq: 1, Valid: true}, vv)
	w.txnSet([]byte(pGenesis), id[:])
	if err := r.evaluateMembership(w.txn); err != nil {
		return false, storeError{err}
	}
	return true, nil
}

func (w *writeTxn) store(s core.Signed, c *core.Change, id core.ID, m *meta, vv []uint64) {
	b, err := s.Encode()
	if err != nil {
		panic(storeError{err})
	}
	w.txnSet(idKey(pChange, id), b)
	w.setValue(idKey(pMeta, id), m)
	w.setValue(idKey(pVV, id), vv)
	w.txnSet(authorKey(c.Author, c.Seq, &id), nil)
	w.txnSet(heightKey(c.Height, id), nil)
	for _, p := range c.Parents {
		if _, ok := w.r.heads[p]; ok {
			delete(w.r.heads, p)
			w.txnDelete(idKey(pHead, p))
		}
	}
	w.r.heads[id] = struct{}{}
	w.txnSet(idKey(pHead, id), nil)
	w.r.counts.changes++
	w.r.counts.maxHeight = max(w.r.counts.maxHeight, c.Height)
	w.r.cacheMeta(id, m)
	w.r.vvs[id] = vv
	for i := range c.Ops {
		if op := &c.Ops[i]; op.Kind.IsData() {
			k := docIndexKey(op.Coll, op.Doc, c.Height, id)
			n := len(docIndexPrefix(op.Coll, op.Doc))
			w.indexSet(k[:n], k[n:])
		}
	}
}

// setVerdict derives a change's verdict from its schema, authorization,
// rules and conflict verdicts, counts it and stores it.
func (w *writeTxn) setVerdict(id core.ID, m *meta) {
	wasInvalid := !m.fresh && !m.Valid // a fresh meta is not counted yet
	switch {
	case m.SchemaErr != "":
		m.Valid, m.Reason = false, m.SchemaErr
	case m.AuthErr != "":
		m.Valid, m.Reason = false, m.AuthErr
	case m.RuleErr != "":
		m.Valid, m.Reason = false, m.RuleErr
	case m.Lost != "":
		m.Valid, m.Reason = false, m.Lost
	case m.Undone != "":
		m.Valid, m.Reason = false, m.Undone
	default:
		m.Valid, m.Reason = true, ""
	}
	if isInvalid := !m.Valid; isInvalid != wasInvalid {
		if isInvalid {
			w.r.counts.invalid++
		} else {
			w.r.counts.invalid--
		}
	}
	m.fresh = false
	w.setValue(idKey(pMeta, id), m)
}

func (w *writeTxn) checkEquivocation(c *core.Change, id core.ID) error {
	k := seqKey(c.Author, c.Seq)
	var other core.ID
	item, err := w.txn.Get(k)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		w.txnSet(k, id[:])
		return nil
	case err != nil:
		return storeError{err}
	}
	if err := item.Value(func(v []byte) error { copy(other[:], v); return nil }); err != nil {
		return storeError{err}
	}
	if other != id {
		w.txnSet(append(append([]byte(pEquivoc), c.Author[:]...), id[:]...), nil)
		w.txnSet(append(append([]byte(pEquivoc), c.Author[:]...), other[:]...), nil)
		w.r.equivocal[c.Author] = true
		w.r.log.Warn("equivocation: two changes with one sequence number", "author", c.Author.String(), "seq", c.Seq, "a", id.String(), "b", other.String())
	}
	return nil
}

// inPast reports whether x is one of parents or an ancestor of one.
func (w *writeTxn) inPast(x core.ID, parents []core.ID) bool {
	anc := w.anc()
	for _, p := range parents {
		if p == x || anc.IsAncestor(x, p) {
			return true
		}
	}
	return false
}

func (w *writeTxn) authorIndex(a core.PublicKey) uint32 {
	if ix, ok := w.r.authorIx[a]; ok {
		return ix
	}
	ix := uint32(len(w.r.authorIx))
	w.r.authorIx[a] = ix
	w.setValue(append([]byte(pAuthorIx), a[:]...), ix)
	return ix
}

func mergeVV(vvs [][]uint64, minLen int) []uint64 {
	n := minLen
	for _, v := range vvs {
		n = max(n, len(v))
	}
	out := make([]uint64, n)
	for _, v := range vvs {
		for i, s := range v {
			out[i] = max(out[i], s)
		}
	}
	return out
}

// merge applies a valid change's data ops to its documents.
func (w *writeTxn) merge(c *core.Change, id core.ID) {
	anc := w.anc()
	for i := range c.Ops {
		op := &c.Ops[i]
		if !op.Kind.IsData() {
			continue
		}
		d := w.doc(op.Coll, op.Doc)
		w.r.apply(d.state, op, core.WriteKey{HLC: c.HLC, Author: c.Author, Change: id, Op: uint32(i)}, anc)
		w.pending += 3*opSize(op) + 256 // the state's write keys, the effect's post-image and provenance
		if len(d.changes) == 0 || d.changes[len(d.changes)-1] != id {
			d.changes = append(d.changes, id)
		}
	}
}

// indexCreates records the documents a schema-valid change creates. The
// reference rule asks for a create in the causal past; counting
// schema-valid creates whatever their author's standing keeps that verdict
// a function of the change and its past alone, so it never flips when a
// revocation arrives later.
func (w *writeTxn) indexCreates(c *core.Change, id core.ID) {
	for i := range c.Ops {
		if op := &c.Ops[i]; op.Kind == core.OpCreate {
			ids, err := w.creators(op.Coll, op.Doc)
			if err != nil {
				panic(err)
			}
			if !slices.Contains(ids, id) {
				w.setValue(createKey(op.Coll, op.Doc), append(ids, id))
			}
		}
	}
}

func (w *writeTxn) doc(coll, id string) *docEntry {
	name := docName(coll, id)
	if d, ok := w.docs[name]; ok {
		return d
	}
	st, read := w.read[name]
	switch {
	case read:
		delete(w.read, name)
		if st == nil {
			st = &core.DocState{}
		}
	default:
		st = &core.DocState{}
		if err := getValue(w.txn, docKey(coll, id), st); err != nil && !errors.Is(err, ErrNotFound) {
			panic(storeError{fmt.Errorf("load document %s/%s: %w", coll, id, err)})
		}
	}
	d := &docEntry{coll: coll, id: id, state: st, hadConflicts: st.HasConflicts()}
	w.docs[name] = d
	w.order = append(w.order, name)
	return d
}

func (w *writeTxn) flushDocs() ([]core.Effect, error) {
	cur := w.r.current
	flushed := w.encodeDocs(cur)
	effects := make([]core.Effect, 0, len(w.order))
	var names textNames // the documents of a transaction share few changes and authors
	for i, name := range w.order {
		d, f := w.docs[name], &flushed[i]
		if f.state == nil { // every write to it lost its effect
			w.txnDelete(docKey(d.coll, d.id))
		} else {
			w.txnSet(docKey(d.coll, d.id), f.state)
		}
		ck := []byte(pConflict + name)
		if d.state.HasConflicts() {
			w.txnSet(ck, nil)
		} else if d.hadConflicts {
			w.txnDelete(ck)
		}
		last := d.state.Last
		e := core.Effect{Collection: d.coll, DocID: d.id, Kind: core.Delete, Changes: make([]string, len(d.changes)),
			Author: names.author(last.Author), HLC: last.HLC.String(), LastChange: names.change(last.Change), SchemaID: cur.ID}
		for i, c := range d.changes {
			e.Changes[i] = names.change(c)
		}
		if f.image != nil {
			e.Kind, e.Doc = core.Upsert, f.image
		}
		effects = append(effects, e)
	}
	w.docs, w.order = map[string]*docEntry{}, nil
	return effects, nil
}

// flushedDoc is what a document's flush computes from its state alone.
type flushedDoc struct {
	state []byte         // its encoding; nil when empty (to delete)
	image map[string]any // its post-image; nil when it does not exist
}

// parallelFlush is the number of documents from which a flush encodes
// on every core: below it, starting goroutines costs more than it saves.
const parallelFlush = 256

// encodeDocs encodes the states and builds the post-images of the
// transaction's documents: pure work, spread over the cores for a large
// transaction (the store writes that follow are serial).
func (w *writeTxn) encodeDocs(cur *schema.Schema) []flushedDoc {
	out := make([]flushedDoc, len(w.order))
	var failed error
	var mu sync.Mutex
	encode := func(from, step int) {
		for i := from; i < len(w.order); i += step {
			d := w.docs[w.order[i]]
			if !d.state.Empty() {
				b, err := core.Marshal(d.state)
				if err != nil {
					mu.Lock()
					failed = fmt.Errorf("encode document %s/%s: %w", d.coll, d.id, err)
					mu.Unlock()
					return
				}
				out[i].state = b
			}
			if d.state.Alive() {
				out[i].image = image(cur, d.coll, d.state)
			}
		}
	}
	workers := 1
	if len(w.order) >= parallelFlush {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers == 1 {
		encode(0, 1)
	} else {
		var wg sync.WaitGroup
		for k := range workers {
			wg.Go(func() { encode(k, workers) })
		}
		wg.Wait()
	}
	if failed != nil {
		panic(storeError{failed})
	}
	return out
}

// textNames remembers the text forms of IDs and keys (a CID's text costs
// a multihash and a base32 encoding; a bulk write names one change in a
// thousand effects).
type textNames struct {
	changes map[core.ID]string
	authors map[core.PublicKey]string
}

func (n *textNames) change(id core.ID) string {
	s, ok := n.changes[id]
	if !ok {
		if n.changes == nil {
			n.changes = map[core.ID]string{}
		}
		s = id.String()
		n.changes[id] = s
	}
	return s
}

func (n *textNames) author(k core.PublicKey) string {
	s, ok := n.authors[k]
	if !ok {
		if n.authors == nil {
			n.authors = map[core.PublicKey]string{}
		}
		s = k.String()
		n.authors[k] = s
	}
	return s
}

// classify maps a field to its CRDT by the current schema, finding a
// renamed field by any name it had; a field's kind never changes across
// upgrades (schema.CheckUpgrade), so any version gives the same answer.
func (r *Replica) classify(coll, field string) core.FieldClass {
	if c, ok := r.current.Collection(coll); ok {
		if f, ok := c.FieldByAnyName(field); ok {
			switch f.Kind {
			case schema.Counter:
				return core.ClassCounter
			case schema.Set:
				return core.ClassSet
			}
		}
	}
	return core.ClassRegister
}

// image is a document's post-image under s: every field of the collection
// that has a value (defaults filled in), counters and sets always. A
// renamed field (schema.Field.Former) gathers what was written under each
// of its names: the greatest write of its registers (causally later writes
// have greater keys, concurrent ones are ordered by data), the sum of its
// counters, the union of its sets.
func image(s *schema.Schema, coll string, st *core.DocState) map[string]any {
	out := map[string]any{}
	c, ok := s.Collection(coll)
	if !ok {
		return out
	}
	for _, f := range c.Fields {
		switch f.Kind {
		case schema.Counter:
			var n int64
			for _, name := range f.Names() {
				n += st.Counter(name)
			}
			out[f.Name] = n
		case schema.Set:
			vals := st.SetValues(f.Name)
			for _, name := range f.Former {
				for _, v := range st.SetValues(name) {
					if !slices.ContainsFunc(vals, func(x any) bool { return core.CompareValues(x, v) == 0 }) {
						vals = append(vals, v)
					}
				}
			}
			if len(f.Former) > 0 {
				slices.SortFunc(vals, core.CompareValues)
			}
			out[f.Name] = vals
		default:
			var best core.Write
			found := false
			for _, name := range f.Names() {
				if w, ok := st.FieldValue(name); ok && (!found || w.Key.Compare(best.Key) > 0) {
					best, found = w, true
				}
			}
			if found {
				if best.Value != nil {
					out[f.Name] = best.Value
				}
			} else if f.Default != nil {
				out[f.Name] = f.Default
			}
		}
	}
	return out
}

// apply merges one valid data op into a document's state. A remove from
// a renamed set reaches the elements added under every name the field
// had in the schema in force at the remove's change (a pure function of
// that change's causal past): the adds it observed are gone whatever
// name they were written under.
func (r *Replica) apply(st *core.DocState, op *core.Op, key core.WriteKey, anc core.Ancestry) {
	st.Apply(op, key, r.classify, anc)
	if op.Kind != core.OpRemove || !r.renames {
		return
	}
	s := r.schemas[r.genesisID]
	for _, up := range r.members.Schemas { // (height, ID) order: last match wins
		if anc.IsAncestor(up.ID, key.Change) {
			if u, ok := r.schemas[up.ID]; ok {
				s = u
			}
		}
	}
	c, ok := s.Collection(op.Coll)
	if !ok {
		return
	}
	f, ok := c.Field(op.Field)
	if !ok {
		return
	}
	for _, name := range f.Former {
		alias := *op
		alias.Field = name
		st.Apply(&alias, key, r.classify, anc)
	}
}

// sortedHeads returns the heads, highest first, then by ID.
func (r *Replica) sortedHeads(txn *badger.Txn) []core.ID {
	hs := make([]core.ID, 0, len(r.heads))
	for h := range r.heads {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b core.ID) int {
		ma, _ := r.meta(txn, a)
		mb, _ := r.meta(txn, b)
		if ma != nil && mb != nil && ma.Height != mb.Height {
			if ma.Height > mb.Height {
				return -1
			}
			return 1
		}
		return a.Compare(b)
	})
	return hs
}

// creators lists the schema-valid changes that created a document.
func (w *writeTxn) creators(coll, doc string) ([]core.ID, error) {
	var ids []core.ID
	if err := getValue(w.txn, createKey(coll, doc), &ids); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, storeError{err}
	}
	return ids, nil
}

// opSize approximates the encoded size of an op's values.
func opSize(op *core.Op) int {
	n := len(op.Coll) + len(op.Doc) + len(op.Field) + valueSize(op.Value)
	for k, v := range op.Fields {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []byte:
		return len(x)
	case []any:
		n := 0
		for _, e := range x {
			n += valueSize(e)
		}
		return n
	}
	return 9
}
