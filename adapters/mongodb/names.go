package mongodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tributary-sync/tributary/adapters/internal/naming"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
)

// NamesCollection holds the name mapping: one document per mapped
// collection, {_id: the MongoDB collection, space, node, sink,
// collection, fields: [{field, name}]}. The _id makes a MongoDB
// collection belong to one claim.
const NamesCollection = "_tributary_names"

// MaxCollectionName bounds a MongoDB collection name in bytes: FerretDB
// takes at most 235, MongoDB at most 255 for database, dot and collection
// together (the sink uses the smaller of the two).
const MaxCollectionName = 235

type fieldName struct {
	Field string `bson:"field"`
	Name  string `bson:"name"`
}

type nameDoc struct {
	Target     string      `bson:"_id"`
	Space      string      `bson:"space"`
	Node       string      `bson:"node"`
	Sink       string      `bson:"sink"`
	Collection string      `bson:"collection"`
	Fields     []fieldName `bson:"fields"`
}

func (d *nameDoc) claim() checkpoint.Claim {
	return checkpoint.Claim{Space: d.Space, Node: d.Node, Sink: d.Sink}
}

// layout is how a schema is stored: collection -> MongoDB collection.
type layout struct {
	schemaID string
	colls    map[string]string
	// stored names the document field of each renamed field: the name it
	// had when it was mapped (coll -> field -> stored name).
	stored map[string]map[string]string
}

// nameLimit is the longest collection name database db takes.
func nameLimit(db string) int { return min(MaxCollectionName, 255-len(db)-1) }

func (s *Sink) nameLimit() int { return nameLimit(s.db.Name()) }

// checkTargetName checks a MongoDB collection name proposed for a
// collection (targetNameError).
func (s *Sink) checkTargetName(name string) error { return targetNameError(s.db.Name(), name) }

// targetNameError checks a MongoDB collection name of database db given
// by the user or proposed for a collection: MongoDB's and FerretDB's
// rules, and none of the names they or the sink reserve.
func targetNameError(db, name string) error {
	switch {
	case name == "":
		return errors.New("empty collection name")
	case len(name) > nameLimit(db):
		return fmt.Errorf("collection name %q is %d bytes, over the %d this database takes", name, len(name), nameLimit(db))
	case strings.ContainsAny(name, "$\x00"):
		return fmt.Errorf("collection name %q: MongoDB refuses '$' and NUL in collection names", name)
	case strings.HasPrefix(name, "system.") || strings.HasPrefix(name, "."):
		return fmt.Errorf("collection name %q: the system. prefix and a leading dot are reserved", name)
	case strings.HasPrefix(name, "_tributary_") || strings.HasPrefix(name, "_ferretdb_"):
		return fmt.Errorf("collection name %q: the _tributary_ and _ferretdb_ prefixes are reserved", name)
	}
	return nil
}

// loadNames reads the mapping documents.
func (s *Sink) loadNames(ctx context.Context) ([]nameDoc, error) {
	cur, err := s.db.Collection(NamesCollection).Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", NamesCollection, err)
	}
	var docs []nameDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read %s: %w", NamesCollection, err)
	}
	return docs, nil
}

func (s *Sink) claimedBy(target, coll string, owner checkpoint.Claim) error {
	return &checkpoint.ClaimedError{
		What:  fmt.Sprintf("collection %s of database %s (wanted for collection %s)", target, s.db.Name(), coll),
		Owner: owner,
		By:    s.Claim(),
		Hint:  "give this sink a database of its own, or name its collection under tables:",
	}
}

// checkOverrides checks Config.Collections against the mapping, as New
// does: a collection keeps the MongoDB collection it was mapped to, and
// another claim's is never taken.
func (s *Sink) checkOverrides(ctx context.Context) error {
	if len(s.cfg.Collections) == 0 {
		return nil
	}
	docs, err := s.loadNames(ctx)
	if err != nil {
		return err
	}
	for coll, target := range s.cfg.Collections {
		for _, d := range docs {
			switch {
			case s.owns(d.claim()) && d.Collection == coll && d.Target != target:
				return fmt.Errorf("tables: collection %s is stored in %s already, not %s: a collection's MongoDB collection never changes (to move it, rename the collection and its document of %s by hand)",
					coll, d.Target, target, NamesCollection)
			case d.Target == target && !s.owns(d.claim()):
				return s.claimedBy(target, coll, d.claim())
			case d.Target == target && d.Collection != coll:
				return fmt.Errorf("tables: collection %s of database %s holds collection %s, not %s", target, s.db.Name(), d.Collection, coll)
			}
		}
	}
	return nil
}

