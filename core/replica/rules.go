package replica

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// Rules (docs/RULES.md). A change's guarded actions are judged at its
// view: the documents as a replica holding exactly the change's causal
// past materializes them (conflicts inside that past settled), plus the
// earlier ops of the change itself. Rules look documents up by id or by
// the value index (i/), never by scanning a collection; each candidate is
// read at the view, from the stored state when every change that touched
// it agrees with the view, else replayed.

// pendingID stands for a change being written, before it is signed.
var pendingID = core.IDOf([]byte("tributary: the change being written"))

// ruleResult is what judging a change's rules found.
type ruleResult struct {
	change *core.Change // the change judged (a write reuses its pre-signing judgement)
	ruled  bool         // it holds an action a rule guards
	err    error        // the first false rule (wraps core.ErrRuleViolation)
	plain  error        // the same, without the op index
	op     int          // that action's first op
	facts  map[int][]core.Fact
	reads  []readKey
}

// readKey is what a rule read: one document, or the documents of a
// collection whose field holds a value (val is its canonical CBOR).
type readKey struct {
	coll, doc, field string
	val              []byte
}

func (k readKey) String() string {
	if k.field == "" {
		return docReadKey(k.coll, k.doc)
	}
	return valueReadKey(k.coll, k.field, k.val)
}

// action is a run of consecutive data ops of one change on one document:
// rules judge it once, old before its first op and new after its last.
type action struct {
	from, to  int
	coll, doc string
	kind      schema.Action
}

func actions(c *core.Change) []action {
	var out []action
	for i := 0; i < len(c.Ops); {
		op := &c.Ops[i]
		if !op.Kind.IsData() {
			i++
			continue
		}
		j := i + 1
		for j < len(c.Ops) && c.Ops[j].Kind.IsData() && c.Ops[j].Coll == op.Coll && c.Ops[j].Doc == op.Doc {
			j++
		}
		a := action{from: i, to: j, coll: op.Coll, doc: op.Doc, kind: schema.ActionUpdate}
		if slices.ContainsFunc(c.Ops[i:j], func(o core.Op) bool { return o.Kind == core.OpCreate }) {
			a.kind = schema.ActionCreate
		} else if c.Ops[j-1].Kind == core.OpDelete {
			a.kind = schema.ActionDelete
		}
		out = append(out, a)
		i = j
	}
	return out
}

// ruleView is the documents a rule of change self reads: those of the
// changes in its set (in), ok, and not losers of the conflicts inside the
// set, plus the pending (earlier) ops of self.
type ruleView struct {
	w       *writeTxn
	s       *schema.Schema
	self    core.ID
	in      func(core.ID) bool
	anc     core.Ancestry
	losers  map[core.ID]core.ID
	final   bool // the replica's verdicts decide, not the view's own
	base    map[string]*core.DocState
	pending map[string][]pendingOp
	lookups []core.Fact // Lookups of the rule being evaluated
}

type pendingOp struct {
	op  *core.Op
	key core.WriteKey
}

// newView makes the view of change c (ID self, stored or pendingID): its
// causal past, plus extra (a concurrent change, for a conflict check)
// when extra is not zero.
func (w *writeTxn) newView(c *core.Change, self, extra core.ID) *ruleView {
	v := w.view(c, self, extra)
	v.losers = w.settle(v.in)
	return v
}

// finalView is the view of stored change c as the replica's verdicts
// leave its past: changes rolled back there are undone.
func (w *writeTxn) finalView(c *core.Change, self core.ID) *ruleView {
	v := w.view(c, self, core.ID{})
	v.final = true
	return v
}

func (w *writeTxn) view(c *core.Change, self, extra core.ID) *ruleView {
	v := &ruleView{w: w, s: w.schemaAt(c.Parents), self: self, base: map[string]*core.DocState{}, pending: map[string][]pendingOp{}}
	if self == pendingID {
		v.anc = precheckAncestry{w, c}
		v.in = func(x core.ID) bool { return x == extra || w.inPast(x, c.Parents) }
	} else {
		anc := w.anc()
		v.anc = anc
		v.in = func(x core.ID) bool { return x == extra || anc.IsAncestor(x, self) }
	}
	return v
}

// push adds the ops of an action to the view (they precede later actions).
func (v *ruleView) push(c *core.Change, a action) {
	name := docName(a.coll, a.doc)
	for k := a.from; k < a.to; k++ {
		v.pending[name] = append(v.pending[name], pendingOp{op: &c.Ops[k], key: core.WriteKey{HLC: c.HLC, Author: c.Author, Change: v.self, Op: uint32(k)}})
	}
}

// unpush takes the ops of an action pushed last back out.
func (v *ruleView) unpush(a action) {
	name := docName(a.coll, a.doc)
	ops := v.pending[name][:len(v.pending[name])-(a.to-a.from)]
	if len(ops) == 0 {
		delete(v.pending, name)
	} else {
		v.pending[name] = ops
	}
}

