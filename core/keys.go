package core

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"strings"

	"github.com/hdevalence/ed25519consensus"
)

// PublicKey is an Ed25519 public key: the identity of an author and of a
// node (the libp2p peer ID is derived from the same key).
type PublicKey [ed25519.PublicKeySize]byte

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// String renders the key as lowercase unpadded base32 (52 characters).
func (k PublicKey) String() string { return strings.ToLower(keyEncoding.EncodeToString(k[:])) }

// IsZero reports whether k is the zero key.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// ParsePublicKey parses the String form of a key.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	b, err := keyEncoding.DecodeString(strings.ToUpper(strings.TrimSpace(s)))
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("parse public key %q: not a 52-character base32 Ed25519 key", s)
	}
	copy(k[:], b)
	return k, nil
}

// PrivateKey is an Ed25519 private key.
type PrivateKey ed25519.PrivateKey

// GenerateKey makes a new key from rand (crypto/rand when nil).
func GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return PrivateKey(priv), nil
}

// PrivateKeyFromSeed rebuilds a key from its 32-byte seed.
func PrivateKeyFromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("private key seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return PrivateKey(ed25519.NewKeyFromSeed(seed)), nil
}

// Seed returns the 32-byte seed the key can be rebuilt from.
func (k PrivateKey) Seed() []byte { return ed25519.PrivateKey(k).Seed() }

// Public returns the public half.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	copy(p[:], ed25519.PrivateKey(k).Public().(ed25519.PublicKey))
	return p
}

// signingDomain separates change signatures from any other use of the key.
const signingDomain = "tributary/change/v1\x00"

func signedMessage(id ID) []byte {
	msg := make([]byte, 0, len(signingDomain)+len(id))
	msg = append(msg, signingDomain...)
	return append(msg, id[:]...)
}

// SignID signs a change ID.
func (k PrivateKey) SignID(id ID) []byte {
	return ed25519.Sign(ed25519.PrivateKey(k), signedMessage(id))
}

// VerifyID checks sig over id under ZIP-215 rules, so that single and
// batch verification agree on every input.
func VerifyID(pub PublicKey, id ID, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519consensus.Verify(ed25519.PublicKey(pub[:]), signedMessage(id), sig)
}

// VerifyBatch verifies many signatures at once and returns, per input,
// whether it verified. A whole batch is checked with one multi-scalar
// multiplication; only when it fails are entries checked one by one to
// find the bad ones. ZIP-215 makes both paths give the same verdicts.
func VerifyBatch(pubs []PublicKey, ids []ID, sigs [][]byte) []bool {
	ok := make([]bool, len(ids))
	if len(ids) == 0 {
		return ok
	}
	if len(ids) == 1 {
		// A batch of one costs about twice a single verification (a gossip
		// push of one change is the common case).
		ok[0] = VerifyID(pubs[0], ids[0], sigs[0])
		return ok
	}
	bv := ed25519consensus.NewBatchVerifier()
	wellFormed := true
	for i := range ids {
		if len(sigs[i]) != ed25519.SignatureSize {
			wellFormed = false
			continue
		}
		bv.Add(ed25519.PublicKey(pubs[i][:]), signedMessage(ids[i]), sigs[i])
	}
	if wellFormed && bv.Verify() {
		for i := range ok {
			ok[i] = true
		}
		return ok
	}
	for i := range ids {
		ok[i] = VerifyID(pubs[i], ids[i], sigs[i])
	}
	return ok
}

// MarshalText makes keys render as their base32 text in JSON.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses the base32 text of a key.
func (k *PublicKey) UnmarshalText(b []byte) error {
	p, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}
