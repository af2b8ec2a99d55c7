package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// Message headers. NATS is an untrusted pipe: every header is a claim.
const (
	hdrFrom      = "Trib-From"       // sender's PeerID
	hdrReq       = "Trib-Req"        // request ID, shared by a request's chunks
	hdrChunk     = "Trib-Chunk"      // "i/n" when a message spans n chunks
	hdrError     = "Trib-Error"      // Serve's error, on a reply
	hdrErrorCode = "Trib-Error-Code" // which mesh error it wraps
	hdrBye       = "Trib-Bye"        // on presence: the peer leaves
)

// Stats count what the transport did and refused.
type Stats struct {
	PushesSent       uint64 `json:"pushes_sent"`       // changes published into the stream (live or by stream sync)
	Uploaded         uint64 `json:"uploaded"`          // of those, ones stream sync found missing
	AlreadyStored    uint64 `json:"already_stored"`    // publishes the stream refused: it holds the change already
	TooLarge         uint64 `json:"too_large"`         // changes over the server's max_payload: left to reconciliation
	StreamSyncs      uint64 `json:"stream_syncs"`      // passes comparing our changes with the stream's that completed
	PushesReceived   uint64 `json:"pushes_received"`   // changes from the stream handed to a Handler
	Deferred         uint64 `json:"deferred"`          // deliveries the Handler could not take yet: delivered again later
	RequestsSent     uint64 `json:"requests_sent"`     // Request calls that got a reply
	RequestsServed   uint64 `json:"requests_served"`   // requests answered
	Refused          uint64 `json:"refused"`           // malformed or misfiled messages
	Dropped          uint64 `json:"dropped"`           // messages from banned peers
	Busy             uint64 `json:"busy"`              // requests refused: too many served or reassembling
	ReassemblyFailed uint64 `json:"reassembly_failed"` // chunked requests dropped incomplete or too large
}

type counters struct {
	pushesSent, uploaded, alreadyStored, tooLarge, streamSyncs atomic.Uint64
	pushesReceived, deferred, requestsSent, requestsServed     atomic.Uint64
	refused, dropped, busy, reassemblyFailed                   atomic.Uint64
}

// Transport implements mesh.Transport over NATS: changes go through a
// JetStream stream per space (one message per change; store and forward,
// one durable consumer per peer), presence and requests over core NATS.
type Transport struct {
	cfg   Config
	id    mesh.PeerID
	nc    *natsgo.Conn
	owned bool
	js    jetstream.JetStream
	log   *slog.Logger
	stats counters
	perms permissions

	// life serializes Join, Leave, Pause, Resume and Close. Callbacks
	// never take it, so it may be held while waiting for them.
	life sync.Mutex
	// beatMu orders heartbeats and goodbyes: no heartbeat of a space
	// follows its goodbye.
	beatMu sync.Mutex

	mu      sync.Mutex
	spaces  map[core.ID]*space
	banned  map[mesh.PeerID]string
	paused  bool
	closed  bool
	lastHB  time.Time
	serving chan struct{} // semaphore of requests being served

	reassembling atomic.Int64 // bytes held by incomplete incoming requests

	announce chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
}

var (
	_ mesh.Transport = (*Transport)(nil)
	_ mesh.Banner    = (*Transport)(nil)
)

// space is a joined space.
type space struct {
	id                      core.ID
	stream, consumer        string
	changes                 string // subject prefix of its changes: "tributary.<space>.changes."
	presenceSubj, serveSubj string
	h                       mesh.Handler
	sess                    *session // nil while paused; guarded by Transport.mu

	seenMu sync.Mutex
	seen   map[mesh.PeerID]time.Time
}

