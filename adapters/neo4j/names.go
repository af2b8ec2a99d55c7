package neo4j

import (
	"context"
	"fmt"
	"slices"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/tributary-sync/tributary/adapters/internal/naming"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
)

// MappingLabel labels the mapping nodes, one per mapped collection:
// (:_TributaryMapping {label, space, node, sink, collection, fields,
// properties, types}), where fields[i] is stored as the property
// properties[i] and, for a reference field, as relationships of type
// types[i] ("" for other fields). label is unique: a label belongs to one
// claim.
const MappingLabel = "_TributaryMapping"

// MaxName bounds the labels, relationship types and property names the
// sink makes, in characters: the GQL identifier limit Neo4j 5 keeps.
const MaxName = 16383

// mapped is how one collection is stored.
type mapped struct {
	label string
	props map[string]string // field -> property
	types map[string]string // reference field -> relationship type
}

// layout is how a schema is stored, by collection.
type layout struct {
	schemaID string
	colls    map[string]*mapped
}

// mappingNode is a mapping node as read.
type mappingNode struct {
	claim      checkpoint.Claim
	label      string
	collection string
	fields     []string
	props      []string
	types      []string
}

func (m *mappingNode) mapped() *mapped {
	out := &mapped{label: m.label, props: map[string]string{}, types: map[string]string{}}
	for i, f := range m.fields {
		if i < len(m.props) {
			out.props[f] = m.props[i]
		}
		if i < len(m.types) && m.types[i] != "" {
			out.types[f] = m.types[i]
		}
	}
	return out
}

// reservedLabel tells the sink's own labels, never given to a collection.
func reservedLabel(l string) bool { return l == CheckpointLabel || l == MappingLabel }

// loadMapping reads every mapping node.
func loadMapping(ctx context.Context, tx neo4j.ManagedTransaction) ([]*mappingNode, error) {
	res, err := tx.Run(ctx, "MATCH (m:"+quote(MappingLabel)+") RETURN m.label, m.space, m.node, m.sink, m.collection, m.fields, m.properties, m.types", nil)
	if err != nil {
		return nil, err
	}
	recs, err := res.Collect(ctx)
	if err != nil {
		return nil, err
	}
	strs := func(v any) []string {
		l, _ := v.([]any)
		out := make([]string, len(l))
		for i, x := range l {
			out[i], _ = x.(string)
		}
		return out
	}
	out := make([]*mappingNode, len(recs))
	for i, r := range recs {
		m := &mappingNode{fields: strs(r.Values[5]), props: strs(r.Values[6]), types: strs(r.Values[7])}
		m.label, _ = r.Values[0].(string)
		m.claim.Space, _ = r.Values[1].(string)
		m.claim.Node, _ = r.Values[2].(string)
		m.claim.Sink, _ = r.Values[3].(string)
		m.collection, _ = r.Values[4].(string)
		out[i] = m
	}
	return out, nil
}

func (s *Sink) claimedBy(label, coll string, owner checkpoint.Claim) error {
	return &checkpoint.ClaimedError{
		What:  fmt.Sprintf("label :%s (wanted for collection %s)", label, coll),
		Owner: owner,
		By:    s.Claim(),
		Hint:  "give this sink a database of its own, a label_prefix, or name its labels under tables:",
	}
}

// checkOverrides checks Config.Labels against the mapping, as New does:
// a collection keeps the label it was mapped to, and another claim's is
// never taken.
func (s *Sink) checkOverrides(ctx context.Context) error {
	if len(s.cfg.Labels) == 0 {
		return nil
	}
	sess := s.session(ctx, neo4j.AccessModeRead)
	defer sess.Close(context.WithoutCancel(ctx))
	v, err := sess.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) { return loadMapping(ctx, tx) })
	if err != nil {
		return fmt.Errorf("read the mapping: %w", err)
	}
	nodes := v.([]*mappingNode)
	for coll, label := range s.cfg.Labels {
		for _, m := range nodes {
			switch {
			case s.owns(m.claim) && m.collection == coll && m.label != label:
				return fmt.Errorf("tables: collection %s is stored under label %s already, not %s: a collection's label never changes (to move it, relabel its nodes and its :%s node by hand)",
					coll, m.label, label, MappingLabel)
			case m.label == label && !s.owns(m.claim):
				return s.claimedBy(label, coll, m.claim)
			case m.label == label && m.collection != coll:
				return fmt.Errorf("tables: label %s holds collection %s, not %s", label, m.collection, coll)
			}
		}
	}
	return nil
}

