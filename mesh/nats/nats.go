package nats

import (
	"context"
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

// Config configures a Transport.
type Config struct {
	// URL of the NATS server(s), comma-separated; used when Conn is nil.
	URL string
	// Conn is an existing connection to use instead of URL; the
	// Transport does not close it.
	Conn *natsgo.Conn
	// Options are extra options for the connection made from URL.
	Options []natsgo.Option
	// Key is our identity; our PeerID is Key.Public().String().
	Key core.PrivateKey

	StreamMaxAge      time.Duration // how long the store-and-forward stream keeps pushes (default 7 days)
	StreamMaxBytes    int64         // size limit of each space's stream (default 0: none, MaxAge bounds it)
	StreamReplicas    int           // JetStream replicas of each stream (default 1)
	ConsumerInactive  time.Duration // a durable consumer unused this long is removed (default StreamMaxAge)
	AckWait           time.Duration // redelivery of an unacknowledged push (default 30s)
	HeartbeatInterval time.Duration // presence period; peers silent for 3 periods are gone (default 1s)

	MaxMessageBytes    int           // request or reply, reassembled (default 32 MiB)
	MaxReassemblyBytes int64         // incoming requests being reassembled, all together (default 128 MiB)
	ReassemblyTimeout  time.Duration // an incomplete request is dropped after this (default 30s)
	MaxServing         int           // requests served at once; more are answered ErrBusy (default 64)
	ServeTimeout       time.Duration // one Handler.Serve call (default 2m)
	RequestTimeout     time.Duration // a Request whose ctx has no deadline (default 2m)
	OperationTimeout   time.Duration // JetStream management calls (default 10s)
	ConsumerMaxBytes   int           // pushes buffered from the durable consumer (default 16 MiB, at least 2 max_payload)

	Logger *slog.Logger
}

func (c *Config) defaults() {
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	num := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&c.StreamMaxAge, 7*24*time.Hour)
	dur(&c.ConsumerInactive, c.StreamMaxAge)
	dur(&c.AckWait, 30*time.Second)
	dur(&c.HeartbeatInterval, time.Second)
	dur(&c.ReassemblyTimeout, 30*time.Second)
	dur(&c.ServeTimeout, 2*time.Minute)
	dur(&c.RequestTimeout, 2*time.Minute)
	dur(&c.OperationTimeout, 10*time.Second)
	num(&c.StreamReplicas, 1)
	num(&c.MaxMessageBytes, 32<<20)
	num(&c.MaxServing, 64)
	num(&c.ConsumerMaxBytes, 16<<20)
	if c.MaxReassemblyBytes <= 0 {
		c.MaxReassemblyBytes = 128 << 20
	}
	if c.StreamMaxBytes <= 0 {
		c.StreamMaxBytes = -1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats count what the transport did and refused.
type Stats struct {
	PushesSent       uint64 `json:"pushes_sent"`       // push messages published
	PushesReceived   uint64 `json:"pushes_received"`   // push messages handed to a Handler
	RequestsSent     uint64 `json:"requests_sent"`     // Request calls that got a reply
	RequestsServed   uint64 `json:"requests_served"`   // requests answered
	Refused          uint64 `json:"refused"`           // undecodable or malformed messages
	Dropped          uint64 `json:"dropped"`           // messages from banned peers
	Busy             uint64 `json:"busy"`              // requests refused: too many served or reassembling
	ReassemblyFailed uint64 `json:"reassembly_failed"` // chunked requests dropped incomplete or too large
}

type counters struct {
	pushesSent, pushesReceived, requestsSent, requestsServed atomic.Uint64
	refused, dropped, busy, reassemblyFailed                 atomic.Uint64
}

// Transport implements mesh.Transport over NATS: pushes go through a
// JetStream stream per space (store and forward, one durable consumer per
// peer), presence and requests over core NATS.
type Transport struct {
	cfg   Config
	id    mesh.PeerID
	nc    *natsgo.Conn
	owned bool
	js    jetstream.JetStream
	log   *slog.Logger
	stats counters

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
	id                                core.ID
	stream, consumer                  string
	pushSubj, presenceSubj, serveSubj string
	h                                 mesh.Handler
	sess                              *session // nil while paused; guarded by Transport.mu

	seenMu sync.Mutex
	seen   map[mesh.PeerID]time.Time
}

// New connects (or adopts cfg.Conn) and starts the heartbeat loop.
func New(cfg Config) (*Transport, error) {
	if len(cfg.Key) == 0 {
		return nil, errors.New("nats transport: Config.Key is required")
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
		if cfg.URL == "" {
			return nil, errors.New("nats transport: Config.URL or Config.Conn is required")
		}
		opts := append([]natsgo.Option{
			natsgo.Name("tributary " + string(id)),
			natsgo.MaxReconnects(-1),
			natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
				if err != nil {
					t.log.Warn("nats disconnected", "err", err)
				}
			}),
			natsgo.ReconnectHandler(func(c *natsgo.Conn) { t.log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		}, cfg.Options...)
		nc, err := natsgo.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("nats transport: connect: %w", err)
		}
		t.nc, t.owned = nc, true
	}
	js, err := jetstream.New(t.nc)
	if err != nil {
		if t.owned {
			t.nc.Close()
		}
		return nil, fmt.Errorf("nats transport: jetstream: %w", err)
	}
	t.js = js
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
		PushesSent: c.pushesSent.Load(), PushesReceived: c.pushesReceived.Load(),
		RequestsSent: c.requestsSent.Load(), RequestsServed: c.requestsServed.Load(),
		Refused: c.refused.Load(), Dropped: c.dropped.Load(), Busy: c.busy.Load(),
		ReassemblyFailed: c.reassemblyFailed.Load(),
	}
}

