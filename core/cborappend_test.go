package core

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// randValue makes a canonical value of every kind, floats and nesting
// included, with string lengths that cross every CBOR head width.
func randValue(rng *rand.Rand, depth int) any {
	switch rng.IntN(10) {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return randText(rng)
	case 3:
		n := []int64{0, 1, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MinInt64, -1, -24, -25, -257}
		return n[rng.IntN(len(n))] + int64(rng.IntN(3)) - 1
	case 4:
		f := []float64{0, 1.5, -2.25, 1e300, math.Inf(1), math.NaN(), 3.141592653589793, 65504, 1e-7}
		return f[rng.IntN(len(f))]
	case 5:
		p := make([]byte, rng.IntN(40))
		for i := range p {
			p[i] = byte(rng.IntN(256))
		}
		return p
	case 6:
		if depth > 2 {
			return int64(rng.IntN(100))
		}
		l := make([]any, rng.IntN(5))
		for i := range l {
			l[i] = randValue(rng, depth+1)
		}
		return l
	case 7:
		if depth > 2 {
			return "leaf"
		}
		return randMap(rng, depth+1)
	}
	return int64(rng.Int64N(1 << 40))
}

func randText(rng *rand.Rand) string {
	lengths := []int{0, 1, 5, 23, 24, 30, 255, 256, 300, 70000}
	n := lengths[rng.IntN(len(lengths))]
	if n == 70000 && rng.IntN(4) != 0 {
		n = 7
	}
	alphabet := "abcXYZ_é日0"
	var sb strings.Builder
	for sb.Len() < n {
		r := []rune(alphabet)
		sb.WriteRune(r[rng.IntN(len(r))])
	}
	return sb.String()
}

func randMap(rng *rand.Rand, depth int) map[string]any {
	if rng.IntN(8) == 0 {
		return nil
	}
	m := map[string]any{}
	for range rng.IntN(8) {
		m[randText(rng)] = randValue(rng, depth)
	}
	return m
}

func randKey(rng *rand.Rand) WriteKey {
	var k WriteKey
	k.HLC = HLC{Wall: rng.Uint64() >> rng.IntN(64), Logical: rng.Uint32() >> rng.IntN(32)}
	for i := range k.Author {
		k.Author[i] = byte(rng.IntN(256))
	}
	for i := range k.Change {
		k.Change[i] = byte(rng.IntN(256))
	}
	k.Op = rng.Uint32() >> rng.IntN(32)
	return k
}

func randRegister(rng *rand.Rand) Register {
	var r Register
	for range rng.IntN(3) {
		r.Writes = append(r.Writes, Write{Key: randKey(rng), Value: randValue(rng, 0)})
	}
	return r
}

func randState(rng *rand.Rand) *DocState {
	d := &DocState{Exists: randRegister(rng), Last: randKey(rng)}
	if rng.IntN(2) == 0 {
		d.DeleteKey = randKey(rng)
	}
	if rng.IntN(5) != 0 {
		d.Fields = map[string]*Register{}
		for range rng.IntN(6) {
			r := randRegister(rng)
			d.Fields[randText(rng)] = &r
		}
		if rng.IntN(10) == 0 {
			d.Fields["nilreg"] = nil
		}
	}
	if rng.IntN(2) == 0 {
		d.Counters = map[string][]Increment{}
		for range rng.IntN(3) {
			var incs []Increment
			for range rng.IntN(3) {
				incs = append(incs, Increment{Key: randKey(rng), Delta: rng.Int64() >> rng.IntN(64)})
			}
			d.Counters[randText(rng)] = incs
		}
	}
	if rng.IntN(2) == 0 {
		d.Sets = map[string][]SetElement{}
		for range rng.IntN(3) {
			var els []SetElement
			for range rng.IntN(3) {
				e := SetElement{Value: randValue(rng, 1)}
				for range rng.IntN(3) {
					e.Adds = append(e.Adds, randKey(rng))
				}
				for range rng.IntN(2) {
					e.Removes = append(e.Removes, randKey(rng))
				}
				els = append(els, e)
			}
			d.Sets[randText(rng)] = els
		}
	}
	return d
}

