package libp2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	golibp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// DefaultPort is the default TCP and UDP (QUIC) port: not 4001, which
// other libp2p software (IPFS) listens on by default.
const DefaultPort = 7466

// DefaultListen are the listen addresses when Config.Listen is empty.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/7466", "/ip4/0.0.0.0/udp/7466/quic-v1"}

// MDNSService is the mDNS service name peers announce on the LAN.
const MDNSService = "_tributary._udp"

// Config configures a transport.
type Config struct {
	Key       core.PrivateKey // the node's key: its libp2p identity signs changes too
	Listen    []string        // multiaddrs (default DefaultListen)
	Bootstrap []string        // peer multiaddrs with /p2p/: dialled at start and whenever disconnected
	MDNS      bool            // discover (and dial) peers on the LAN
	Logger    *slog.Logger

	DisableNATPortMap bool          // do not ask the router (UPnP/NAT-PMP) for a port
	RedialInterval    time.Duration // re-dial disconnected bootstrap and known peers (default 10s)
	AdmissionInterval time.Duration // close connections to peers no longer admitted (default 5s)
	RequestTimeout    time.Duration // a request without deadline, and serving one (default 2m)
	ReadTimeout       time.Duration // reading an incoming request (default 30s)
	MaxFrame          int           // request or reply payload (default 48 MiB)
	MaxPushBytes      int           // one gossip message; pushes are split under it (default 1 MiB)

	ProbationTimeout time.Duration // a newcomer's connection without admission, and one join exchange (default 5s)
	MaxProbation     int           // newcomers on probation at once (default 4)
	ProbationCooloff time.Duration // a refused or timed-out newcomer is kept off this long (default 1m)
}

func (c *Config) defaults() {
	if len(c.Listen) == 0 {
		c.Listen = DefaultListen
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&c.RedialInterval, 10*time.Second)
	dur(&c.AdmissionInterval, 5*time.Second)
	dur(&c.RequestTimeout, 2*time.Minute)
	dur(&c.ReadTimeout, 30*time.Second)
	if c.MaxFrame <= 0 {
		c.MaxFrame = 48 << 20
	}
	if c.MaxPushBytes <= 0 {
		c.MaxPushBytes = 1 << 20
	}
	dur(&c.ProbationTimeout, 5*time.Second)
	dur(&c.ProbationCooloff, time.Minute)
	if c.MaxProbation <= 0 {
		c.MaxProbation = 4
	}
}

// Transport is a mesh.Transport over libp2p: gossipsub for pushes, a
// stream protocol for requests, a gater that admits members only.
type Transport struct {
	cfg     Config
	log     *slog.Logger
	host    host.Host
	ps      *pubsub.PubSub
	gater   *gater
	self    peer.ID
	selfID  mesh.PeerID
	mdns    mdns.Service
	mdnsErr error // why mDNS is off although asked for

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	redial chan struct{}
	joins  chan struct{} // join exchanges served at once

	joinMu sync.Mutex // serializes Join and Leave
	mu     sync.Mutex // guards spaces and closed
	spaces map[core.ID]*joined
	closed bool

	peersMu    sync.Mutex
	bootstrap  map[peer.ID]bool
	known      map[peer.ID]bool           // peers we were connected to, or were told of (Locate)
	located    map[peer.ID][]ma.Multiaddr // addresses of members' records (Locate)
	presenting map[peer.ID]bool           // our proofs on their way to them
}

type joined struct {
	h      mesh.Handler
	name   string
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc
	done   chan struct{}
}

var (
	_ mesh.Transport = (*Transport)(nil)
	_ mesh.Banner    = (*Transport)(nil)
	_ mesh.Gated     = (*Transport)(nil)
	_ mesh.Locator   = (*Transport)(nil)
)

// Gossip topics are named topicPrefix + space + topicSuffix. Version 2:
// messages carry no gossipsub author, sequence number or signature, and a
// message's ID is the hash of its topic and data (version 1 signed every
// message); a node of one version does not hear the other's pushes, and
// reconciliation carries the changes between them.
const topicPrefix, topicSuffix = "/tributary/2/", "/changes"

