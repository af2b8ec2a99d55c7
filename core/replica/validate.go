package replica

import (
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// schemaAt is the schema in force for a change with these parents: the
// newest accepted upgrade in their causal past, else the genesis schema.
func (w *writeTxn) schemaAt(parents []core.ID) *schema.Schema {
	r := w.r
	s := r.schemas[r.genesisID]
	for _, c := range r.members.Schemas { // (height, ID) order: last match wins
		if w.inPast(c.ID, parents) {
			if up, ok := r.schemas[c.ID]; ok {
				s = up
			}
		}
	}
	return s
}

// checkOps checks every data op against the schema in force at the change
// and references against the change's causal past. The verdict depends on
// the change and its past only.
func (w *writeTxn) checkOps(c *core.Change, id core.ID) error {
	s := w.schemaAt(c.Parents)
	created := map[string]bool{} // documents created by earlier ops of c
	for i := range c.Ops {
		op := &c.Ops[i]
		if !op.Kind.IsData() {
			continue
		}
		if err := w.checkOp(s, op, c.Parents, created); err != nil {
			return fmt.Errorf("%w: op %d (%s %s/%s): %v", core.ErrSchemaViolation, i, op.Kind, op.Coll, op.Doc, err)
		}
		if op.Kind == core.OpCreate {
			created[op.Coll+"\x00"+op.Doc] = true
		}
	}
	return nil
}

func (w *writeTxn) checkOp(s *schema.Schema, op *core.Op, parents []core.ID, created map[string]bool) error {
	coll, ok := s.Collection(op.Coll)
	if !ok {
		return fmt.Errorf("unknown collection %q", op.Coll)
	}
	field := func(name string) (*schema.Field, error) {
		f, ok := coll.Field(name)
		if !ok {
			if g, renamed := coll.FieldByAnyName(name); renamed {
				return nil, fmt.Errorf("unknown field %s.%s (renamed to %s)", op.Coll, name, g.Name)
			}
			return nil, fmt.Errorf("unknown field %s.%s", op.Coll, name)
		}
		return f, nil
	}
	checkValue := func(f *schema.Field, v any) error {
		if err := f.Check(v); err != nil {
			return err
		}
		return w.checkRefs(f, v, parents, created)
	}
	switch op.Kind {
	case core.OpCreate:
		for name, v := range op.Fields {
			f, err := field(name)
			if err != nil {
				return err
			}
			if err := checkValue(f, v); err != nil {
				return err
			}
		}
		return coll.CheckRequired(op.Fields)
	case core.OpSet:
		f, err := field(op.Field)
		if err != nil {
			return err
		}
		if f.Kind == schema.Counter || f.Kind == schema.Set {
			return fmt.Errorf("%s.%s is a %s: use %s", op.Coll, op.Field, f.Kind, map[schema.Kind]string{schema.Counter: "increment", schema.Set: "add/remove"}[f.Kind])
		}
		return checkValue(f, op.Value)
	case core.OpIncrement:
		f, err := field(op.Field)
		if err != nil {
			return err
		}
		if f.Kind != schema.Counter {
			return fmt.Errorf("%s.%s is not a counter", op.Coll, op.Field)
		}
	case core.OpAdd, core.OpRemove:
		f, err := field(op.Field)
		if err != nil {
			return err
		}
		if f.Kind != schema.Set {
			return fmt.Errorf("%s.%s is not a set", op.Coll, op.Field)
		}
		if err := checkValue(f, []any{op.Value}); err != nil {
			return err
		}
	}
	return nil
}

// checkRefs requires every referenced document to have been created by a
// change in the causal past, or by an earlier op of the same change.
func (w *writeTxn) checkRefs(f *schema.Field, v any, parents []core.ID, created map[string]bool) error {
	if f.Ref == "" || v == nil {
		return nil
	}
	var ids []string
	switch x := v.(type) {
	case string:
		ids = []string{x}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				ids = append(ids, s)
			}
		}
	}
	for _, doc := range ids {
		found := created[f.Ref+"\x00"+doc]
		ids, err := w.creators(f.Ref, doc)
		if err != nil {
			return err
		}
		for _, creator := range ids {
			if !found && w.inPast(creator, parents) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %s %q does not exist in the change's causal past", f.Name, f.Ref, doc)
		}
	}
	return nil
}

