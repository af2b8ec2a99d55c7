package schema

import "fmt"

// CheckUpgrade decides whether next may replace prev. Collections and
// fields are only ever added: each existing field keeps its kind, element
// kind and reference target (the CRDT that merges a field must never
// change), and a field added as required needs a @default so existing
// documents have a value. Rules (ranges, lengths, patterns) may change;
// they apply to changes made under the new schema.
func CheckUpgrade(prev, next *Schema) error {
	if prev.ID == next.ID {
		return fmt.Errorf("%w: upgrade to the schema already in force (%s)", ErrInvalid, next.ID)
	}
	for _, pt := range prev.Types {
		nt, ok := next.Type(pt.Name)
		if !ok {
			return fmt.Errorf("%w: upgrade drops type %s (scalars and enums may only be added)", ErrInvalid, pt.Name)
		}
		if err := checkTypeUpgrade(pt, nt); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	for _, pc := range prev.Collections {
		nc, ok := next.Collection(pc.Name)
		if !ok {
			return fmt.Errorf("%w: upgrade drops collection %s (collections may only be added)", ErrInvalid, pc.Name)
		}
		for _, pf := range pc.Fields {
			nf, ok := nc.Field(pf.Name)
			if !ok {
				return fmt.Errorf("%w: upgrade drops field %s.%s (fields may only be added)", ErrInvalid, pc.Name, pf.Name)
			}
			if nf.Kind != pf.Kind || nf.Elem != pf.Elem || nf.Ref != pf.Ref || typeName(nf) != typeName(pf) {
				return fmt.Errorf("%w: upgrade changes the type of %s.%s from %s to %s", ErrInvalid, pc.Name, pf.Name, pf.describe(), nf.describe())
			}
		}
		for _, nf := range nc.Fields {
			if _, old := pc.Field(nf.Name); !old && nf.Required && nf.Default == nil {
				return fmt.Errorf("%w: new field %s.%s is required but has no @default for existing documents", ErrInvalid, nc.Name, nf.Name)
			}
		}
	}
	return nil
}

func typeName(f *Field) string {
	if f.Type == nil {
		return ""
	}
	return f.Type.Name
}
