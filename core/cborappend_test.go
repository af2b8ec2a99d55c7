package core

import (
	"bytes"
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
	e := &Effect{
		LSN: rng.Uint64() >> rng.IntN(64), Collection: randText(rng), DocID: randText(rng),
		Kind: EffectKind(1 + rng.IntN(2)), Doc: randMap(rng, 0),
		Author: randText(rng), HLC: randText(rng), LastChange: randText(rng), SchemaID: randText(rng),
	}
	for range rng.IntN(4) {
		e.Changes = append(e.Changes, randText(rng))
	}
	return e
}

// The hand-written encoders give exactly the bytes of the reflective
// canonical encoder, and decode back to an equal encoding.
func TestHandEncodingMatchesCanonical(t *testing.T) {
	seed := uint64(20261202)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range 3000 {
		st := randState(rng)
		want, err := encMode.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("state %d: hand encoding differs\n got %x\nwant %x", i, got, want)
		}
		var back DocState
		if err := Unmarshal(got, &back); err != nil {
			t.Fatalf("state %d: decode: %v", i, err)
		}
		if again, _ := encMode.Marshal(&back); !bytes.Equal(again, want) {
			t.Fatalf("state %d: does not round-trip", i)
		}

		ef := randEffect(rng)
		want, err = encMode.Marshal(ef)
		if err != nil {
			t.Fatal(err)
		}
		got, err = Marshal(ef)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("effect %d: hand encoding differs\n got %x\nwant %x", i, got, want)
		}
	}
}

// A value of a type the canonical set does not hold still encodes (the
// reflective encoder takes it), and one that cannot be encoded is an
// error, not a panic or silent bytes.
func TestHandEncodingFallsBack(t *testing.T) {
	st := &DocState{Fields: map[string]*Register{"f": {Writes: []Write{{Value: uint16(7)}}}}}
	want, _ := encMode.Marshal(st)
	got, err := Marshal(st)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("uint16 value: got %x, %v; want %x", got, err, want)
	}
	bad := &DocState{Fields: map[string]*Register{"f": {Writes: []Write{{Value: make(chan int)}}}}}
	if _, err := Marshal(bad); err == nil {
		t.Fatal("a channel value encoded without error")
	}
}