// ensure maps the collections of sch to MongoDB collections: the mapped
// one; else the one Config.Collections names; else the collection's own
// name, cut to nameLimit with a hash suffix when longer, and suffixed
// again when taken. A MongoDB collection another claim maps is refused.
// Field names are the schema's (GraphQL names are valid MongoDB field
// names and never start with "_", so they never meet the sink's own
// fields); the mapping lists them anyway, one entry per field, added as
// upgrades add fields, so that a later rename can keep a field's name.
// Done once per schema per Sink.
func (s *Sink) ensure(ctx context.Context, sch *schema.Schema) (*layout, error) {
	s.layoutMu.Lock()
	cur := s.layout
	s.layoutMu.Unlock()
	if cur != nil && cur.schemaID == sch.ID {
		return cur, nil
	}
	if _, err := s.checkFence(ctx); err != nil {
		return nil, err
	}
	docs, err := s.loadNames(ctx)
	if err != nil {
		return nil, s.failed(err)
	}
	ours := map[string]*nameDoc{}
	owner := map[string]checkpoint.Claim{}
	for i := range docs {
		d := &docs[i]
		owner[d.Target] = d.claim()
		if s.owns(d.claim()) {
			ours[d.Collection] = d
		}
	}
	l := &layout{schemaID: sch.ID, colls: map[string]string{}, stored: map[string]map[string]string{}}
	names := s.db.Collection(NamesCollection)
	for _, c := range sch.Collections {
		if d, ok := ours[c.Name]; ok {
			l.colls[c.Name] = d.Target
			var add bson.A
			have := map[string]int{}
			for i, f := range d.Fields {
				have[f.Field] = i
			}
			renamed := false
			for _, f := range c.Fields {
				if _, ok := have[f.Name]; ok {
					continue
				}
				// A renamed field keeps the document field of its former name.
				if i := slices.IndexFunc(d.Fields, func(n fieldName) bool { return slices.Contains(f.Former, n.Field) }); i >= 0 {
					d.Fields[i].Field, renamed = f.Name, true
					have[f.Name] = i
					continue
				}
				add = append(add, fieldName{Field: f.Name, Name: f.Name})
			}
			if renamed {
				if _, err := names.UpdateOne(ctx, bson.D{{Key: FieldID, Value: d.Target}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "fields", Value: d.Fields}}}}); err != nil {
					return nil, s.failed(fmt.Errorf("map the renamed fields of %s: %w", c.Name, err))
				}
			}
			for _, f := range d.Fields {
				if f.Name != f.Field {
					if l.stored[c.Name] == nil {
						l.stored[c.Name] = map[string]string{}
					}
					l.stored[c.Name][f.Field] = f.Name
				}
			}
			if len(add) > 0 {
				if _, err := names.UpdateOne(ctx, bson.D{{Key: FieldID, Value: d.Target}},
					bson.D{{Key: "$push", Value: bson.D{{Key: "fields", Value: bson.D{{Key: "$each", Value: add}}}}}}); err != nil {
					return nil, s.failed(fmt.Errorf("map the fields of %s: %w", c.Name, err))
				}
			}
			continue
		}
		target, given := s.cfg.Collections[c.Name]
		if !given {
			target = naming.Fit(c.Name, c.Name, s.nameLimit())
		}
		if o, owned := owner[target]; owned && !s.owns(o) {
			return nil, s.claimedBy(target, c.Name, o)
		}
		taken := func(t string) bool {
			_, owned := owner[t]
			return owned || s.checkTargetName(t) != nil
		}
		if given && taken(target) {
			return nil, fmt.Errorf("mongodb sink %s: tables: collection %s for %s is taken", s.cfg.Name, target, c.Name)
		}
		for k := 1; taken(target); k++ {
			target = naming.Suffixed(c.Name, c.Name, k, s.nameLimit())
		}
		d := nameDoc{Target: target, Space: s.cfg.Space, Node: s.cfg.Node, Sink: s.cfg.Name, Collection: c.Name, Fields: []fieldName{}}
		for _, f := range c.Fields {
			d.Fields = append(d.Fields, fieldName{Field: f.Name, Name: f.Name})
		}
		if _, err := names.InsertOne(ctx, d); err != nil {
			if mongo.IsDuplicateKeyError(err) {
				return nil, s.failed(fmt.Errorf("map collection %s: %s was mapped by another sink meanwhile", c.Name, target))
			}
			return nil, s.failed(fmt.Errorf("map collection %s: %w", c.Name, err))
		}
		owner[target] = s.Claim()
		l.colls[c.Name] = target
	}
	s.layoutMu.Lock()
	s.layout = l
	s.layoutMu.Unlock()
	return l, nil
}

// CollectionName is the MongoDB collection the mapping stored in the
// target gives a collection of the sink's claim; "" when it is not mapped
// yet.
func (s *Sink) CollectionName(ctx context.Context, collection string) (string, error) {
	docs, err := s.loadNames(ctx)
	if err != nil {
		return "", s.failed(err)
	}
	for _, d := range docs {
		if d.Collection == collection && s.owns(d.claim()) {
			return d.Target, nil
		}
	}
	return "", nil
}
