package replica

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
)

// Pseudo-transactions (docs/RULES.md). Two concurrent changes, each ok at
// its own view, conflict when the rules of one of them are false at its
// view with the other added (and the conflicts that brings settled). The
// conflicts form a graph whose edges are fixed once both ends are known;
// the winner rule (settle) picks who stands: the most senior first, and a
// change stands unless a neighbour that stands is more senior.

// edge is a conflict between two changes, a < b.
type edge struct{ a, b core.ID }

func newEdge(a, b core.ID) edge {
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return edge{a, b}
}

func (r *Replica) loadEdges(txn *badger.Txn) error {
	r.edges = map[edge]string{}
	return scan(txn, []byte(pEdge), func(k, v []byte) error {
		var e edge
		copy(e.a[:], k[len(pEdge):])
		copy(e.b[:], k[len(pEdge)+len(e.a):])
		r.edges[e] = string(v)
		return nil
	})
}

func (w *writeTxn) addEdge(a, b core.ID, why string) {
	e := newEdge(a, b)
	if _, ok := w.r.edges[e]; ok {
		return
	}
	w.r.edges[e] = why
	w.txnSet(edgeKey(a, b), []byte(why))
}

// rank orders the changes in conflict for the winner rule: the author's
// seniority (core.Seniority), then, for one author's own changes (only
// an equivocating author has concurrent ones), its sequence, then the ID.
type rank struct {
	known bool
	sen   core.Seniority
	seq   uint64
	id    core.ID
}

func (a rank) compare(b rank) int {
	switch {
	case a.known != b.known:
		if a.known {
			return -1
		}
		return 1
	}
	if c := a.sen.Compare(b.sen); c != 0 {
		return c
	}
	if a.seq != b.seq {
		if a.seq < b.seq {
			return -1
		}
		return 1
	}
	return a.id.Compare(b.id)
}

func (r *Replica) rankOf(txn *badger.Txn, id core.ID) rank {
	m, err := r.meta(txn, id)
	if err != nil {
		return rank{id: id}
	}
	sen, ok := r.members.SeniorityOf(m.Author)
	return rank{known: ok, sen: sen, seq: m.Seq, id: id}
}

// settle applies the winner rule to the conflicts between changes of a
// set (in): taking the changes in conflict from most to least senior,
// each stands unless a neighbour already standing beats it. It returns
// every loser with the most senior neighbour that beat it.
func (r *Replica) settle(txn *badger.Txn, in func(core.ID) bool) map[core.ID]core.ID {
	if len(r.edges) == 0 {
		return nil
	}
	nbrs := map[core.ID][]core.ID{}
	for e := range r.edges {
		if in(e.a) && in(e.b) {
			nbrs[e.a] = append(nbrs[e.a], e.b)
			nbrs[e.b] = append(nbrs[e.b], e.a)
		}
	}
	if len(nbrs) == 0 {
		return nil
	}
	ranks := map[core.ID]rank{}
	nodes := make([]core.ID, 0, len(nbrs))
	for n := range nbrs {
		ranks[n] = r.rankOf(txn, n)
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b core.ID) int { return ranks[a].compare(ranks[b]) })
	standing := map[core.ID]bool{}
	losers := map[core.ID]core.ID{}
	for _, n := range nodes {
		var winner *core.ID
		for _, o := range nbrs[n] {
			if standing[o] && (winner == nil || ranks[o].compare(ranks[*winner]) < 0) {
				winner = &o
			}
		}
		if winner == nil {
			standing[n] = true
		} else {
			losers[n] = *winner
		}
	}
	return losers
}

func (w *writeTxn) settle(in func(core.ID) bool) map[core.ID]core.ID {
	return w.r.settle(w.txn, in)
}

