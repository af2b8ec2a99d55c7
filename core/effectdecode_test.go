package core

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// same fails unless decodeEffect and the reflective decoder agree on b: both
// refuse it, or both give the same effect (compared by %#v, which tells
// nil from empty and prints NaN alike).
func same(t *testing.T, b []byte) {
	t.Helper()
	var fast, slow Effect
	errFast := decodeEffect(b, &fast)
	errSlow := decMode.Unmarshal(b, &slow)
	if (errFast == nil) != (errSlow == nil) {
		t.Fatalf("%x: decodeEffect error %v, decMode.Unmarshal error %v", b, errFast, errSlow)
	}
	if errSlow != nil {
		return
	}
	if f, s := fmt.Sprintf("%#v", fast), fmt.Sprintf("%#v", slow); f != s {
		t.Fatalf("%x:\ndecodeEffect   %s\ndecMode.Unmarshal %s", b, f, s)
	}
}

// shortText is a short text with multi-byte runes and NUL.
func shortText(rng *rand.Rand) string {
	const alphabet = "abcXYZ09 _-é€😀\u0000"
	r := []rune(alphabet)
	var sb strings.Builder
	for range rng.IntN(12) {
		sb.WriteRune(r[rng.IntN(len(r))])
	}
	return sb.String()
}

func randScalar(rng *rand.Rand) any {
	switch rng.IntN(9) {
	case 0:
		return shortText(rng)
	case 1:
		return rng.Int64() >> rng.IntN(64)
	case 2:
		return -rng.Int64() >> rng.IntN(64)
	case 3:
		return []float64{0, 1.5, -2.25, 65504, 1e-7, 3.4e38, 1e300, math.Inf(1), math.Inf(-1), 0.1, float64(float32(0.1)), math.SmallestNonzeroFloat64}[rng.IntN(12)]
	case 4:
		return rng.IntN(2) == 0
	case 5:
		b := make([]byte, rng.IntN(4))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	case 6:
		return nil
	case 7:
		return []any{}
	default:
		return rng.Float64() * math.Pow(10, float64(rng.IntN(40)-20))
	}
}

// storedValue is a post-image value as documents hold them: a scalar,
// or a list of scalars.
func storedValue(rng *rand.Rand) any {
	if rng.IntN(4) > 0 {
		return randScalar(rng)
	}
	l := make([]any, rng.IntN(5))
	for i := range l {
		l[i] = randScalar(rng)
	}
	return l
}

func randStoredEffect(rng *rand.Rand) Effect {
	return *randEffectOf(rng, shortText, storedValue)
}

// The hand decoder gives what the reflective one gives, on seeded random
// effects as the log writes them.
func TestDecodeEffectMatchesCore(t *testing.T) {
	seed := uint64(20261202)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range 3000 {
		e := randStoredEffect(rng)
		b, err := Marshal(&e)
		if err != nil {
			t.Fatalf("effect %d: %v", i, err)
		}
		same(t, b)
		var got Effect
		if d := (effectDecoder{b: b, s: string(b)}); !d.effect(&got) || d.i != len(b) {
			t.Fatalf("effect %d (%x): the fast path left a canonical effect to decMode.Unmarshal", i, b)
		}
		// Every byte of a stored effect matters: cut, it must not decode.
		same(t, b[:rng.IntN(len(b))])
	}
}