// TopicName is the gossipsub topic of a space's changes.
func TopicName(space core.ID) string { return topicPrefix + space.String() + topicSuffix }

// messageID is a gossip message's ID: the SHA-256 of its topic and data.
// Messages are unsigned and carry no sequence number, so the same push
// relayed by several peers has one ID and is delivered once.
func messageID(m *pb.Message) string {
	h := sha256.New()
	h.Write([]byte(m.GetTopic()))
	h.Write([]byte{0})
	h.Write(m.GetData())
	return string(h.Sum(nil))
}

// Queues of gossipsub: pushes waiting for validation, and messages
// waiting to be written to one peer. A push that finds its queue full is
// dropped (and logged) and reconciliation delivers it.
const (
	validateQueue = 256
	outboundQueue = 256
)

// New starts a libp2p host with the config's identity, listeners and
// bootstrap peers; Close stops it.
func New(ctx context.Context, cfg Config) (*Transport, error) {
	cfg.defaults()
	priv, err := hostKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("libp2p: %w", err)
	}
	selfID, err := ToPeerID(self)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		cfg: cfg, log: cfg.Logger.With("peer", selfID), self: self, selfID: selfID,
		gater: newGater(self, &cfg), redial: make(chan struct{}, 1), joins: make(chan struct{}, cfg.MaxProbation),
		spaces: map[core.ID]*joined{}, bootstrap: map[peer.ID]bool{}, known: map[peer.ID]bool{}, located: map[peer.ID][]ma.Multiaddr{}, presenting: map[peer.ID]bool{},
	}
	boot, err := parsePeers(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	listen, err := parseAddrs("listen", cfg.Listen)
	if err != nil {
		return nil, err
	}
	opts := []golibp2p.Option{
		golibp2p.Identity(priv),
		// Listening is done below, address by address, so that any one
		// that fails stops the start (libp2p itself goes on if one works).
		golibp2p.NoListenAddrs,
		golibp2p.Security(noise.ID, noise.New),
		// No SO_REUSEPORT: a second process on our port must fail to
		// bind, not share (and split) our incoming connections. QUIC's
		// reuse is not SO_REUSEPORT (its UDP socket is bound exclusively
		// and only shared with our own dials), so it stays for hole
		// punching.
		golibp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		golibp2p.Transport(libp2pquic.NewTransport),
		golibp2p.ConnectionGater(t.gater),
		golibp2p.EnableRelay(),
		golibp2p.EnableHolePunching(),
		golibp2p.DisableMetrics(),
	}
	if !cfg.DisableNATPortMap {
		opts = append(opts, golibp2p.NATPortMap())
	}
	h, err := golibp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("libp2p: start host: %w", err)
	}
	for _, a := range listen {
		if err := h.Network().Listen(a); err != nil {
			h.Close()
			if strings.Contains(err.Error(), "address already in use") {
				return nil, fmt.Errorf("libp2p: listen on %s: the port is in use by another process (another node, or IPFS): choose another listen address: %w", a, err)
			}
			return nil, fmt.Errorf("libp2p: listen on %s: %w", a, err)
		}
	}
	t.host = h
	t.ctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	t.ps, err = pubsub.NewGossipSub(t.ctx, h,
		pubsub.WithPeerScore(scoreParams(t.outcast), scoreThresholds),
		pubsub.WithPeerFilter(t.topicFilter),
		pubsub.WithSubscriptionFilter(subscriptions{t}),
		pubsub.WithMaxMessageSize(cfg.MaxPushBytes+64<<10),
		pubsub.WithFloodPublish(true),
		// Every change in a message is signed by its author and verified
		// by the validator: a gossipsub signature on top would be signed
		// and verified again for nothing. Messages carry no author, no
		// sequence number and no signature (one that does is refused and
		// its sender's score drops); a message's ID is the hash of its
		// topic and data, so the same push is delivered once.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		// One validation worker and an inline validator: pushes are
		// validated and handed to the node in the order they arrived, so
		// a change is not held for a parent that is merely a step behind.
		pubsub.WithValidateWorkers(1),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithPeerOutboundQueueSize(outboundQueue),
		pubsub.WithRawTracer(drops{t}),
	)
	if err != nil {
		t.cancel()
		h.Close()
		return nil, fmt.Errorf("libp2p: start gossipsub: %w", err)
	}
	h.SetStreamHandler(SyncProtocol, t.handleStream)
	h.SetStreamHandler(JoinProtocol, t.handleJoin)
	h.Network().Notify(&network.NotifyBundle{ConnectedF: t.connected, DisconnectedF: t.disconnected})
	t.addBootstrap(boot)
	if cfg.MDNS {
		// mDNS is one way of finding peers among several: a host without
		// multicast runs on with bootstrap peers, and says so.
		m := mdns.NewMdnsService(h, MDNSService, mdnsNotifee{t})
		if err := m.Start(); err != nil {
			t.mdnsErr = fmt.Errorf("libp2p: start mDNS: %w", err)
			t.log.Warn("mDNS discovery unavailable; relying on bootstrap peers", "err", err)
		} else {
			t.mdns = m
		}
	}
	t.wg.Add(1)
	go t.maintain()
	t.log.Info("libp2p transport up", "addrs", t.Addrs())
	return t, nil
}

