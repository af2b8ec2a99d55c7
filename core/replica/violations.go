package replica

import (
	"github.com/tributary-sync/tributary/core/schema"
)

// Violation is a live document that breaks a rule its field (or the
// named type of the field) declares @existing(policy: flag): an upgrade tightened the rule, and the value
// was written before (or is the value the document kept). Writing a value
// the rule accepts takes it off the list.
type Violation struct {
	Collection string `json:"collection"`
	ID         string `json:"id"`
	Field      string `json:"field"`
	Reason     string `json:"reason"`
}

// Violations lists, under the schema in force, the documents whose
// flagged fields break their rules, by collection, id and field. It reads
// the collections with a flagged field only; like the state it reads, the
// list is the same on every replica holding the same changes.
func (r *Replica) Violations() ([]Violation, error) {
	s := r.view.Load().schema
	out := []Violation{}
	for _, c := range s.Collections {
		var flagged []*schema.Field
		for _, f := range c.Fields {
			if f.Existing == schema.PolicyFlag || (f.Type != nil && f.Type.Existing == schema.PolicyFlag) {
				flagged = append(flagged, f)
			}
		}
		if len(flagged) == 0 {
			continue
		}
		docs, err := r.Query(c.Name, nil)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			for _, f := range flagged {
				v := d.Fields[f.Name]
				var why string
				if v == nil && f.Required {
					why = f.Name + " is required but has no value"
				} else if err := f.Check(v); err != nil {
					why = err.Error()
				}
				if why != "" {
					out = append(out, Violation{Collection: c.Name, ID: d.ID, Field: f.Name, Reason: why})
				}
			}
		}
	}
	return out, nil
}