// Input outside the canonical form goes to decMode.Unmarshal, which decides.
func TestDecodeEffectOddInput(t *testing.T) {
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	head := []byte{0x8a}
	pre := []byte{0x07, 0x64, 'B', 'o', 'o', 'k', 0x62, 'b', '1'}
	kind := []byte{0x01}
	doc := []byte{0xa1, 0x61, 'n', 0x01}
	changes := []byte{0x81, 0x61, 'c'}
	author := []byte{0x61, 'a'}
	rest := []byte{0x61, 'h', 0x61, 'c', 0x61, 's'}
	n := []byte{0xa1, 0x61, 'n'}
	ff8 := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	withDoc := func(d ...[]byte) []byte { return cat(head, pre, kind, cat(d...), changes, author, rest) }
	cases := map[string][]byte{
		"canonical":        cat(head, pre, kind, doc, changes, author, rest),
		"trailing byte":    cat(head, pre, kind, doc, changes, author, rest, []byte{0}),
		"tagged LSN":       cat(head, []byte{0xc1}, pre, kind, doc, changes, author, rest),
		"indefinite array": cat([]byte{0x9f}, pre, kind, doc, changes, author, rest, []byte{0xff}),
		"kind 300":         cat(head, pre, []byte{0x19, 0x01, 0x2c}, doc, changes, author, rest),
		"nine fields":      cat([]byte{0x89}, pre, kind, doc, changes, author, rest[:4]),
		"null author":      cat(head, pre, kind, doc, changes, []byte{0xf6}, rest),
		"null changes":     cat(head, pre, kind, doc, []byte{0xf6}, author, rest),
		"empty changes":    cat(head, pre, kind, doc, []byte{0x80}, author, rest),
		"indefinite doc":   withDoc([]byte{0xbf, 0x61, 'n', 0x01, 0xff}),
		"duplicate key":    withDoc([]byte{0xa2, 0x61, 'n', 0x01, 0x61, 'n', 0x02}),
		"nested map":       withDoc(n, []byte{0xa1, 0x61, 'x', 0x01}),
		"half float":       withDoc(n, []byte{0xf9, 0x3e, 0x00}),
		"half float NaN":   withDoc(n, []byte{0xf9, 0x7e, 0x00}),
		"single float":     withDoc(n, []byte{0xfa, 0x3f, 0xc0, 0x00, 0x00}),
		"undefined":        withDoc(n, []byte{0xf7}),
		"simple 16":        withDoc(n, []byte{0xf0}),
		"huge uint":        withDoc(n, []byte{0x1b}, ff8),
		"huge negint":      withDoc(n, []byte{0x3b}, ff8),
		"long uint":        withDoc(n, []byte{0x1b, 0, 0, 0, 0, 0, 0, 0, 1}),
		"tag in doc":       withDoc(n, []byte{0xc1, 0x01}),
		"bad UTF-8 key":    withDoc([]byte{0xa1, 0x61, 0xff, 0x01}),
		"bad UTF-8 value":  withDoc(n, []byte{0x61, 0xff}),
		"int key":          withDoc([]byte{0xa1, 0x01, 0x01}),
		"null doc":         withDoc([]byte{0xf6}),
		"empty doc":        withDoc([]byte{0xa0}),
		"empty bytes":      withDoc(n, []byte{0x40}),
		"empty list":       withDoc(n, []byte{0x80}),
		"list too long":    withDoc(n, []byte{0x9a, 0x7f, 0xff, 0xff, 0xff}),
		"empty":            nil,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) { same(t, in) })
	}
	var e Effect
	if err := decodeEffect(cases["canonical"], &e); err != nil || e.LSN != 7 || e.DocID != "b1" || e.Doc["n"] != int64(1) || e.SchemaID != "s" {
		t.Fatalf("canonical effect decoded as %+v, %v", e, err)
	}
}

// FuzzDecodeEffect: on any bytes, the hand decoder and decMode.Unmarshal
// agree (go test -fuzz FuzzDecodeEffect ./core/ to search).
func FuzzDecodeEffect(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		e := randStoredEffect(rng)
		b, err := Marshal(&e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { same(t, b) })
}

// BenchmarkDecodeEffect: the hand decoder against decMode.Unmarshal on an
// effect shaped like tributary bench's documents.
func BenchmarkDecodeEffect(b *testing.B) {
	e := Effect{LSN: 123456, Collection: "Item", DocID: "b-000123", Kind: Upsert,
		Doc:     map[string]any{"name": "item 123 of the bench", "n": int64(123), "score": 0.123456789, "note": "a note of some forty characters or so.."},
		Changes: []string{"bafyreigklxkfvhwdkk74qqgqaeeinfknly7m35owlvonjkahvy2syxomuq"}, Author: "qx43m4tb5f6km5cemweh4pybbhp5kplbnzestdjk6ly7wuooucaq",
		HLC: "0000018c2f3a1b2c-0001", LastChange: "bafyreigklxkfvhwdkk74qqgqaeeinfknly7m35owlvonjkahvy2syxomuq", SchemaID: "bafyreihq"}
	enc, err := Marshal(&e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			var out Effect
			if err := decodeEffect(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decMode.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var out Effect
			if err := decMode.Unmarshal(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
