package core

import "fmt"

// IDs and keys encode in CBOR as a 32-byte byte string. The codec copies
// a fixed-size array element by element through reflection, which was a
// tenth of a bulk write's CPU; as binary marshalers they are copied in one
// piece, with the same bytes (TestBinaryEncodingUnchanged).

// MarshalBinary returns the ID's 32 bytes (not a copy: on a pointer, so
// the codec passes addressable IDs without copying them).
func (id *ID) MarshalBinary() ([]byte, error) { return id[:], nil }

// UnmarshalBinary sets the ID from exactly 32 bytes.
func (id *ID) UnmarshalBinary(b []byte) error {
	if len(b) != len(id) {
		return fmt.Errorf("change id is %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return nil
}

// MarshalBinary returns the key's 32 bytes (not a copy).
func (k *PublicKey) MarshalBinary() ([]byte, error) { return k[:], nil }

// UnmarshalBinary sets the key from exactly 32 bytes.
func (k *PublicKey) UnmarshalBinary(b []byte) error {
	if len(b) != len(k) {
		return fmt.Errorf("public key is %d bytes, want %d", len(b), len(k))
	}
	copy(k[:], b)
	return nil
}
