package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// Store is the replica as the node uses it.
type Store interface {
	Space() core.ID
	Receive(ctx context.Context, envelopes [][]byte) (replica.Report, error)
	Range(from, to uint64, fn func(height uint64, id core.ID) bool) error
	Envelope(id core.ID) ([]byte, error)
	Orphans() [][]byte
	Watch(fn func(local bool, ids []core.ID)) (cancel func())
	IsMember(key core.PublicKey) bool
	HasGenesis() bool
}

// Config tunes a node.
type Config struct {
	SyncInterval     time.Duration // anti-entropy period (default 5s)
	SyncTimeout      time.Duration // one reconciliation with one peer (default 2m)
	MaxMessageBytes  int           // request or reply (default 32 MiB)
	FetchBatch       int           // change IDs per fetch request (default 4096)
	PushBatch        int           // local changes per publish (default 256)
	MaxSyncsInFlight int           // reconciliation requests served at once (default 8)
	MaxRounds        int           // reconcile round trips per sync (default 32)
	PushRate         float64       // changes/s accepted by push from one peer (default 50000)
	PushBurst        int           // (default 200000)
	InboundQueue     int           // pushes waiting to be applied (default 1024)
	PushHaveMax      int           // after reconciling, push the peer at most this many of ours (default 1024); beyond, the peer pulls
	Reconciler       Reconciler
	Logger           *slog.Logger

	// Proof is a joiner's signed use of its invite (the envelope `join`
	// made): presented to peers until this node's key is a member. Without
	// it, a node holding no history presents the use it holds.
	Proof []byte
	// Acknowledge runs after a joiner was admitted here and after changes
	// from peers were stored; an admin's node acknowledges new invite uses
	// there (replica.Acknowledge), so a later use of the same code can
	// never displace the member. Optional.
	Acknowledge func(ctx context.Context) error
	JoinCooloff time.Duration // a refused joiner gets the same answer for this long (default 1m)

	// Key is the node's key: over a transport that reaches peers at
	// addresses (a Locator), it signs the record of this node's addresses
	// that members pass on to each other. Without it others learn where
	// this node is only from the node itself.
	Key core.PrivateKey
	// AddrStore keeps the address records learned from peers across
	// restarts (AddrFile). Optional.
	AddrStore AddrStore
	// AddrInterval: address records are sent to a peer when ours changed,
	// and at least this often (default 1m).
	AddrInterval time.Duration
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = 5 * time.Second
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = 2 * time.Minute
	}
	def(&c.MaxMessageBytes, 32<<20)
	def(&c.FetchBatch, 4096)
	def(&c.PushBatch, 256)
	def(&c.MaxSyncsInFlight, 8)
	def(&c.MaxRounds, 32)
	def(&c.PushBurst, 200000)
	def(&c.InboundQueue, 1024)
	def(&c.PushHaveMax, 1024)
	if c.PushRate <= 0 {
		c.PushRate = 50000
	}
	if c.Reconciler.Branch < 2 || c.Reconciler.ListBelow < 1 {
		c.Reconciler = DefaultReconciler
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.JoinCooloff <= 0 {
		c.JoinCooloff = time.Minute
	}
	if c.AddrInterval <= 0 {
		c.AddrInterval = time.Minute
	}
}

// SyncStats describe one reconciliation.
type SyncStats struct {
	Peer      PeerID `json:"peer"`
	Rounds    int    `json:"rounds"`
	Fetched   int    `json:"fetched"`
	Pushed    int    `json:"pushed"`
	Applied   int    `json:"applied"`
	BytesSent int    `json:"bytes_sent"`
	BytesRecv int    `json:"bytes_received"`
}

// Node replicates one space over one transport: it publishes local
// changes, applies what peers push, and reconciles with peers
// periodically, when a peer appears, and when a push leaves changes
// waiting for missing parents.
type Node struct {
	store   Store
	tr      Transport
	cfg     Config
	space   core.ID
	log     *slog.Logger
	metrics Metrics

	idx index // the reconciliation's (height, ID) list

	outbox  chan []core.ID
	inbound chan pushed
	serving chan struct{}

	kickMu sync.Mutex
	kicked map[PeerID]bool // peers to reconcile with soon; "" for every peer
	kickc  chan struct{}

	limMu    sync.Mutex
	limiters map[PeerID]*bucket
	banned   map[PeerID]string
	pulling  map[PeerID]time.Time // when each peer last reconciled with us (it pulls what it lacks)

	adm  admission
	book addrBook

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	unwatch func()
	closeMu sync.Mutex
	started bool
}