// New validates cfg, connects (or adopts cfg.Conn) and starts the
// heartbeat loop.
func New(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	id := mesh.PeerOf(cfg.Key.Public())
	t := &Transport{
		cfg: cfg, id: id,
		log:      cfg.Logger.With("transport", "nats", "peer", string(id)[:8]),
		spaces:   map[core.ID]*space{},
		banned:   map[mesh.PeerID]string{},
		serving:  make(chan struct{}, cfg.MaxServing),
		announce: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if cfg.Conn != nil {
		t.nc = cfg.Conn
	} else {
		opts, err := cfg.connectOptions()
		if err != nil {
			return nil, fmt.Errorf("nats transport: %w", err)
		}
		opts = append(append([]natsgo.Option{
			natsgo.Name("tributary " + string(id)),
			natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
				if err != nil {
					t.log.Warn("nats disconnected", "err", err)
				}
			}),
			natsgo.ReconnectHandler(func(c *natsgo.Conn) { t.log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
			natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
				if errors.Is(err, natsgo.ErrPermissionViolation) {
					t.log.Warn("nats permission violation: the server's operator has not allowed us a subject we use", "err", err)
					t.perms.report(err)
					return
				}
				t.log.Warn("nats error", "err", err)
			}),
		}, opts...), cfg.Options...)
		nc, err := natsgo.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, connectError(&cfg, err)
		}
		t.nc, t.owned = nc, true
	}
	js, err := jetstream.New(t.nc,
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
		jetstream.WithPublishAsyncMaxPending(4*cfg.MaxPublishPending))
	if err != nil {
		if t.owned {
			t.nc.Close()
		}
		return nil, fmt.Errorf("nats transport: jetstream: %w", err)
	}
	t.js = js
	if mp := t.nc.MaxPayload(); mp > 0 && int64(t.maxChunk()) < core.MaxChangeBytes+512 {
		t.log.Info("the server's max_payload is below the largest change: larger changes reach offline peers by reconciliation only; set max_payload to 8MB for all to go through the stream",
			"max_payload", mp, "max_change_bytes", core.MaxChangeBytes)
	}
	t.wg.Add(1)
	go t.heartbeatLoop()
	return t, nil
}

// ID is our PeerID.
func (t *Transport) ID() mesh.PeerID { return t.id }

// Conn is the NATS connection.
func (t *Transport) Conn() *natsgo.Conn { return t.nc }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	c := &t.stats
	return Stats{
		PushesSent: c.pushesSent.Load(), Uploaded: c.uploaded.Load(), AlreadyStored: c.alreadyStored.Load(),
		TooLarge: c.tooLarge.Load(), StreamSyncs: c.streamSyncs.Load(),
		PushesReceived: c.pushesReceived.Load(), Deferred: c.deferred.Load(),
		RequestsSent: c.requestsSent.Load(), RequestsServed: c.requestsServed.Load(),
		Refused: c.refused.Load(), Dropped: c.dropped.Load(), Busy: c.busy.Load(),
		ReassemblyFailed: c.reassemblyFailed.Load(),
	}
}

// Subject and name helpers. A space ID's String and a change ID's are
// CIDv1 in lowercase base32 and a PeerID is lowercase base32: all are
// valid subject tokens.
func changesPrefix(s core.ID) string   { return "tributary." + s.String() + ".changes." }
func presenceSubject(s core.ID) string { return "tributary." + s.String() + ".presence" }
func serveSubject(s core.ID, p mesh.PeerID) string {
	return "tributary." + s.String() + ".sync." + string(p)
}

// StreamName is the JetStream stream that stores a space's pushes.
func StreamName(s core.ID) string { return "TRIB_" + sanitize(s.String()) }

// ConsumerName is the durable consumer through which peer receives pushes.
func ConsumerName(p mesh.PeerID) string { return "peer_" + sanitize(string(p)) }

// sanitize keeps the characters valid in stream and consumer names.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// validPeer reports whether p is a well-formed PeerID (an Ed25519 key).
func validPeer(p mesh.PeerID) bool {
	if len(p) != 52 {
		return false
	}
	_, err := core.ParsePublicKey(string(p))
	return err == nil
}

// Join implements mesh.Transport: it makes sure the space's stream and our
// durable consumer exist, then subscribes.
func (t *Transport) Join(id core.ID, h mesh.Handler) error {
	if id.IsZero() {
		return errors.New("nats transport: zero space ID")
	}
	t.life.Lock()
	defer t.life.Unlock()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return errors.New("nats transport: closed")
	}
	if _, ok := t.spaces[id]; ok {
		t.mu.Unlock()
		return fmt.Errorf("nats transport: space %s already joined", id.Short())
	}
	paused := t.paused
	t.mu.Unlock()
	sp := &space{
		id: id, stream: StreamName(id), consumer: ConsumerName(t.id), changes: changesPrefix(id),
		presenceSubj: presenceSubject(id), serveSubj: serveSubject(id, t.id),
		h: h, seen: map[mesh.PeerID]time.Time{},
	}
	var sess *session
	if !paused {
		var err error
		if sess, err = t.start(sp); err != nil {
			return err
		}
	}
	t.mu.Lock()
	sp.sess = sess
	t.spaces[id] = sp
	t.mu.Unlock()
	if sess != nil {
		t.beat(sp, false)
	}
	return nil
}