// contributes reports whether change id's ops are part of the view.
func (v *ruleView) contributes(id core.ID, m *meta) bool {
	if id == v.self {
		return false // its earlier ops come as pending ops
	}
	if v.final {
		return m.Valid && v.in(id)
	}
	_, lost := v.losers[id]
	return m.ok() && !lost && v.in(id)
}

// baseState is a document at the view without pending ops.
func (v *ruleView) baseState(coll, doc string) (*core.DocState, error) {
	w, r := v.w, v.w.r
	var ids []core.ID
	err := w.scanIndex(docIndexPrefix(coll, doc), func(k []byte) error {
		var id core.ID
		copy(id[:], k[len(k)-len(id):])
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, storeError{err}
	}
	stored := true // the stored state is the view's
	var use []core.ID
	for _, id := range ids {
		m, err := r.meta(w.txn, id)
		if err != nil {
			return nil, storeError{err}
		}
		in := v.contributes(id, m)
		if in {
			use = append(use, id)
		}
		if in != m.Valid {
			stored = false
		}
	}
	st := &core.DocState{}
	if stored {
		if d, ok := w.docs[docName(coll, doc)]; ok {
			return d.state, nil // read only: state clones before applying pending ops
		}
		if err := getValue(w.txn, docKey(coll, doc), st); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, storeError{err}
		}
		return st, nil
	}
	for _, id := range use {
		c, err := w.change(id)
		if err != nil {
			return nil, err
		}
		for i := range c.Ops {
			if op := &c.Ops[i]; op.Kind.IsData() && op.Coll == coll && op.Doc == doc {
				r.apply(st, op, core.WriteKey{HLC: c.HLC, Author: c.Author, Change: id, Op: uint32(i)}, v.anc)
			}
		}
	}
	return st, nil
}

// state is a document at the view with the pending ops applied.
func (v *ruleView) state(coll, doc string) (*core.DocState, error) {
	name := docName(coll, doc)
	st, ok := v.base[name]
	if !ok {
		var err error
		if st, err = v.baseState(coll, doc); err != nil {
			return nil, err
		}
		v.base[name] = st
	}
	ops := v.pending[name]
	if len(ops) == 0 {
		return st, nil
	}
	st, err := cloneState(st)
	if err != nil {
		return nil, err
	}
	for _, p := range ops {
		v.w.r.apply(st, p.op, p.key, v.anc)
	}
	return st, nil
}

// Doc implements schema.Source.
func (v *ruleView) Doc(coll, id string) (*schema.Doc, error) {
	st, err := v.state(coll, id)
	if err != nil || !st.Alive() {
		return nil, err
	}
	return &schema.Doc{ID: id, Fields: image(v.s, coll, st), Creator: creatorOf(st)}, nil
}

