package nats

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// startServer runs an embedded NATS server with JetStream and the default
// max_payload of 1 MiB.
func startServer(tb testing.TB) *server.Server {
	tb.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: tb.TempDir(),
		MaxPayload: 1 << 20, NoLog: true, NoSigs: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats server not ready")
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

func newTransport(tb testing.TB, s *server.Server, key core.PrivateKey, tune func(*Config)) *Transport {
	tb.Helper()
	cfg := Config{URL: s.ClientURL(), Key: key, HeartbeatInterval: 100 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

// network is the conformance suite's view of n transports on one server.
type network struct {
	t   *testing.T
	trs []*Transport
}

func (n *network) Transport(i int) mesh.Transport { return n.trs[i] }
func (n *network) Isolate(i int)                  { n.trs[i].Pause() }
func (n *network) Heal() {
	for _, tr := range n.trs {
		if err := tr.Resume(); err != nil {
			n.t.Errorf("resume: %v", err)
		}
	}
}
func (n *network) Close() {
	for _, tr := range n.trs {
		tr.Close()
	}
}

func factory(t *testing.T, keys []core.PrivateKey) meshtest.Network {
	s := startServer(t)
	n := &network{t: t}
	for _, k := range keys {
		n.trs = append(n.trs, newTransport(t, s, k, nil))
	}
	return n
}

func TestConformance(t *testing.T) {
	// Timeout bounds each wait (it asserts no speed): generous, for -race
	// on a shared machine.
	meshtest.Run(t, meshtest.Options{CatchUp: 10000, Timeout: 3 * time.Minute}, factory)
}

// recorder is a Handler that records pushes and answers requests with
// serve.
type recorder struct {
	mu     sync.Mutex
	pushes []push
	serve  func(from mesh.PeerID, req []byte) ([]byte, error)
}

type push struct {
	from mesh.PeerID
	envs [][]byte
}

func (r *recorder) Pushed(from mesh.PeerID, envs [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, push{from, envs})
}

func (r *recorder) Serve(_ context.Context, from mesh.PeerID, req []byte) ([]byte, error) {
	if r.serve == nil {
		return nil, errors.New("not serving")
	}
	return r.serve(from, req)
}

// envelopes lists what was pushed, in arrival order.
func (r *recorder) envelopes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.pushes {
		for _, e := range p.envs {
			out = append(out, label(e))
		}
	}
	return out
}

// env is a signed change (of no real space) that label names name: the
// transport files each change under its ID, so tests publish real ones.
func env(tb testing.TB, name string) []byte {
	tb.Helper()
	k := meshtest.Key(tb, 99)
	c := &core.Change{Version: core.ChangeVersion, Space: spaceID("envelopes"), Author: k.Public(), Seq: 1, Height: 1, HLC: core.HLC{Wall: 1},
		Ops: []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: name, Fields: map[string]any{"text": name}}}}
	s, _, err := core.Sign(c, k)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := s.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// label is the name env gave a change, or the bytes themselves.
func label(b []byte) string {
	s, err := core.DecodeSigned(b)
	if err != nil {
		return string(b)
	}
	c, err := s.Decode()
	if err != nil || len(c.Ops) != 1 {
		return string(b)
	}
	return c.Ops[0].Doc
}

func spaceID(name string) core.ID { return core.ID(sha256.Sum256([]byte(name))) }

func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func join(tb testing.TB, tr *Transport, space core.ID, h mesh.Handler) {
	tb.Helper()
	if err := tr.Join(space, h); err != nil {
		tb.Fatal(err)
	}
}

// TestStoreAndForward: a peer that is away receives, through its durable
// consumer and without any reconciliation, what was pushed meanwhile.
func TestStoreAndForward(t *testing.T) {
	s := startServer(t)
	keyA, keyB := meshtest.Key(t, 1), meshtest.Key(t, 2)
	ctx := context.Background()
	publish := func(tr *Transport, space core.ID, envs ...string) {
		t.Helper()
		var bs [][]byte
		for _, e := range envs {
			bs = append(bs, env(t, e))
		}
		if err := tr.Publish(ctx, space, bs); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("Pause", func(t *testing.T) {
		space := spaceID("pause")
		a, b := newTransport(t, s, keyA, nil), newTransport(t, s, keyB, nil)
		ha, hb := &recorder{}, &recorder{}
		join(t, a, space, ha)
		join(t, b, space, hb)
		publish(a, space, "online-1")
		waitFor(t, 5*time.Second, "B receives while online", func() bool { return len(hb.envelopes()) == 1 })

		b.Pause()
		if err := b.Publish(ctx, space, [][]byte{env(t, "x")}); !errors.Is(err, mesh.ErrNoPeer) {
			t.Fatalf("publish while paused: %v, want ErrNoPeer", err)
		}
		publish(a, space, "offline-1", "offline-2")
		publish(a, space, "offline-3")
		time.Sleep(300 * time.Millisecond)
		if got := hb.envelopes(); len(got) != 1 {
			t.Fatalf("paused peer received %q", got)
		}
		if err := b.Resume(); err != nil {
			t.Fatal(err)
		}
		want := []string{"online-1", "offline-1", "offline-2", "offline-3"}
		waitFor(t, 5*time.Second, "B receives the backlog after resuming", func() bool { return len(hb.envelopes()) == len(want) })
		if got := hb.envelopes(); !slices.Equal(got, want) {
			t.Fatalf("B received %q, want %q", got, want)
		}
		for _, p := range hb.pushes {
			if p.from != a.ID() {
				t.Fatalf("push from %s, want %s", p.from, a.ID())
			}
		}
		if got := ha.envelopes(); len(got) != 0 {
			t.Fatalf("A received its own pushes: %q", got)
		}
	})

	t.Run("Restart", func(t *testing.T) {
		space := spaceID("restart")
		a := newTransport(t, s, keyA, nil)
		b1 := newTransport(t, s, keyB, nil)
		join(t, a, space, &recorder{})
		join(t, b1, space, &recorder{}) // creates B's durable consumer
		if err := b1.Close(); err != nil {
			t.Fatal(err)
		}
		publish(a, space, "while-down-1")
		publish(a, space, "while-down-2")
		b2 := newTransport(t, s, keyB, nil) // B's process starts again
		hb := &recorder{}
		join(t, b2, space, hb)
		want := []string{"while-down-1", "while-down-2"}
		waitFor(t, 5*time.Second, "restarted B receives the backlog", func() bool { return len(hb.envelopes()) == len(want) })
		if got := hb.envelopes(); !slices.Equal(got, want) {
			t.Fatalf("B received %q, want %q", got, want)
		}
		// Acknowledged: a third start receives nothing again.
		b2.Close()
		b3 := newTransport(t, s, keyB, nil)
		h3 := &recorder{}
		join(t, b3, space, h3)
		time.Sleep(300 * time.Millisecond)
		if got := h3.envelopes(); len(got) != 0 {
			t.Fatalf("acknowledged pushes delivered again: %q", got)
		}
	})
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// TestChunking: requests and replies of 5 MiB cross a server whose
// max_payload is 1 MiB.
func TestChunking(t *testing.T) {
	s := startServer(t)
	space := spaceID("chunks")
	a := newTransport(t, s, meshtest.Key(t, 1), nil)
	b := newTransport(t, s, meshtest.Key(t, 2), nil)
	if mp := a.Conn().MaxPayload(); mp != 1<<20 {
		t.Fatalf("server max_payload %d, want 1 MiB", mp)
	}
	const size = 5 << 20
	hb := &recorder{serve: func(from mesh.PeerID, req []byte) ([]byte, error) {
		if len(req) != size {
			return nil, fmt.Errorf("request of %d bytes", len(req))
		}
		sum := sha256.Sum256(req)
		return append(pattern(size, req[0]), sum[:]...), nil
	}}
	join(t, a, space, &recorder{})
	join(t, b, space, hb)

	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			req := pattern(size, byte(i))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := a.Request(ctx, space, b.ID(), req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			sum := sha256.Sum256(req)
			if want := append(pattern(size, req[0]), sum[:]...); !bytes.Equal(out, want) {
				t.Errorf("request %d: reply of %d bytes differs from the %d expected", i, len(out), len(want))
			}
		})
	}
	wg.Wait()
	if st := b.Stats(); st.RequestsServed != 3 {
		t.Fatalf("served %d, want 3: %+v", st.RequestsServed, st)
	}
	if n := b.reassembling.Load(); n != 0 {
		t.Fatalf("%d bytes left in reassembly", n)
	}
}

// TestRequestErrors: Serve's errors reach the requester, keeping the mesh
// error they wrap; unreachable and oversized cases fail fast.
func TestRequestErrors(t *testing.T) {
	s := startServer(t)
	space := spaceID("errors")
	a := newTransport(t, s, meshtest.Key(t, 1), nil)
	b := newTransport(t, s, meshtest.Key(t, 2), func(c *Config) { c.MaxMessageBytes = 2 << 20 })
	join(t, a, space, &recorder{})
	join(t, b, space, &recorder{serve: func(_ mesh.PeerID, req []byte) ([]byte, error) {
		switch string(req) {
		case "busy":
			return nil, fmt.Errorf("%w (limit 8)\nsecond line", mesh.ErrBusy)
		case "huge":
			return make([]byte, 3<<20), nil
		case "plain":
			return nil, errors.New("plain failure")
		}
		return []byte("ok:" + string(req)), nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if out, err := a.Request(ctx, space, b.ID(), []byte("hi")); err != nil || string(out) != "ok:hi" {
		t.Fatalf("plain request: %q, %v", out, err)
	}
	_, err := a.Request(ctx, space, b.ID(), []byte("busy"))
	var re *RemoteError
	if !errors.Is(err, mesh.ErrBusy) || !errors.As(err, &re) || re.Peer != b.ID() {
		t.Fatalf("busy: %v, want a RemoteError wrapping ErrBusy", err)
	}
	if _, err := a.Request(ctx, space, b.ID(), []byte("plain")); err == nil || !errors.As(err, &re) || re.Msg != "plain failure" {
		t.Fatalf("plain failure: %v", err)
	}
	if _, err := a.Request(ctx, space, b.ID(), []byte("huge")); !errors.Is(err, mesh.ErrTooLarge) {
		t.Fatalf("oversized reply: %v, want ErrTooLarge", err)
	}
	if _, err := a.Request(ctx, space, b.ID(), make([]byte, 3<<20)); !errors.Is(err, mesh.ErrTooLarge) {
		t.Fatalf("oversized request: %v, want ErrTooLarge from the peer", err)
	}
	if _, err := a.Request(ctx, space, b.ID(), make([]byte, 33<<20)); !errors.Is(err, mesh.ErrTooLarge) {
		t.Fatalf("request over our own limit: %v, want ErrTooLarge", err)
	}
	start := time.Now()
	absent := mesh.PeerOf(meshtest.Key(t, 3).Public())
	if _, err := a.Request(ctx, space, absent, []byte("hi")); !errors.Is(err, mesh.ErrNoPeer) {
		t.Fatalf("absent peer: %v, want ErrNoPeer", err)
	}
	if _, err := a.Request(ctx, space, absent, make([]byte, 3<<20)); !errors.Is(err, mesh.ErrNoPeer) {
		t.Fatalf("absent peer, chunked: %v, want ErrNoPeer", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("no-responder detection took %s", d)
	}
	if _, err := a.Request(ctx, space, b.ID(), []byte("ok")); err != nil {
		t.Fatalf("after errors: %v", err)
	}
}

// TestUntrustedInput: whatever arrives over NATS that is not ours to
// deliver is refused and counted, and the transport keeps working.
func TestUntrustedInput(t *testing.T) {
	s := startServer(t)
	space := spaceID("untrusted")
	a := newTransport(t, s, meshtest.Key(t, 1), nil)
	b := newTransport(t, s, meshtest.Key(t, 2), func(c *Config) { c.ReassemblyTimeout = 300 * time.Millisecond })
	ha := &recorder{serve: func(mesh.PeerID, []byte) ([]byte, error) { return []byte("served"), nil }}
	hb := &recorder{serve: ha.serve}
	join(t, a, space, ha)
	join(t, b, space, hb)

	raw, err := natsgo.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	pub := func(subject, reply string, h natsgo.Header, data []byte) {
		t.Helper()
		if err := raw.PublishMsg(&natsgo.Msg{Subject: subject, Reply: reply, Header: h, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	from := func(p mesh.PeerID) natsgo.Header { return natsgo.Header{hdrFrom: []string{string(p)}} }
	evil := mesh.PeerOf(meshtest.Key(t, 9).Public())

	changes := changesPrefix(space)
	x, y := env(t, "x"), env(t, "y")
	idX, idY := mustDecode(t, x).ID(), mustDecode(t, y).ID()
	pub(changes+idX.String(), "", nil, x)                           // no sender
	pub(changes+idY.String(), "", from("not-a-key"), y)             // bad sender
	pub(changes+"not-an-id", "", from(evil), x)                     // subject names no change
	pub(changes+core.IDOf([]byte("z")).String(), "", from(evil), y) // filed under another change
	// Bytes that are no change, under their digest: delivered, for the
	// Handler (a Node) to refuse and ban the sender.
	garbage := []byte("\xff\xfe not cbor")
	pub(changes+core.IDOf(garbage).String(), "", from(evil), garbage)
	pub(presenceSubject(space), "", nil, []byte("garbage"))              // bad presence
	pub(serveSubject(space, b.ID()), "", from(evil), []byte("no reply")) // no reply subject
	pub(serveSubject(space, b.ID()), "_INBOX.x", hdr(hdrFrom, string(evil), hdrChunk, "7/3"), nil)
	pub(serveSubject(space, b.ID()), "_INBOX.y", hdr(hdrFrom, string(evil), hdrChunk, "0/99999999"), []byte("x"))
	// The first chunk of two, never followed by the second.
	pub(serveSubject(space, b.ID()), "_INBOX.z", hdr(hdrFrom, string(evil), hdrChunk, "0/2", hdrReq, "r1"), make([]byte, 1000))
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 5*time.Second, "B refuses the bad messages", func() bool { return b.Stats().Refused >= 7 })
	waitFor(t, 5*time.Second, "the incomplete request is dropped", func() bool {
		return b.Stats().ReassemblyFailed >= 2 && b.reassembling.Load() == 0
	})
	if got := hb.envelopes(); !slices.Equal(got, []string{string(garbage)}) {
		t.Fatalf("pushes delivered: %q, want only the undecodable one", got)
	}
	// Still working.
	if err := a.Publish(context.Background(), space, [][]byte{env(t, "good")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B receives a good push", func() bool { return slices.Equal(hb.envelopes(), []string{string(garbage), "good"}) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := a.Request(ctx, space, b.ID(), []byte("q")); err != nil || string(out) != "served" {
		t.Fatalf("request after garbage: %q, %v", out, err)
	}
	t.Logf("B's stats: %+v", b.Stats())
}

func hdr(kv ...string) natsgo.Header {
	h := natsgo.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func mustDecode(t *testing.T, b []byte) core.Signed {
	t.Helper()
	s, err := core.DecodeSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPeersAndBan: presence lists the others; a ban drops the peer from
// Peers and everything it sends; Pause takes a peer out at once.
func TestPeersAndBan(t *testing.T) {
	s := startServer(t)
	space := spaceID("ban")
	var trs []*Transport
	var hs []*recorder
	for i := range 3 {
		tr := newTransport(t, s, meshtest.Key(t, byte(i+1)), nil)
		h := &recorder{serve: func(mesh.PeerID, []byte) ([]byte, error) { return []byte("ok"), nil }}
		join(t, tr, space, h)
		trs, hs = append(trs, tr), append(hs, h)
	}
	a, b, c := trs[0], trs[1], trs[2]
	ids := func(trs ...*Transport) []mesh.PeerID {
		var out []mesh.PeerID
		for _, tr := range trs {
			out = append(out, tr.ID())
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	waitFor(t, 5*time.Second, "everyone sees the others", func() bool {
		return slices.Equal(a.Peers(space), ids(b, c)) && slices.Equal(b.Peers(space), ids(a, c)) && slices.Equal(c.Peers(space), ids(a, b))
	})
	if p := a.Peers(spaceID("other")); len(p) != 0 {
		t.Fatalf("peers of a space not joined: %v", p)
	}

	a.Ban(c.ID(), "test")
	if slices.Contains(a.Peers(space), c.ID()) {
		t.Fatal("banned peer still listed")
	}
	time.Sleep(300 * time.Millisecond) // heartbeats keep coming
	if !slices.Equal(a.Peers(space), ids(b)) {
		t.Fatalf("A's peers %v, want only B", a.Peers(space))
	}
	if err := c.Publish(context.Background(), space, [][]byte{env(t, "from-c")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B receives C's push", func() bool { return len(hs[1].envelopes()) == 1 })
	time.Sleep(200 * time.Millisecond)
	if got := hs[0].envelopes(); len(got) != 0 {
		t.Fatalf("A received the banned peer's push: %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := c.Request(ctx, space, a.ID(), []byte("q")); err == nil {
		t.Fatal("A served the banned peer")
	}
	if _, err := a.Request(context.Background(), space, c.ID(), []byte("q")); !errors.Is(err, mesh.ErrNoPeer) {
		t.Fatalf("request to a banned peer: %v, want ErrNoPeer", err)
	}
	if st := a.Stats(); st.Dropped == 0 {
		t.Fatalf("nothing counted as dropped: %+v", st)
	}

	// Pause: gone from the others' Peers at once (it says goodbye), and
	// unreachable.
	b.Pause()
	if p := b.Peers(space); len(p) != 0 {
		t.Fatalf("paused peer lists %v", p)
	}
	waitFor(t, time.Second, "A stops listing the paused peer", func() bool { return !slices.Contains(a.Peers(space), b.ID()) })
	if _, err := a.Request(context.Background(), space, b.ID(), []byte("q")); !errors.Is(err, mesh.ErrNoPeer) {
		t.Fatalf("request to a paused peer: %v, want ErrNoPeer", err)
	}
	if _, err := b.Request(context.Background(), space, a.ID(), []byte("q")); !errors.Is(err, mesh.ErrNoPeer) {
		t.Fatalf("request from a paused peer: %v, want ErrNoPeer", err)
	}
	if err := b.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the resumed peer is back", func() bool {
		return slices.Contains(a.Peers(space), b.ID()) && slices.Equal(b.Peers(space), ids(a, c))
	})
	if err := a.Leave(space); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "B stops listing the peer that left", func() bool { return !slices.Contains(b.Peers(space), a.ID()) })
}

// startPair starts two replicas of a new space with nodes over the NATS
// transport; it returns B's change count, a write on A, and B's Watch.
func startPair(b *testing.B) (changes func() int, write func([]core.Op) (core.ID, error), watch func(func(bool, []core.ID)) func()) {
	b.Helper()
	s := startServer(b)
	space := meshtest.NewSpace(b, 2)
	ra, rb := space.Member(b), space.Member(b)
	ta := newTransport(b, s, space.Keys[0], func(c *Config) { c.HeartbeatInterval = time.Second })
	tb := newTransport(b, s, space.Keys[1], func(c *Config) { c.HeartbeatInterval = time.Second })
	na, nb := mesh.NewNode(ra, ta, mesh.Config{}), mesh.NewNode(rb, tb, mesh.Config{})
	for _, n := range []*mesh.Node{na, nb} {
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
	}
	changes = func() int {
		st, err := rb.Status()
		if err != nil {
			b.Fatal(err)
		}
		return st.Changes
	}
	write = func(ops []core.Op) (core.ID, error) {
		return ra.Write(context.Background(), space.Keys[0], ops, space.Now())
	}
	return changes, write, rb.Watch
}

// BenchmarkReplication measures ops/s replicated from A to B: changes of
// 16 ops written on A as fast as it goes, until B has them all.
func BenchmarkReplication(b *testing.B) {
	const changesPerRound, opsPerChange = 1000, 16
	changes, write, _ := startPair(b)
	var ops, elapsed, writing float64
	b.ResetTimer()
	for round := range b.N {
		base := changes()
		start := time.Now()
		for i := range changesPerRound {
			batch := make([]core.Op, opsPerChange)
			for k := range batch {
				batch[k] = core.Op{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("r%d-c%d-o%d", round, i, k),
					Fields: map[string]any{"text": "replicated over nats", "n": int64(k)}}
			}
			if _, err := write(batch); err != nil {
				b.Fatal(err)
			}
		}
		writing += time.Since(start).Seconds()
		deadline := time.Now().Add(2 * time.Minute)
		for changes() < base+changesPerRound {
			if time.Now().After(deadline) {
				b.Fatalf("B has %d of %d changes", changes()-base, changesPerRound)
			}
			time.Sleep(2 * time.Millisecond)
		}
		elapsed += time.Since(start).Seconds()
		ops += changesPerRound * opsPerChange
	}
	b.StopTimer()
	b.ReportMetric(ops/elapsed, "ops/s")
	b.ReportMetric(ops/writing, "write-ops/s")
}

// BenchmarkWriteToVisible measures the latency from a write on A to the
// change being stored on B (Has(id) true), at about 1000 writes of one op
// per second.
func BenchmarkWriteToVisible(b *testing.B) {
	const writesPerRound = 1000
	_, write, watch := startPair(b)
	var mu sync.Mutex
	arrived := map[core.ID]time.Time{}
	cancel := watch(func(local bool, ids []core.ID) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			arrived[id] = now
		}
	})
	defer cancel()
	written := map[core.ID]time.Time{}
	var lat []time.Duration
	var writing time.Duration
	b.ResetTimer()
	for round := range b.N {
		clear(written)
		tick := time.NewTicker(time.Millisecond)
		start := time.Now()
		for i := range writesPerRound {
			<-tick.C
			at := time.Now()
			id, err := write([]core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("l%d-%d", round, i),
				Fields: map[string]any{"text": "latency", "n": int64(i)}}})
			if err != nil {
				b.Fatal(err)
			}
			written[id] = at
		}
		tick.Stop()
		writing += time.Since(start)
		waitFor(b, time.Minute, "B has every write", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for id := range written {
				if _, ok := arrived[id]; !ok {
					return false
				}
			}
			return true
		})
		mu.Lock()
		for id, at := range written {
			lat = append(lat, arrived[id].Sub(at))
		}
		mu.Unlock()
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/writing.Seconds(), "writes/s")
}

// TestServerRestart: the connection comes back by itself after the server
// restarts, and pushes flow through the durable consumer again.
func TestServerRestart(t *testing.T) {
	dir := t.TempDir()
	opts := func(port int) *server.Options {
		return &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, MaxPayload: 1 << 20, NoLog: true, NoSigs: true}
	}
	run := func(o *server.Options) *server.Server {
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
		return s
	}
	s1 := run(opts(-1))
	tune := func(c *Config) { c.Options = []natsgo.Option{natsgo.ReconnectWait(50 * time.Millisecond)} }
	space := spaceID("restart-server")
	a := newTransport(t, s1, meshtest.Key(t, 1), tune)
	b := newTransport(t, s1, meshtest.Key(t, 2), tune)
	hb := &recorder{}
	join(t, a, space, &recorder{})
	join(t, b, space, hb)
	if err := a.Publish(context.Background(), space, [][]byte{env(t, "before")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B receives before the restart", func() bool { return len(hb.envelopes()) == 1 })

	p := s1.Addr().(*net.TCPAddr).Port
	s1.Shutdown()
	s1.WaitForShutdown()
	s2 := run(opts(p))
	t.Cleanup(func() {
		s2.Shutdown()
		s2.WaitForShutdown()
	})
	waitFor(t, 10*time.Second, "both reconnect", func() bool { return a.Conn().IsConnected() && b.Conn().IsConnected() })
	waitFor(t, 10*time.Second, "A publishes after the restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return a.Publish(ctx, space, [][]byte{env(t, "after")}) == nil
	})
	waitFor(t, 20*time.Second, "B receives after the restart", func() bool { return slices.Contains(hb.envelopes(), "after") })
	waitFor(t, 5*time.Second, "presence is back", func() bool { return slices.Contains(a.Peers(space), b.ID()) })
}

// TestCloseStopsGoroutines: on a connection it does not own, the
// transport leaves no goroutine behind after Close.
func TestCloseStopsGoroutines(t *testing.T) {
	s := startServer(t)
	nc, err := natsgo.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	other := newTransport(t, s, meshtest.Key(t, 2), nil)
	space := spaceID("goroutines")
	join(t, other, space, &recorder{serve: func(mesh.PeerID, []byte) ([]byte, error) { return make([]byte, 2<<20), nil }})
	// The connection's shared reply subscription (made by its first
	// request, and living as long as it) is there before we count.
	if _, err := nc.Request("$JS.API.INFO", nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	before, _ := clientGoroutines()

	tr, err := New(Config{Conn: nc, Key: meshtest.Key(t, 1), HeartbeatInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := &recorder{serve: func(mesh.PeerID, []byte) ([]byte, error) { return []byte("ok"), nil }}
	join(t, tr, space, h)
	if err := tr.Publish(context.Background(), space, [][]byte{env(t, "x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Request(context.Background(), space, other.ID(), make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Request(context.Background(), space, tr.ID(), []byte("q")); err != nil {
		t.Fatal(err)
	}
	tr.Pause()
	if err := tr.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if !nc.IsConnected() {
		t.Fatal("Close closed a connection the transport does not own")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		n, stacks := clientGoroutines()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d client goroutines after Close, %d before:\n%s", n, before, stacks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientGoroutines counts the goroutines of this package and of the NATS
// client (not the embedded server's).
func clientGoroutines() (int, string) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "nats%2ego") || strings.Contains(g, "mesh/nats.(*") {
			n++
			out = append(out, g)
		}
	}
	return n, strings.Join(out, "\n\n")
}