// plan lays sch out over the mapping nodes: the mapped names, and names
// for what is new. A new collection's label is Config.Labels[collection],
// else LabelPrefix + its name (labels tell case apart), cut to MaxName
// with a hash suffix when longer, suffixed again when the sink has it
// already or it is reserved; another claim's label is refused. A new
// field's property is its name (properties tell case apart too, and field
// names never start with "_" nor are "id"), and a new reference field's
// relationship type its name in upper case, suffixed with a hash when
// another field of the collection has it (writer beside Writer). It
// returns the layout and the mapping nodes to write (new or grown).
func (s *Sink) plan(sch *schema.Schema, nodes []*mappingNode) (*layout, []*mappingNode, error) {
	owner := map[string]checkpoint.Claim{}
	ours := map[string]*mappingNode{}
	for _, m := range nodes {
		owner[m.label] = m.claim
		if s.owns(m.claim) {
			ours[m.collection] = m
		}
	}
	l := &layout{schemaID: sch.ID, colls: map[string]*mapped{}}
	var write []*mappingNode
	for _, c := range sch.Collections {
		m, ok := ours[c.Name]
		grown := false
		if !ok {
			label, given := s.cfg.Labels[c.Name]
			base := s.cfg.LabelPrefix + c.Name
			if !given {
				label = naming.Fit(base, c.Name, MaxName)
			}
			if o, owned := owner[label]; owned && !s.owns(o) {
				return nil, nil, s.claimedBy(label, c.Name, o)
			}
			taken := func(l string) bool { _, owned := owner[l]; return owned || reservedLabel(l) }
			if given && taken(label) {
				return nil, nil, fmt.Errorf("tables: label %s for collection %s is taken", label, c.Name)
			}
			for k := 1; taken(label); k++ {
				label = naming.Suffixed(base, c.Name, k, MaxName)
			}
			m = &mappingNode{claim: s.Claim(), label: label, collection: c.Name}
			owner[label] = m.claim
			grown = true
		}
		have := map[string]bool{}
		types := map[string]bool{}
		for i, f := range m.fields {
			have[f] = true
			if i < len(m.types) && m.types[i] != "" {
				types[m.types[i]] = true
			}
		}
		for _, f := range c.Fields {
			if have[f.Name] {
				continue
			}
			// A renamed field keeps the property and relationship type
			// of its former name.
			if i := slices.IndexFunc(m.fields, func(n string) bool { return slices.Contains(f.Former, n) }); i >= 0 {
				m.fields[i] = f.Name
				have[f.Name], grown = true, true
				continue
			}
			typ := ""
			if isRef(f) {
				base := RelationshipType(f.Name)
				typ = naming.Fit(base, f.Name, MaxName)
				for k := 1; types[typ]; k++ {
					typ = naming.Suffixed(base, f.Name, k, MaxName)
				}
				types[typ] = true
			}
			m.fields = append(m.fields, f.Name)
			m.props = append(m.props, naming.Fit(f.Name, f.Name, MaxName))
			m.types = append(m.types, typ)
			grown = true
		}
		if grown {
			write = append(write, m)
		}
		l.colls[c.Name] = m.mapped()
	}
	return l, write, nil
}

// ensure maps the collections and fields of sch (plan), writes the new
// mapping nodes in a transaction that checks the fence, and creates the
// uniqueness constraint of every label. Done once per schema per Sink.
func (s *Sink) ensure(ctx context.Context, sch *schema.Schema) (*layout, error) {
	if s.layout != nil && s.layout.schemaID == sch.ID {
		return s.layout, nil
	}
	sess := s.session(ctx, neo4j.AccessModeWrite)
	defer sess.Close(context.WithoutCancel(ctx))
	v, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		if _, err := s.lockCheckpoint(ctx, tx); err != nil {
			return nil, err
		}
		nodes, err := loadMapping(ctx, tx)
		if err != nil {
			return nil, err
		}
		l, write, err := s.plan(sch, nodes)
		if err != nil {
			return nil, err
		}
		for _, m := range write {
			res, err := tx.Run(ctx, "MERGE (m:"+quote(MappingLabel)+" {label: $label})\n"+
				"SET m.space = $space, m.node = $node, m.sink = $sink, m.collection = $collection, m.fields = $fields, m.properties = $props, m.types = $types",
				map[string]any{"label": m.label, "space": m.claim.Space, "node": m.claim.Node, "sink": m.claim.Sink, "collection": m.collection,
					"fields": m.fields, "props": m.props, "types": m.types})
			if err != nil {
				return nil, err
			}
			if _, err := res.Consume(ctx); err != nil {
				return nil, err
			}
		}
		return l, nil
	})
	if err != nil {
		return nil, err
	}
	l := v.(*layout)
	for _, c := range sch.Collections {
		label := l.colls[c.Name].label
		if s.ensured[label] {
			continue
		}
		if err := s.constrain(ctx, label, PropID); err != nil {
			return nil, err
		}
		s.ensured[label] = true
	}
	s.layout = l
	return l, nil
}

// lookup reads the mapping of one collection of the sink's claim; nil
// when it is not mapped yet.
func (s *Sink) lookup(ctx context.Context, collection string) (*mapped, error) {
	sess := s.session(ctx, neo4j.AccessModeRead)
	defer sess.Close(context.WithoutCancel(ctx))
	v, err := sess.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) { return loadMapping(ctx, tx) })
	if err != nil {
		return nil, err
	}
	for _, m := range v.([]*mappingNode) {
		if m.collection == collection && s.owns(m.claim) {
			return m.mapped(), nil
		}
	}
	return nil, nil
}

// Label is the label the mapping stored in the graph gives a collection
// of the sink's claim; "" when it is not mapped yet.
func (s *Sink) Label(ctx context.Context, collection string) (string, error) {
	m, err := s.lookup(ctx, collection)
	if err != nil || m == nil {
		return "", err
	}
	return m.label, nil
}
