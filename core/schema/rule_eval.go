package schema

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tributary-sync/tributary/core"
)

// Doc is a document as a rule reads it.
type Doc struct {
	ID      string
	Fields  map[string]any // canonical values, defaults filled in (as a read shows them)
	Creator string         // author key (text) of the create in force
}

// Source gives a rule the documents of the acting change's view: its
// causal past and the earlier ops of the same change (core/replica
// implements it). Eval reads nothing else, so it is a pure function of
// the environment and what the Source returns.
type Source interface {
	// Doc returns the document if it exists in the view, else nil.
	Doc(coll, id string) (*Doc, error)
	// Lookup returns, sorted, ids of documents of coll that may hold
	// value in field: every document that does, possibly more (Eval
	// checks each candidate).
	Lookup(coll, field string, value any) ([]string, error)
}

// Env is the acting change and the document acted on.
type Env struct {
	Author string // author key, as text
	Role   string // the author's role at the change
	Now    uint64 // the change's clock (HLC wall), ms since the epoch
	ID     string // id of the document acted on
	Old    *Doc   // the document before the action; nil if it did not exist
	New    *Doc   // after it; nil for a delete
}

// Outcome is a rule's verdict and what it relied on.
type Outcome struct {
	OK  bool
	Why string // when false: which part failed, in the rule's own words
	// Relied lists the documents the verdict rests on, as [collection,
	// id]: those looked up by id (found or not) and those an exists found.
	// With the Source's Lookups they are the rule's attestation.
	Relied [][2]string
}

// Eval decides the rule. An error is the Source's.
func (r *Rule) Eval(env Env, src Source) (Outcome, error) {
	e := &evaluator{r: r, env: env, src: src, docs: map[string]*Doc{}, witness: map[*existsNode]string{}, relied: map[[2]string]bool{}}
	ok, err := e.truth(r.root)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{OK: ok, Relied: e.order}
	if !ok {
		out.Why, err = e.explain(r.root)
	}
	return out, err
}

type evaluator struct {
	r       *Rule
	env     Env
	src     Source
	docs    map[string]*Doc // aliases bound by enclosing exists
	witness map[*existsNode]string
	relied  map[[2]string]bool
	order   [][2]string
}

func (e *evaluator) rely(coll, id string) {
	k := [2]string{coll, id}
	if !e.relied[k] {
		e.relied[k] = true
		e.order = append(e.order, k)
	}
}

func (e *evaluator) text(n node) string {
	a, b := n.span()
	return strings.Join(strings.Fields(e.r.Text[a:b]), " ")
}

// truth evaluates a Boolean; null counts as false.
func (e *evaluator) truth(n node) (bool, error) {
	v, err := e.eval(n)
	b, _ := v.(bool)
	return b, err
}

func (e *evaluator) doc(name string) *Doc {
	switch name {
	case "new":
		return e.env.New
	case "old":
		return e.env.Old
	}
	return e.docs[name]
}

func (e *evaluator) eval(n node) (any, error) {
	switch n := n.(type) {
	case *litNode:
		return n.val, nil
	case *nameNode:
		switch n.name {
		case "author":
			return e.env.Author, nil
		case "role":
			return e.env.Role, nil
		case "now":
			return formatTime(time.UnixMilli(int64(e.env.Now))), nil
		}
		if d := e.doc(n.name); d != nil {
			return d, nil
		}
		return nil, nil
	case *pathNode:
		d := e.doc(n.base)
		if d == nil {
			return nil, nil
		}
		if n.field == "id" {
			return d.ID, nil
		}
		return d.Fields[n.field], nil
	case *notNode:
		b, err := e.truth(n.x)
		return !b, err
	case *binNode:
		return e.evalBin(n)
	case *inNode:
		x, err := e.eval(n.x)
		if err != nil || x == nil {
			return false, err
		}
		for _, lit := range n.list {
			if compare(n.cmp, x, lit.val) == 0 {
				return true, nil
			}
		}
		return false, nil
	case *callNode:
		return e.evalCall(n)
	case *existsNode:
		return e.evalExists(n)
	}
	return nil, fmt.Errorf("unknown node %T", n)
}

