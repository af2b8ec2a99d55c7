package mesh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// Admission, both ways.
//
// As a member, the node admits a peer for a current member's own key
// (Store.IsMember: never an invite key) and lets a newcomer in by proof:
// the signed use of an invite granting the newcomer's own key, judged and
// stored by the store (UseAdmitter). Joins are judged one at a time, so
// two uses of one invite are never judged concurrently; a refused peer is
// kept off for Config.JoinCooloff with the same answer.
//
// As a joiner, the node presents its proof (Config.Proof) to its peers
// until its key is a member in its own replica; it admits, while it holds
// no history, only the peers that accepted that proof.
//
// Revocation: every store bumps a generation; before the node publishes,
// and before a transport relays a push, the transport's peers are
// re-checked if anything was stored since the last check. A revoked
// member is thus cut before anything written after its revocation (which
// has the revocation in its causal past) leaves this node.

// UseAdmitter is implemented by stores that let a joiner in by the use of
// an invite (replica.Replica).
type UseAdmitter interface {
	// AdmitUse checks env, the use of an invite granting peer, stores it
	// and makes peer a member; errors wrap replica.ErrInvite* or
	// replica.ErrNotInviteUse.
	AdmitUse(ctx context.Context, env []byte, peer core.PublicKey) error
}

// InviteLister is implemented by stores that list the space's invites
// (replica.Replica): the node offers probation only while one is
// unexpired and not revoked.
type InviteLister interface {
	Invites() []core.Invite
}

// ChangeChecker is implemented by stores that tell cheaply whether a
// change is stored (replica.Replica); without it the node loads the
// envelope.
type ChangeChecker interface {
	Has(id core.ID) bool
}

// MaxProofBytes caps a proof of pending membership: a use of an invite is
// one small signed change.
const MaxProofBytes = 8 << 10

// admission is the node's state for letting peers in and getting in.
type admission struct {
	proof  []byte         // Config.Proof, checked at Start
	member core.PublicKey // the key the proof grants: ours

	joinMu sync.Mutex // one join judged at a time

	mu        sync.Mutex
	fallback  []byte              // a joiner's own use found among the held changes
	vouched   map[PeerID]bool     // peers that accepted our proof
	cooling   map[PeerID]cooldown // refused joiners
	invDirty  bool
	openUntil uint64 // ms: an invite is open until then

	storedGen  atomic.Uint64 // bumped by every store
	checkedGen atomic.Uint64 // storedGen at the last re-check of the peers
	recheckMu  sync.Mutex
	after      chan struct{} // a store happened
	fromPeers  atomic.Bool   // ... of changes from peers
}

type cooldown struct {
	until time.Time
	err   error
}

func newAdmission() admission {
	return admission{vouched: map[PeerID]bool{}, cooling: map[PeerID]cooldown{}, invDirty: true,
		after: make(chan struct{}, 1)}
}

// checkProof reads the key a proof grants.
func checkProof(proof []byte) (core.PublicKey, error) {
	if len(proof) > MaxProofBytes {
		return core.PublicKey{}, fmt.Errorf("%w: proof of %d bytes, limit %d", ErrTooLarge, len(proof), MaxProofBytes)
	}
	c, id, _, err := core.Open(proof)
	if err != nil {
		return core.PublicKey{}, fmt.Errorf("%w: %v", replica.ErrNotInviteUse, err)
	}
	member, ok := core.UseMember(core.MemberView(c, id))
	if !ok || len(c.Parents) != 1 {
		return core.PublicKey{}, fmt.Errorf("%w: change %s holds no single grant on top of an invite", replica.ErrNotInviteUse, id.Short())
	}
	return member, nil
}

// afterStore is called by the store's watch callback: it must not block
// nor call the store.
func (n *Node) afterStore(local bool) {
	n.adm.storedGen.Add(1)
	n.adm.mu.Lock()
	n.adm.invDirty = true
	n.adm.mu.Unlock()
	if !local {
		n.adm.fromPeers.Store(true)
	}
	select {
	case n.adm.after <- struct{}{}:
	default:
	}
}

// admissionLoop re-checks the transport's peers soon after every store,
// so that a revoked member is cut within moments even when nothing is
// published, and runs Config.Acknowledge after changes from peers.
func (n *Node) admissionLoop(ctx context.Context) {
	defer n.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.adm.after:
		}
		n.recheckPeers()
		if n.adm.fromPeers.Swap(false) && n.cfg.Acknowledge != nil {
			if err := n.cfg.Acknowledge(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("acknowledge invite uses", "err", err)
			}
		}
	}
}

