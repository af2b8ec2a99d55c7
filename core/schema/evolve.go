package schema

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Policy says what a tightened rule does to the documents written before
// the upgrade that tightened it (@existing(policy: ...)).
type Policy uint8

const (
	// PolicyNone: no policy declared; an upgrade that tightens the
	// field's rules is refused.
	PolicyNone Policy = iota
	// PolicyKeep: documents written before stay as they are; writes
	// under the new version obey the new rule.
	PolicyKeep
	// PolicyFlag: as keep, and the documents whose value breaks the rule
	// are listed as violations until they are fixed.
	PolicyFlag
)

var policyNames = map[string]Policy{"keep": PolicyKeep, "flag": PolicyFlag}

func (p Policy) String() string {
	for n, q := range policyNames {
		if q == p {
			return n
		}
	}
	return "none"
}

// renamedArg reads @renamed(from: "old") or @renamed(from: ["older", "old"]).
func renamedArg(args map[string]any) ([]string, error) {
	const usage = `@renamed wants from: "oldName" or from: ["oldName", "olderName"]`
	v, ok := args["from"]
	if !ok || len(args) != 1 {
		return nil, errors.New(usage)
	}
	var names []string
	switch x := v.(type) {
	case string:
		names = []string{x}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New(usage)
			}
			names = append(names, s)
		}
	default:
		return nil, errors.New(usage)
	}
	if len(names) == 0 {
		return nil, errors.New(usage)
	}
	for i, n := range names {
		if n == "id" || strings.HasPrefix(n, "_") {
			return nil, fmt.Errorf("@renamed: %q is a reserved name (\"id\" and names starting with \"_\")", n)
		}
		if slices.Contains(names[:i], n) {
			return nil, fmt.Errorf("@renamed: %s named twice", n)
		}
	}
	return names, nil
}

// existingArg reads @existing(policy: keep|flag).
func existingArg(args map[string]any) (Policy, error) {
	s, _ := args["policy"].(string)
	p, ok := policyNames[s]
	if !ok || len(args) != 1 {
		return PolicyNone, errors.New("@existing wants policy: keep or policy: flag")
	}
	return p, nil
}

// checkFormerNames makes sure a former name of a field is no field's
// current name and no other field's former name: values written under a
// name must belong to exactly one field.
func checkFormerNames(c *Collection) error {
	owner := map[string]string{}
	for _, f := range c.Fields {
		for _, n := range f.Former {
			if g, ok := c.byName[n]; ok {
				return fmt.Errorf("%w: %s.%s: @renamed(from: %q) names the existing field %s.%s (a name belongs to one field)", ErrInvalid, c.Name, f.Name, n, c.Name, g.Name)
			}
			if o, ok := owner[n]; ok {
				return fmt.Errorf("%w: %s.%s and %s.%s are both @renamed from %s (a field is renamed into one field)", ErrInvalid, c.Name, o, c.Name, f.Name, n)
			}
			owner[n] = f.Name
		}
	}
	return nil
}

// Names lists every name values of the field may be stored under: its
// name, then its former names.
func (f *Field) Names() []string {
	return append([]string{f.Name}, f.Former...)
}

// HasRenames reports whether some field has a former name.
func (s *Schema) HasRenames() bool {
	for _, c := range s.Collections {
		for _, f := range c.Fields {
			if len(f.Former) > 0 {
				return true
			}
		}
	}
	return false
}

// Rename gives a document written under an earlier version the names of
// c: the value of a field written under a former name moves to its name
// (a value under the name itself is kept). It returns doc itself, and
// false, when nothing moves.
func (c *Collection) Rename(doc map[string]any) (map[string]any, bool) {
	var out map[string]any
	for k, v := range doc {
		if _, ok := c.byName[k]; ok {
			continue
		}
		f, renamed := c.FieldByAnyName(k)
		if !renamed {
			continue
		}
		if out == nil {
			out = maps.Clone(doc)
		}
		delete(out, k)
		if _, has := doc[f.Name]; !has {
			out[f.Name] = v
		}
	}
	if out == nil {
		return doc, false
	}
	return out, true
}