// lostReason says why loser has no effect.
func (w *writeTxn) lostReason(loser, winner core.ID) string {
	r := w.r
	why := r.edges[newEdge(loser, winner)]
	ml, _ := r.meta(w.txn, loser)
	mw, _ := r.meta(w.txn, winner)
	by := "whose author is more senior (granted earlier)"
	switch {
	case ml != nil && mw != nil && ml.Author == mw.Author:
		by = "by the same author with a lower sequence number"
	case mw != nil:
		if s, ok := r.members.SeniorityOf(mw.Author); ok && s.Founder {
			by = "whose author is a founder"
		}
	}
	return fmt.Sprintf("%v: cannot stand with concurrent change %s, %s: %s", core.ErrRolledBack, winner.Short(), by, why)
}

// resettle applies the winner rule to every conflict known and gives the
// changes whose standing changed their new verdict, rebuilding their
// documents. fresh is the change being applied: only its meta is
// updated (apply sets its verdict and merges it). It returns the changes
// whose verdict changed.
func (w *writeTxn) resettle(fresh core.ID) ([]core.ID, error) {
	r := w.r
	losers := w.settle(func(core.ID) bool { return true })
	nodes := map[core.ID]bool{}
	for e := range r.edges {
		nodes[e.a], nodes[e.b] = true, true
	}
	var flipped []core.ID
	for _, id := range core.SortIDs(slices.Collect(mapKeysID(nodes))) {
		m, err := r.meta(w.txn, id)
		if err != nil {
			return nil, storeError{err}
		}
		lost := ""
		if win, ok := losers[id]; ok {
			lost = w.lostReason(id, win)
		}
		if m.Lost == lost {
			continue
		}
		m.Lost = lost
		if id == fresh {
			continue
		}
		was := m.Valid
		w.setVerdict(id, m)
		if m.Valid != was {
			flipped = append(flipped, id)
			if err := w.rebuildChange(id, "change verdict changed by a conflict", m); err != nil {
				return nil, err
			}
		}
	}
	return flipped, nil
}

// setUndone decides whether stored change id (ok, with its conflicts
// settled) is undone: its rules are false at its past as this replica's
// verdicts leave it, where changes rolled back are undone. Only a past
// holding a change in conflict or undone can differ from its view.
func (w *writeTxn) setUndone(c *core.Change, id core.ID, m *meta) error {
	r := w.r
	m.Undone = ""
	defer func() {
		if m.Undone != "" {
			r.undone[id] = true
		} else {
			delete(r.undone, id)
		}
	}()
	if !m.Ruled || !m.ok() || m.Lost != "" || !w.pastTouched(id) {
		return nil
	}
	role := core.RoleAdmin
	if !m.Admin {
		var err error
		if role, err = r.members.Authorize(c.Author, id, w.anc()); err != nil {
			return nil
		}
	}
	res, err := w.judgeRules(c, role, w.finalView(c, id))
	if err != nil {
		return err
	}
	if res.err != nil {
		m.Undone = fmt.Sprintf("%v: once the changes rolled back in its causal past are undone, %s", core.ErrRolledBack,
			strings.TrimPrefix(res.err.Error(), core.ErrRuleViolation.Error()+": "))
	}
	return nil
}

// pastTouched reports whether a change in conflict, or undone, is in the
// causal past of id.
func (w *writeTxn) pastTouched(id core.ID) bool {
	anc := w.anc()
	for e := range w.r.edges {
		if anc.IsAncestor(e.a, id) || anc.IsAncestor(e.b, id) {
			return true
		}
	}
	for u := range w.r.undone {
		if anc.IsAncestor(u, id) {
			return true
		}
	}
	return false
}