func (e *evaluator) evalBin(n *binNode) (any, error) {
	switch n.op {
	case "and":
		l, err := e.truth(n.l)
		if err != nil || !l {
			return false, err
		}
		return e.truth(n.r)
	case "or":
		l, err := e.truth(n.l)
		if err != nil || l {
			return l, err
		}
		return e.truth(n.r)
	}
	l, err := e.eval(n.l)
	if err != nil {
		return nil, err
	}
	r, err := e.eval(n.r)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "==", "!=":
		var eq bool
		switch {
		case n.cmp == tNull:
			eq = (l == nil) == (r == nil)
		case l == nil || r == nil:
			eq = false // a missing value equals nothing
		default:
			eq = compare(n.cmp, l, r) == 0
		}
		return eq == (n.op == "=="), nil
	case "<", "<=", ">", ">=":
		if l == nil || r == nil {
			return false, nil
		}
		c := compare(n.cmp, l, r)
		switch n.op {
		case "<":
			return c < 0, nil
		case "<=":
			return c <= 0, nil
		case ">":
			return c > 0, nil
		}
		return c >= 0, nil
	case "+", "-":
		if l == nil || r == nil {
			return nil, nil
		}
		sign := int64(1)
		if n.op == "-" {
			sign = -1
		}
		// Values have the types the checker inferred; anything else (which
		// a schema-valid document never holds) yields null, never a panic.
		li, lok := l.(int64)
		ri, rok := r.(int64)
		switch n.cmp {
		case tInt:
			if lok && rok {
				return li + sign*ri, nil
			}
		case tFloat:
			if isNumber(l) && isNumber(r) {
				return toFloat(l) + float64(sign)*toFloat(r), nil
			}
		case tDuration:
			if lt, ok := parseTime(l); ok { // DateTime - DateTime
				if rt, ok := parseTime(r); ok {
					return lt.Sub(rt).Milliseconds(), nil
				}
				return nil, nil
			}
			if lok && rok {
				return li + sign*ri, nil
			}
		case tTime:
			if t, ok := parseTime(l); ok && rok {
				return formatTime(t.Add(time.Duration(sign*ri) * time.Millisecond)), nil
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("operator %s", n.op)
}

func (e *evaluator) evalCall(n *callNode) (any, error) {
	var args []any
	for _, a := range n.args {
		v, err := e.eval(a)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	switch n.fn {
	case "creator":
		if d, ok := args[0].(*Doc); ok && d.Creator != "" {
			return d.Creator, nil
		}
		return nil, nil
	case "days", "hours", "minutes", "seconds":
		if k, ok := args[0].(int64); ok {
			return k * durations[n.fn], nil
		}
		return nil, nil
	case "contains":
		l, _ := args[0].([]any)
		if args[1] == nil {
			return false, nil
		}
		for _, x := range l {
			if compare(tNull, x, args[1]) == 0 {
				return true, nil
			}
		}
		return false, nil
	}
	return nil, fmt.Errorf("function %s", n.fn)
}

func (e *evaluator) evalExists(n *existsNode) (any, error) {
	v, err := e.eval(n.driveVal)
	if err != nil || v == nil {
		return false, err
	}
	var ids []string
	if n.driveField == "id" {
		s, ok := v.(string)
		if !ok {
			return false, nil
		}
		ids = []string{s}
		e.rely(n.coll, s)
	} else {
		key, ok := IndexValue(n.driveKind, v)
		if !ok {
			return false, nil
		}
		if ids, err = e.src.Lookup(n.coll, n.driveField, key); err != nil {
			return false, err
		}
	}
	for _, id := range ids {
		d, err := e.src.Doc(n.coll, id)
		if err != nil {
			return false, err
		}
		if d == nil {
			continue
		}
		e.docs[n.alias] = d
		ok, err := e.truth(n.where)
		delete(e.docs, n.alias)
		if err != nil {
			return false, err
		}
		if ok {
			e.witness[n] = n.coll + "/" + id
			e.rely(n.coll, id)
			return true, nil
		}
	}
	return false, nil
}

// explain says why n, which evaluated to false, is false.
func (e *evaluator) explain(n node) (string, error) {
	switch x := n.(type) {
	case *binNode:
		if x.op == "or" {
			l, err := e.explain(x.l)
			if err != nil {
				return "", err
			}
			r, err := e.explain(x.r)
			if err != nil {
				return "", err
			}
			return l + "; " + r, nil
		}
		if x.op == "and" {
			l, err := e.truth(x.l)
			if err != nil {
				return "", err
			}
			if !l {
				return e.explain(x.l)
			}
			return e.explain(x.r)
		}
	case *notNode:
		if ex, ok := x.x.(*existsNode); ok {
			if w := e.witness[ex]; w != "" {
				return fmt.Sprintf("%s is false: %s matches", e.text(x), w), nil
			}
		}
	case *existsNode:
		return fmt.Sprintf("%s is false: no document matches", e.text(x)), nil
	}
	return fmt.Sprintf("%s is false", e.text(n)), nil
}

// IndexValue is the canonical value documents whose field of kind k equals
// v are indexed under (Int and Float compare as numbers), and whether any
// can match.
func IndexValue(k Kind, v any) (any, bool) {
	switch k {
	case Int:
		switch x := v.(type) {
		case int64:
			return x, true
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
				return int64(x), true
			}
		}
		return nil, false
	case Float:
		switch x := v.(type) {
		case int64:
			return float64(x), true
		case float64:
			return x, true
		}
		return nil, false
	case String, Ref, DateTime:
		s, ok := v.(string)
		return s, ok
	case Boolean:
		b, ok := v.(bool)
		return b, ok
	}
	return nil, false
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// compare orders two non-null values as kind k: numbers as numbers,
// date-times as instants, everything else canonically (core.CompareValues).
func compare(k tkind, a, b any) int {
	if x, ok := a.(int64); ok {
		if y, ok := b.(int64); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	switch {
	case k == tTime:
		ta, oka := parseTime(a)
		tb, okb := parseTime(b)
		if oka && okb {
			return ta.Compare(tb)
		}
	case k == tFloat, isNumber(a) && isNumber(b):
		x, y := toFloat(a), toFloat(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return core.CompareValues(a, b)
}

func isNumber(v any) bool {
	switch v.(type) {
	case int64, float64:
		return true
	}
	return false
}