// FieldByAnyName looks a field up by its name or a former name.
func (c *Collection) FieldByAnyName(name string) (*Field, bool) {
	if f, ok := c.byName[name]; ok {
		return f, true
	}
	for _, f := range c.Fields {
		if slices.Contains(f.Former, name) {
			return f, true
		}
	}
	return nil, false
}

// CheckUpgrade decides whether next may replace prev. Collections are
// only added. A field of prev lives on in next under its name or renamed
// (@renamed(from: ...) listing every name it ever had), with the same
// kind, element kind and reference target: the CRDT that merges a field
// never changes. A field added as required needs a @default for existing
// documents. Scalars and enums are only added, keep their base, and
// tighten (an enum loses a value, a scalar's rule accepts less) only when
// the type declares @existing(policy: keep|flag) (checkTypeUpgrade). A
// default may change (it applies to documents created under
// next). A rule may loosen freely; a field whose rules tighten (a
// narrower @range or @length, a new or changed @pattern, optional made
// required) must declare @existing(policy: keep|flag) for the documents
// written before. Every refusal names the field and the reason.
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
		if err := checkCollectionUpgrade(pc, nc); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	return nil
}

func checkCollectionUpgrade(pc, nc *Collection) error {
	successor := map[string]*Field{} // prev field name -> its field in next
	var needsDefault error           // reported after a dropped field, the likelier mistake
	for _, nf := range nc.Fields {
		q := pc.Name + "." + nf.Name
		if pf, ok := pc.Field(nf.Name); ok {
			// The field goes on under its name: its history stays as it was.
			for _, n := range nf.Former {
				if _, isField := pc.Field(n); isField {
					return fmt.Errorf("%s: renamed from %s, but %s already exists (a rename must give a new name)", q, n, q)
				}
				if !slices.Contains(pf.Former, n) {
					return fmt.Errorf("%s: @renamed(from: %q) names a field %s never was", q, n, q)
				}
			}
			if missing := notIn(pf.Former, nf.Former); len(missing) > 0 {
				return fmt.Errorf("%s: @renamed must keep its former names %s (old changes wrote them)", q, strings.Join(missing, ", "))
			}
			successor[pf.Name] = nf
			if err := sameType(pc.Name, pf, nf); err != nil {
				return err
			}
			if err := checkTightened(pc.Name, pf, nf); err != nil {
				return err
			}
			continue
		}
		var sources []*Field
		for _, n := range nf.Former {
			if pf, ok := pc.Field(n); ok {
				sources = append(sources, pf)
			}
		}
		switch len(sources) {
		case 0:
			if len(nf.Former) > 0 {
				return fmt.Errorf("%s: @renamed(from: %q): %s has no field %s to rename", q, nf.Former[0], pc.Name, nf.Former[0])
			}
			if nf.Required && nf.Default == nil && needsDefault == nil {
				needsDefault = fmt.Errorf("new field %s is required but has no @default for existing documents", q)
			}
			continue
		case 1:
		default:
			return fmt.Errorf("%s: renamed from both %s and %s (a rename has one source)", q, sources[0].Name, sources[1].Name)
		}
		pf := sources[0]
		if slices.Contains(pf.Former, nf.Name) {
			return fmt.Errorf("%s: %s is a former name of %s.%s; a name once used is never reused (old changes wrote it)", q, nf.Name, pc.Name, pf.Name)
		}
		if missing := notIn(pf.Names(), nf.Former); len(missing) > 0 {
			return fmt.Errorf("%s: renamed from %s must list every name the field had: @renamed(from: [%s])", q, pf.Name, quoteList(pf.Names()))
		}
		for _, n := range nf.Former {
			if !slices.Contains(pf.Names(), n) {
				return fmt.Errorf("%s: @renamed(from: %q) names a field %s.%s never was", q, n, pc.Name, pf.Name)
			}
		}
		if err := sameType(pc.Name, pf, nf); err != nil {
			return fmt.Errorf("%w (renamed from %s)", err, pf.Name)
		}
		if err := checkTightened(pc.Name, pf, nf); err != nil {
			return err
		}
		successor[pf.Name] = nf
	}
	for _, pf := range pc.Fields {
		if _, ok := successor[pf.Name]; !ok {
			return fmt.Errorf("upgrade drops field %s.%s (fields may only be added or renamed with @renamed(from: %q))", pc.Name, pf.Name, pf.Name)
		}
	}
	return needsDefault
}