func randEffect(rng *rand.Rand) *Effect {
	return randEffectOf(rng, randText, func(rng *rand.Rand) any { return randValue(rng, 0) })
}

// randEffectOf makes an effect with texts and post-image values from the
// given generators (the encoder test's and the decoder test's differ).
func randEffectOf(rng *rand.Rand, text func(*rand.Rand) string, value func(*rand.Rand) any) *Effect {
	e := &Effect{
		LSN: rng.Uint64() >> rng.IntN(64), Collection: text(rng), DocID: text(rng),
		Kind: EffectKind(1 + rng.IntN(2)), Author: text(rng), HLC: text(rng), LastChange: text(rng), SchemaID: text(rng),
	}
	if rng.IntN(4) > 0 {
		e.Doc = map[string]any{}
		for range rng.IntN(8) {
			e.Doc[text(rng)] = value(rng)
		}
	}
	if rng.IntN(3) > 0 {
		e.Changes = make([]string, rng.IntN(4))
		for i := range e.Changes {
			e.Changes[i] = text(rng)
		}
	}
	return e
}

// The effect's hand-written encoder gives exactly the bytes of the
// reflective canonical encoder. A state's compact encoding decodes to the
// same state (its plain canonical bytes equal), encodes equal states to
// equal bytes, and the plain encoding older stores hold still decodes.
func TestHandEncodingMatchesCanonical(t *testing.T) {
	seed := uint64(20261202)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var plainBytes, compactBytes int
	for i := range 3000 {
		st := randState(rng)
		plain, err := encMode.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		compact, err := Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		plainBytes, compactBytes = plainBytes+len(plain), compactBytes+len(compact)
		for name, enc := range map[string][]byte{"compact": compact, "plain": plain} {
			var back DocState
			if err := Unmarshal(enc, &back); err != nil {
				t.Fatalf("state %d: decode the %s encoding: %v", i, name, err)
			}
			if again, _ := encMode.Marshal(&back); !bytes.Equal(again, plain) {
				t.Fatalf("state %d: the %s encoding does not round-trip\n got %x\nwant %x", i, name, again, plain)
			}
			if again, _ := Marshal(&back); !bytes.Equal(again, compact) {
				t.Fatalf("state %d: the %s encoding decodes to a state whose compact bytes differ", i, name)
			}
		}

		sameAsReflective(t, fmt.Sprintf("effect %d", i), randEffect(rng))
	}
	t.Logf("states: %d bytes plain, %d compact", plainBytes, compactBytes)
}

// A document created by one op repeats one (clock, author, change) in
// every field; the compact encoding names it once.
func TestCompactStateOfOneCreate(t *testing.T) {
	var k WriteKey
	k.HLC = HLC{Wall: 1_700_000_000_000, Logical: 3}
	for i := range k.Author {
		k.Author[i], k.Change[i] = byte(i), byte(255-i)
	}
	st := &DocState{}
	op := &Op{Kind: OpCreate, Coll: "Book", Doc: "b1", Fields: map[string]any{"title": "a title", "year": int64(1999), "tags": []any{"x", "y"}}}
	class := func(_, f string) FieldClass {
		if f == "tags" {
			return ClassSet
		}
		return ClassRegister
	}
	st.Apply(op, k, class, nil)
	plain, _ := encMode.Marshal(st)
	compact, err := Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one create of 3 fields: %d bytes plain, %d compact", len(plain), len(compact))
	if len(compact) > 150 || len(compact)*3 > len(plain) {
		t.Fatalf("compact state is %d bytes (plain %d): the key is not shared", len(compact), len(plain))
	}
	var back DocState
	if err := Unmarshal(compact, &back); err != nil {
		t.Fatal(err)
	}
	if again, _ := encMode.Marshal(&back); !bytes.Equal(again, plain) {
		t.Fatal("compact state does not round-trip")
	}
}