// Lookup implements schema.Source: the documents the value index lists,
// and those the pending ops write.
func (v *ruleView) Lookup(coll, field string, value any) ([]string, error) {
	b, err := core.Marshal(value)
	if err != nil {
		return nil, err
	}
	v.lookups = append(v.lookups, core.Fact{Coll: coll, Field: field, Value: value})
	var ids []string
	for _, name := range fieldNames(v.s, coll, field) {
		err = v.w.scanIndex(valuePrefix(coll, name, b), func(sfx []byte) error {
			ids = append(ids, string(sfx))
			return nil
		})
		if err != nil {
			return nil, storeError{err}
		}
	}
	for name := range v.pending {
		if c, doc, _ := strings.Cut(name, "\x00"); c == coll {
			ids = append(ids, doc)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// fieldNames lists the names a field's values are indexed under in s: its
// name and its former names.
func fieldNames(s *schema.Schema, coll, field string) []string {
	if c, ok := s.Collection(coll); ok {
		if f, ok := c.Field(field); ok {
			return f.Names()
		}
	}
	return []string{field}
}

// creatorOf is the author of the create in force: the newest live
// create on the document's existence register.
func creatorOf(st *core.DocState) string {
	for i := len(st.Exists.Writes) - 1; i >= 0; i-- {
		if w := st.Exists.Writes[i]; w.Value == true {
			return w.Key.Author.String()
		}
	}
	return ""
}

func cloneState(st *core.DocState) (*core.DocState, error) {
	b, err := core.Marshal(st)
	if err != nil {
		return nil, storeError{err}
	}
	var out core.DocState
	if err := core.Unmarshal(b, &out); err != nil {
		return nil, storeError{err}
	}
	return &out, nil
}

// judgeRules judges the guarded actions of c, by an author holding role,
// at view v (made for c). It stops at the first false rule.
func (w *writeTxn) judgeRules(c *core.Change, role string, v *ruleView) (ruleResult, error) {
	res := ruleResult{change: c, facts: map[int][]core.Fact{}}
	reads := map[string]readKey{}
	read := func(k readKey) { reads[k.String()] = k }
	for _, a := range actions(c) {
		var rule *schema.Rule
		if coll, ok := v.s.Collection(a.coll); ok {
			rule = coll.Rule(a.kind)
		}
		if rule == nil {
			v.push(c, a)
			continue
		}
		res.ruled = true
		var facts []core.Fact
		fact := func(coll, doc string) error {
			st, err := v.state(coll, doc)
			if err != nil {
				return err
			}
			facts = append(facts, core.Fact{Coll: coll, Doc: doc, Version: st.Last.Change})
			read(readKey{coll: coll, doc: doc})
			return nil
		}
		env := schema.Env{Author: c.Author.String(), Role: role, Now: c.HLC.Wall, ID: a.doc}
		before, err := v.Doc(a.coll, a.doc)
		if err != nil {
			return res, err
		}
		if a.kind != schema.ActionCreate {
			env.Old = before
			if err := fact(a.coll, a.doc); err != nil {
				return res, err
			}
		} else {
			read(readKey{coll: a.coll, doc: a.doc})
		}
		if a.kind != schema.ActionDelete {
			v.push(c, a)
			env.New, err = v.Doc(a.coll, a.doc)
			v.unpush(a)
			if err != nil {
				return res, err
			}
		}
		// The rule reads the documents as they are before the action;
		// only new shows its result.
		v.lookups = nil
		out, err := rule.Eval(env, v)
		if err != nil {
			return res, err
		}
		v.push(c, a)
		for _, d := range out.Relied {
			if err := fact(d[0], d[1]); err != nil {
				return res, err
			}
		}
		for _, l := range v.lookups {
			b, _ := core.Marshal(l.Value)
			read(readKey{coll: l.Coll, field: l.Field, val: b})
			facts = append(facts, l)
		}
		res.facts[a.from] = dedupeFacts(facts)
		if !out.OK {
			res.op = a.from
			what := fmt.Sprintf("@%s rule of %s is false: %s", a.kind, a.coll, out.Why)
			res.err = fmt.Errorf("%w: op %d (%s %s/%s): %s", core.ErrRuleViolation, a.from, c.Ops[a.from].Kind, a.coll, a.doc, what)
			res.plain = fmt.Errorf("%w: %s/%s: %s", core.ErrRuleViolation, a.coll, a.doc, what)
			break
		}
	}
	for _, k := range slices.Sorted(mapsKeys(reads)) {
		res.reads = append(res.reads, reads[k])
	}
	return res, nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func dedupeFacts(fs []core.Fact) []core.Fact {
	var out []core.Fact
	seen := map[string]bool{}
	for _, f := range fs {
		b, _ := core.Marshal(f)
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, f)
		}
	}
	return out
}

// opError names the op of a change a refusal is about; plain says the
// same without the op index (a batch names its operation instead).
type opError struct {
	op    int
	err   error
	plain error
}

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// prejudge judges the rules of a change being written (not yet signed)
// and attaches its attestation: the facts each guarded action relied on.
func (w *writeTxn) prejudge(c *core.Change) (*ruleResult, error) {
	for i := range c.Ops {
		c.Ops[i].Reads = nil
	}
	if !w.r.rulesOn {
		return nil, nil
	}
	role, err := w.r.members.Authorize(c.Author, pendingID, precheckAncestry{w, c})
	if err != nil {
		return nil, err
	}
	res, err := w.judgeRules(c, role, w.newView(c, pendingID, core.ID{}))
	if err != nil {
		return nil, err
	}
	if res.err != nil {
		return nil, &opError{op: res.op, err: res.err, plain: res.plain}
	}
	for op, facts := range res.facts {
		c.Ops[op].Reads = facts
	}
	return &res, nil
}

// checkAccess requires role to be allowed to write every collection c
// writes, under the schema s in force at c.
func checkAccess(s *schema.Schema, c *core.Change, role string) error {
	if role == core.RoleAdmin {
		return nil
	}
	seen := map[string]bool{}
	for i := range c.Ops {
		op := &c.Ops[i]
		if !op.Kind.IsData() || seen[op.Coll] {
			continue
		}
		seen[op.Coll] = true
		if err := s.CheckWrite(role, op.Coll); err != nil {
			return &opError{op: i, err: fmt.Errorf("%w: op %d (%s %s/%s): %v", core.ErrUnauthorized, i, op.Kind, op.Coll, op.Doc, err),
				plain: fmt.Errorf("%w: %s/%s: %v", core.ErrUnauthorized, op.Coll, op.Doc, err)}
		}
	}
	return nil
}

// applyRules judges a stored data change (when its schema and
// authorization verdicts are clear), records what its rules read,
// settles its conflicts with concurrent changes, and gives it its
// verdict; the changes whose standing that changes get theirs.
func (w *writeTxn) applyRules(c *core.Change, id core.ID, m *meta, role string) error {
	r := w.r
	m.Ruled, m.RuleErr, m.Lost, m.Undone = false, "", "", ""
	if !r.rulesOn || m.SchemaErr != "" || m.AuthErr != "" {
		w.setVerdict(id, m)
		return nil
	}
	res := w.pre
	if res == nil || res.change != c {
		judged, err := w.judgeRules(c, role, w.newView(c, id, core.ID{}))
		if err != nil {
			return err
		}
		res = &judged
	}
	m.Ruled = res.ruled
	if res.err != nil {
		m.RuleErr = res.err.Error()
	}
	// Stored at once: the conflict checks below read it back, and the
	// meta cache may be cleared meanwhile.
	w.setValue(idKey(pMeta, id), m)
	for _, k := range res.reads {
		w.indexSet(readerPrefix(k.String()), id[:])
	}
	var flipped []core.ID
	if m.ok() {
		found, err := w.findEdges(c, id, m, res.reads, nil)
		if err != nil {
			return err
		}
		if found {
			if flipped, err = w.resettle(id); err != nil {
				return err
			}
		}
		if err := w.setUndone(c, id, m); err != nil {
			return err
		}
	}
	w.setVerdict(id, m)
	return w.recascade(flipped)
}

// indexValues records the values c's ops write to the fields rules look
// documents up by, whatever c's verdict: views filter the candidates.
func (w *writeTxn) indexValues(c *core.Change) {
	if len(w.r.indexed) == 0 {
		return
	}
	for i := range c.Ops {
		w.indexOp(&c.Ops[i], nil)
	}
}

// indexOp indexes one op (only field, when set).
func (w *writeTxn) indexOp(op *core.Op, only map[string]bool) {
	fields := w.r.indexed[op.Coll]
	if len(fields) == 0 {
		return
	}
	want := func(f string) bool { return fields[f] && (only == nil || only[f]) }
	switch op.Kind {
	case core.OpCreate:
		for f, v := range op.Fields {
			if want(f) && v != nil {
				w.indexValue(op.Coll, op.Doc, f, v)
			}
		}
	case core.OpSet:
		if want(op.Field) && op.Value != nil {
			w.indexValue(op.Coll, op.Doc, op.Field, op.Value)
		}
	}
}

func (w *writeTxn) indexValue(coll, doc, field string, v any) {
	b, err := core.Marshal(v)
	if err != nil {
		panic(storeError{err})
	}
	w.indexSet(valuePrefix(coll, field, b), []byte(doc))
	w.indexSet(docValuePrefix(coll, doc), appendValue([]byte(field+"\x00"), b))
}

// ensureIndexed indexes the fields the rules of s look documents up by,
// back-filling the values of changes already stored.
func (w *writeTxn) ensureIndexed(s *schema.Schema) error {
	r := w.r
	r.rulesOn = r.rulesOn || s.HasRules()
	for _, coll := range s.Collections {
		fresh := map[string]bool{}
		for _, name := range s.Indexed(coll.Name) {
			f, _ := coll.Field(name)
			for _, n := range f.Names() { // values written under a former name too
				if !r.indexed[coll.Name][n] {
					fresh[n] = true
				}
			}
		}
		if len(fresh) == 0 {
			continue
		}
		if r.indexed[coll.Name] == nil {
			r.indexed[coll.Name] = map[string]bool{}
		}
		for f := range fresh {
			r.indexed[coll.Name][f] = true
			w.txnSet([]byte(pIndexed+coll.Name+"\x00"+f), nil)
		}
		var ids []core.ID
		err := scanKeys(w.txn, []byte(pDocIndex+coll.Name+"\x00"), func(k []byte) error {
			var id core.ID
			copy(id[:], k[len(k)-len(id):])
			ids = append(ids, id)
			return nil
		})
		if err != nil {
			return storeError{err}
		}
		for _, id := range core.SortIDs(ids) {
			c, err := w.change(id)
			if err != nil {
				return err
			}
			for i := range c.Ops {
				if c.Ops[i].Coll == coll.Name {
					w.indexOp(&c.Ops[i], fresh)
				}
			}
		}
	}
	return nil
}

// change loads a stored change, keeping recent ones decoded.
func (w *writeTxn) change(id core.ID) (*core.Change, error) {
	if c, ok := w.decoded[id]; ok {
		return c, nil
	}
	c, err := w.r.loadChange(w.txn, id)
	if err != nil {
		return nil, storeError{err}
	}
	if w.decoded == nil {
		w.decoded = map[core.ID]*core.Change{}
	}
	if len(w.decoded) >= 4096 {
		clear(w.decoded)
	}
	w.decoded[id] = c
	return c, nil
}
