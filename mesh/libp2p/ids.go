package libp2p

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// ToPeerID converts a libp2p peer ID (which inlines the peer's Ed25519
// public key) to the mesh PeerID of the same key.
func ToPeerID(p peer.ID) (mesh.PeerID, error) {
	pk, err := p.ExtractPublicKey()
	if err != nil {
		return "", fmt.Errorf("libp2p: peer %s: %w", p, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return "", fmt.Errorf("libp2p: peer %s has a %s key, want Ed25519", p, pk.Type())
	}
	raw, err := pk.Raw()
	if err != nil {
		return "", fmt.Errorf("libp2p: peer %s: %w", p, err)
	}
	var k core.PublicKey
	if len(raw) != len(k) {
		return "", fmt.Errorf("libp2p: peer %s: Ed25519 key of %d bytes", p, len(raw))
	}
	copy(k[:], raw)
	return mesh.PeerOf(k), nil
}

// FromPeerID converts a mesh PeerID to the libp2p peer ID of the same key.
func FromPeerID(p mesh.PeerID) (peer.ID, error) {
	k, err := core.ParsePublicKey(string(p))
	if err != nil {
		return "", err
	}
	pub, err := crypto.UnmarshalEd25519PublicKey(k[:])
	if err != nil {
		return "", fmt.Errorf("libp2p: %w", err)
	}
	return peer.IDFromPublicKey(pub)
}

// hostKey turns a signing key into the host's libp2p identity.
func hostKey(k core.PrivateKey) (crypto.PrivKey, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("libp2p: key of %d bytes, want an Ed25519 private key of %d", len(k), ed25519.PrivateKeySize)
	}
	return crypto.UnmarshalEd25519PrivateKey(k)
}
