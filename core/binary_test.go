package core

import (
	"bytes"
	"errors"
	"testing"
)

// The binary marshalers must not change a byte of any encoding: change IDs
// are hashes of it.
func TestBinaryEncodingUnchanged(t *testing.T) {
	var id ID
	var pk PublicKey
	for i := range id {
		id[i], pk[i] = byte(i*7), byte(255-i)
	}
	type plain struct {
		_    struct{} `cbor:",toarray"`
		A    [32]byte
		B    [32]byte
		List [][32]byte
	}
	type typed struct {
		_    struct{} `cbor:",toarray"`
		A    ID
		B    PublicKey
		List []ID
	}
	want, err := Marshal(plain{A: id, B: pk, List: [][32]byte{id, {}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(typed{A: id, B: pk, List: []ID{id, {}}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding changed:\n got %x\nwant %x", got, want)
	}
	var back typed
	if err := Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back.A != id || back.B != pk || len(back.List) != 2 || back.List[0] != id || !back.List[1].IsZero() {
		t.Fatalf("round trip: %+v", back)
	}
	// A byte string of the wrong length is refused, not padded.
	short, _ := Marshal(struct {
		_ struct{} `cbor:",toarray"`
		A []byte
		B []byte
	}{A: id[:31], B: pk[:]})
	if err := Unmarshal(short, &back); err == nil {
		t.Fatal("a 31-byte id decoded")
	}
}

func TestOpenBatch(t *testing.T) {
	k1, _ := PrivateKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	k2, _ := PrivateKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	var envs [][]byte
	var want []ID
	for i, k := range []PrivateKey{k1, k2, k1} {
		c := &Change{Version: ChangeVersion, Author: k.Public(), Seq: 1, Height: 1, HLC: HLC{Wall: uint64(1000 + i)},
			Ops: []Op{{Kind: OpGenesis, Schema: "type Book { title: String }", Name: "x"}}}
		s, id, err := Sign(c, k)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 { // signed by another key than its author's
			s.Sig = k2.SignID(id)
		}
		b, _ := s.Encode()
		envs, want = append(envs, b), append(want, id)
	}
	envs = append(envs, []byte{0xff})
	vs, errs := OpenBatch(envs)
	for i := range 2 {
		if errs[i] != nil || vs[i].Change() == nil || vs[i].ID() != want[i] {
			t.Fatalf("envelope %d: %v %v", i, vs[i].ID(), errs[i])
		}
	}
	if !errors.Is(errs[2], ErrBadSignature) || vs[2].Change() != nil {
		t.Fatalf("forged envelope: %v", errs[2])
	}
	if !errors.Is(errs[3], ErrMalformed) || vs[3].Change() != nil {
		t.Fatalf("garbage: %v", errs[3])
	}
}
