package schema

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The rule language (see docs/RULES.md):
//
//	expr    = and { "or" and }
//	and     = unary { "and" unary }
//	unary   = "not" unary | compare
//	compare = sum [ ("==" | "!=" | "<" | "<=" | ">" | ">=") sum ]
//	        | sum "in" "[" literal { "," literal } "]"
//	sum     = atom { ("+" | "-") atom }
//	atom    = literal | "(" expr ")" | exists | call | name [ "." name ]
//	exists  = "exists" "(" Collection alias [ "where" expr ] ")"
//	call    = name "(" [ expr { "," expr } ] ")"
//	literal = string ('…' or "…") | integer | float | "true" | "false" | "null"
//
// This file turns the text into a tree; check.go types it.

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokIdent
	tokInt
	tokFloat
	tokString
	tokPunct
)

type token struct {
	kind tokKind
	text string // identifier, punctuation, or the source text of a literal
	val  any    // literal value
	pos  int    // byte offset in the rule text
}

type lexer struct {
	src  string
	toks []token
}

func lex(src string) ([]token, error) {
	l := &lexer{src: src}
	i := 0
	for i < len(src) {
		r, w := utf8.DecodeRuneInString(src[i:])
		switch {
		case r == '#': // comment to end of line
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case unicode.IsSpace(r):
			i += w
		case r == '_' || unicode.IsLetter(r):
			j := i
			for j < len(src) {
				r, w := utf8.DecodeRuneInString(src[j:])
				if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				j += w
			}
			l.toks = append(l.toks, token{kind: tokIdent, text: src[i:j], pos: i})
			i = j
		case r >= '0' && r <= '9':
			j := i
			float := false
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.' || src[j] == 'e' || src[j] == 'E' ||
				((src[j] == '+' || src[j] == '-') && (src[j-1] == 'e' || src[j-1] == 'E'))) {
				if src[j] == '.' || src[j] == 'e' || src[j] == 'E' {
					float = true
				}
				j++
			}
			text := src[i:j]
			if float {
				f, err := strconv.ParseFloat(text, 64)
				if err != nil {
					return nil, posError(src, i, "bad number %q", text)
				}
				l.toks = append(l.toks, token{kind: tokFloat, text: text, val: f, pos: i})
			} else {
				n, err := strconv.ParseInt(text, 10, 64)
				if err != nil {
					return nil, posError(src, i, "bad integer %q (64 bits)", text)
				}
				l.toks = append(l.toks, token{kind: tokInt, text: text, val: n, pos: i})
			}
			i = j
		case r == '"' || r == '\'':
			s, n, err := unquote(src[i:])
			if err != nil {
				return nil, posError(src, i, "%v", err)
			}
			l.toks = append(l.toks, token{kind: tokString, text: src[i : i+n], val: s, pos: i})
			i += n
		default:
			p := ""
			for _, op := range []string{"==", "!=", "<=", ">=", "<", ">", "+", "-", "(", ")", "[", "]", ",", "."} {
				if strings.HasPrefix(src[i:], op) {
					p = op
					break
				}
			}
			if p == "" {
				if r == '=' {
					return nil, posError(src, i, "unexpected \"=\" (equality is \"==\")")
				}
				return nil, posError(src, i, "unexpected %q", r)
			}
			l.toks = append(l.toks, token{kind: tokPunct, text: p, pos: i})
			i += len(p)
		}
	}
	l.toks = append(l.toks, token{kind: tokEOF, pos: len(src)})
	return l.toks, nil
}