type pushed struct {
	from     PeerID
	envs     [][]byte
	verified []core.Verified // when the transport verified them (PushedVerified)
}

// VerifiedStore is implemented by stores that take changes verified
// already (replica.ReceiveVerified), sparing the second verification.
type VerifiedStore interface {
	ReceiveVerified(ctx context.Context, changes []core.Verified) (replica.Report, error)
}

var (
	_ Handler = (*Node)(nil)
	_ Applier = (*Node)(nil)
	_ History = (*Node)(nil)
	_ Greeter = (*Node)(nil)
)

// NewNode makes a node for store's space over tr; Start runs it.
func NewNode(store Store, tr Transport, cfg Config) *Node {
	cfg.defaults()
	return &Node{
		store: store, tr: tr, cfg: cfg, space: store.Space(),
		log:      cfg.Logger.With("space", store.Space().Short()),
		idx:      index{dirty: true},
		outbox:   make(chan []core.ID, 4096),
		inbound:  make(chan pushed, cfg.InboundQueue),
		kicked:   map[PeerID]bool{},
		kickc:    make(chan struct{}, 1),
		serving:  make(chan struct{}, cfg.MaxSyncsInFlight),
		limiters: map[PeerID]*bucket{}, banned: map[PeerID]string{}, pulling: map[PeerID]time.Time{},
		adm: newAdmission(), book: newAddrBook(),
	}
}

// Metrics returns the node's counters.
func (n *Node) Metrics() *Metrics { return &n.metrics }

// Start joins the transport and starts the node's goroutines; Close stops
// them.
func (n *Node) Start(ctx context.Context) error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.started {
		return errors.New("mesh node already started")
	}
	if n.cfg.Proof != nil {
		member, err := checkProof(n.cfg.Proof)
		if err != nil {
			return fmt.Errorf("mesh: Config.Proof: %w", err)
		}
		n.adm.proof, n.adm.member = n.cfg.Proof, member
	}
	g, gated := n.tr.(Gated)
	if gated {
		g.SetAdmission(n.space, gate{n})
	}
	n.unwatch = n.store.Watch(n.stored)
	n.loadAddrs()
	if err := n.tr.Join(n.space, n); err != nil {
		n.unwatch()
		if gated {
			g.SetAdmission(n.space, nil)
		}
		return fmt.Errorf("mesh: join space %s: %w", n.space.Short(), err)
	}
	ctx, n.cancel = context.WithCancel(ctx)
	n.started = true
	n.wg.Add(4)
	go n.publishLoop(ctx)
	go n.applyLoop(ctx)
	go n.syncLoop(ctx)
	go n.admissionLoop(ctx)
	return nil
}

// Close stops the node and leaves the transport (which stays open: it may
// carry other spaces).
func (n *Node) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if !n.started {
		return nil
	}
	n.started = false
	n.cancel()
	n.unwatch()
	err := n.tr.Leave(n.space)
	if g, ok := n.tr.(Gated); ok {
		g.SetAdmission(n.space, nil)
	}
	n.wg.Wait()
	return err
}

// stored is the replica's watch callback: it must not block.
func (n *Node) stored(local bool, ids []core.ID) {
	n.idx.add(ids)
	n.afterStore(local)
	if !local {
		return
	}
	select {
	case n.outbox <- slices.Clone(ids):
	default:
		n.metrics.OutboxFull.Add(1)
		n.log.Warn("outbox full: local change left to reconciliation", "changes", len(ids))
	}
}

// maxKicked bounds the peers remembered for a reconciliation soon; past
// it, every peer is.
const maxKicked = 1024