// Close stops everything the transport started.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	spaces := t.spaces
	t.spaces = map[core.ID]*joined{}
	t.mu.Unlock()
	for _, j := range spaces {
		j.cancel()
		j.sub.Cancel()
	}
	var errs []error
	if t.mdns != nil {
		errs = append(errs, t.mdns.Close())
	}
	t.cancel()
	t.wg.Wait()
	errs = append(errs, t.host.Close())
	return errors.Join(errs...)
}

// ID is the transport's PeerID (its key's text).
func (t *Transport) ID() mesh.PeerID { return t.selfID }

// Host exposes the libp2p host.
func (t *Transport) Host() host.Host { return t.host }

// Addrs are the host's multiaddrs with /p2p/<id>, for invites and
// Config.Bootstrap.
func (t *Transport) Addrs() []string {
	ms, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: t.self, Addrs: t.host.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

// SetAdmission implements mesh.Gated: a says who may take part in the
// space; members of any space get connections, newcomers probation.
func (t *Transport) SetAdmission(space core.ID, a mesh.Admission) {
	t.gater.setAdmission(space, a)
	t.kick()
}

// Recheck implements mesh.Gated: it closes, before returning, the
// connections of peers admitted nowhere any more (and not on probation),
// and of peers in the space's topic the space no longer admits (a member
// of another space too comes back without its subscription to this one).
func (t *Transport) Recheck(space core.ID) {
	var subscribed []peer.ID
	listed := false
	nw := t.host.Network()
	for _, p := range nw.Peers() {
		if t.gater.connAllowed(p) && (t.gater.onProbation(p) || t.gater.admittedFor(space, p)) {
			continue
		}
		if t.gater.connAllowed(p) {
			// A member of another space: cut if it took this space's
			// topic. The topic's peers are asked only then (a round trip
			// through gossipsub's event loop, which is busy when pushes
			// flow).
			if !listed {
				listed = true
				t.mu.Lock()
				j := t.spaces[space]
				t.mu.Unlock()
				if j != nil {
					subscribed = j.topic.ListPeers()
				}
			}
			if !slices.Contains(subscribed, p) {
				continue
			}
		}
		t.log.Info("closing connection to a peer no longer admitted", "remote", p, "space", space.Short())
		_ = nw.ClosePeer(p)
	}
}

// outcast reports peers whose gossip score is sunk: banned, or on
// probation (they get no pushes and their messages are dropped).
func (t *Transport) outcast(p peer.ID) bool { return t.gater.isBanned(p) || t.gater.onProbation(p) }

// Ban implements mesh.Banner: the peer's connections are closed, it is
// refused from now on and its gossip ignored.
func (t *Transport) Ban(p mesh.PeerID, reason string) {
	pid, err := FromPeerID(p)
	if err != nil {
		return
	}
	t.ban(pid, reason)
}

func (t *Transport) ban(pid peer.ID, reason string) {
	if pid == t.self || t.gater.ban(pid, reason) {
		return
	}
	t.log.Warn("peer banned", "banned", pid, "reason", reason)
	t.spawn(func() {
		_ = t.host.Network().ClosePeer(pid)
		t.ps.BlacklistPeer(pid)
	})
}

// Banned lists banned peers with the reason.
func (t *Transport) Banned() map[mesh.PeerID]string {
	out := map[mesh.PeerID]string{}
	for p, r := range t.gater.bannedList() {
		if id, err := ToPeerID(p); err == nil {
			out[id] = r
		}
	}
	return out
}

// SetOffline(true) cuts the transport off: every connection is closed
// and the gater refuses all until SetOffline(false), which re-dials the
// bootstrap and known peers.
func (t *Transport) SetOffline(off bool) {
	t.gater.setOffline(off)
	if off {
		for _, p := range t.host.Network().Peers() {
			_ = t.host.Network().ClosePeer(p)
		}
		return
	}
	t.kick()
}

// track counts a goroutine Close waits for; false once closed.
func (t *Transport) track() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

// spawn runs fn in a goroutine Close waits for, unless closed.
func (t *Transport) spawn(fn func()) {
	if !t.track() {
		return
	}
	go func() {
		defer t.wg.Done()
		fn()
	}()
}

// topicFilter is gossipsub's peer filter: only a space's members take
// part in its topic.
func (t *Transport) topicFilter(p peer.ID, topic string) bool {
	space, ok := spaceOfTopic(topic)
	return ok && t.gater.admittedFor(space, p)
}

// subscriptions is gossipsub's subscription filter: a peer's subscription
// to a space's topic is recorded only if the space admits it or it is on
// probation (its pushes wait for its admission: its score is sunk until
// then), so a member of another space never gets this one's pushes.
type subscriptions struct{ t *Transport }

func (f subscriptions) CanSubscribe(topic string) bool {
	_, ok := spaceOfTopic(topic)
	return ok
}

func (f subscriptions) FilterIncomingSubscriptions(p peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	out := make([]*pb.RPC_SubOpts, 0, len(subs))
	for _, s := range subs {
		if s.GetSubscribe() {
			space, ok := spaceOfTopic(s.GetTopicid())
			if !ok || !f.t.gater.onProbation(p) && !f.t.gater.admittedFor(space, p) {
				continue
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func spaceOfTopic(topic string) (core.ID, bool) {
	const pre, suf = topicPrefix, topicSuffix
	var id core.ID
	if len(topic) < len(pre)+len(suf) || topic[:len(pre)] != pre || topic[len(topic)-len(suf):] != suf {
		return id, false
	}
	if err := id.UnmarshalText([]byte(topic[len(pre) : len(topic)-len(suf)])); err != nil {
		return id, false
	}
	return id, true
}

// Join implements mesh.Transport.
func (t *Transport) Join(space core.ID, h mesh.Handler) error {
	t.joinMu.Lock()
	defer t.joinMu.Unlock()
	t.mu.Lock()
	closed, exists := t.closed, t.spaces[space] != nil
	t.mu.Unlock()
	if closed {
		return errors.New("libp2p: transport closed")
	}
	if exists {
		return fmt.Errorf("libp2p: space %s already joined", space.Short())
	}
	name := TopicName(space)
	if err := t.ps.RegisterTopicValidator(name, t.validator(space), pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("libp2p: register validator: %w", err)
	}
	topic, err := t.ps.Join(name)
	if err != nil {
		_ = t.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("libp2p: join topic: %w", err)
	}
	fail := func(err error) error {
		_ = topic.Close()
		_ = t.ps.UnregisterTopicValidator(name)
		return err
	}
	if err := topic.SetScoreParams(topicScoreParams()); err != nil {
		return fail(fmt.Errorf("libp2p: topic score: %w", err))
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return fail(fmt.Errorf("libp2p: subscribe: %w", err))
	}
	ctx, cancel := context.WithCancel(t.ctx)
	j := &joined{h: h, name: name, topic: topic, sub: sub, cancel: cancel, done: make(chan struct{})}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		cancel()
		sub.Cancel()
		return fail(errors.New("libp2p: transport closed"))
	}
	t.spaces[space] = j
	t.wg.Add(1)
	t.mu.Unlock()
	go t.readLoop(ctx, j)
	t.kick()
	return nil
}

// Leave implements mesh.Transport.
func (t *Transport) Leave(space core.ID) error {
	t.joinMu.Lock()
	defer t.joinMu.Unlock()
	t.mu.Lock()
	j := t.spaces[space]
	delete(t.spaces, space)
	t.mu.Unlock()
	if j == nil {
		return nil
	}
	j.cancel()
	j.sub.Cancel()
	<-j.done
	return errors.Join(j.topic.Close(), t.ps.UnregisterTopicValidator(j.name))
}

// readLoop drains the subscription: the validator hands pushes to the
// handler (in the order they arrived), the subscription only tells
// gossipsub that we take the topic's messages.
func (t *Transport) readLoop(ctx context.Context, j *joined) {
	defer t.wg.Done()
	defer close(j.done)
	for {
		if _, err := j.sub.Next(ctx); err != nil {
			return
		}
	}
}

// validator checks a gossip message before it is delivered or forwarded:
// its sender (the peer it came from: messages name no author) is admitted
// to the space now (else it is dropped), and it is CBOR [][]byte of
// envelopes, each opening (signature verified) for this space. Anything
// else is rejected, which lowers the sender's gossipsub score, and the
// sender is banned: a member relays only what it validated. A valid
// message is handed to the handler here, in the order messages arrived
// (one inline validation at a time), and forwarded only if the handler
// (a mesh.Relayer) lets us relay it now.
func (t *Transport) validator(space core.ID) func(context.Context, peer.ID, *pubsub.Message) pubsub.ValidationResult {
	return func(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if from == t.self {
			return pubsub.ValidationAccept // our own: the node publishes from its store
		}
		if !t.gater.admittedFor(space, from) {
			return pubsub.ValidationIgnore
		}
		reject := func(reason string) pubsub.ValidationResult {
			t.ban(from, "invalid gossip: "+reason)
			return pubsub.ValidationReject
		}
		var envs [][]byte
		if err := core.Unmarshal(msg.Data, &envs); err != nil {
			return reject("not a list of envelopes: " + err.Error())
		}
		if len(envs) == 0 {
			return reject("no envelopes")
		}
		ids := make([]core.ID, len(envs))
		changes := make([]*core.Change, len(envs))
		verified, errs := core.OpenBatch(envs) // one batch verification; the replica does not verify again
		for i, v := range verified {
			if errs[i] != nil {
				return reject(errs[i].Error())
			}
			c, id := v.Change(), v.ID()
			if c.Space != space && !(c.IsGenesis() && id == space) {
				return reject(fmt.Sprintf("change %s is for space %s", id.Short(), c.Space.Short()))
			}
			ids[i], changes[i] = id, c
		}
		t.mu.Lock()
		j := t.spaces[space]
		t.mu.Unlock()
		if j == nil {
			return pubsub.ValidationIgnore
		}
		p := openedPush{envs: envs, verified: verified}
		if sender, err := ToPeerID(from); err == nil {
			p.deliver(j.h, sender)
		}
		if r, ok := j.h.(mesh.Relayer); ok && !r.Relayable(ids, changes) {
			return pubsub.ValidationIgnore
		}
		return pubsub.ValidationAccept
	}
}

// openedPush is a gossip message the validator opened and verified.
type openedPush struct {
	envs     [][]byte
	verified []core.Verified
}

// deliver hands the push to h, with the proof of verification when h
// takes it (mesh.VerifiedHandler).
func (p *openedPush) deliver(h mesh.Handler, from mesh.PeerID) {
	if vh, ok := h.(mesh.VerifiedHandler); ok {
		vh.PushedVerified(from, p.envs, p.verified)
		return
	}
	h.Pushed(from, p.envs)
}

// Publish implements mesh.Transport: the envelopes go out in gossip
// messages of at most MaxPushBytes; an envelope too large for one is left
// to reconciliation.
func (t *Transport) Publish(ctx context.Context, space core.ID, envs [][]byte) error {
	t.mu.Lock()
	j := t.spaces[space]
	t.mu.Unlock()
	if j == nil {
		return fmt.Errorf("libp2p: space %s not joined", space.Short())
	}
	limit := t.cfg.MaxPushBytes - 1024
	var batch [][]byte
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		data, err := core.Marshal(batch)
		if err != nil {
			return err
		}
		batch, size = nil, 0
		if err := j.topic.Publish(ctx, data); err != nil {
			return fmt.Errorf("libp2p: publish: %w", err)
		}
		return nil
	}
	for _, env := range envs {
		n := len(env) + 9
		if n > limit {
			t.log.Debug("envelope too large to push; left to reconciliation", "bytes", len(env))
			continue
		}
		if size+n > limit {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, env)
		size += n
	}
	return flush()
}

// Peers implements mesh.Transport: connected peers admitted to the space
// (or, for a space without admission, subscribed to its topic).
func (t *Transport) Peers(space core.ID) []mesh.PeerID {
	t.mu.Lock()
	j := t.spaces[space]
	t.mu.Unlock()
	if j == nil || t.gater.isOffline() {
		return nil
	}
	var admit func(mesh.PeerID) bool
	if a := t.gater.admissionFor(space); a != nil {
		admit = a.Admit
	}
	var subscribed []peer.ID
	if admit == nil {
		subscribed = j.topic.ListPeers()
	}
	nw := t.host.Network()
	var out []mesh.PeerID
	for _, p := range nw.Peers() {
		if p == t.self || nw.Connectedness(p) != network.Connected || t.gater.isBanned(p) {
			continue
		}
		id, err := ToPeerID(p)
		if err != nil {
			continue
		}
		if admit != nil && !admit(id) || admit == nil && !slices.Contains(subscribed, p) {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// MDNS reports whether mDNS discovery runs, and if it was asked for but
// could not start, why.
func (t *Transport) MDNS() (running bool, err error) { return t.mdns != nil, t.mdnsErr }

// drops is the gossipsub tracer that logs pushes gossipsub dropped: to a
// peer whose outbound queue was full, or from a peer while our validation
// queue was full. Reconciliation delivers what they carried.
type drops struct{ t *Transport }

var _ pubsub.RawTracer = drops{}

func (d drops) DropRPC(rpc *pubsub.RPC, p peer.ID) {
	if n := len(rpc.GetPublish()); n > 0 {
		d.t.log.Warn("push to a peer dropped: its outbound queue is full; reconciliation will deliver", "remote", p, "messages", n)
	}
}

func (d drops) RejectMessage(msg *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		d.t.log.Warn("push from a peer dropped: validation queue full; reconciliation will deliver", "remote", msg.ReceivedFrom)
	}
}

func (drops) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (drops) OnClosedOutboundStream(peer.ID)                       {}
func (drops) Join(string)                                          {}
func (drops) Leave(string)                                         {}
func (drops) Graft(peer.ID, string)                                {}
func (drops) Prune(peer.ID, string)                                {}
func (drops) ValidateMessage(*pubsub.Message)                      {}
func (drops) DeliverMessage(*pubsub.Message)                       {}
func (drops) DuplicateMessage(*pubsub.Message)                     {}
func (drops) ThrottlePeer(peer.ID)                                 {}
func (drops) RecvRPC(*pubsub.RPC)                                  {}
func (drops) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (drops) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (drops) UndeliverableMessage(*pubsub.Message)                 {}
