package nats

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// peer is a replica with a node over its own NATS transport; stop takes
// it offline (node and connection), as a stopped process would be.
type peer struct {
	r    *replica.Replica
	key  core.PrivateKey
	tr   *Transport
	node *mesh.Node
}

func startPeer(t *testing.T, url string, r *replica.Replica, key core.PrivateKey, tune func(*Config), mcfg mesh.Config) *peer {
	t.Helper()
	cfg := Config{URL: url, Key: key, HeartbeatInterval: 100 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if mcfg.SyncInterval == 0 {
		mcfg.SyncInterval = 100 * time.Millisecond
	}
	n := mesh.NewNode(r, tr, mcfg)
	if err := n.Start(context.Background()); err != nil {
		tr.Close()
		t.Fatal(err)
	}
	p := &peer{r: r, key: key, tr: tr, node: n}
	t.Cleanup(p.stop)
	return p
}

func (p *peer) stop() {
	p.node.Close()
	p.tr.Close()
}

func changes(t testing.TB, r *replica.Replica) int {
	t.Helper()
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Changes
}

// writeNotes writes count notes on p, one change each, as a user would.
func writeNotes(t *testing.T, s *meshtest.Space, p *peer, prefix string, count int) {
	t.Helper()
	for i := range count {
		ops := []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("%s-%d", prefix, i), Fields: map[string]any{"text": "written while the peer was away", "n": int64(i)}}}
		if _, err := p.r.Write(context.Background(), p.key, ops, s.Now()); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

// TestBacklogFromStreamAlone: B is offline while A writes 10000 notes
// (one change each); A goes offline too; B starts with only the NATS
// server up and gets every change from its durable consumer, however
// small its inbound queue (the synchronous path does not use it).
func TestBacklogFromStreamAlone(t *testing.T) {
	s := startServer(t)
	space := meshtest.NewSpace(t, 2)
	ra, rb := space.Member(t), space.Member(t)
	a := startPeer(t, s.ClientURL(), ra, space.Keys[0], nil, mesh.Config{})
	b := startPeer(t, s.ClientURL(), rb, space.Keys[1], nil, mesh.Config{})
	b.stop()

	const notes = 10000
	start := time.Now()
	writeNotes(t, space, a, "backlog", notes)
	wrote := time.Since(start)
	want := changes(t, ra)
	waitForStream(t, s.ClientURL(), space.ID, want)
	published := time.Since(start)
	a.stop()

	start = time.Now()
	b = startPeer(t, s.ClientURL(), rb, space.Keys[1], nil, mesh.Config{InboundQueue: 4})
	meshtest.Eventually(t, 5*time.Minute, "B receives the backlog from JetStream", func() (bool, string) {
		got := changes(t, rb)
		return got == want, fmt.Sprintf("B holds %d of %d changes; B's node: %v", got, want, b.node.Metrics().Snapshot())
	})
	took := time.Since(start)
	if sa, sb := meshtest.State(t, ra), meshtest.State(t, rb); sa != sb {
		t.Fatalf("states differ:\n%.300s\n%.300s", sa, sb)
	}
	m := b.node.Metrics().Snapshot()
	if m["bytes_received"] != 0 || m["syncs_served"] != 0 {
		t.Fatalf("B reconciled with someone: %v", m)
	}
	t.Logf("A wrote %d notes in %s (all in the stream after %s); B, starting alone, had them from JetStream after %s: %v; transport %+v",
		notes, wrote.Round(time.Millisecond), published.Round(time.Millisecond), took.Round(time.Millisecond), m, b.tr.Stats())
}

// TestBusyNodePushesBack: a node that cannot take everything now (over
// its push rate, or its limit of changes held for missing parents
// reached) stores what it can; the rest is negatively acknowledged with a
// delay and delivered again, never dropped.
func TestBusyNodePushesBack(t *testing.T) {
	s := startServer(t)
	fast := func(c *Config) { c.RetryDelay, c.RetryMaxDelay = 50*time.Millisecond, 200*time.Millisecond }
	// fill puts changes into the space's stream, in that order, as A
	// would, with nobody consuming.
	fill := func(t *testing.T, space *meshtest.Space, envs [][]byte) {
		ta := newTransport(t, s, space.Keys[0], nil)
		join(t, ta, space.ID, &recorder{})
		if err := ta.Publish(context.Background(), space.ID, envs); err != nil {
			t.Fatal(err)
		}
		ta.Close()
	}

	t.Run("RateLimit", func(t *testing.T) {
		space := meshtest.NewSpace(t, 2)
		chain := space.Chain(t, 300)
		fill(t, space, chain)
		rb := space.Member(t)
		// 20 changes/s after a burst of 100: most batches wait for tokens
		// (how many depends on how fast the node stores, so the count is
		// logged, not asserted; TestSettlement asserts the mechanism).
		b := startPeer(t, s.ClientURL(), rb, space.Keys[1], fast, mesh.Config{PushRate: 20, PushBurst: 100})
		meshtest.Eventually(t, 2*time.Minute, "the rate-limited node gets every change", func() (bool, string) {
			got := changes(t, rb)
			return got == len(space.Bootstrap)+len(chain), fmt.Sprintf("B holds %d of %d changes", got, len(space.Bootstrap)+len(chain))
		})
		t.Logf("deferred %d times; transport %+v", b.node.Metrics().PushesDeferred.Load(), b.tr.Stats())
	})

	t.Run("OrphanLimit", func(t *testing.T) {
		space := meshtest.NewSpace(t, 2)
		chain := space.Chain(t, 600)
		slices.Reverse(chain) // children first: each waits for its parent
		fill(t, space, chain)
		rb, err := replica.Open(replica.Options{InMemory: true, MaxOrphans: 50})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rb.Close() })
		if _, err := rb.Receive(context.Background(), space.Bootstrap); err != nil {
			t.Fatal(err)
		}
		b := startPeer(t, s.ClientURL(), rb, space.Keys[1], fast, mesh.Config{})
		meshtest.Eventually(t, time.Minute, "the node with a small orphan limit gets every change", func() (bool, string) {
			got := changes(t, rb)
			return got == len(space.Bootstrap)+len(chain), fmt.Sprintf("B holds %d of %d changes", got, len(space.Bootstrap)+len(chain))
		})
		if d, st := b.node.Metrics().PushesDeferred.Load(), b.tr.Stats(); d == 0 || st.Deferred == 0 {
			t.Fatalf("nothing was deferred (node %d, transport %+v)", d, st)
		}
		t.Logf("deferred %d times; transport %+v", b.node.Metrics().PushesDeferred.Load(), b.tr.Stats())
	})
}