// Kick asks for a reconciliation with peer ("" for every peer) soon. Kicks
// are never lost: those made while a reconciliation runs are served next.
func (n *Node) Kick(peer PeerID) {
	n.kickMu.Lock()
	if len(n.kicked) >= maxKicked {
		clear(n.kicked)
		peer = ""
	}
	n.kicked[peer] = true
	n.kickMu.Unlock()
	select {
	case n.kickc <- struct{}{}:
	default:
	}
}

// Appeared implements Greeter: a peer that connects, or comes back, is
// reconciled with at once.
func (n *Node) Appeared(peer PeerID) {
	if n.isBanned(peer) {
		return
	}
	n.metrics.PeersAppeared.Add(1)
	n.log.Debug("peer appeared: reconciling", "peer", peer)
	n.Kick(peer)
}

func (n *Node) publishLoop(ctx context.Context) {
	defer n.wg.Done()
	for {
		var ids []core.ID
		select {
		case <-ctx.Done():
			return
		case ids = <-n.outbox:
		}
	more:
		for len(ids) < n.cfg.PushBatch {
			select {
			case next := <-n.outbox:
				ids = append(ids, next...)
			default:
				break more
			}
		}
		envs := make([][]byte, 0, len(ids))
		for _, id := range ids {
			if b, err := n.store.Envelope(id); err == nil {
				envs = append(envs, b)
			}
		}
		// A revocation stored before these changes cuts the revoked
		// member before they go out.
		n.recheckPeers()
		if err := n.tr.Publish(ctx, n.space, envs); err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Warn("publish failed; reconciliation will deliver", "changes", len(envs), "err", err)
			continue
		}
		n.metrics.PushesSent.Add(1)
		n.metrics.ChangesPushed.Add(uint64(len(envs)))
	}
}

// Pushed implements Handler: rate-limited per peer, queued, applied by
// applyLoop.
func (n *Node) Pushed(from PeerID, envs [][]byte) { n.push(pushed{from: from, envs: envs}) }

// PushedVerified implements VerifiedHandler: Pushed for changes the
// transport verified.
func (n *Node) PushedVerified(from PeerID, envs [][]byte, changes []core.Verified) {
	n.push(pushed{from: from, envs: envs, verified: changes})
}

func (n *Node) push(p pushed) {
	from, envs := p.from, p.envs
	n.metrics.PushesReceived.Add(1)
	if n.isBanned(from) {
		return
	}
	if !n.allow(from, len(envs)) {
		n.metrics.PushRateLimited.Add(1)
		n.log.Warn("push dropped: peer over its rate limit", "peer", from, "changes", len(envs), "limit_per_s", n.cfg.PushRate)
		n.Kick(from)
		return
	}
	select {
	case n.inbound <- p:
	default:
		n.metrics.PushQueueFull.Add(1)
		n.log.Warn("push dropped: inbound queue full", "peer", from, "changes", len(envs))
		n.Kick(from)
	}
}

// Apply implements Applier: a push applied on the caller's goroutine, for
// store-and-forward transports that acknowledge only what is stored.
// Over the sender's rate, or with the replica's orphan limit reached, it
// stores what it can and asks for the rest again later rather than
// dropping it.
func (n *Node) Apply(ctx context.Context, from PeerID, envs [][]byte) error {
	n.metrics.PushesReceived.Add(1)
	if n.isBanned(from) {
		return fmt.Errorf("%w: %s is banned", ErrBadPeer, from)
	}
	// A batch larger than the burst passes once the bucket is full, and
	// its debt holds the next ones back: the rate holds on average.
	if !n.charge(from, len(envs), min(len(envs), n.cfg.PushBurst)) {
		n.metrics.PushesDeferred.Add(1)
		return fmt.Errorf("%w: %s over %g changes/s", ErrRateLimit, from, n.cfg.PushRate)
	}
	rep, err := n.receive(ctx, from, envs)
	if err != nil {
		return err
	}
	if rep.Held > 0 {
		n.Kick(from)
	}
	limited := 0
	for _, rj := range rep.Rejected {
		if errors.Is(rj.Err, replica.ErrOrphanLimit) {
			limited++
		}
	}
	if limited > 0 {
		n.metrics.PushesDeferred.Add(1)
		return fmt.Errorf("%w: %d changes over the replica's limit of changes held for missing parents", ErrBusy, limited)
	}
	return nil
}