// Leave implements mesh.Transport. When it returns, the handler gets
// nothing more.
func (t *Transport) Leave(id core.ID) error {
	t.life.Lock()
	defer t.life.Unlock()
	t.beatMu.Lock()
	t.mu.Lock()
	sp := t.spaces[id]
	delete(t.spaces, id)
	var sess *session
	if sp != nil {
		sess, sp.sess = sp.sess, nil
	}
	t.mu.Unlock()
	if sess != nil {
		t.beat(sp, true)
	}
	t.beatMu.Unlock()
	if sess != nil {
		t.stop(sess)
	}
	return nil
}

// Pause cuts the transport off as a network partition would: it says
// goodbye, stops heartbeats, drains the subscriptions and stops consuming
// the durable consumers; Publish and Request fail until Resume. Pushes
// published meanwhile wait in the streams.
func (t *Transport) Pause() {
	t.life.Lock()
	defer t.life.Unlock()
	t.mu.Lock()
	if t.paused || t.closed {
		t.mu.Unlock()
		return
	}
	t.paused = true
	t.mu.Unlock()
	spaces, sessions := t.detach()
	for i, sp := range spaces {
		t.stop(sessions[i])
		sp.seenMu.Lock()
		clear(sp.seen)
		sp.seenMu.Unlock()
	}
	if t.nc.IsConnected() {
		if err := t.nc.FlushTimeout(t.cfg.OperationTimeout); err != nil {
			t.log.Debug("flush after pause", "err", err)
		}
	}
}

// Resume undoes Pause: the durable consumers deliver what was pushed
// meanwhile.
func (t *Transport) Resume() error {
	t.life.Lock()
	defer t.life.Unlock()
	t.mu.Lock()
	if !t.paused || t.closed {
		t.mu.Unlock()
		return nil
	}
	t.paused = false
	spaces := make([]*space, 0, len(t.spaces))
	for _, sp := range t.spaces {
		spaces = append(spaces, sp)
	}
	t.mu.Unlock()
	var errs []error
	for _, sp := range spaces {
		sess, err := t.start(sp)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.mu.Lock()
		sp.sess = sess
		t.mu.Unlock()
		t.beat(sp, false)
	}
	return errors.Join(errs...)
}

// Close leaves every space, stops the transport's goroutines and closes
// the connection if the transport made it.
func (t *Transport) Close() error {
	t.life.Lock()
	defer t.life.Unlock()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	_, sessions := t.detach()
	t.mu.Lock()
	clear(t.spaces)
	t.mu.Unlock()
	for _, s := range sessions {
		t.stop(s)
	}
	close(t.done)
	t.wg.Wait()
	t.js.CleanupPublisher() // its reply subscription lives on an adopted Conn
	if t.owned {
		if t.nc.IsConnected() {
			_ = t.nc.FlushTimeout(t.cfg.OperationTimeout) // the goodbyes
		}
		t.nc.Close()
	}
	return nil
}

// detach takes the sessions of every space away (so nothing reaches
// them any more through the transport) and says goodbye in each.
func (t *Transport) detach() ([]*space, []*session) {
	t.beatMu.Lock()
	defer t.beatMu.Unlock()
	t.mu.Lock()
	var spaces []*space
	var sessions []*session
	for _, sp := range t.spaces {
		if sp.sess != nil {
			spaces, sessions = append(spaces, sp), append(sessions, sp.sess)
			sp.sess = nil
		}
	}
	t.mu.Unlock()
	for _, sp := range spaces {
		t.beat(sp, true)
	}
	return spaces, sessions
}

// Ban implements mesh.Banner: nothing from peer is delivered any more and
// it leaves Peers.
func (t *Transport) Ban(peer mesh.PeerID, reason string) {
	t.mu.Lock()
	_, already := t.banned[peer]
	t.banned[peer] = reason
	spaces := make([]*space, 0, len(t.spaces))
	for _, sp := range t.spaces {
		spaces = append(spaces, sp)
	}
	t.mu.Unlock()
	for _, sp := range spaces {
		sp.seenMu.Lock()
		delete(sp.seen, peer)
		sp.seenMu.Unlock()
	}
	if !already {
		t.log.Warn("peer banned", "peer", peer, "reason", reason)
	}
}

