package mesh

import (
	"context"
	"errors"

	"github.com/tributary-sync/tributary/core"
)

// PeerID names a peer: the text of its Ed25519 public key
// (core.PublicKey.String), the same key that signs its changes.
type PeerID string

// PeerOf returns the PeerID of a key.
func PeerOf(k core.PublicKey) PeerID { return PeerID(k.String()) }

// Transport moves bytes between the peers of spaces. It is an untrusted
// pipe: the Node verifies everything it delivers.
type Transport interface {
	// Join starts delivering the space's pushes and requests to h.
	Join(space core.ID, h Handler) error
	// Leave stops it.
	Leave(space core.ID) error
	// Publish pushes change envelopes to the space's peers, best effort:
	// reconciliation, not push, guarantees delivery.
	Publish(ctx context.Context, space core.ID, envelopes [][]byte) error
	// Peers lists the peers of the space reachable now.
	Peers(space core.ID) []PeerID
	// Request sends a request to one peer of the space and returns its
	// reply.
	Request(ctx context.Context, space core.ID, to PeerID, req []byte) ([]byte, error)
}

// Handler receives what a transport delivers for a space.
type Handler interface {
	// Pushed hands over envelopes a peer published. It must not block long.
	Pushed(from PeerID, envelopes [][]byte)
	// Serve answers a peer's request.
	Serve(ctx context.Context, from PeerID, req []byte) ([]byte, error)
}

// Banner is implemented by transports that can cut a peer off: the Node
// bans a peer that sends forged or malformed changes.
type Banner interface {
	Ban(peer PeerID, reason string)
}

// Gated is implemented by transports that admit only some peers (the
// libp2p connection gater): the Node tells it who the space's members are.
type Gated interface {
	SetAdmission(space core.ID, admit func(PeerID) bool)
}

// Errors of transports and the node.
var (
	ErrNoPeer    = errors.New("peer not reachable")
	ErrBusy      = errors.New("peer busy: too many syncs in flight")
	ErrTooLarge  = errors.New("message too large")
	ErrBadPeer   = errors.New("peer sent invalid data")
	ErrRateLimit = errors.New("peer exceeded its push rate")
)
