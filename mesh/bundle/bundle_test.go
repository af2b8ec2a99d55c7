package bundle

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

// sample builds a small valid bundle: a genesis and one admin change.
func sample(t testing.TB) Bundle {
	t.Helper()
	k, err := core.PrivateKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	g := &core.Change{Version: core.ChangeVersion, Author: k.Public(), Seq: 1, Height: 1, HLC: core.HLC{Wall: 1000},
		Ops: []core.Op{{Kind: core.OpGenesis, Name: "t", Schema: "type A { name: String }"}}}
	gs, gid, err := core.Sign(g, k)
	if err != nil {
		t.Fatal(err)
	}
	c := &core.Change{Version: core.ChangeVersion, Space: gid, Author: k.Public(), Seq: 2, Prev: gid, Parents: []core.ID{gid}, Height: 2,
		HLC: core.HLC{Wall: 1001}, Ops: []core.Op{{Kind: core.OpCreate, Coll: "A", Doc: "x", Fields: map[string]any{"name": "n"}}}}
	cs, _, err := core.Sign(c, k)
	if err != nil {
		t.Fatal(err)
	}
	ge, err := gs.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ce, err := cs.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return Bundle{Space: gid, Changes: [][]byte{ge, ce}}
}

func TestRoundTripFile(t *testing.T) {
	b := sample(t)
	path := filepath.Join(t.TempDir(), "x.trb")
	if err := WriteFile(path, b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Space != b.Space || len(got.Changes) != 2 || !bytes.Equal(got.Changes[1], b.Changes[1]) {
		t.Fatalf("round trip changed the bundle: %+v", got)
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	data, err := sample(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(data)
	flipped[len(magic)+10] ^= 1
	cases := map[string]struct {
		data []byte
		want error
	}{
		"empty":     {nil, ErrNotBundle},
		"not ours":  {bytes.Repeat([]byte("x"), 100), ErrNotBundle},
		"truncated": {data[:len(data)-5], ErrCorrupt},
		"flipped":   {flipped, ErrCorrupt},
	}
	for name, c := range cases {
		if _, err := Decode(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestDecodeRefusesForgedChange(t *testing.T) {
	b := sample(t)
	s, err := core.DecodeSigned(b.Changes[1])
	if err != nil {
		t.Fatal(err)
	}
	s.Sig[0] ^= 1
	if b.Changes[1], err = s.Encode(); err != nil {
		t.Fatal(err)
	}
	data, err := b.Encode() // a valid checksum over a forged change
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); !errors.Is(err, ErrBadChange) || !errors.Is(err, core.ErrBadSignature) {
		t.Fatalf("forged signature: got %v", err)
	}
	other := sample(t)
	other.Space[0] ^= 1
	if data, err = other.Encode(); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); !errors.Is(err, ErrBadChange) {
		t.Fatalf("change of another space: got %v", err)
	}
}

// FuzzBundleDecode: Decode never panics, and whatever it accepts
// re-encodes to a bundle that decodes to the same changes, each of which
// verifies on its own.
func FuzzBundleDecode(f *testing.F) {
	good, err := sample(f).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append([]byte{}, magic...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err != nil {
			if len(b.Changes) != 0 {
				t.Fatalf("failed decode returned %d changes", len(b.Changes))
			}
			return
		}
		for i, env := range b.Changes {
			if _, _, _, err := core.Open(env); err != nil {
				t.Fatalf("accepted change %d does not verify on its own: %v", i, err)
			}
		}
		again, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := Decode(again)
		if err != nil || len(b2.Changes) != len(b.Changes) {
			t.Fatalf("re-encoded bundle: %v", err)
		}
	})
}
