package mesh

import (
	"context"
	"errors"
	"fmt"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
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

// Greeter is implemented by Handlers that reconcile with a peer as soon
// as it appears rather than at their next periodic sync (the Node). A
// transport that can tell calls Appeared when a peer of the space becomes
// reachable: connected and admitted (libp2p), heard again after an
// absence (NATS presence), joined or healed (memnet). Appeared must not
// block.
type Greeter interface {
	Appeared(peer PeerID)
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
// libp2p connection gater). The Node hands it the space's Admission at
// Start; such a transport also carries the node's proof of a pending
// membership to the peers it connects to (the node presents it itself,
// with a join request, over transports that are not gated).
type Gated interface {
	// SetAdmission tells the transport who may take part in space; nil
	// forgets the space.
	SetAdmission(space core.ID, a Admission)
	// Recheck closes, before it returns, the connections that the space's
	// admission no longer allows (a revoked member's), so that nothing the
	// node publishes or relays afterwards reaches them.
	Recheck(space core.ID)
}

// Admission is what a gated transport asks the node about one space.
type Admission interface {
	// Admit reports whether peer may take part in the space now: a
	// current member's own key (never an invite key), or, while this node
	// is joining and holds no history yet, a peer that accepted its proof.
	Admit(peer PeerID) bool
	// Open reports whether a newcomer may present a proof now: the space
	// holds an invite that is open and not expired. Only then does a
	// gated transport let a non-member in on probation.
	Open() bool
	// Join judges proof, presented by peer: the signed use of an invite
	// granting peer's own key. On success the use is stored and peer is a
	// member. Errors wrap the reason (replica.ErrInviteUsed,
	// ErrInviteExpired, ErrInviteRevoked, ErrInviteContested,
	// ErrInviteUnknown, ErrNotInviteUse; ErrTooLarge, ErrBusy).
	Join(ctx context.Context, peer PeerID, proof []byte) error
	// Proof is what this node presents to the peers it connects to: its
	// own use of an invite while it is not yet a member; nil otherwise.
	Proof() []byte
	// Presented tells the node what peer answered its proof: nil when the
	// peer admitted it, else the refusal (see Refusal).
	Presented(peer PeerID, verdict error)
}

// AdmitFunc is an Admission that admits the peers a function names and
// offers no way in by proof.
type AdmitFunc func(PeerID) bool

// Admit implements Admission.
func (f AdmitFunc) Admit(p PeerID) bool { return f(p) }

// Open implements Admission: no invite is open.
func (AdmitFunc) Open() bool { return false }

// Join implements Admission: every proof is refused.
func (AdmitFunc) Join(context.Context, PeerID, []byte) error {
	return fmt.Errorf("%w: this node admits no one by proof", replica.ErrInviteUnknown)
}

// Proof implements Admission: none.
func (AdmitFunc) Proof() []byte { return nil }

// Presented implements Admission.
func (AdmitFunc) Presented(PeerID, error) {}

// VerifiedHandler is implemented by Handlers that take pushes a transport
// opened and verified at its door (core.OpenBatch, as the libp2p gossip
// validator does), so a change is verified once on its way in.
type VerifiedHandler interface {
	PushedVerified(from PeerID, envelopes [][]byte, changes []core.Verified)
}

// Relayer is implemented by Handlers that tell a transport which pushes
// it may relay to other peers (gossip forwarding). A push may be relayed
// only when it holds no admin change, the parents of its changes are
// stored here (or in the push), and the space's peers have been re-checked
// since the last change was stored: so a revoked member is cut before
// anything written after its revocation can be relayed to it. A push not
// relayable is still delivered; reconciliation carries it further.
type Relayer interface {
	Relayable(ids []core.ID, changes []*core.Change) bool
}

// Errors of transports and the node.
var (
	ErrNoPeer    = errors.New("peer not reachable")
	ErrBusy      = errors.New("peer busy: too many syncs in flight")
	ErrTooLarge  = errors.New("message too large")
	ErrBadPeer   = errors.New("peer sent invalid data")
	ErrRateLimit = errors.New("peer exceeded its push rate")
	// ErrNotMember: the peer is not a member of the space (here); only a
	// join request is answered.
	ErrNotMember = errors.New("not a member of the space")
	// ErrJoinRefused: a peer refused our proof of pending membership; the
	// error wraps the reason too (replica.ErrInviteUsed, ...).
	ErrJoinRefused = errors.New("proof of membership refused")
)