// Changes implements History.
func (n *Node) Changes() ([]Item, error) { return n.snapshot() }

// Envelope implements History.
func (n *Node) Envelope(id core.ID) ([]byte, error) { return n.store.Envelope(id) }

// Held implements History.
func (n *Node) Held() [][]byte { return n.store.Orphans() }

// maxApplyGroup bounds the queued pushes applied together.
const maxApplyGroup = 64

// applyLoop applies pushes as they come; those that queued up while one
// was applied are applied together, in one commit (one fsync), so the
// queue drains faster than it fills.
func (n *Node) applyLoop(ctx context.Context) {
	defer n.wg.Done()
	group := make([]pushed, 0, maxApplyGroup)
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-n.inbound:
			group = append(group[:0], p)
		}
	more:
		for len(group) < maxApplyGroup {
			select {
			case p := <-n.inbound:
				group = append(group, p)
			default:
				break more
			}
		}
		n.applyPushes(ctx, group)
		clear(group)
	}
}

// applyPushes applies pushes from the inbound queue: verified ones
// together, the others one by one. A refused change gets its culprit
// banned; changes held for missing parents start a reconciliation with
// the peers that pushed them.
func (n *Node) applyPushes(ctx context.Context, group []pushed) {
	live := group[:0]
	for _, p := range group {
		if !n.isBanned(p.from) {
			live = append(live, p)
		}
	}
	vs, together := n.store.(VerifiedStore)
	for _, p := range live {
		together = together && len(p.verified) == len(p.envs) && len(p.envs) > 0
	}
	if !together || len(live) < 2 {
		for _, p := range live {
			rep, err := n.receivePushed(ctx, p)
			n.afterPush(ctx, err, rep.Held > 0, p.from)
		}
		return
	}
	var changes []core.Verified
	blame := map[core.ID]PeerID{}
	var senders []PeerID
	for _, p := range live {
		for _, v := range p.verified {
			if _, ok := blame[v.ID()]; !ok {
				blame[v.ID()] = n.culprit(p.from, v)
			}
		}
		changes = append(changes, p.verified...)
		if !slices.Contains(senders, p.from) {
			senders = append(senders, p.from)
		}
	}
	n.metrics.ChangesReceived.Add(uint64(len(changes)))
	n.metrics.PushesGrouped.Add(uint64(len(live)))
	rep, err := vs.ReceiveVerified(ctx, changes)
	if err == nil {
		err = n.settleBy(rep, func(id core.ID) PeerID { return blame[id] })
	}
	n.afterPush(ctx, err, rep.Held > 0, senders...)
}

// afterPush logs a push that failed and asks the senders of one that left
// changes held for missing parents for them.
func (n *Node) afterPush(ctx context.Context, err error, held bool, from ...PeerID) {
	if err != nil {
		if ctx.Err() == nil {
			n.log.Error("apply pushed changes", "peers", from, "err", err)
		}
		return
	}
	if held {
		for _, p := range from {
			n.Kick(p)
		}
	}
}

// receivePushed applies a push, without verifying again what the
// transport verified.
func (n *Node) receivePushed(ctx context.Context, p pushed) (replica.Report, error) {
	if vs, ok := n.store.(VerifiedStore); ok && len(p.verified) == len(p.envs) && len(p.envs) > 0 {
		n.metrics.ChangesReceived.Add(uint64(len(p.envs)))
		rep, err := vs.ReceiveVerified(ctx, p.verified)
		if err != nil {
			return rep, err
		}
		blame := make(map[core.ID]PeerID, len(p.verified))
		for _, v := range p.verified {
			blame[v.ID()] = n.culprit(p.from, v)
		}
		return rep, n.settleBy(rep, func(id core.ID) PeerID { return blame[id] })
	}
	return n.receive(ctx, p.from, p.envs)
}

// receive applies envelopes from a peer; forged or malformed ones get the
// peer banned.
func (n *Node) receive(ctx context.Context, from PeerID, envs [][]byte) (replica.Report, error) {
	n.metrics.ChangesReceived.Add(uint64(len(envs)))
	rep, err := n.store.Receive(ctx, envs)
	return n.settle(from, rep, err)
}