// unquote reads a quoted string at the start of s ('…' or "…", with \\,
// \', \", \n, \t and \uXXXX escapes) and returns it and its length in s.
func unquote(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\n':
			return "", 0, fmt.Errorf("string not closed before the end of the line")
		case c == '\\' && i+1 < len(s):
			switch e := s[i+1]; e {
			case '\\', '\'', '"':
				b.WriteByte(e)
				i += 2
			case 'n':
				b.WriteByte('\n')
				i += 2
			case 't':
				b.WriteByte('\t')
				i += 2
			case 'u':
				if i+6 > len(s) {
					return "", 0, fmt.Errorf("bad \\u escape")
				}
				n, err := strconv.ParseUint(s[i+2:i+6], 16, 32)
				if err != nil {
					return "", 0, fmt.Errorf("bad \\u escape %q", s[i:i+6])
				}
				b.WriteRune(rune(n))
				i += 6
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c", e)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("string not closed")
}

// ruleError is an error at a position of a rule's text.
type ruleError struct {
	line, col int
	msg       string
}

func (e *ruleError) Error() string { return fmt.Sprintf("%d:%d: %s", e.line, e.col, e.msg) }

func posError(src string, pos int, format string, args ...any) error {
	line, col := 1, 1
	for _, r := range src[:min(pos, len(src))] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &ruleError{line: line, col: col, msg: fmt.Sprintf(format, args...)}
}

// The tree. Every node keeps its span in the text, for error messages and
// for explaining a false condition.
type node interface{ span() (int, int) }

type (
	litNode struct {
		from, to int
		val      any // canonical value (nil for null)
		t        typ
	}
	nameNode struct { // a bare name: author, role, now, new, old, or an alias
		from, to int
		name     string
	}
	pathNode struct { // base.field (base: new, old or an alias)
		from, to int
		base     string
		field    string
		f        *Field // nil for "id"
	}
	notNode struct {
		from, to int
		x        node
	}
	binNode struct { // and or == != < <= > >= + -
		from, to int
		op       string
		l, r     node
		cmp      tkind // operand kind of a comparison, set by check
	}
	inNode struct {
		from, to int
		x        node
		list     []*litNode
		cmp      tkind
	}
	callNode struct {
		from, to int
		fn       string
		args     []node
	}
	existsNode struct {
		from, to   int
		coll       string
		alias      string
		where      node
		driveField string // "id" or an indexable field: the lookup key
		driveKind  Kind
		driveVal   node
	}
)

func (n *litNode) span() (int, int)    { return n.from, n.to }
func (n *nameNode) span() (int, int)   { return n.from, n.to }
func (n *pathNode) span() (int, int)   { return n.from, n.to }
func (n *notNode) span() (int, int)    { return n.from, n.to }
func (n *binNode) span() (int, int)    { return n.from, n.to }
func (n *inNode) span() (int, int)     { return n.from, n.to }
func (n *callNode) span() (int, int)   { return n.from, n.to }
func (n *existsNode) span() (int, int) { return n.from, n.to }

type ruleParser struct {
	src   string
	toks  []token
	i     int
	depth int
}

// maxDepth bounds nesting, so a hostile schema cannot exhaust the stack.
const maxDepth = 64

func parseExpr(src string) (node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &ruleParser{src: src, toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errAt(t, "unexpected %s after the end of the condition", describeTok(t))
	}
	return n, nil
}

func (p *ruleParser) peek() token { return p.toks[p.i] }
func (p *ruleParser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *ruleParser) errAt(t token, format string, args ...any) error {
	return posError(p.src, t.pos, format, args...)
}

func describeTok(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of text"
	case tokIdent:
		return fmt.Sprintf("%q", t.text)
	case tokPunct:
		return fmt.Sprintf("%q", t.text)
	}
	return t.text
}

func (p *ruleParser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tokIdent && t.text == w
}

func (p *ruleParser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tokPunct && t.text == s
}

func (p *ruleParser) expect(s string) (token, error) {
	t := p.next()
	if (t.kind == tokPunct || t.kind == tokIdent) && t.text == s {
		return t, nil
	}
	return t, p.errAt(t, "want %q, got %s", s, describeTok(t))
}

func (p *ruleParser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errAt(p.peek(), "condition nested deeper than %d", maxDepth)
	}
	return nil
}

func (p *ruleParser) or() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &binNode{from: start(l), to: end(r), op: "or", l: l, r: r}
	}
	return l, nil
}

func (p *ruleParser) and() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &binNode{from: start(l), to: end(r), op: "and", l: l, r: r}
	}
	return l, nil
}

func (p *ruleParser) unary() (node, error) {
	if p.isWord("not") {
		t := p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &notNode{from: t.pos, to: end(x), x: x}, nil
	}
	return p.compare()
}

func (p *ruleParser) compare() (node, error) {
	l, err := p.sum()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tokPunct && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
		p.next()
		r, err := p.sum()
		if err != nil {
			return nil, err
		}
		return &binNode{from: start(l), to: end(r), op: t.text, l: l, r: r}, nil
	case p.isWord("in"):
		p.next()
		if _, err := p.expect("["); err != nil {
			return nil, err
		}
		n := &inNode{from: start(l), x: l}
		for {
			lt := p.next()
			lit, ok := literal(lt)
			if !ok {
				return nil, p.errAt(lt, "in [...] takes literals only, got %s", describeTok(lt))
			}
			n.list = append(n.list, lit)
			if p.isPunct(",") {
				p.next()
				continue
			}
			closing, err := p.expect("]")
			if err != nil {
				return nil, err
			}
			n.to = closing.pos + 1
			return n, nil
		}
	}
	return l, nil
}