// Subject and name helpers. A space ID's String is a CIDv1 in lowercase
// base32 and a PeerID is lowercase base32: both are valid subject tokens.
func pushSubject(s core.ID) string     { return "tributary." + s.String() + ".changes" }
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
		id: id, stream: StreamName(id), consumer: ConsumerName(t.id),
		pushSubj: pushSubject(id), presenceSubj: presenceSubject(id), serveSubj: serveSubject(id, t.id),
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

// Publish implements mesh.Transport: the envelopes go to the space's
// stream in as many messages as max_payload requires. An envelope too
// large for one message is left to reconciliation (the error wraps
// mesh.ErrTooLarge).
func (t *Transport) Publish(ctx context.Context, id core.ID, envelopes [][]byte) error {
	if _, err := t.active(id); err != nil {
		return err
	}
	if len(envelopes) == 0 {
		return nil
	}
	limit := t.maxChunk()
	var skipped int
	var batch [][]byte
	size := 9 // CBOR array header
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		data, err := core.Marshal(batch)
		if err != nil {
			return fmt.Errorf("nats transport: encode push: %w", err)
		}
		msg := &natsgo.Msg{Subject: pushSubject(id), Data: data, Header: natsgo.Header{hdrFrom: []string{string(t.id)}}}
		if _, err := t.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(StreamName(id))); err != nil {
			return fmt.Errorf("nats transport: publish to %s: %w", StreamName(id), err)
		}
		t.stats.pushesSent.Add(1)
		batch, size = batch[:0], 9
		return nil
	}
	for _, env := range envelopes {
		n := len(env) + 9
		if n+9 > limit {
			skipped++
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
	if err := flush(); err != nil {
		return err
	}
	if skipped > 0 {
		return fmt.Errorf("nats transport: %d envelopes exceed max_payload (%d bytes): %w", skipped, limit, mesh.ErrTooLarge)
	}
	return nil
}

// session is one space's subscriptions between Join (or Resume) and Leave
// (or Pause, Close). Callbacks run only while it is open; stop waits for
// them and for the requests being served.
type session struct {
	ctx    context.Context
	cancel context.CancelFunc
	subs   []*natsgo.Subscription
	cc     jetstream.ConsumeContext
	asm    *assembler

	mu   sync.Mutex
	open bool
	wg   sync.WaitGroup
}

func (s *session) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *session) leave() { s.wg.Done() }

// start ensures the stream and our durable consumer, then subscribes to
// presence and requests and consumes pushes.
func (t *Transport) start(sp *space) (_ *session, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.OperationTimeout)
	defer cancel()
	stream, err := t.ensureStream(ctx, sp)
	if err != nil {
		return nil, err
	}
	cons, err := t.ensureConsumer(ctx, stream, sp)
	if err != nil {
		return nil, err
	}
	sess := &session{open: true, asm: newAssembler(t)}
	sess.ctx, sess.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			t.stop(sess)
		}
	}()
	pres, err := t.nc.Subscribe(sp.presenceSubj, func(m *natsgo.Msg) {
		if sess.enter() {
			defer sess.leave()
			t.onPresence(sp, m)
		}
	})
	if err != nil {
		return sess, fmt.Errorf("nats transport: subscribe presence: %w", err)
	}
	sess.subs = append(sess.subs, pres)
	serve, err := t.nc.Subscribe(sp.serveSubj, func(m *natsgo.Msg) {
		if sess.enter() {
			defer sess.leave()
			t.onRequest(sp, sess, m)
		}
	})
	if err != nil {
		return sess, fmt.Errorf("nats transport: subscribe requests: %w", err)
	}
	sess.subs = append(sess.subs, serve)
	pendingBytes := max(64<<20, int(t.cfg.MaxReassemblyBytes)+2*t.cfg.MaxMessageBytes)
	if err := serve.SetPendingLimits(1<<16, pendingBytes); err != nil {
		return sess, err
	}
	sess.cc, err = cons.Consume(func(m jetstream.Msg) {
		if sess.enter() { // else left unacknowledged: redelivered later
			defer sess.leave()
			t.onPush(sp, m)
		}
	},
		jetstream.PullMaxBytes(max(t.cfg.ConsumerMaxBytes, 2*int(t.nc.MaxPayload()))),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			t.log.Debug("push consumer", "space", sp.id.Short(), "err", err)
		}))
	if err != nil {
		return sess, fmt.Errorf("nats transport: consume %s: %w", sp.consumer, err)
	}
	if err := t.nc.FlushTimeout(t.cfg.OperationTimeout); err != nil {
		return sess, fmt.Errorf("nats transport: flush: %w", err)
	}
	return sess, nil
}

