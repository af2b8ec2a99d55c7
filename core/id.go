package core

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// ID names a change by content: the SHA-256 digest of its canonical CBOR
// body. Its text form is a CIDv1 (dag-cbor codec, sha2-256 multihash), so
// any IPLD tool can address it; inside Tributary the bare digest is used,
// which makes IDs comparable and usable as map keys.
type ID [32]byte

// IDOf returns the ID of a change body.
func IDOf(body []byte) ID { return sha256.Sum256(body) }

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// Compare orders IDs bytewise.
func (id ID) Compare(o ID) int { return bytes.Compare(id[:], o[:]) }

// CID returns the CIDv1 form.
func (id ID) CID() cid.Cid {
	m, err := mh.Encode(id[:], mh.SHA2_256)
	if err != nil {
		panic(err) // unreachable: the digest length is fixed
	}
	return cid.NewCidV1(cid.DagCBOR, m)
}

// String renders the CIDv1 in base32 ("bafyrei...").
func (id ID) String() string {
	if id.IsZero() {
		return ""
	}
	return id.CID().String()
}

// Short is a prefix of String for logs and tables.
func (id ID) Short() string {
	s := id.String()
	if len(s) > 16 {
		return s[len(s)-12:]
	}
	return s
}

// ParseID parses the CID text of a change ID.
func ParseID(s string) (ID, error) {
	var id ID
	c, err := cid.Decode(s)
	if err != nil {
		return id, fmt.Errorf("parse change id %q: %w", s, err)
	}
	dec, err := mh.Decode(c.Hash())
	if err != nil || c.Type() != cid.DagCBOR || dec.Code != mh.SHA2_256 || len(dec.Digest) != len(id) {
		return id, fmt.Errorf("parse change id %q: not a dag-cbor sha2-256 CID", s)
	}
	copy(id[:], dec.Digest)
	return id, nil
}

// MarshalText makes IDs render as CID strings in JSON.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses a CID string.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}
