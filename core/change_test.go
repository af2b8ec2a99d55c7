package core

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func testKey(t testing.TB, seed byte) PrivateKey {
	t.Helper()
	k, err := PrivateKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sampleChange(author PublicKey) *Change {
	var parent ID
	parent[0] = 7
	return &Change{
		Version: ChangeVersion, Space: ID{1}, Author: author, Seq: 1,
		Parents: []ID{parent}, Height: 2, HLC: HLC{Wall: 1000, Logical: 3},
		Ops: []Op{
			{Kind: OpCreate, Coll: "Book", Doc: "b1", Fields: map[string]any{"title": "Dune", "year": int64(1965), "price": 9.5, "ok": false, "n": int64(0)}},
			{Kind: OpSet, Coll: "Book", Doc: "b1", Field: "year", Value: int64(0)},
			{Kind: OpIncrement, Coll: "Book", Doc: "b1", Field: "likes", Delta: -2},
		},
	}
}

func TestSignOpenRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	c := sampleChange(k.Public())
	s, id, err := Sign(c, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, gotID, _, err := Open(b)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if gotID != id {
		t.Fatalf("id %s, want %s", gotID, id)
	}
	again, _ := got.Encode()
	if !bytes.Equal(again, s.Body) {
		t.Fatal("decoded change does not re-encode to the same body")
	}
	if v := got.Ops[1].Value; v != int64(0) {
		t.Fatalf("zero value lost in encoding: %#v", v)
	}
	if v := got.Ops[0].Fields["ok"]; v != false {
		t.Fatalf("false lost in encoding: %#v", v)
	}
	parsed, err := ParseID(id.String())
	if err != nil || parsed != id {
		t.Fatalf("ParseID(%s) = %v, %v", id, parsed, err)
	}
}

func TestForgedSignatureRefused(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	c := sampleChange(k.Public())
	s, _, _ := Sign(c, k)
	s.Sig[5] ^= 1
	b, _ := s.Encode()
	if _, _, _, err := Open(b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered signature: got %v, want ErrBadSignature", err)
	}
	// Signed by someone else but claiming k as author.
	c2 := sampleChange(k.Public())
	body, _ := c2.Encode()
	forged := Signed{Body: body, Sig: other.SignID(IDOf(body))}
	b, _ = forged.Encode()
	if _, _, _, err := Open(b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged author: got %v, want ErrBadSignature", err)
	}
	// Body changed after signing.
	s3, _, _ := Sign(sampleChange(k.Public()), k)
	s3.Body[len(s3.Body)-1] ^= 1
	b, _ = s3.Encode()
	if _, _, _, err := Open(b); err == nil {
		t.Fatal("tampered body accepted")
	}
}

func TestBatchVerifyAgreesWithSingle(t *testing.T) {
	seed := uint64(42)
	rng := rand.New(rand.NewPCG(seed, seed))
	var pubs []PublicKey
	var ids []ID
	var sigs [][]byte
	for i := 0; i < 64; i++ {
		k := testKey(t, byte(i+1))
		var id ID
		for j := range id {
			id[j] = byte(rng.IntN(256))
		}
		sig := k.SignID(id)
		if rng.IntN(5) == 0 {
			sig[rng.IntN(len(sig))] ^= 0x10
		}
		pubs, ids, sigs = append(pubs, k.Public()), append(ids, id), append(sigs, sig)
	}
	got := VerifyBatch(pubs, ids, sigs)
	for i := range ids {
		want := VerifyID(pubs[i], ids[i], sigs[i])
		if got[i] != want {
			t.Fatalf("seed %d: entry %d batch=%v single=%v", seed, i, got[i], want)
		}
		if one := VerifyBatch(pubs[i:i+1], ids[i:i+1], sigs[i:i+1]); one[0] != want {
			t.Fatalf("seed %d: entry %d alone: batch=%v single=%v", seed, i, one[0], want)
		}
	}
}

func TestCheckShapeAndPlacement(t *testing.T) {
	k := testKey(t, 1)
	c := sampleChange(k.Public())
	if err := c.CheckShape(); err != nil {
		t.Fatalf("valid change: %v", err)
	}
	parents := []ParentMeta{{Height: 1, HLC: HLC{Wall: 1000}}}
	if err := c.CheckPlacement(parents, 60000); err != nil {
		t.Fatalf("valid placement: %v", err)
	}
	cases := map[string]func(c *Change){
		"wrong height":     func(c *Change) { c.Height = 5 },
		"clock not after":  func(c *Change) { c.HLC = HLC{Wall: 1000} },
		"clock far ahead":  func(c *Change) { c.HLC = HLC{Wall: 1000 + 60001} },
		"unsorted parents": func(c *Change) { c.Parents = []ID{{9}, {3}} },
		"no ops":           func(c *Change) { c.Ops = nil },
		"seq zero":         func(c *Change) { c.Seq = 0 },
		"prev with seq 1":  func(c *Change) { c.Prev = ID{4} },
		"unknown op":       func(c *Change) { c.Ops[0].Kind = 99 },
		"set without field": func(c *Change) {
			c.Ops[1].Field = ""
		},
	}
	for name, mutate := range cases {
		c := sampleChange(k.Public())
		mutate(c)
		err := c.CheckShape()
		if err == nil {
			err = c.CheckPlacement(parents, 60000)
		}
		if !errors.Is(err, ErrInvalidChange) {
			t.Errorf("%s: got %v, want ErrInvalidChange", name, err)
		}
	}
}

func TestNextHLC(t *testing.T) {
	p := HLC{Wall: 1000, Logical: 4}
	if got := NextHLC(p, 900, 100); got.Compare(p) <= 0 {
		t.Fatalf("clock behind parents must still advance: %v", got)
	}
	if got := NextHLC(p, 5000, 100); got.Wall != 1100 {
		t.Fatalf("clock must be bounded to parents+100: %v", got)
	}
	if got := NextHLC(p, 1050, 100); got != (HLC{Wall: 1050}) {
		t.Fatalf("got %v", got)
	}
}

func FuzzDecodeChange(f *testing.F) {
	k, _ := PrivateKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	s, _, _ := Sign(sampleChange(k.Public()), k)
	b, _ := s.Encode()
	f.Add(b)
	f.Add([]byte{0x82, 0x40, 0x40})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, id, sg, err := Open(data)
		if err != nil {
			return
		}
		// Anything accepted re-encodes to itself and keeps its ID.
		body, err := c.Encode()
		if err != nil || !bytes.Equal(body, sg.Body) || IDOf(body) != id {
			t.Fatalf("accepted change is not canonical")
		}
		_ = c.CheckShape()
	})
}

// TestOversizeNamedOnBothPaths: a change over MaxChangeBytes is refused as
// too large by its writer's Sign and, built by hand, by every receiver,
// which names it too large (and malformed: it is not even decoded).
func TestOversizeNamedOnBothPaths(t *testing.T) {
	k := testKey(t, 1)
	c := sampleChange(k.Public())
	c.Ops[0].Fields["title"] = string(bytes.Repeat([]byte("x"), MaxChangeBytes))
	if _, _, err := Sign(c, k); !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrInvalidChange) {
		t.Fatalf("Sign of an oversize change: %v, want ErrTooLarge and ErrInvalidChange", err)
	}
	body, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	env, err := Signed{Body: body, Sig: k.SignID(IDOf(body))}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Open(env); !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("Open of an oversize envelope: %v, want ErrTooLarge and ErrMalformed", err)
	}
	if _, err := (Signed{Body: body}).Decode(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decode of an oversize body: %v, want ErrTooLarge", err)
	}
}