// TestJoinerBootstrapsFromStream: A founds a space and writes with no
// NATS, goes online once, then offline. B joined with an invite (it holds
// only its own grant, no genesis), never met A, and starts with only the
// NATS server up: it reaches A's state from the stream.
func TestJoinerBootstrapsFromStream(t *testing.T) {
	s := startServer(t)
	space := meshtest.NewSpace(t, 1)
	ra := space.Member(t)
	keyA, keyB := space.Keys[0], meshtest.Key(t, 77)
	code, terms := space.Invite(t, ra, meshtest.Millis(time.Hour))
	rb := space.Newcomer(t, meshtest.Use(t, code, terms, keyB.Public(), space.Now()))
	ctx := context.Background()
	for i := range 200 {
		ops := []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("before-nats-%d", i), Fields: map[string]any{"text": "offline history", "n": int64(i)}}}
		if _, err := ra.Write(ctx, keyA, ops, space.Now()); err != nil {
			t.Fatal(err)
		}
	}
	want := changes(t, ra)

	a := startPeer(t, s.ClientURL(), ra, keyA, nil, mesh.Config{})
	waitForStream(t, s.ClientURL(), space.ID, want)
	a.stop()

	b := startPeer(t, s.ClientURL(), rb, keyB, nil, mesh.Config{})
	meshtest.Eventually(t, time.Minute, "B reaches A's state from the stream", func() (bool, string) {
		if !rb.HasGenesis() {
			return false, "B has no genesis"
		}
		got := changes(t, rb)
		return got == want+1 && rb.IsMember(keyB.Public()), fmt.Sprintf("B holds %d changes, want A's %d and its grant", got, want)
	})
	docsA, err := ra.Query("Note", nil)
	if err != nil {
		t.Fatal(err)
	}
	docsB, err := rb.Query("Note", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(docsA) != 200 || fmt.Sprint(docsA) != fmt.Sprint(docsB) {
		t.Fatalf("B has %d notes, A %d", len(docsB), len(docsA))
	}

	// B's grant went into the stream: A, back with B gone, learns that B
	// is a member from it.
	waitForStream(t, s.ClientURL(), space.ID, want+1)
	b.stop()
	startPeer(t, s.ClientURL(), ra, keyA, nil, mesh.Config{})
	meshtest.Eventually(t, 30*time.Second, "A learns of B's membership from the stream", func() (bool, string) {
		return ra.IsMember(keyB.Public()), fmt.Sprintf("A holds %d changes", changes(t, ra))
	})
}