// A damaged compact state is an error naming the problem, never a state
// with keys made up.
func TestCompactStateRefusesBadReference(t *testing.T) {
	// [2, [], [[0, true]], null, {}, {}, {}, null]: a reference with no key table.
	bad := []byte{cborArray | 8, 2, cborArray, cborArray | 1, cborArray | 2, 0, cborTrue, cborNull, cborMap, cborMap, cborMap, cborNull}
	var st DocState
	if err := Unmarshal(bad, &st); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("error %v, want the reference named out of range", err)
	}
	future := []byte{cborArray | 8, 3, cborArray, cborArray, cborNull, cborMap, cborMap, cborMap, cborNull}
	if err := Unmarshal(future, &st); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("error %v, want the unknown version named", err)
	}
}

// A value of a type the canonical set does not hold still encodes (the
// reflective encoder takes it), and one that cannot be encoded is an
// error, not a panic or silent bytes.
func TestHandEncodingFallsBack(t *testing.T) {
	ef := &Effect{Doc: map[string]any{"f": uint16(7)}}
	want, _ := encMode.Marshal(ef)
	got, err := Marshal(ef)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("uint16 value: got %x, %v; want %x", got, err, want)
	}
	bad := &DocState{Fields: map[string]*Register{"f": {Writes: []Write{{Value: make(chan int)}}}}}
	if _, err := Marshal(bad); err == nil {
		t.Fatal("a channel value encoded without error")
	}
}

func randOp(rng *rand.Rand) Op {
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	o := Op{Kind: OpKind(1 + rng.IntN(11)), Coll: pick("", "Book", randText(rng)), Doc: pick("", "b1", randText(rng)), Field: pick("", "title")}
	switch rng.IntN(6) {
	case 0:
		o.Value = randValue(rng, 0)
	case 1: // empty values that are still values
		o.Value = []any{"", int64(0), false, []any{}, map[string]any{}, []byte{}}[rng.IntN(6)]
	}
	if rng.IntN(3) == 0 {
		o.Fields = randMap(rng, 0)
	}
	if rng.IntN(3) == 0 {
		o.Delta = rng.Int64() >> rng.IntN(64)
		if rng.IntN(2) == 0 {
			o.Delta = -o.Delta
		}
	}
	if rng.IntN(2) == 0 {
		o.Member = randKey(rng).Author
	}
	o.Role, o.Schema, o.Name = pick("", "writer"), pick("", "type Book { title: String }"), pick("", randText(rng))
	for range rng.IntN(3) {
		o.Admins = append(o.Admins, randKey(rng).Author)
	}
	if rng.IntN(2) == 0 {
		o.MaxClockAhead = rng.Uint64() >> rng.IntN(64)
	}
	if rng.IntN(2) == 0 {
		o.Expires = rng.Uint64() >> rng.IntN(64)
	}
	if rng.IntN(6) == 0 {
		o.Reads = []Fact{{Coll: "Book", Doc: "b1"}, {Coll: "Loan", Field: "book", Value: "b1"}}
	}
	return o
}

// A change's hand-written encoding is byte for byte the reflective
// canonical one: its ID depends on it.
func TestChangeHandEncodingMatchesCanonical(t *testing.T) {
	seed := uint64(20261203)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for i := range 3000 {
		k := randKey(rng)
		c := &Change{Version: uint8(rng.IntN(3)), Space: k.Change, Author: k.Author, Seq: rng.Uint64() >> rng.IntN(64), Height: rng.Uint64() >> rng.IntN(64), HLC: k.HLC}
		if rng.IntN(2) == 0 {
			c.Prev = randKey(rng).Change
		}
		for range rng.IntN(4) {
			c.Parents = append(c.Parents, randKey(rng).Change)
		}
		for range rng.IntN(5) {
			c.Ops = append(c.Ops, randOp(rng))
		}
		sameAsReflective(t, fmt.Sprintf("change %d", i), c)
	}
}

// sameAsReflective fails unless Marshal (by hand, for v's type) gives the
// reflective canonical encoder's bytes.
func sameAsReflective(t *testing.T, what string, v any) {
	t.Helper()
	want, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: hand encoding differs\n got %x\nwant %x", what, got, want)
	}
}