// build makes the next change of author on top of the current heads.
func (w *writeTxn) build(author core.PublicKey, ops []core.Op, nowMillis uint64) (*core.Change, error) {
	r := w.r
	seq, prev, err := w.lastOf(author)
	if err != nil {
		return nil, err
	}
	heads := r.sortedHeads(w.txn)
	parents := heads
	if len(parents) > core.MaxParents {
		parents = slices.Clone(heads[:core.MaxParents])
		if seq > 0 && !w.inPast(prev, parents) {
			for _, h := range heads[core.MaxParents:] {
				if h == prev || w.anc().IsAncestor(prev, h) {
					parents[len(parents)-1] = h
					break
				}
			}
		}
	}
	parents = core.SortIDs(slices.Clone(parents))
	var maxH uint64
	var maxC core.HLC
	for _, p := range parents {
		m, err := r.meta(w.txn, p)
		if err != nil {
			return nil, storeError{err}
		}
		maxH = max(maxH, m.Height)
		if m.HLC.Compare(maxC) > 0 {
			maxC = m.HLC
		}
	}
	return &core.Change{
		Version: core.ChangeVersion, Space: r.genesisID, Author: author,
		Seq: seq + 1, Prev: prev, Parents: parents, Height: maxH + 1,
		HLC: core.NextHLC(maxC, nowMillis, r.maxAhead), Ops: slices.Clone(ops),
	}, nil
}

// lastOf returns the author's highest sequence number and that change.
func (w *writeTxn) lastOf(author core.PublicKey) (uint64, core.ID, error) {
	it := w.txn.NewIterator(badger.IteratorOptions{Prefix: authorKey(author, 0, nil), Reverse: true})
	defer it.Close()
	seek := append(authorKey(author, 0, nil), 0xff)
	for it.Seek(seek); it.Valid(); it.Next() {
		k := it.Item().Key()
		var id core.ID
		copy(id[:], k[len(k)-len(id):])
		m, err := w.r.meta(w.txn, id)
		if err != nil {
			return 0, core.ID{}, storeError{err}
		}
		return m.Seq, id, nil
	}
	return 0, core.ID{}, nil
}

// precheck refuses a local write that would be stored without effect.
func (w *writeTxn) precheck(c *core.Change, id core.ID) error {
	for i := range c.Ops {
		if c.Ops[i].Kind == core.OpGenesis {
			return fmt.Errorf("%w: genesis op in a write", core.ErrInvalidChange)
		}
	}
	if !w.planned { // a planned batch had its ops checked one by one
		if err := w.checkOps(c, id); err != nil {
			return err
		}
	}
	for i := range c.Ops {
		if op := &c.Ops[i]; op.Kind == core.OpSchema {
			next, err := schema.Parse(op.Schema)
			if err == nil {
				err = schema.CheckUpgrade(w.schemaAt(c.Parents), next)
			}
			if err != nil {
				return fmt.Errorf("%w: schema upgrade: %v", core.ErrSchemaViolation, err)
			}
		}
	}
	// A role granted or offered must be one the schema declares (a
	// local check: membership accepts any role name, and a role the
	// schema does not declare writes nothing).
	for i := range c.Ops {
		op := &c.Ops[i]
		if (op.Kind == core.OpGrant && op.Role != core.RoleInvite) || op.Kind == core.OpInvite {
			if err := w.schemaAt(c.Parents).CheckGrant(op.Role, op.Kind == core.OpInvite); err != nil {
				return fmt.Errorf("%w: op %d (%s): %v", core.ErrSchemaViolation, i, op.Kind, err)
			}
		}
	}
	if core.IsAdminChange(c) {
		role, err := w.r.members.Authorize(c.Author, id, precheckAncestry{w, c})
		if err != nil {
			return err
		}
		if role != core.RoleAdmin {
			return fmt.Errorf("%w: role %q may not %s", core.ErrUnauthorized, role, c.Ops[0].Kind)
		}
		return nil
	}
	_, err := w.authorizeData(c, id, precheckAncestry{w, c})
	return err
}

// precheckAncestry answers ancestry for a change not stored yet.
type precheckAncestry struct {
	w *writeTxn
	c *core.Change
}

func (p precheckAncestry) IsAncestor(a, b core.ID) bool {
	if _, err := p.w.r.meta(p.w.txn, b); err == nil {
		return p.w.anc().IsAncestor(a, b)
	}
	return p.w.inPast(a, p.c.Parents)
}