func (p *ruleParser) sum() (node, error) {
	l, err := p.atom()
	if err != nil {
		return nil, err
	}
	for p.isPunct("+") || p.isPunct("-") {
		op := p.next().text
		r, err := p.atom()
		if err != nil {
			return nil, err
		}
		l = &binNode{from: start(l), to: end(r), op: op, l: l, r: r}
	}
	return l, nil
}

func literal(t token) (*litNode, bool) {
	to := t.pos + len(t.text)
	switch t.kind {
	case tokString:
		return &litNode{from: t.pos, to: to, val: t.val, t: typ{k: tString}}, true
	case tokInt:
		return &litNode{from: t.pos, to: to, val: t.val, t: typ{k: tInt}}, true
	case tokFloat:
		return &litNode{from: t.pos, to: to, val: t.val, t: typ{k: tFloat}}, true
	case tokIdent:
		switch t.text {
		case "true", "false":
			return &litNode{from: t.pos, to: to, val: t.text == "true", t: typ{k: tBool}}, true
		case "null":
			return &litNode{from: t.pos, to: to, t: typ{k: tNull}}, true
		}
	}
	return nil, false
}

var keywords = map[string]bool{"and": true, "or": true, "not": true, "in": true, "exists": true, "where": true,
	"true": true, "false": true, "null": true}

func (p *ruleParser) atom() (node, error) {
	t := p.peek()
	if t.kind == tokPunct && t.text == "-" { // negative literal
		p.next()
		n := p.peek()
		if n.kind == tokInt || n.kind == tokFloat {
			p.next()
			lit, _ := literal(n)
			lit.from = t.pos
			switch v := lit.val.(type) {
			case int64:
				lit.val = -v
			case float64:
				lit.val = -v
			}
			return lit, nil
		}
		return nil, p.errAt(n, "want a number after \"-\", got %s", describeTok(n))
	}
	if lit, ok := literal(t); ok {
		p.next()
		return lit, nil
	}
	switch {
	case t.kind == tokPunct && t.text == "(":
		p.next()
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
		return x, nil
	case t.kind == tokIdent && t.text == "exists":
		return p.exists()
	case t.kind == tokIdent && !keywords[t.text]:
		p.next()
		if p.isPunct("(") {
			return p.call(t)
		}
		if p.isPunct(".") {
			p.next()
			f := p.next()
			if f.kind != tokIdent {
				return nil, p.errAt(f, "want a field name after %q, got %s", t.text+".", describeTok(f))
			}
			return &pathNode{from: t.pos, to: f.pos + len(f.text), base: t.text, field: f.text}, nil
		}
		return &nameNode{from: t.pos, to: t.pos + len(t.text), name: t.text}, nil
	}
	return nil, p.errAt(t, "want a value, a name or exists(...), got %s", describeTok(t))
}

func (p *ruleParser) call(fn token) (node, error) {
	p.next() // (
	n := &callNode{from: fn.pos, fn: fn.text}
	if !p.isPunct(")") {
		for {
			a, err := p.or()
			if err != nil {
				return nil, err
			}
			n.args = append(n.args, a)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
	}
	closing, err := p.expect(")")
	if err != nil {
		return nil, err
	}
	n.to = closing.pos + 1
	return n, nil
}

func (p *ruleParser) exists() (node, error) {
	kw := p.next()
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if _, err := p.expect("("); err != nil {
		return nil, err
	}
	coll := p.next()
	if coll.kind != tokIdent || keywords[coll.text] {
		return nil, p.errAt(coll, "exists( wants a collection name, got %s", describeTok(coll))
	}
	alias := p.next()
	if alias.kind != tokIdent || keywords[alias.text] {
		return nil, p.errAt(alias, "exists(%s wants an alias for the document, e.g. exists(%s x where x.field == ...), got %s", coll.text, coll.text, describeTok(alias))
	}
	n := &existsNode{from: kw.pos, coll: coll.text, alias: alias.text}
	if p.isWord("where") {
		p.next()
		w, err := p.or()
		if err != nil {
			return nil, err
		}
		n.where = w
	}
	closing, err := p.expect(")")
	if err != nil {
		return nil, err
	}
	n.to = closing.pos + 1
	return n, nil
}

func start(n node) int { a, _ := n.span(); return a }
func end(n node) int   { _, b := n.span(); return b }