// Banned lists the banned peers with the reason.
func (t *Transport) Banned() map[mesh.PeerID]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[mesh.PeerID]string, len(t.banned))
	for k, v := range t.banned {
		out[k] = v
	}
	return out
}

func (t *Transport) isBanned(p mesh.PeerID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.banned[p]
	return ok
}

// Peers implements mesh.Transport: the peers heard within three heartbeat
// intervals, except banned ones.
func (t *Transport) Peers(id core.ID) []mesh.PeerID {
	t.mu.Lock()
	sp := t.spaces[id]
	if sp == nil || sp.sess == nil {
		t.mu.Unlock()
		return nil
	}
	banned := make(map[mesh.PeerID]bool, len(t.banned))
	for p := range t.banned {
		banned[p] = true
	}
	t.mu.Unlock()
	cutoff := time.Now().Add(-3 * t.cfg.HeartbeatInterval)
	var out []mesh.PeerID
	sp.seenMu.Lock()
	for p, at := range sp.seen {
		if at.After(cutoff) && !banned[p] && p != t.id {
			out = append(out, p)
		}
	}
	sp.seenMu.Unlock()
	slices.Sort(out)
	return out
}

// active returns the space and whether the transport can talk now.
func (t *Transport) active(id core.ID) (*space, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, fmt.Errorf("nats transport: closed: %w", mesh.ErrNoPeer)
	case t.paused:
		return nil, fmt.Errorf("nats transport: paused: %w", mesh.ErrNoPeer)
	}
	return t.spaces[id], nil
}

// maxChunk is the payload that fits in one NATS message next to our
// headers.
func (t *Transport) maxChunk() int {
	mp := int(t.nc.MaxPayload())
	if mp <= 0 {
		mp = 1 << 20
	}
	if mp > 16<<10 {
		return mp - 4<<10
	}
	return mp / 2
}

// onPresence records a peer's heartbeat; a peer heard for the first time
// (or after an absence) gets ours at once so that both see each other
// quickly, and the space's node hears that it appeared (mesh.Greeter).
func (t *Transport) onPresence(sp *space, m *natsgo.Msg) {
	p := mesh.PeerID(m.Data)
	if p == t.id {
		return
	}
	if !validPeer(p) {
		t.stats.refused.Add(1)
		t.log.Debug("presence refused", "space", sp.id.Short(), "peer", truncate(string(p)))
		return
	}
	if t.isBanned(p) {
		t.stats.dropped.Add(1)
		return
	}
	now := time.Now()
	sp.seenMu.Lock()
	if m.Header.Get(hdrBye) != "" {
		delete(sp.seen, p)
		sp.seenMu.Unlock()
		return
	}
	prev, known := sp.seen[p]
	sp.seen[p] = now
	sp.seenMu.Unlock()
	if !known || now.Sub(prev) > 3*t.cfg.HeartbeatInterval {
		select {
		case t.announce <- struct{}{}:
		default:
		}
		// A peer heard for the first time, or again after an absence:
		// its node reconciles with it at once.
		if g, ok := sp.h.(mesh.Greeter); ok {
			g.Appeared(p)
		}
	}
}

// beat publishes our presence in sp (a goodbye if bye).
func (t *Transport) beat(sp *space, bye bool) {
	msg := &natsgo.Msg{Subject: sp.presenceSubj, Data: []byte(t.id)}
	if bye {
		msg.Header = natsgo.Header{hdrBye: []string{"1"}}
	}
	if err := t.nc.PublishMsg(msg); err != nil {
		t.log.Debug("heartbeat", "space", sp.id.Short(), "err", err)
	}
}

// heartbeatLoop announces us in every active space each interval (and
// soon after a new peer appears) and drops stale reassemblies.
func (t *Transport) heartbeatLoop() {
	defer t.wg.Done()
	tick := time.NewTicker(t.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		case <-t.announce:
			t.mu.Lock()
			recent := time.Since(t.lastHB) < t.cfg.HeartbeatInterval/10
			t.mu.Unlock()
			if recent {
				continue
			}
		}
		t.beatMu.Lock()
		t.mu.Lock()
		t.lastHB = time.Now()
		var spaces []*space
		var asms []*assembler
		for _, sp := range t.spaces {
			if sp.sess != nil {
				spaces, asms = append(spaces, sp), append(asms, sp.sess.asm)
			}
		}
		t.mu.Unlock()
		for _, sp := range spaces {
			t.beat(sp, false)
		}
		t.beatMu.Unlock()
		for _, a := range asms {
			a.expire(time.Now())
		}
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
