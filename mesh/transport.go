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

// Applier is implemented by Handlers that can apply a push on the
// caller's goroutine. A store-and-forward transport (NATS JetStream)
// calls Apply instead of Pushed so that it acknowledges a stored message
// only once what it carries is settled; live transports keep using
// Pushed.
type Applier interface {
	// Apply stores envelopes a peer published and returns once each one
	// is durably settled: stored, held for missing parents, or refused as
	// invalid or duplicate. Errors:
	//   - wrapping ErrBadPeer: some were forged or malformed, or the
	//     sender is banned; the rest are settled. Do not deliver them
	//     again.
	//   - wrapping ErrBusy or ErrRateLimit: not all could be taken now;
	//     deliver them again later.
	//   - any other (the store failed, ctx ended): deliver them again
	//     later.
	Apply(ctx context.Context, from PeerID, envelopes [][]byte) error
}

// History is implemented by Handlers that let a store-and-forward
// transport keep a copy of the space (NATS JetStream): on reaching its
// server the transport adds what its copy lacks, so that a new member
// can bootstrap from the server while every other member is offline.
type History interface {
	// Changes lists the stored changes by (height, ID), parents first.
	// The caller must not modify the slice.
	Changes() ([]Item, error)
	// Envelope returns a stored change; it fails if the change is not
	// stored.
	Envelope(id core.ID) ([]byte, error)
	// Held returns the changes held for missing parents (a joiner's own
	// grant waits there for the space's history).
	Held() [][]byte
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