// recheckPeers asks a gated transport to cut peers no longer admitted if
// anything was stored since it last did.
func (n *Node) recheckPeers() {
	g, ok := n.tr.(Gated)
	if !ok {
		return
	}
	// Every store bumps storedGen in its watch callback (afterStore)
	// before its changes reach the outbox, so a change the publish loop
	// takes from the outbox is counted here, and so is every change
	// stored before it (the store notifies in commit order).
	gen := n.adm.storedGen.Load()
	if n.adm.checkedGen.Load() == gen {
		return
	}
	n.adm.recheckMu.Lock()
	defer n.adm.recheckMu.Unlock()
	if n.adm.checkedGen.Load() == gen {
		return
	}
	g.Recheck(n.space)
	n.adm.checkedGen.Store(gen)
}

// Relayable implements Relayer.
func (n *Node) Relayable(ids []core.ID, changes []*core.Change) bool {
	in := make(map[core.ID]bool, len(ids))
	for _, id := range ids {
		in[id] = true
	}
	for _, c := range changes {
		if c.IsGenesis() || core.IsAdminChange(c) {
			return false
		}
		for _, p := range c.Parents {
			if !in[p] && !n.has(p) {
				return false
			}
		}
	}
	n.recheckPeers()
	return true
}

func (n *Node) has(id core.ID) bool {
	if cc, ok := n.store.(ChangeChecker); ok {
		return cc.Has(id)
	}
	_, err := n.store.Envelope(id)
	return err == nil
}

// admits reports whether peer may take part in the space now.
func (n *Node) admits(p PeerID) bool {
	if n.isBanned(p) {
		return false
	}
	if !n.store.HasGenesis() {
		n.adm.mu.Lock()
		defer n.adm.mu.Unlock()
		return n.adm.vouched[p]
	}
	k, err := core.ParsePublicKey(string(p))
	return err == nil && n.store.IsMember(k)
}

// inviteOpen reports whether the space holds an unexpired invite, open or
// used: probation is offered while a code could still be presented, so
// the holder of a used code is told so at the door (and let no further).
func (n *Node) inviteOpen() bool {
	il, ok := n.store.(InviteLister)
	if !ok {
		return false
	}
	n.adm.mu.Lock()
	dirty, until := n.adm.invDirty, n.adm.openUntil
	n.adm.invDirty = false
	n.adm.mu.Unlock()
	if dirty {
		until = 0
		for _, inv := range il.Invites() {
			if inv.State != core.InviteRevoked {
				until = max(until, inv.Expires)
			}
		}
		n.adm.mu.Lock()
		n.adm.openUntil = until
		n.adm.mu.Unlock()
	}
	return uint64(time.Now().UnixMilli()) < until
}

// join judges a newcomer's proof; see Admission.Join.
func (n *Node) join(ctx context.Context, peer PeerID, proof []byte) error {
	if len(proof) > MaxProofBytes {
		return fmt.Errorf("%w: proof of %d bytes, limit %d", ErrTooLarge, len(proof), MaxProofBytes)
	}
	if n.isBanned(peer) {
		return fmt.Errorf("%w: %s is banned", ErrBadPeer, peer)
	}
	k, err := core.ParsePublicKey(string(peer))
	if err != nil {
		return fmt.Errorf("%w: peer %q: %v", replica.ErrNotInviteUse, peer, err)
	}
	ua, ok := n.store.(UseAdmitter)
	if !ok {
		return fmt.Errorf("%w: this node cannot admit by invite", replica.ErrInviteUnknown)
	}
	n.adm.mu.Lock()
	cd, cooling := n.adm.cooling[peer]
	if cooling && time.Now().After(cd.until) {
		delete(n.adm.cooling, peer)
		cooling = false
	}
	n.adm.mu.Unlock()
	if cooling {
		return cd.err
	}
	n.adm.joinMu.Lock()
	err = ua.AdmitUse(ctx, proof, k)
	n.adm.joinMu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		n.metrics.JoinsRefused.Add(1)
		n.log.Warn("proof of membership refused", "peer", peer, "reason", RefusalReason(err), "err", err)
		n.adm.mu.Lock()
		if len(n.adm.cooling) >= maxCooling {
			n.adm.pruneCooling()
		}
		n.adm.cooling[peer] = cooldown{until: time.Now().Add(n.cfg.JoinCooloff), err: err}
		n.adm.mu.Unlock()
		return err
	}
	n.metrics.JoinsAdmitted.Add(1)
	n.log.Info("peer admitted by its invite", "peer", peer)
	if ack := n.cfg.Acknowledge; ack != nil {
		if err := ack(ctx); err != nil {
			n.log.Warn("acknowledge invite uses", "err", err)
		}
	}
	return nil
}

