package schema

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is what a run of ops does to one document, as rules see it.
type Action uint8

// Actions, each guarded by its directive.
const (
	ActionCreate Action = iota + 1 // @create(if: ...): new is the document created
	ActionUpdate                   // @update(if: ...): old before, new after
	ActionDelete                   // @delete(if: ...): old is the document deleted
)

var actionNames = map[Action]string{ActionCreate: "create", ActionUpdate: "update", ActionDelete: "delete"}

func (a Action) String() string {
	if n, ok := actionNames[a]; ok {
		return n
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Rule is a parsed and type-checked condition of @create, @update or
// @delete: a pure function of the acting change (author, role, clock), the
// document before and after, and the documents of the change's causal
// past, which it reads through a Source (see Eval).
type Rule struct {
	Action Action
	Coll   string
	Text   string
	root   node
}

// String names the rule as the schema writes it.
func (r *Rule) String() string { return fmt.Sprintf("%s @%s(if: %q)", r.Coll, r.Action, r.Text) }

// tkind is the static type of a rule expression.
type tkind uint8

const (
	tNull tkind = iota + 1
	tBool
	tInt
	tFloat
	tString
	tTime
	tDuration
	tList
	tDoc
	tOpaque // JSON and Bytes: only tested against null
)

var tkindNames = map[tkind]string{tNull: "null", tBool: "Boolean", tInt: "Int", tFloat: "Float", tString: "String",
	tTime: "DateTime", tDuration: "duration", tList: "list", tDoc: "document", tOpaque: "JSON/Bytes"}

func (k tkind) String() string { return tkindNames[k] }

type typ struct {
	k    tkind
	elem tkind  // of a list
	coll string // of a document
}

func (t typ) String() string {
	switch t.k {
	case tList:
		return "list of " + t.elem.String()
	case tDoc:
		return "document of " + t.coll
	}
	return t.k.String()
}

func kindType(k Kind) tkind {
	switch k {
	case String, Ref:
		return tString
	case Int, Counter:
		return tInt
	case Float:
		return tFloat
	case Boolean:
		return tBool
	case DateTime:
		return tTime
	}
	return tOpaque
}

func fieldType(f *Field) typ {
	if f.Kind == List || f.Kind == Set {
		return typ{k: tList, elem: kindType(f.Elem)}
	}
	return typ{k: kindType(f.Kind)}
}

// indexable reports whether documents can be looked up by equality on a
// field of kind k (one scalar value per document).
func indexable(k Kind) bool {
	switch k {
	case String, Ref, Int, Float, Boolean, DateTime:
		return true
	}
	return false
}

// Reserved names of the rule language.
var ruleNames = map[string]string{
	"new":    "the document after the action (@create, @update)",
	"old":    "the document before the action (@update, @delete)",
	"author": "the acting change's author key",
	"role":   "the author's role at the change",
	"now":    "the change's clock as a DateTime",
}

type checker struct {
	s       *Schema
	rule    *Rule
	aliases map[string]string // alias -> collection
}

func (c *checker) err(n node, format string, args ...any) error {
	return posError(c.rule.Text, start(n), format, args...)
}

// compileRule parses and types a condition of coll for action.
func (s *Schema) compileRule(coll string, action Action, text string) (*Rule, error) {
	r := &Rule{Action: action, Coll: coll, Text: text}
	root, err := parseExpr(text)
	if err != nil {
		return nil, err
	}
	c := &checker{s: s, rule: r, aliases: map[string]string{}}
	t, err := c.check(root)
	if err != nil {
		return nil, err
	}
	if t.k != tBool {
		return nil, c.err(root, "the condition is a %s, want a Boolean", t)
	}
	r.root = root
	return r, nil
}

func (c *checker) docOf(name string, n node) (string, error) {
	switch name {
	case "new":
		if c.rule.Action == ActionDelete {
			return "", c.err(n, "new is not available in @delete (the document is gone; use old)")
		}
		return c.rule.Coll, nil
	case "old":
		if c.rule.Action == ActionCreate {
			return "", c.err(n, "old is not available in @create (a created document has no previous state; use new)")
		}
		return c.rule.Coll, nil
	}
	if coll, ok := c.aliases[name]; ok {
		return coll, nil
	}
	return "", nil
}

func (c *checker) check(n node) (typ, error) {
	switch n := n.(type) {
	case *litNode:
		return n.t, nil
	case *nameNode:
		switch n.name {
		case "author", "role":
			return typ{k: tString}, nil
		case "now":
			return typ{k: tTime}, nil
		}
		coll, err := c.docOf(n.name, n)
		if err != nil {
			return typ{}, err
		}
		if coll == "" {
			return typ{}, c.err(n, "unknown name %q (known: new, old, author, role, now, and the aliases of enclosing exists)", n.name)
		}
		return typ{k: tDoc, coll: coll}, nil
	case *pathNode:
		if _, reserved := ruleNames[n.base]; reserved && n.base != "new" && n.base != "old" {
			return typ{}, c.err(n, "%s has no fields (%s is %s)", n.base, n.base, ruleNames[n.base])
		}
		collName, err := c.docOf(n.base, n)
		if err != nil {
			return typ{}, err
		}
		if collName == "" {
			return typ{}, c.err(n, "unknown name %q (known: new, old and the aliases of enclosing exists)", n.base)
		}
		if n.field == "id" {
			return typ{k: tString}, nil
		}
		coll, _ := c.s.Collection(collName)
		f, ok := coll.Field(n.field)
		if !ok {
			return typ{}, c.err(n, "%s has no field %q", collName, n.field)
		}
		n.f = f
		return fieldType(f), nil
	case *notNode:
		t, err := c.check(n.x)
		if err != nil {
			return typ{}, err
		}
		if t.k != tBool {
			return typ{}, c.err(n, "not wants a Boolean, got a %s", t)
		}
		return typ{k: tBool}, nil
	case *binNode:
		return c.checkBin(n)
	case *inNode:
		t, err := c.check(n.x)
		if err != nil {
			return typ{}, err
		}
		switch t.k {
		case tString, tInt, tFloat, tBool, tTime:
		default:
			return typ{}, c.err(n, "in [...] applies to a String, Int, Float, Boolean or DateTime, not a %s", t)
		}
		n.cmp = t.k
		for _, lit := range n.list {
			k, err := c.unify(n, t, lit.t, n.x, lit)
			if err != nil {
				return typ{}, err
			}
			if err := c.enumLiteral(n.x, lit); err != nil {
				return typ{}, err
			}
			n.cmp = k
		}
		return typ{k: tBool}, nil
	case *callNode:
		return c.checkCall(n)
	case *existsNode:
		return c.checkExists(n)
	}
	return typ{}, fmt.Errorf("unknown node %T", n)
}

func (c *checker) checkBin(n *binNode) (typ, error) {
	lt, err := c.check(n.l)
	if err != nil {
		return typ{}, err
	}
	rt, err := c.check(n.r)
	if err != nil {
		return typ{}, err
	}
	switch n.op {
	case "and", "or":
		if lt.k != tBool || rt.k != tBool {
			return typ{}, c.err(n, "%s joins Booleans, got a %s and a %s", n.op, lt, rt)
		}
		return typ{k: tBool}, nil
	case "==", "!=":
		if lt.k == tNull || rt.k == tNull {
			n.cmp = tNull
			return typ{k: tBool}, nil
		}
		k, err := c.unify(n, lt, rt, n.l, n.r)
		if err != nil {
			return typ{}, err
		}
		switch k {
		case tList, tDoc, tOpaque:
			return typ{}, c.err(n, "a %s can only be compared with null", lt)
		}
		if err := c.enumLiteral(n.l, n.r); err != nil {
			return typ{}, err
		}
		n.cmp = k
		return typ{k: tBool}, nil
	case "<", "<=", ">", ">=":
		k, err := c.unify(n, lt, rt, n.l, n.r)
		if err != nil {
			return typ{}, err
		}
		switch k {
		case tInt, tFloat, tString, tTime, tDuration:
		default:
			return typ{}, c.err(n, "%s orders numbers, strings, date-times and durations, not a %s", n.op, lt)
		}
		n.cmp = k
		return typ{k: tBool}, nil
	case "+", "-":
		if lt.k == tTime && rt.k == tString || lt.k == tString && rt.k == tTime {
			if k, err := c.unify(n, lt, rt, n.l, n.r); err == nil && k == tTime {
				lt, rt = typ{k: tTime}, typ{k: tTime}
			}
		}
		switch {
		case lt.k == tInt && rt.k == tInt:
			n.cmp = tInt
			return typ{k: tInt}, nil
		case (lt.k == tInt || lt.k == tFloat) && (rt.k == tInt || rt.k == tFloat):
			n.cmp = tFloat
			return typ{k: tFloat}, nil
		case lt.k == tTime && rt.k == tDuration:
			n.cmp = tTime
			return typ{k: tTime}, nil
		case lt.k == tDuration && rt.k == tDuration:
			n.cmp = tDuration
			return typ{k: tDuration}, nil
		case lt.k == tTime && rt.k == tTime && n.op == "-":
			n.cmp = tDuration
			return typ{k: tDuration}, nil
		}
		return typ{}, c.err(n, "cannot %s a %s and a %s (numbers; DateTime ± duration; DateTime - DateTime)", map[string]string{"+": "add", "-": "subtract"}[n.op], lt, rt)
	}
	return typ{}, c.err(n, "unknown operator %s", n.op)
}

// unify finds the kind two operands are compared as. A string literal
// compared with a DateTime is read as an RFC 3339 date-time.
func (c *checker) unify(at node, a, b typ, an, bn node) (tkind, error) {
	if a.k == b.k {
		return a.k, nil
	}
	if (a.k == tInt || a.k == tFloat) && (b.k == tInt || b.k == tFloat) {
		return tFloat, nil
	}
	for _, p := range [][2]node{{an, bn}, {bn, an}} {
		lit, ok := p[0].(*litNode)
		other := b
		if p[0] == bn {
			other = a
		}
		if ok && lit.t.k == tString && other.k == tTime {
			t, err := time.Parse(time.RFC3339Nano, lit.val.(string))
			if err != nil {
				return 0, c.err(lit, "%q is not an RFC 3339 date-time such as 2024-05-01T12:00:00Z", lit.val)
			}
			lit.val, lit.t = t.UTC().Format(time.RFC3339Nano), typ{k: tTime}
			return tTime, nil
		}
	}
	return 0, c.err(at, "cannot compare a %s with a %s", a, b)
}

var durations = map[string]int64{"days": 24 * 60 * 60 * 1000, "hours": 60 * 60 * 1000, "minutes": 60 * 1000, "seconds": 1000}

func (c *checker) checkCall(n *callNode) (typ, error) {
	var ts []typ
	for _, a := range n.args {
		t, err := c.check(a)
		if err != nil {
			return typ{}, err
		}
		ts = append(ts, t)
	}
	want := func(k int) error {
		if len(ts) != k {
			return c.err(n, "%s takes %d argument(s), got %d", n.fn, k, len(ts))
		}
		return nil
	}
	switch n.fn {
	case "creator":
		if err := want(1); err != nil {
			return typ{}, err
		}
		if ts[0].k != tDoc {
			return typ{}, c.err(n, "creator wants a document (new, old or an alias), got a %s", ts[0])
		}
		return typ{k: tString}, nil
	case "days", "hours", "minutes", "seconds":
		if err := want(1); err != nil {
			return typ{}, err
		}
		if ts[0].k != tInt {
			return typ{}, c.err(n, "%s wants an Int, got a %s", n.fn, ts[0])
		}
		return typ{k: tDuration}, nil
	case "contains":
		if err := want(2); err != nil {
			return typ{}, err
		}
		if ts[0].k != tList {
			return typ{}, c.err(n, "contains wants a list or set field first, got a %s", ts[0])
		}
		if _, err := c.unify(n, typ{k: ts[0].elem}, ts[1], nil, n.args[1]); err != nil {
			return typ{}, err
		}
		if err := c.enumLiteral(n.args[0], n.args[1]); err != nil {
			return typ{}, err
		}
		return typ{k: tBool}, nil
	}
	return typ{}, c.err(n, "unknown function %s (known: creator, contains, days, hours, minutes, seconds)", n.fn)
}

func (c *checker) checkExists(n *existsNode) (typ, error) {
	coll, ok := c.s.Collection(n.coll)
	if !ok {
		return typ{}, c.err(n, "exists(%s ...): unknown collection %s", n.coll, n.coll)
	}
	if _, reserved := ruleNames[n.alias]; reserved {
		return typ{}, c.err(n, "exists(%s %s ...): %s is a reserved name; pick another alias", n.coll, n.alias, n.alias)
	}
	if _, taken := c.aliases[n.alias]; taken {
		return typ{}, c.err(n, "exists(%s %s ...): alias %s is already used by an enclosing exists", n.coll, n.alias, n.alias)
	}
	if n.where == nil {
		return typ{}, c.err(n, "exists(%s %s) needs a where clause with an equality on %s (e.g. %s.id == new.%s)", n.coll, n.alias, n.alias, n.alias, strings.ToLower(n.coll))
	}
	c.aliases[n.alias] = coll.Name
	t, err := c.check(n.where)
	delete(c.aliases, n.alias)
	if err != nil {
		return typ{}, err
	}
	if t.k != tBool {
		return typ{}, c.err(n.where, "the where clause is a %s, want a Boolean", t)
	}
	// The lookup key: an equality alias.field == value among the
	// conjuncts, the value not depending on the alias. The id first, then
	// the first non-Boolean field, then a Boolean one.
	var best *binNode
	var bestField *pathNode
	rank := func(p *pathNode) int {
		switch {
		case p.field == "id":
			return 0
		case p.f.Kind != Boolean:
			return 1
		}
		return 2
	}
	for _, conj := range conjuncts(n.where) {
		b, ok := conj.(*binNode)
		if !ok || b.op != "==" || b.cmp == tNull {
			continue
		}
		for _, side := range [][2]node{{b.l, b.r}, {b.r, b.l}} {
			p, ok := side[0].(*pathNode)
			if !ok || p.base != n.alias || mentions(side[1], n.alias) {
				continue
			}
			if p.field != "id" && !indexable(p.f.Kind) {
				continue
			}
			if bestField == nil || rank(p) < rank(bestField) {
				best, bestField = b, p
				n.driveVal = side[1]
			}
		}
	}
	if best == nil {
		return typ{}, c.err(n, "exists(%s %s ...) needs an equality %s.FIELD == VALUE (VALUE not depending on %s; FIELD the id or a String, Int, Float, Boolean, DateTime or reference field) joined to the rest by and, so that documents are looked up by index, not scanned", n.coll, n.alias, n.alias, n.alias)
	}
	n.driveField = bestField.field
	if bestField.f != nil {
		n.driveKind = bestField.f.Kind
		c.s.index(n.coll, bestField.field)
	}
	return typ{k: tBool}, nil
}

func conjuncts(n node) []node {
	if b, ok := n.(*binNode); ok && b.op == "and" {
		return append(conjuncts(b.l), conjuncts(b.r)...)
	}
	return []node{n}
}

// mentions reports whether n refers to name (a document alias).
func mentions(n node, name string) bool {
	switch n := n.(type) {
	case *nameNode:
		return n.name == name
	case *pathNode:
		return n.base == name
	case *notNode:
		return mentions(n.x, name)
	case *binNode:
		return mentions(n.l, name) || mentions(n.r, name)
	case *inNode:
		return mentions(n.x, name)
	case *callNode:
		return slices.ContainsFunc(n.args, func(a node) bool { return mentions(a, name) })
	case *existsNode:
		return n.where != nil && mentions(n.where, name)
	}
	return false
}

// enumLiteral refuses a string literal compared with (or looked for in) a
// field of an enum type that is not one of its values: such a comparison
// could never hold, and is most likely a typo.
func (c *checker) enumLiteral(a, b node) error {
	for _, p := range [][2]node{{a, b}, {b, a}} {
		path, ok := p[0].(*pathNode)
		lit, isLit := p[1].(*litNode)
		if !ok || !isLit || path.f == nil || path.f.Type == nil || !path.f.Type.IsEnum() {
			continue
		}
		if v, isStr := lit.val.(string); isStr && !path.f.Type.Has(v) {
			return c.err(lit, "%q is not a value of enum %s (%s)", v, path.f.Type.Name, path.f.Type.valueList())
		}
	}
	return nil
}
