package replica

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// applyAdmin handles a change holding grant, revoke or schema ops:
// membership is re-evaluated over every admin change known, and every
// change whose verdict that flips is re-judged and its documents rebuilt.
func (w *writeTxn) applyAdmin(c *core.Change, id core.ID, m *meta) (bool, error) {
	r := w.r
	if m.SchemaErr == "" {
		for _, op := range c.Ops {
			if op.Kind == core.OpSchema {
				s, err := r.parseSchema(id, op.Schema)
				if err == nil {
					err = schema.CheckUpgrade(w.schemaAt(c.Parents), s)
				}
				if err != nil {
					m.SchemaErr = fmt.Sprintf("%v: schema upgrade: %v", core.ErrSchemaViolation, err) // as a local write is refused
					break
				}
				if err := w.ensureIndexed(s); err != nil {
					return false, err
				}
			}
		}
	}
	before := r.members
	r.adminLog = append(r.adminLog, core.MemberView(c, id))
	if err := r.evaluateMembership(w.txn); err != nil {
		return false, storeError{err}
	}
	m.AuthErr = ""
	if !r.members.Accepted(id) {
		m.AuthErr = r.members.Rejected[id]
	}
	if hasData(c) {
		if err := w.applyRules(c, id, m, core.RoleAdmin); err != nil {
			return false, err
		}
	} else {
		w.setVerdict(id, m)
	}
	if m.Valid {
		w.merge(c, id)
	}
	if err := w.rejudge(before, id); err != nil {
		return false, err
	}
	return m.Valid, nil
}

// rejudge re-checks the changes of every author whose grants or revocations
// changed, and every admin change, against the new membership.
func (w *writeTxn) rejudge(before *core.Membership, skip core.ID) error {
	r := w.r
	authors := map[core.PublicKey]bool{}
	for k := range keysOf(before.Grants, r.members.Grants) {
		if !slices.Equal(grantIDs(before.Grants[k]), grantIDs(r.members.Grants[k])) {
			authors[k] = true
		}
	}
	for k := range keysOf(before.Revokes, r.members.Revokes) {
		if !slices.Equal(revokeIDs(before.Revokes[k]), revokeIDs(r.members.Revokes[k])) {
			authors[k] = true
		}
	}
	var ids []core.ID
	for _, a := range slices.SortedFunc(maps.Keys(authors), func(x, y core.PublicKey) int { return slices.Compare(x[:], y[:]) }) {
		err := scanKeys(w.txn, authorKey(a, 0, nil), func(k []byte) error {
			var id core.ID
			copy(id[:], k[len(k)-len(id):])
			ids = append(ids, id)
			return nil
		})
		if err != nil {
			return storeError{err}
		}
	}
	for _, ac := range r.adminLog {
		ids = append(ids, ac.ID)
	}
	anc := w.anc()
	data := false // a data change of an author whose standing changed
	for _, id := range core.SortIDs(ids) {
		if id == skip {
			continue
		}
		m, err := r.meta(w.txn, id)
		if err != nil {
			return storeError{err}
		}
		var authErr error
		if m.Admin {
			if !r.members.Accepted(id) {
				authErr = errors.New(r.members.Rejected[id])
			}
		} else {
			data = true
			c, err := w.change(id)
			if err != nil {
				return err
			}
			_, authErr = w.authorizeData(c, id, anc)
		}
		was := m.Valid
		nm := *m
		nm.AuthErr = errText(authErr)
		w.setVerdict(id, &nm)
		r.cacheMeta(id, &nm)
		if nm.Valid == was {
			continue
		}
		data = data || nm.Admin
		if err := w.rebuildChange(id, "change verdict changed by membership", &nm); err != nil {
			return err
		}
	}
	// Rules read who is ok and what role each author holds, and the
	// winner rule reads seniority: re-derive what they decided.
	switch {
	case r.rulesOn && data:
		return w.rejudgeRules()
	case len(r.edges) > 0:
		flipped, err := w.resettle(core.ID{})
		if err != nil {
			return err
		}
		return w.recascade(flipped)
	}
	return nil
}

func hasData(c *core.Change) bool {
	return slices.ContainsFunc(c.Ops, func(o core.Op) bool { return o.Kind.IsData() })
}

// rebuild recomputes a document from every valid change that touched it.
func (w *writeTxn) rebuild(coll, doc string, cause core.ID) error {
	d := w.doc(coll, doc)
	st, err := w.r.replay(w.txn, coll, doc, nil)
	if err != nil {
		return storeError{err}
	}
	d.state = st
	if !slices.Contains(d.changes, cause) {
		d.changes = append(d.changes, cause)
	}
	return nil
}

func keysOf[V any](a, b map[core.PublicKey]V) map[core.PublicKey]bool {
	out := map[core.PublicKey]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func grantIDs(gs []core.Grant) []core.ID {
	out := make([]core.ID, len(gs))
	for i, g := range gs {
		out[i] = g.Change
	}
	return core.SortIDs(out)
}

func revokeIDs(rs []core.Revocation) []core.ID {
	out := make([]core.ID, len(rs))
	for i, r := range rs {
		out[i] = r.Change
	}
	return core.SortIDs(out)
}
