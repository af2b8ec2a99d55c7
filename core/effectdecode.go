package core

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// decodeEffect decodes an effect (Unmarshal of an *Effect). The effect
// log decodes every effect a sink applies, and the reflective decoder was
// most of a backfill's CPU; so the canonical form appendCBOR writes (an
// array of its ten fields, the post-image a map of canonical values) is
// decoded by hand here. Anything else (a tag, an indefinite length, a
// duplicate key, a value that is not canonical, a half-precision float,
// bytes that are not well formed) goes to the reflective decoder, which
// decides: the result is always what it gives (effectdecode_test.go
// checks it on seeded random effects and by fuzzing).
func decodeEffect(b []byte, e *Effect) error {
	d := effectDecoder{b: b, s: string(b)}
	if d.effect(e) && d.i == len(b) {
		return nil
	}
	*e = Effect{}
	return decMode.Unmarshal(b, e)
}

// Limits of the reflective decoder (decMode): past them it fails, so the
// fast path leaves such input to it.
const (
	effectMaxItems = 131072 // array elements, map pairs
	effectMaxDepth = 16     // well under core's 32 nested levels
)

// effectDecoder reads canonical CBOR from b; ok false means "leave it to
// the reflective decoder", never a verdict on the input.
type effectDecoder struct {
	b []byte
	// s is b as one string: every text of the effect is a piece of it,
	// so decoding an effect allocates its strings once (b is only valid
	// while the log is read).
	s string
	i int
}

// head reads an initial byte and its argument: the major type and n.
func (d *effectDecoder) head() (major byte, n uint64, ok bool) {
	if d.i >= len(d.b) {
		return 0, 0, false
	}
	c := d.b[d.i]
	d.i++
	major, ai := c>>5, c&31
	var w int
	switch {
	case ai < 24:
		return major, uint64(ai), true
	case ai == 24:
		w = 1
	case ai == 25:
		w = 2
	case ai == 26:
		w = 4
	case ai == 27:
		w = 8
	default: // reserved, or an indefinite length
		return 0, 0, false
	}
	if len(d.b)-d.i < w {
		return 0, 0, false
	}
	p := d.b[d.i : d.i+w]
	d.i += w
	switch w {
	case 1:
		n = uint64(p[0])
	case 2:
		n = uint64(binary.BigEndian.Uint16(p))
	case 4:
		n = uint64(binary.BigEndian.Uint32(p))
	default:
		n = binary.BigEndian.Uint64(p)
	}
	return major, n, true
}

// count reads the head of an array (major 4) or map (5) whose items fit
// in what is left of the input.
func (d *effectDecoder) count(want byte) (int, bool) {
	major, n, ok := d.head()
	if !ok || major != want || n > effectMaxItems || n > uint64(len(d.b)-d.i) {
		return 0, false
	}
	return int(n), true
}

func (d *effectDecoder) uint() (uint64, bool) {
	major, n, ok := d.head()
	return n, ok && major == 0
}

func (d *effectDecoder) text() (string, bool) {
	major, n, ok := d.head()
	if !ok || major != 3 || n > uint64(len(d.b)-d.i) {
		return "", false
	}
	t := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	if !utf8.ValidString(t) {
		return "", false
	}
	return t, true
}

// null consumes a CBOR null if one is next.
func (d *effectDecoder) null() bool {
	if d.i < len(d.b) && d.b[d.i] == 0xf6 {
		d.i++
		return true
	}
	return false
}

func (d *effectDecoder) effect(e *Effect) bool {
	if n, ok := d.count(4); !ok || n != 10 {
		return false
	}
	var ok bool
	if e.LSN, ok = d.uint(); !ok {
		return false
	}
	if e.Collection, ok = d.text(); !ok {
		return false
	}
	if e.DocID, ok = d.text(); !ok {
		return false
	}
	kind, ok := d.uint()
	if !ok || kind > math.MaxUint8 {
		return false
	}
	e.Kind = EffectKind(kind)
	if !d.null() {
		if e.Doc, ok = d.doc(); !ok {
			return false
		}
	}
	if !d.null() {
		n, ok := d.count(4)
		if !ok {
			return false
		}
		e.Changes = make([]string, n)
		for k := range n {
			if e.Changes[k], ok = d.text(); !ok {
				return false
			}
		}
	}
	for _, s := range []*string{&e.Author, &e.HLC, &e.LastChange, &e.SchemaID} {
		if *s, ok = d.text(); !ok {
			return false
		}
	}
	return true
}

func (d *effectDecoder) doc() (map[string]any, bool) {
	n, ok := d.count(5)
	if !ok {
		return nil, false
	}
	m := make(map[string]any, n)
	for range n {
		k, ok := d.text()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		v, ok := d.value(2)
		if !ok {
			return nil, false
		}
		m[k] = v
	}
	return m, true
}

// value reads a canonical value (core's list of them) at nesting level
// depth.
func (d *effectDecoder) value(depth int) (any, bool) {
	if d.i >= len(d.b) || depth > effectMaxDepth {
		return nil, false
	}
	switch c := d.b[d.i]; c {
	case 0xf4:
		d.i++
		return false, true
	case 0xf5:
		d.i++
		return true, true
	case 0xf6:
		d.i++
		return nil, true
	case 0xfa: // single precision
		if len(d.b)-d.i < 5 {
			return nil, false
		}
		f := math.Float32frombits(binary.BigEndian.Uint32(d.b[d.i+1:]))
		d.i += 5
		return float64(f), true
	case 0xfb: // double precision
		if len(d.b)-d.i < 9 {
			return nil, false
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.i+1:]))
		d.i += 9
		return f, true
	case 0xf9: // half precision: the reflective decoder converts it
		if len(d.b)-d.i < 3 {
			return nil, false
		}
		var v any
		if decMode.Unmarshal(d.b[d.i:d.i+3], &v) != nil {
			return nil, false
		}
		d.i += 3
		return v, true
	}
	start := d.i
	major, n, ok := d.head()
	if !ok {
		return nil, false
	}
	switch major {
	case 0:
		if n > math.MaxInt64 {
			return nil, false
		}
		return int64(n), true
	case 1:
		if n > math.MaxInt64 {
			return nil, false
		}
		return -1 - int64(n), true
	case 2:
		if n > uint64(len(d.b)-d.i) {
			return nil, false
		}
		p := append([]byte{}, d.b[d.i:d.i+int(n)]...)
		d.i += int(n)
		return p, true
	case 3:
		d.i = start
		return d.text()
	case 4:
		d.i = start
		n, ok := d.count(4)
		if !ok {
			return nil, false
		}
		l := make([]any, n)
		for k := range n {
			if l[k], ok = d.value(depth + 1); !ok {
				return nil, false
			}
		}
		return l, true
	}
	return nil, false // maps, tags, other simple values
}