// culprit is who answers for a pushed change the replica refuses: its
// author when that is a member other than the peer that pushed it (a
// gossip relay passes on what its author signed before it could store
// and judge it itself), else the peer that pushed it.
func (n *Node) culprit(from PeerID, v core.Verified) PeerID {
	if author := PeerOf(v.Change().Author); author != from && n.admits(author) {
		return author
	}
	return from
}

// settle counts what Receive did and bans a peer that sent bad changes.
func (n *Node) settle(from PeerID, rep replica.Report, err error) (replica.Report, error) {
	if err != nil {
		return rep, err
	}
	return rep, n.settleBy(rep, func(core.ID) PeerID { return from })
}

// settleBy counts what Receive did and bans the peers that answer for
// bad changes (sender names the peer that answers for a change: the one
// that sent it, or its culprit).
func (n *Node) settleBy(rep replica.Report, sender func(core.ID) PeerID) error {
	n.metrics.ChangesApplied.Add(uint64(rep.Applied + rep.Released))
	n.metrics.OrphansHeld.Add(uint64(rep.Held))
	var bad []replica.Rejection
	for _, rj := range rep.Rejected {
		if errors.Is(rj.Err, replica.ErrOrphanLimit) {
			// Our limit, not the peer's fault: reconciliation in height
			// order brings the parents first.
			n.metrics.OrphanLimit.Add(1)
			n.log.Warn("change dropped: too many held for missing parents", "peer", sender(rj.ID), "change", rj.ID.String())
			continue
		}
		bad = append(bad, rj)
	}
	if len(bad) == 0 {
		return nil
	}
	n.metrics.ChangesRejected.Add(uint64(len(bad)))
	var blamed []PeerID
	count := map[PeerID]int{}
	first := map[PeerID]string{}
	for _, rj := range bad {
		p := sender(rj.ID)
		if p == "" {
			n.log.Warn("invalid change from no known peer", "change", rj.ID.String(), "err", rj.Msg)
			continue
		}
		if count[p] == 0 {
			blamed, first[p] = append(blamed, p), rj.Msg
		}
		count[p]++
	}
	for _, p := range blamed {
		n.ban(p, fmt.Sprintf("sent or signed %d invalid changes, first: %s", count[p], first[p]))
	}
	if len(blamed) == 0 {
		return fmt.Errorf("%w: %s", ErrBadPeer, bad[0].Msg)
	}
	return fmt.Errorf("%w: %s: %s", ErrBadPeer, blamed[0], first[blamed[0]])
}

func (n *Node) ban(peer PeerID, reason string) {
	n.limMu.Lock()
	_, already := n.banned[peer]
	n.banned[peer] = reason
	n.limMu.Unlock()
	if already {
		return
	}
	n.metrics.PeersBanned.Add(1)
	n.log.Warn("peer banned", "peer", peer, "reason", reason)
	if b, ok := n.tr.(Banner); ok {
		b.Ban(peer, reason)
	}
}

func (n *Node) isBanned(p PeerID) bool {
	n.limMu.Lock()
	defer n.limMu.Unlock()
	_, ok := n.banned[p]
	return ok
}

// Banned lists banned peers with the reason.
func (n *Node) Banned() map[PeerID]string {
	n.limMu.Lock()
	defer n.limMu.Unlock()
	out := make(map[PeerID]string, len(n.banned))
	for k, v := range n.banned {
		out[k] = v
	}
	return out
}

func (n *Node) allow(p PeerID, count int) bool {
	return n.charge(p, count, count)
}

// charge takes count tokens from p's bucket if it holds need (it may go
// into debt, which later pushes wait off).
func (n *Node) charge(p PeerID, count, need int) bool {
	n.limMu.Lock()
	defer n.limMu.Unlock()
	b := n.limiters[p]
	if b == nil {
		b = &bucket{tokens: float64(n.cfg.PushBurst), last: time.Now()}
		n.limiters[p] = b
	}
	return b.take(float64(count), float64(need), n.cfg.PushRate, float64(n.cfg.PushBurst))
}

// bucket is a token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(n, need, rate, burst float64) bool {
	now := time.Now()
	b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < need {
		return false
	}
	b.tokens -= n
	return true
}