// waitForStream waits until the space's stream holds at least n
// messages (one per change).
func waitForStream(t *testing.T, url string, space core.ID, n int) {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 3*time.Minute, "the stream holds the space", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, StreamName(space))
		if err != nil {
			return false, err.Error()
		}
		info, err := st.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.State.Msgs >= uint64(n), fmt.Sprintf("stream holds %d messages, want %d", info.State.Msgs, n)
	})
}

// TestForgedSettledOnce: a forged change in the stream gets its sender
// banned and is terminated: it is not delivered again, and the good
// changes around it still arrive.
func TestForgedSettledOnce(t *testing.T) {
	s := startServer(t)
	space := meshtest.NewSpace(t, 3)
	ra, rb, rc := space.Member(t), space.Member(t), space.Member(t)
	a := startPeer(t, s.ClientURL(), ra, space.Keys[0], nil, mesh.Config{})
	b := startPeer(t, s.ClientURL(), rb, space.Keys[1], nil, mesh.Config{})
	b.stop() // B is away: what follows reaches it through the stream only

	// C turns hostile: a change with a broken signature, by hand.
	evil, err := rc.Write(context.Background(), space.Keys[2], []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: "forged", Fields: map[string]any{"text": "x"}}}, space.Now())
	if err != nil {
		t.Fatal(err)
	}
	envEvil, err := rc.Envelope(evil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := core.DecodeSigned(envEvil)
	if err != nil {
		t.Fatal(err)
	}
	forged.Sig[3] ^= 0x10
	bad, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tc := newTransport(t, s, space.Keys[2], nil)
	join(t, tc, space.ID, &recorder{})
	if err := tc.Publish(context.Background(), space.ID, [][]byte{bad}); err != nil {
		t.Fatal(err)
	}
	writeNotes(t, space, a, "honest", 20)
	want := changes(t, ra)
	waitForStream(t, s.ClientURL(), space.ID, want+1)
	a.stop()
	tc.Close()

	b = startPeer(t, s.ClientURL(), rb, space.Keys[1], func(c *Config) { c.AckWait = time.Second }, mesh.Config{})
	meshtest.Eventually(t, 30*time.Second, "B gets the honest changes and bans the forger", func() (bool, string) {
		_, banned := b.node.Banned()[mesh.PeerOf(space.Keys[2].Public())]
		return changes(t, rb) == want && banned, fmt.Sprintf("B holds %d of %d; banned %v", changes(t, rb), want, b.node.Banned())
	})
	if rb.Has(evil) {
		t.Fatal("B stored the forged change")
	}
	cons := consumerInfo(t, s.ClientURL(), space.ID, b.tr.ID())
	meshtest.Eventually(t, 10*time.Second, "every message settled", func() (bool, string) {
		c := cons()
		return c.NumAckPending == 0 && c.NumPending == 0, fmt.Sprintf("%+v", c)
	})
	received := b.tr.Stats().PushesReceived
	time.Sleep(3 * time.Second) // past AckWait: anything unsettled would come again
	if c := cons(); c.NumRedelivered != 0 || b.tr.Stats().PushesReceived != received {
		t.Fatalf("delivered again: consumer %+v, transport %+v", c, b.tr.Stats())
	}
}

// consumerInfo reads peer's durable consumer in space's stream.
func consumerInfo(t *testing.T, url string, space core.ID, peer mesh.PeerID) func() jetstream.ConsumerInfo {
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return func() jetstream.ConsumerInfo {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, StreamName(space), ConsumerName(peer))
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return *info
	}
}

// TestOlderStreamCorrected: a stream and consumer made by an earlier
// version (one subject for batches of changes, old messages discarded
// first, ten deliveries at most) are corrected on Join, and replication
// goes on through them.
func TestOlderStreamCorrected(t *testing.T) {
	s := startServer(t)
	space := meshtest.NewSpace(t, 2)
	peerB := mesh.PeerOf(space.Keys[1].Public())
	nc, err := natsgo.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old := "tributary." + space.ID.String() + ".changes"
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: StreamName(space.ID), Subjects: []string{old}, Storage: jetstream.FileStorage, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: ConsumerName(peerB), FilterSubject: old, DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 10}); err != nil {
		t.Fatal(err)
	}

	a := startPeer(t, s.ClientURL(), space.Member(t), space.Keys[0], nil, mesh.Config{})
	b := startPeer(t, s.ClientURL(), space.Member(t), space.Keys[1], nil, mesh.Config{})
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; !slices.Equal(c.Subjects, []string{old + ".*"}) || c.MaxMsgsPerSubject != 1 || c.Discard != jetstream.DiscardNew || !c.DiscardNewPerSubject || c.MaxAge != time.Hour {
		t.Fatalf("stream not corrected (or its limits changed): %+v", c)
	}
	cons := consumerInfo(t, s.ClientURL(), space.ID, peerB)()
	if c := cons.Config; c.FilterSubject != old+".*" || c.MaxDeliver != -1 {
		t.Fatalf("consumer not corrected: %+v", c)
	}
	b.stop()
	id, err := a.r.Write(context.Background(), a.key, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: "after-update", Fields: map[string]any{"text": "x"}}}, space.Now())
	if err != nil {
		t.Fatal(err)
	}
	waitForStream(t, s.ClientURL(), space.ID, changes(t, a.r))
	a.stop()
	b = startPeer(t, s.ClientURL(), b.r, space.Keys[1], nil, mesh.Config{})
	meshtest.Eventually(t, 20*time.Second, "B receives through the corrected consumer", func() (bool, string) {
		return b.r.Has(id), fmt.Sprintf("%+v", b.tr.Stats())
	})
}