// stop ends a session: the consumer drains (buffered pushes are handled
// and acknowledged), callbacks stop, requests being served are cancelled
// and awaited.
func (t *Transport) stop(s *session) {
	if s.cc != nil {
		if t.nc.IsConnected() {
			s.cc.Drain()
		} else {
			s.cc.Stop() // what is buffered is redelivered later
		}
		select {
		case <-s.cc.Closed():
		case <-time.After(t.cfg.OperationTimeout):
			s.cc.Stop()
			t.log.Warn("push consumer did not drain in time")
		}
	}
	s.mu.Lock()
	s.open = false
	s.mu.Unlock()
	s.cancel()
	for _, sub := range s.subs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) && !errors.Is(err, natsgo.ErrBadSubscription) {
			t.log.Debug("unsubscribe", "subject", sub.Subject, "err", err)
		}
	}
	s.wg.Wait()
	s.asm.reset()
}

func (t *Transport) ensureStream(ctx context.Context, sp *space) (jetstream.Stream, error) {
	s, err := t.js.Stream(ctx, sp.stream)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("nats transport: stream %s: %w", sp.stream, err)
	}
	s, err = t.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        sp.stream,
		Description: "tributary pushes of space " + sp.id.String(),
		Subjects:    []string{sp.pushSubj},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      t.cfg.StreamMaxAge,
		MaxBytes:    t.cfg.StreamMaxBytes,
		Replicas:    t.cfg.StreamReplicas,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = t.js.Stream(ctx, sp.stream) // another peer made it first
	}
	if err != nil {
		return nil, fmt.Errorf("nats transport: create stream %s: %w", sp.stream, err)
	}
	return s, nil
}

func (t *Transport) ensureConsumer(ctx context.Context, s jetstream.Stream, sp *space) (jetstream.Consumer, error) {
	c, err := s.Consumer(ctx, sp.consumer)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("nats transport: consumer %s: %w", sp.consumer, err)
	}
	// A new peer starts from now: what was pushed before, reconciliation
	// brings.
	c, err = s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:           sp.consumer,
		Description:       "tributary peer " + string(t.id),
		FilterSubject:     sp.pushSubj,
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           t.cfg.AckWait,
		MaxDeliver:        10,
		InactiveThreshold: t.cfg.ConsumerInactive,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) || errors.Is(err, jetstream.ErrConsumerNameAlreadyInUse) {
		c, err = s.Consumer(ctx, sp.consumer)
	}
	if err != nil {
		return nil, fmt.Errorf("nats transport: create consumer %s: %w", sp.consumer, err)
	}
	return c, nil
}

// onPush handles one message of the durable consumer. Whatever is
// refused is acknowledged too, so it is not redelivered.
func (t *Transport) onPush(sp *space, m jetstream.Msg) {
	defer func() {
		if err := m.Ack(); err != nil {
			t.log.Debug("ack push", "err", err)
		}
	}()
	from := mesh.PeerID(m.Headers().Get(hdrFrom))
	if from == t.id {
		return
	}
	if !validPeer(from) {
		t.stats.refused.Add(1)
		t.log.Warn("push refused: no valid sender", "space", sp.id.Short(), "from", truncate(string(from)))
		return
	}
	if t.isBanned(from) {
		t.stats.dropped.Add(1)
		return
	}
	var envs [][]byte
	if err := core.Unmarshal(m.Data(), &envs); err != nil {
		t.stats.refused.Add(1)
		t.log.Warn("push refused: undecodable", "space", sp.id.Short(), "from", from, "bytes", len(m.Data()), "err", err)
		return
	}
	if len(envs) == 0 {
		return
	}
	t.stats.pushesReceived.Add(1)
	sp.h.Pushed(from, envs)
}

// onPresence records a peer's heartbeat; a peer heard for the first time
// gets ours at once so that both see each other quickly.
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