// maxCooling bounds the refused joiners remembered.
const maxCooling = 4096

func (a *admission) pruneCooling() {
	now := time.Now()
	for p, cd := range a.cooling {
		if now.After(cd.until) {
			delete(a.cooling, p)
		}
	}
	for p := range a.cooling {
		if len(a.cooling) < maxCooling {
			break
		}
		delete(a.cooling, p)
	}
}

// proof returns what this node presents to its peers: its own use of an
// invite while its key is not a member here. Without Config.Proof, a node
// holding no history presents the use it holds (its own, left there by
// `join`).
func (n *Node) proof() []byte {
	if n.adm.proof != nil {
		if n.store.HasGenesis() && n.store.IsMember(n.adm.member) {
			return nil
		}
		return n.adm.proof
	}
	if n.store.HasGenesis() {
		return nil
	}
	n.adm.mu.Lock()
	fb := n.adm.fallback
	n.adm.mu.Unlock()
	if fb != nil {
		return fb
	}
	for _, env := range n.store.Orphans() {
		if _, err := checkProof(env); err == nil {
			n.adm.mu.Lock()
			n.adm.fallback = env
			n.adm.mu.Unlock()
			return env
		}
	}
	return nil
}

// presented records a peer's answer to our proof.
func (n *Node) presented(peer PeerID, verdict error) {
	if verdict != nil {
		n.log.Error("a peer refused our invite: not admitted there", "peer", peer, "reason", RefusalReason(verdict), "err", verdict)
		return
	}
	n.adm.mu.Lock()
	first := !n.adm.vouched[peer]
	n.adm.vouched[peer] = true
	n.adm.mu.Unlock()
	if first {
		n.log.Info("a peer admitted us by our invite", "peer", peer)
	}
	n.Kick(peer)
}

// gate is the node's Admission, handed to a gated transport.
type gate struct{ n *Node }

var _ Admission = gate{}

func (g gate) Admit(p PeerID) bool { return g.n.admits(p) }
func (g gate) Open() bool          { return g.n.inviteOpen() }
func (g gate) Join(ctx context.Context, p PeerID, proof []byte) error {
	return g.n.join(ctx, p, proof)
}
func (g gate) Proof() []byte               { return g.n.proof() }
func (g gate) Presented(p PeerID, v error) { g.n.presented(p, v) }

// joinReasons are the reasons a proof is refused, each with a word for
// status output.
var joinReasons = []struct {
	word string
	err  error
}{
	{"used", replica.ErrInviteUsed},
	{"expired", replica.ErrInviteExpired},
	{"revoked", replica.ErrInviteRevoked},
	{"contested", replica.ErrInviteContested},
	{"unknown", replica.ErrInviteUnknown},
	{"not-a-use", replica.ErrNotInviteUse},
	{"too-large", ErrTooLarge},
	{"busy", ErrBusy},
	{"banned", ErrBadPeer},
}

// refusal is a peer's refusal of our proof, rebuilt from its text.
type refusal struct {
	peer   PeerID
	reason error // nil when the text names none
	text   string
}

func (e *refusal) Error() string {
	return fmt.Sprintf("%v by %s: %s", ErrJoinRefused, e.peer, e.text)
}

func (e *refusal) Unwrap() []error {
	if e.reason == nil {
		return []error{ErrJoinRefused}
	}
	return []error{ErrJoinRefused, e.reason}
}

// Refusal rebuilds a peer's refusal of our proof from the text it sent:
// the error wraps ErrJoinRefused and the reason the text names first
// (replica.ErrInviteUsed, ErrInviteExpired, ...).
func Refusal(peer PeerID, text string) error {
	r := &refusal{peer: peer, text: text}
	at := len(text)
	for _, jr := range joinReasons {
		if i := strings.Index(text, jr.err.Error()); i >= 0 && i < at {
			r.reason, at = jr.err, i
		}
	}
	return r
}

// RefusalReason names the reason of a refused proof in one word: used,
// expired, revoked, contested, unknown, not-a-use, too-large, busy or
// banned; "" when err names none of them.
func RefusalReason(err error) string {
	for _, jr := range joinReasons {
		if errors.Is(err, jr.err) {
			return jr.word
		}
	}
	return ""
}