func sameType(coll string, pf, nf *Field) error {
	if nf.Kind != pf.Kind || nf.Elem != pf.Elem || nf.Ref != pf.Ref || typeName(nf) != typeName(pf) {
		return fmt.Errorf("upgrade changes the type of %s.%s from %s to %s", coll, pf.Name, pf.describe(), nf.describe())
	}
	return nil
}

// checkTightened refuses a field whose rules accept less than before
// unless it declares what happens to the documents written before.
func checkTightened(coll string, pf, nf *Field) error {
	why := Tightened(pf, nf)
	if why == "" || nf.Existing != PolicyNone {
		return nil
	}
	return fmt.Errorf("%s.%s: %s; declare what happens to documents written before: @existing(policy: keep) or @existing(policy: flag)", coll, nf.Name, why)
}

// Tightened says how nf's rules accept less than pf's, "" when they do not.
// A changed pattern counts as tightened (regular languages are not compared).
func Tightened(pf, nf *Field) string {
	if nf.Required && !pf.Required {
		return "it becomes required"
	}
	return rulesTightened(pf.rules(), nf.rules())
}

// ruleSet is the @range, @length and @pattern of a field or a named scalar.
type ruleSet struct {
	min, max       *float64
	minLen, maxLen *int
	pattern        *regexp.Regexp
}

func (f *Field) rules() ruleSet { return ruleSet{f.Min, f.Max, f.MinLen, f.MaxLen, f.Pattern} }

func (t *Type) rules() ruleSet { return ruleSet{t.Min, t.Max, t.MinLen, t.MaxLen, t.Pattern} }

// rulesTightened says how n accepts less than p, "" when it does not.
func rulesTightened(p, n ruleSet) string {
	switch {
	case lowerRaised(p.min, n.min):
		return fmt.Sprintf("@range min goes from %s to %v", bound(p.min), *n.min)
	case upperLowered(p.max, n.max):
		return fmt.Sprintf("@range max goes from %s to %v", bound(p.max), *n.max)
	case lowerRaised(intf(p.minLen), intf(n.minLen)):
		return fmt.Sprintf("@length min goes from %s to %d", bound(intf(p.minLen)), *n.minLen)
	case upperLowered(intf(p.maxLen), intf(n.maxLen)):
		return fmt.Sprintf("@length max goes from %s to %d", bound(intf(p.maxLen)), *n.maxLen)
	case n.pattern != nil && (p.pattern == nil || p.pattern.String() != n.pattern.String()):
		return fmt.Sprintf("@pattern becomes %q", n.pattern.String())
	}
	return ""
}

func lowerRaised(p, n *float64) bool { return n != nil && (p == nil || *n > *p) }

func upperLowered(p, n *float64) bool { return n != nil && (p == nil || *n < *p) }

func intf(p *int) *float64 {
	if p == nil {
		return nil
	}
	f := float64(*p)
	return &f
}

func bound(p *float64) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}

func notIn(want, have []string) []string {
	var out []string
	for _, n := range want {
		if !slices.Contains(have, n) {
			out = append(out, n)
		}
	}
	return out
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