func (n *Node) syncLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SyncInterval)
	defer t.Stop()
	var retry syncRetry
	defer retry.stop()
	retry.settle(n.syncPeers(ctx, nil), n.cfg.SyncInterval) // at start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			retry.settle(n.syncPeers(ctx, nil), n.cfg.SyncInterval)
		case <-retry.c:
			due := retry.due(time.Now())
			retry.settle(n.syncPeers(ctx, due), n.cfg.SyncInterval)
			retry.forget(due) // retried peers that are gone
		case <-n.kickc:
			n.kickMu.Lock()
			kicked := n.kicked
			n.kicked = map[PeerID]bool{}
			n.kickMu.Unlock()
			if kicked[""] {
				kicked = nil
			}
			retry.settle(n.syncPeers(ctx, kicked), n.cfg.SyncInterval)
		}
	}
}

// syncOutcome says which peers a round of syncs reached and which failed.
type syncOutcome struct{ ok, failed []PeerID }

// syncRetry retries a failed reconciliation with a peer soon, backing off
// from retryFirst to the anti-entropy interval: a sync that fails as a
// peer comes back (a dropped request, a stream reset) is not left until
// the next anti-entropy round. It belongs to syncLoop's goroutine.
type syncRetry struct {
	backoff map[PeerID]time.Duration
	at      map[PeerID]time.Time
	timer   *time.Timer
	c       <-chan time.Time
}

const retryFirst = 200 * time.Millisecond

func (r *syncRetry) settle(o syncOutcome, ceiling time.Duration) {
	if r.backoff == nil {
		r.backoff, r.at = map[PeerID]time.Duration{}, map[PeerID]time.Time{}
	}
	for _, p := range o.ok {
		delete(r.backoff, p)
		delete(r.at, p)
	}
	now := time.Now()
	for _, p := range o.failed {
		d := min(max(2*r.backoff[p], retryFirst), ceiling)
		r.backoff[p], r.at[p] = d, now.Add(d)
	}
	r.arm(now)
}

// due returns the peers whose retry time has come.
func (r *syncRetry) due(now time.Time) map[PeerID]bool {
	out := map[PeerID]bool{}
	for p, at := range r.at {
		if !at.After(now) {
			out[p] = true
			delete(r.at, p)
		}
	}
	return out
}

// forget drops the backoff of retried peers that neither failed again nor
// succeeded (they left), and arms the timer for the rest.
func (r *syncRetry) forget(retried map[PeerID]bool) {
	for p := range retried {
		if _, again := r.at[p]; !again {
			delete(r.backoff, p)
		}
	}
	r.arm(time.Now())
}

func (r *syncRetry) arm(now time.Time) {
	r.stop()
	var next time.Time
	for _, at := range r.at {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() {
		return
	}
	r.timer = time.NewTimer(max(next.Sub(now), 0))
	r.c = r.timer.C
}

func (r *syncRetry) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer, r.c = nil, nil
	}
}

// syncPeers reconciles with the reachable peers in only, or with every
// reachable peer when only is nil, and says which it reached.
func (n *Node) syncPeers(ctx context.Context, only map[PeerID]bool) syncOutcome {
	var out syncOutcome
	peers := n.tr.Peers(n.space)
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, p := range peers {
		if ctx.Err() != nil {
			return out
		}
		if (only != nil && !only[p]) || n.isBanned(p) {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, n.cfg.SyncTimeout)
		st, err := n.SyncWith(sctx, p)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Debug("sync failed; retrying soon", "peer", p, "err", err)
				out.failed = append(out.failed, p)
			}
			continue
		}
		out.ok = append(out.ok, p)
		if st.Fetched+st.Pushed > 0 {
			n.log.Info("synced", "peer", p, "rounds", st.Rounds, "fetched", st.Fetched, "pushed", st.Pushed, "bytes_sent", st.BytesSent, "bytes_received", st.BytesRecv)
		}
	}
	return out
}

// snapshot returns the sorted items of the store.
func (n *Node) snapshot() ([]Item, error) { return n.idx.snapshot(n.store) }

var (
	_ VerifiedHandler = (*Node)(nil)
	_ VerifiedStore   = (*replica.Replica)(nil)
)