// recascade re-decides, in (height, ID) order, whether the later changes
// whose rules read what the flipped changes wrote are undone, following
// every verdict that changes.
func (w *writeTxn) recascade(flipped []core.ID) error {
	r := w.r
	anc := w.anc()
	queued := map[core.ID]bool{}
	var queue []core.ID
	follow := func(f core.ID) error {
		c, err := w.change(f)
		if err != nil {
			return err
		}
		keys, err := w.writeKeys(c)
		if err != nil {
			return err
		}
		for _, k := range keys {
			err := w.readers(k, func(y core.ID) {
				if !queued[y] && anc.IsAncestor(f, y) {
					queued[y] = true
					queue = append(queue, y)
				}
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range flipped {
		if err := follow(f); err != nil {
			return err
		}
	}
	for len(queue) > 0 {
		slices.SortFunc(queue, w.byOrder)
		x := queue[0]
		queue = queue[1:]
		m, err := r.meta(w.txn, x)
		if err != nil {
			return storeError{err}
		}
		c, err := w.change(x)
		if err != nil {
			return err
		}
		was, wasUndone := m.Valid, m.Undone
		if err := w.setUndone(c, x, m); err != nil {
			return err
		}
		if m.Undone == wasUndone {
			continue
		}
		w.setVerdict(x, m)
		if m.Valid != was {
			if err := w.rebuildChange(x, "change verdict changed by a rollback in its past", m); err != nil {
				return err
			}
			if err := follow(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// byOrder orders stored changes by (height, ID), a causal order.
func (w *writeTxn) byOrder(a, b core.ID) int {
	ma, _ := w.r.meta(w.txn, a)
	mb, _ := w.r.meta(w.txn, b)
	if ma != nil && mb != nil && ma.Height != mb.Height {
		if ma.Height < mb.Height {
			return -1
		}
		return 1
	}
	return a.Compare(b)
}

func mapKeysID(m map[core.ID]bool) func(func(core.ID) bool) {
	return func(yield func(core.ID) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// rebuildChange recomputes every document change id wrote.
func (w *writeTxn) rebuildChange(id core.ID, why string, m *meta) error {
	c, err := w.change(id)
	if err != nil {
		return err
	}
	w.r.log.Info(why, "change", id.String(), "valid", m.Valid, "reason", m.Reason)
	for _, op := range c.Ops {
		if op.Kind.IsData() {
			if err := w.rebuild(op.Coll, op.Doc, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasConcurrent reports whether any stored change is concurrent with id,
// the newest stored: some head other than id is not in its past.
func (w *writeTxn) hasConcurrent(id core.ID) bool {
	anc := w.anc()
	for h := range w.r.heads {
		if h != id && !anc.IsAncestor(h, id) {
			return true
		}
	}
	return false
}

// findEdges finds the conflicts of change id (stored, ok) with the
// concurrent changes that may have one: those that wrote what its rules
// read, those whose rules read what it writes, those in conflict with a
// change of its past, and, for every conflict found, the later changes
// whose rules read what the other side (or its neighbours) wrote. When
// earlier is set only changes it accepts are considered (a re-judgement
// in order). It reports whether it found any.
func (w *writeTxn) findEdges(c *core.Change, id core.ID, m *meta, reads []readKey, earlier func(core.ID) bool) (bool, error) {
	r := w.r
	anc := w.anc()
	if earlier == nil && !w.hasConcurrent(id) {
		return false, nil
	}
	concurrent := func(x core.ID) bool {
		return x != id && (earlier == nil || earlier(x)) && !anc.IsAncestor(x, id) && !anc.IsAncestor(id, x)
	}
	cands := map[core.ID]bool{}
	var queue []core.ID
	add := func(x core.ID) {
		if !cands[x] && concurrent(x) {
			cands[x] = true
			queue = append(queue, x)
		}
	}
	for _, k := range reads {
		if err := w.writers(k, add); err != nil {
			return false, err
		}
	}
	keys, err := w.writeKeys(c)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if err := w.readers(k, add); err != nil {
			return false, err
		}
	}
	for e := range r.edges {
		if anc.IsAncestor(e.a, id) {
			add(e.b)
		}
		if anc.IsAncestor(e.b, id) {
			add(e.a)
		}
	}
	found := false
	for len(queue) > 0 {
		// In (height, ID) order: a conflict's check reads the conflicts of
		// id with the other side's past, found before it.
		slices.SortFunc(queue, w.byOrder)
		x := queue[0]
		queue = queue[1:]
		mx, err := r.meta(w.txn, x)
		if err != nil {
			return false, storeError{err}
		}
		if !mx.ok() {
			continue
		}
		why, err := w.conflict(id, x)
		if err != nil {
			return false, err
		}
		if why == "" {
			continue
		}
		w.addEdge(id, x, why)
		found = true
		// A later change whose past holds x may now see x displaced.
		near := []core.ID{x}
		for e := range r.edges {
			if e.a == x && e.b != id {
				near = append(near, e.b)
			} else if e.b == x && e.a != id {
				near = append(near, e.a)
			}
		}
		for _, n := range near {
			nc, err := w.change(n)
			if err != nil {
				return false, err
			}
			nkeys, err := w.writeKeys(nc)
			if err != nil {
				return false, err
			}
			for _, k := range nkeys {
				err := w.readers(k, func(y core.ID) {
					if anc.IsAncestor(x, y) {
						add(y)
					}
				})
				if err != nil {
					return false, err
				}
			}
		}
	}
	return found, nil
}

// conflict decides whether changes a and b (concurrent, both ok) cannot
// both stand: the rules of one of them are false at its view with the
// other added. It returns why ("" when they can), the same whichever was
// stored first.
func (w *writeTxn) conflict(a, b core.ID) (string, error) {
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	var whys []string
	for _, p := range [][2]core.ID{{a, b}, {b, a}} {
		m, err := w.r.meta(w.txn, p[0])
		if err != nil {
			return "", storeError{err}
		}
		if !m.Ruled {
			continue
		}
		c, err := w.change(p[0])
		if err != nil {
			return "", err
		}
		role := core.RoleAdmin
		if !m.Admin {
			if role, err = w.r.members.Authorize(c.Author, p[0], w.anc()); err != nil {
				continue // not ok: never in conflict
			}
		}
		res, err := w.judgeRules(c, role, w.newView(c, p[0], p[1]))
		if err != nil {
			return "", err
		}
		if res.err != nil {
			msg := strings.TrimPrefix(res.err.Error(), core.ErrRuleViolation.Error()+": ")
			whys = append(whys, fmt.Sprintf("%s breaks %s %s", p[1].Short(), p[0].Short(), msg))
		}
	}
	return strings.Join(whys, "; "), nil
}

// writers calls fn with every change that wrote what k names.
func (w *writeTxn) writers(k readKey, fn func(core.ID)) error {
	docs := []string{k.doc}
	if k.field != "" {
		docs = nil
		for _, name := range fieldNames(w.r.current, k.coll, k.field) {
			err := w.scanIndex(valuePrefix(k.coll, name, k.val), func(sfx []byte) error {
				docs = append(docs, string(sfx))
				return nil
			})
			if err != nil {
				return storeError{err}
			}
		}
	}
	for _, d := range docs {
		err := w.scanIndex(docIndexPrefix(k.coll, d), func(key []byte) error {
			var id core.ID
			copy(id[:], key[len(key)-len(id):])
			fn(id)
			return nil
		})
		if err != nil {
			return storeError{err}
		}
	}
	return nil
}

// readers calls fn with every change whose rules read k.
func (w *writeTxn) readers(k readKey, fn func(core.ID)) error {
	err := w.scanIndex(readerPrefix(k.String()), func(key []byte) error {
		var id core.ID
		copy(id[:], key[len(key)-len(id):])
		fn(id)
		return nil
	})
	if err != nil {
		return storeError{err}
	}
	return nil
}

// writeKeys is what a change's writes can change for a rule: each
// document it writes, and every indexed value those documents ever held.
func (w *writeTxn) writeKeys(c *core.Change) ([]readKey, error) {
	seen := map[string]bool{}
	var out []readKey
	for i := range c.Ops {
		op := &c.Ops[i]
		if !op.Kind.IsData() || seen[docName(op.Coll, op.Doc)] {
			continue
		}
		seen[docName(op.Coll, op.Doc)] = true
		out = append(out, readKey{coll: op.Coll, doc: op.Doc})
		if len(w.r.indexed[op.Coll]) == 0 {
			continue
		}
		err := w.scanIndex(docValuePrefix(op.Coll, op.Doc), func(rest []byte) error {
			f, v, ok := strings.Cut(string(rest), "\x00")
			if ok && len(v) >= 4 {
				out = append(out, readKey{coll: op.Coll, field: f, val: []byte(v[4:])})
			}
			return nil
		})
		if err != nil {
			return nil, storeError{err}
		}
	}
	return out, nil
}

// rejudgeRules judges every data change again, in (height, ID) order:
// rules at each view, the conflicts, the winner rule. Membership decides
// who is ok and what role an author holds, so when it changes a verdict
// or a role this recomputes everything the rules derive; the result is
// what a replica receiving the same changes in any order computes.
func (w *writeTxn) rejudgeRules() error {
	r := w.r
	var order []core.ID
	err := scanKeys(w.txn, []byte(pHeight), func(k []byte) error {
		var id core.ID
		copy(id[:], k[len(k)-len(id):])
		order = append(order, id)
		return nil
	})
	if err != nil {
		return storeError{err}
	}
	pos := make(map[core.ID]int, len(order))
	for i, id := range order {
		pos[id] = i
	}
	for e := range r.edges {
		w.txnDelete(edgeKey(e.a, e.b))
	}
	r.edges = map[edge]string{}
	anc := w.anc()
	heads := map[core.ID]bool{} // of the changes judged so far
	var data []core.ID
	was := map[core.ID]bool{}
	for i, id := range order {
		m, err := r.meta(w.txn, id)
		if err != nil {
			return storeError{err}
		}
		c, err := w.change(id)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(c.Ops, func(o core.Op) bool { return o.Kind.IsData() }) {
			data = append(data, id)
			was[id] = m.Valid
			ruled, ruleErr := m.Ruled, m.RuleErr
			m.Ruled, m.RuleErr = false, ""
			if m.SchemaErr == "" && m.AuthErr == "" && r.rulesOn {
				if err := w.rejudgeOne(c, id, m, i, pos, heads, anc); err != nil {
					return err
				}
			}
			if m.Ruled != ruled || m.RuleErr != ruleErr {
				// Stored now (Valid is not, yet): later changes read it,
				// and the meta cache may be cleared meanwhile.
				w.setValue(idKey(pMeta, id), m)
			}
		}
		for _, p := range c.Parents {
			delete(heads, p)
		}
		heads[id] = true
	}
	// The winner rule, then, in order, what is undone by the rollbacks in
	// each change's past.
	losers := w.settle(func(core.ID) bool { return true })
	clear(r.undone)
	for _, id := range data {
		m, err := r.meta(w.txn, id)
		if err != nil {
			return storeError{err}
		}
		m.Lost = ""
		if win, ok := losers[id]; ok {
			m.Lost = w.lostReason(id, win)
		}
		c, err := w.change(id)
		if err != nil {
			return err
		}
		if err := w.setUndone(c, id, m); err != nil {
			return err
		}
		w.setVerdict(id, m)
		if m.Valid != was[id] {
			if err := w.rebuildChange(id, "change verdict changed by its rules", m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *writeTxn) rejudgeOne(c *core.Change, id core.ID, m *meta, i int, pos map[core.ID]int, heads map[core.ID]bool, anc core.Ancestry) error {
	role := core.RoleAdmin
	if !m.Admin {
		var err error
		if role, err = w.r.members.Authorize(c.Author, id, anc); err != nil {
			return nil
		}
	}
	res, err := w.judgeRules(c, role, w.newView(c, id, core.ID{}))
	if err != nil {
		return err
	}
	m.Ruled = res.ruled
	if res.err != nil {
		m.RuleErr = res.err.Error()
	}
	w.setValue(idKey(pMeta, id), m) // the conflict checks below read it back
	for _, k := range res.reads {
		if _, err := w.txn.Get(readerKey(k.String(), id)); errors.Is(err, badger.ErrKeyNotFound) {
			w.indexSet(readerPrefix(k.String()), id[:])
		} else if err != nil {
			return storeError{err}
		}
	}
	if !m.ok() {
		return nil
	}
	concurrent := false
	for h := range heads {
		if !anc.IsAncestor(h, id) {
			concurrent = true
			break
		}
	}
	if !concurrent {
		return nil
	}
	_, err = w.findEdges(c, id, m, res.reads, func(x core.ID) bool { p, ok := pos[x]; return ok && p < i })
	return err
}

// Rollback is a change that passed its rules at its causal past but lost
// a conflict with a concurrent change: it is kept, with no effect.
type Rollback struct {
	Change    core.ID  `json:"change"`
	Author    string   `json:"author"`
	HLC       string   `json:"hlc"`
	Documents []string `json:"documents"` // collection/id it wrote
	// Winner is the concurrent change it lost to; zero for a change
	// undone because changes its rules relied on were rolled back.
	Winner       core.ID  `json:"winner,omitzero"`
	WinnerAuthor string   `json:"winner_author,omitempty"`
	WinnerDocs   []string `json:"winner_documents,omitempty"`
	Reason       string   `json:"reason"`
}

// Rollbacks lists the changes rolled back: those that lost a conflict by
// the winner rule, each with the change it lost to, and those undone
// because what their rules relied on was rolled back; by (height, ID).
func (r *Replica) Rollbacks() ([]Rollback, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Rollback{}
	if r.genesis == nil {
		return out, nil
	}
	err := r.db.View(func(txn *badger.Txn) error {
		losers := r.settle(txn, func(core.ID) bool { return true })
		set := map[core.ID]bool{}
		for id := range losers {
			set[id] = true
		}
		for id := range r.undone {
			set[id] = true
		}
		ids := slices.Collect(mapKeysID(set))
		slices.SortFunc(ids, func(a, b core.ID) int {
			ma, _ := r.meta(txn, a)
			mb, _ := r.meta(txn, b)
			if ma != nil && mb != nil && ma.Height != mb.Height {
				if ma.Height < mb.Height {
					return -1
				}
				return 1
			}
			return a.Compare(b)
		})
		docsOf := func(id core.ID) ([]string, error) {
			c, err := r.loadChange(txn, id)
			if err != nil {
				return nil, err
			}
			var docs []string
			for _, op := range c.Ops {
				if d := op.Coll + "/" + op.Doc; op.Kind.IsData() && !slices.Contains(docs, d) {
					docs = append(docs, d)
				}
			}
			return docs, nil
		}
		for _, id := range ids {
			m, err := r.meta(txn, id)
			if err != nil {
				return err
			}
			if (m.Lost == "" && m.Undone == "") || !m.ok() {
				continue
			}
			rb := Rollback{Change: id, Author: m.Author.String(), HLC: m.HLC.String(), Reason: m.Reason}
			if rb.Documents, err = docsOf(id); err != nil {
				return err
			}
			if win, ok := losers[id]; ok && m.Lost != "" {
				mw, err := r.meta(txn, win)
				if err != nil {
					return err
				}
				rb.Winner, rb.WinnerAuthor = win, mw.Author.String()
				if rb.WinnerDocs, err = docsOf(win); err != nil {
					return err
				}
			}
			out = append(out, rb)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rollbacks: %w", err)
	}
	return out, nil
}
