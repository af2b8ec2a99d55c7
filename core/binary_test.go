package core

import (
	"bytes"
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