// scripted is a Handler whose Apply answers by the change's name (see
// env): "busy-*" is refused as busy twice, "fail-*" fails once as a
// store would, "bad-*" is refused as invalid; anything else is taken. It
// stands in for a node to make each answer certain.
type scripted struct {
	mu       sync.Mutex
	attempts map[string]int
	taken    []string
}

func (h *scripted) Pushed(mesh.PeerID, [][]byte) {}
func (h *scripted) Serve(context.Context, mesh.PeerID, []byte) ([]byte, error) {
	return nil, errors.New("not serving")
}

func (h *scripted) Apply(_ context.Context, _ mesh.PeerID, envs [][]byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range envs {
		name := label(e)
		h.attempts[name]++
		switch n := h.attempts[name]; {
		case strings.HasPrefix(name, "busy") && n <= 2:
			return fmt.Errorf("%w: scripted", mesh.ErrBusy)
		case strings.HasPrefix(name, "fail") && n == 1:
			return errors.New("scripted store failure")
		case strings.HasPrefix(name, "bad"):
			return fmt.Errorf("%w: scripted", mesh.ErrBadPeer)
		}
		h.taken = append(h.taken, name)
	}
	return nil
}

func (h *scripted) state() ([]string, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.taken), maps.Clone(h.attempts)
}

// TestSettlement: each answer of Apply settles the message as it must: a
// taken change is acknowledged, a busy or failed one comes again (after
// RetryDelay) until taken, a refused one is terminated and never comes
// again; every message ends settled.
func TestSettlement(t *testing.T) {
	s := startServer(t)
	space := spaceID("settlement")
	a := newTransport(t, s, meshtest.Key(t, 1), nil)
	b := newTransport(t, s, meshtest.Key(t, 2), func(c *Config) {
		c.ApplyBatch, c.AckWait = 1, time.Second
		c.RetryDelay, c.RetryMaxDelay = 50*time.Millisecond, 100*time.Millisecond
	})
	join(t, a, space, &recorder{})
	h := &scripted{attempts: map[string]int{}}
	join(t, b, space, h)
	names := []string{"ok-1", "busy-1", "ok-2", "bad-1", "fail-1", "ok-3"}
	var envs [][]byte
	for _, n := range names {
		envs = append(envs, env(t, n))
	}
	if err := a.Publish(context.Background(), space, envs); err != nil {
		t.Fatal(err)
	}
	want := []string{"busy-1", "fail-1", "ok-1", "ok-2", "ok-3"}
	meshtest.Eventually(t, 30*time.Second, "every change taken but the bad one", func() (bool, string) {
		taken, attempts := h.state()
		slices.Sort(taken)
		return slices.Equal(taken, want), fmt.Sprintf("taken %v, attempts %v", taken, attempts)
	})
	cons := consumerInfo(t, s.ClientURL(), space, b.ID())
	meshtest.Eventually(t, 10*time.Second, "every message settled", func() (bool, string) {
		c := cons()
		return c.NumAckPending == 0 && c.NumPending == 0, fmt.Sprintf("%+v", c)
	})
	time.Sleep(2 * time.Second) // past AckWait: anything unsettled would come again
	taken, attempts := h.state()
	if want := map[string]int{"ok-1": 1, "ok-2": 1, "ok-3": 1, "busy-1": 3, "fail-1": 2, "bad-1": 1}; !maps.Equal(attempts, want) || len(taken) != 5 {
		t.Fatalf("attempts %v, want %v; taken %v", attempts, want, taken)
	}
	if st := b.Stats(); st.Deferred != 3 {
		t.Fatalf("deferred %d, want 3 (busy twice, failed once): %+v", st.Deferred, st)
	}
}
