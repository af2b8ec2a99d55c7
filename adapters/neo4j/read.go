package neo4j

import (
	"context"
	"fmt"
	"slices"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/tributary-sync/tributary/core/schema"
)

// Document is a document as the graph holds it.
type Document struct {
	ID     string
	Fields map[string]any // canonical values; absent fields are missing
	LSN    uint64         // provenance: the effect that wrote it
	Change string
	Author string
	HLC    string
}

// Documents reads the documents of collection c: the nodes of its label
// (as the mapping stored in the graph says) that have an _lsn (stubs, the
// nodes standing for referenced documents that do not exist, are left
// out). A collection not mapped yet has none. Values are converted back
// to canonical values under their field names; a reference field is read
// from the node's relationships (in their index order for lists and
// sets) and checked against the property holding the same IDs: a graph
// where the two differ is reported as an error.
func (s *Sink) Documents(ctx context.Context, c *schema.Collection) (map[string]Document, error) {
	m, err := s.lookup(ctx, c.Name)
	if err != nil {
		return nil, fmt.Errorf("neo4j sink %s: read the mapping of %s: %w", s.cfg.Name, c.Name, err)
	}
	if m == nil {
		return map[string]Document{}, nil
	}
	sess := s.session(ctx, neo4j.AccessModeRead)
	defer sess.Close(context.WithoutCancel(ctx))
	q := "MATCH (n:" + quote(m.label) + ") WHERE n." + quote(PropLSN) + " IS NOT NULL\n" +
		"RETURN properties(n) AS p, [(n)-[r]->(m) | [type(r), r." + quote(PropIndex) + ", m.id]] AS refs"
	v, err := sess.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		res, err := tx.Run(ctx, q, nil)
		if err != nil {
			return nil, err
		}
		return res.Collect(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("neo4j sink %s: read %s: %w", s.cfg.Name, c.Name, err)
	}
	recs := v.([]*neo4j.Record)
	// Reference fields by relationship type (the mapping gives each its
	// own; a graph written before the mapping may have two fields share
	// one, which then cannot be read back from the relationships).
	// A field mapped under a former name (a target laid out before a
	// rename, read with the newer schema) reads under its name.
	refFields := map[string][]*schema.Field{}
	for _, f := range c.Fields {
		for _, n := range f.Names() {
			if t, ok := m.types[n]; ok && isRef(f) {
				refFields[t] = append(refFields[t], f)
				break
			}
		}
	}
	fieldOf := map[string]string{} // property -> field
	for f, p := range m.props {
		if cf, ok := c.FieldByAnyName(f); ok {
			f = cf.Name
		}
		fieldOf[p] = f
	}
	out := make(map[string]Document, len(recs))
	for _, rec := range recs {
		props := rec.Values[0].(map[string]any)
		named := make(map[string]any, len(props))
		for p, v := range props {
			if f, ok := fieldOf[p]; ok {
				p = f
			}
			named[p] = v
		}
		d, err := document(c, refFields, named, rec.Values[1].([]any))
		if err != nil {
			return nil, fmt.Errorf("neo4j sink %s: read %s: %w", s.cfg.Name, c.Name, err)
		}
		out[d.ID] = d
	}
	return out, nil
}

type edge struct {
	index int64
	to    string
}

func document(c *schema.Collection, refFields map[string][]*schema.Field, props map[string]any, refs []any) (Document, error) {
	var d Document
	d.ID, _ = props[PropID].(string)
	lsn, _ := props[PropLSN].(int64)
	d.LSN = uint64(lsn)
	d.Change, _ = props[PropChange].(string)
	d.Author, _ = props[PropAuthor].(string)
	d.HLC, _ = props[PropHLC].(string)
	d.Fields = map[string]any{}
	for name, v := range props {
		switch name {
		case PropID, PropLSN, PropChange, PropAuthor, PropHLC:
			continue
		}
		f, ok := c.Field(name)
		if !ok {
			d.Fields[name] = generic(v)
			continue
		}
		x, err := canonical(f, v)
		if err != nil {
			return d, fmt.Errorf("%s/%s.%v", c.Name, d.ID, err)
		}
		d.Fields[name] = x
	}
	edges := map[string][]edge{}
	for _, r := range refs {
		t := r.([]any)
		typ, _ := t[0].(string)
		idx, _ := t[1].(int64)
		to, _ := t[2].(string)
		edges[typ] = append(edges[typ], edge{idx, to})
	}
	for typ, es := range edges {
		fs := refFields[typ]
		if len(fs) == 0 {
			return d, fmt.Errorf("%s/%s: relationship %s of no reference field", c.Name, d.ID, typ)
		}
		if len(fs) > 1 {
			continue // shared type: the properties hold the values
		}
		f := fs[0]
		prop, ok := d.Fields[f.Name]
		if !ok {
			return d, fmt.Errorf("%s/%s: %d %s relationships but no %s property", c.Name, d.ID, len(es), typ, f.Name)
		}
		var got any
		if f.Kind == schema.Ref {
			if len(es) != 1 {
				return d, fmt.Errorf("%s/%s: %d %s relationships for a single reference", c.Name, d.ID, len(es), typ)
			}
			got = es[0].to
		} else {
			slices.SortFunc(es, func(a, b edge) int { return int(a.index - b.index) })
			l := make([]any, len(es))
			for i, e := range es {
				if e.index != int64(i) {
					return d, fmt.Errorf("%s/%s: %s relationships have indexes %v", c.Name, d.ID, typ, es)
				}
				l[i] = e.to
			}
			got = l
		}
		if !equalRefs(prop, got) {
			return d, fmt.Errorf("%s/%s.%s: the property holds %v, the %s relationships %v", c.Name, d.ID, f.Name, prop, typ, got)
		}
		d.Fields[f.Name] = got
	}
	for typ, fs := range refFields {
		if len(fs) != 1 || len(edges[typ]) > 0 {
			continue
		}
		if p, ok := d.Fields[fs[0].Name]; ok && !equalRefs(p, []any{}) {
			return d, fmt.Errorf("%s/%s.%s: the property holds %v but there is no %s relationship", c.Name, d.ID, fs[0].Name, p, typ)
		}
	}
	return d, nil
}

func equalRefs(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		return ok && slices.Equal(x, y)
	}
	return false
}
