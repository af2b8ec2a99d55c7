package libp2p

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

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

// WithPeer appends /p2p/<id of key> to addrs (multiaddrs of the peer, as
// in an address record), for invite codes and Config.Bootstrap; addresses
// that do not parse are left out.
func WithPeer(key core.PublicKey, addrs []string) []string {
	id, err := FromPeerID(mesh.PeerOf(key))
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			continue
		}
		ms, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{m}})
		if err == nil && len(ms) == 1 {
			out = append(out, ms[0].String())
		}
	}
	return out
}
