package libp2p_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	p2p "github.com/tributary-sync/tributary/mesh/libp2p"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

var loopback = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// newTransport starts a transport on loopback, closed at the end of the
// test.
func newTransport(tb testing.TB, key core.PrivateKey, listen []string) *p2p.Transport {
	tb.Helper()
	tr, err := p2p.New(context.Background(), p2p.Config{
		Key: key, Listen: listen, DisableNATPortMap: true,
		RedialInterval: 300 * time.Millisecond, AdmissionInterval: 300 * time.Millisecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

// startTransports starts one transport per key, each bootstrapping to all
// the others.
func startTransports(tb testing.TB, keys []core.PrivateKey) []*p2p.Transport {
	tb.Helper()
	trs := make([]*p2p.Transport, len(keys))
	for i, k := range keys {
		trs[i] = newTransport(tb, k, loopback)
	}
	for i, tr := range trs {
		for j, o := range trs {
			if i != j {
				if err := tr.AddBootstrap(o.Addrs()...); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	return trs
}

type netw struct {
	trs  []*p2p.Transport
	once sync.Once
}

func (n *netw) Transport(i int) mesh.Transport { return n.trs[i] }
func (n *netw) Isolate(i int)                  { n.trs[i].SetOffline(true) }
func (n *netw) Heal() {
	for _, tr := range n.trs {
		tr.SetOffline(false)
	}
}
func (n *netw) Close() {
	n.once.Do(func() {
		for _, tr := range n.trs {
			tr.Close()
		}
	})
}

func factory(t *testing.T, keys []core.PrivateKey) meshtest.Network {
	return &netw{trs: startTransports(t, keys)}
}

func TestConformance(t *testing.T) {
	meshtest.Run(t, meshtest.Options{CatchUp: 10000}, factory)
}

// handler answers requests with "echo:" + request, fails on "fail", and
// records pushes.
type handler struct {
	mu     sync.Mutex
	pushed [][]byte
	from   []mesh.PeerID
}

func (h *handler) Pushed(from mesh.PeerID, envs [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pushed = append(h.pushed, envs...)
	h.from = append(h.from, from)
}

func (h *handler) Serve(_ context.Context, _ mesh.PeerID, req []byte) ([]byte, error) {
	if string(req) == "fail" {
		return nil, fmt.Errorf("refusing on purpose: %w", mesh.ErrBusy)
	}
	return append([]byte("echo:"), req...), nil
}

func (h *handler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pushed)
}

func members(keys ...core.PrivateKey) func(mesh.PeerID) bool {
	set := map[mesh.PeerID]bool{}
	for _, k := range keys {
		set[mesh.PeerOf(k.Public())] = true
	}
	return func(p mesh.PeerID) bool { return set[p] }
}

func everyone(mesh.PeerID) bool { return true }

func join(t *testing.T, tr *p2p.Transport, space core.ID, admit func(mesh.PeerID) bool) *handler {
	t.Helper()
	tr.SetAdmission(space, mesh.AdmitFunc(admit))
	h := &handler{}
	if err := tr.Join(space, h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNonMemberRefused(t *testing.T) {
	s := meshtest.NewSpace(t, 2)
	a, b := newTransport(t, s.Keys[0], loopback), newTransport(t, s.Keys[1], loopback)
	outsider := meshtest.Key(t, 99)
	c := newTransport(t, outsider, loopback)
	join(t, a, s.ID, members(s.Keys...))
	join(t, b, s.ID, members(s.Keys...))
	join(t, c, s.ID, everyone) // the outsider would talk to anyone
	if err := b.AddBootstrap(a.Addrs()...); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 10*time.Second, "members connect", func() (bool, string) {
		return slices.Contains(a.Peers(s.ID), b.ID()), fmt.Sprint(a.Peers(s.ID))
	})

	info := peer.AddrInfo{ID: a.Host().ID(), Addrs: a.Host().Addrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Host().Connect(ctx, info); err == nil {
		// QUIC: the client may finish its handshake before a refuses.
		t.Log("outsider's Connect returned; the connection must be closed at once")
		meshtest.Eventually(t, time.Second, "a closes the outsider's connection", func() (bool, string) {
			return c.Host().Network().Connectedness(a.Host().ID()) != network.Connected, ""
		})
	} else {
		t.Logf("outsider's Connect refused: %v", err)
	}
	// It also keeps re-dialling a as a bootstrap peer.
	if err := c.AddBootstrap(a.Addrs()...); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if slices.Contains(a.Peers(s.ID), c.ID()) {
			t.Fatalf("outsider among a's peers: %v", a.Peers(s.ID))
		}
		if a.Host().Network().Connectedness(c.Host().ID()) == network.Connected {
			// Only a QUIC handshake can leave it for an instant.
			time.Sleep(50 * time.Millisecond)
			if a.Host().Network().Connectedness(c.Host().ID()) == network.Connected {
				t.Fatal("a keeps a connection to the outsider")
			}
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		out, err := c.Request(rctx, s.ID, a.ID(), []byte("hello"))
		rcancel()
		if err == nil {
			t.Fatalf("outsider got a sync reply: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A member of another space a serves gets a connection, but nothing of
	// this space: no place among its peers, no reply.
	other := meshtest.NewSpace(t, 1)
	if other.ID == s.ID {
		t.Fatal("two spaces with one ID")
	}
	d := newTransport(t, meshtest.Key(t, 98), loopback)
	join(t, a, other.ID, members(s.Keys[0], meshtest.Key(t, 98)))
	join(t, d, s.ID, everyone)
	if err := d.AddBootstrap(a.Addrs()...); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 10*time.Second, "member of the other space connects", func() (bool, string) {
		return slices.Contains(a.Peers(other.ID), d.ID()), fmt.Sprint(a.Peers(other.ID))
	})
	if slices.Contains(a.Peers(s.ID), d.ID()) {
		t.Fatalf("member of another space among the space's peers: %v", a.Peers(s.ID))
	}
	_, err := d.Request(context.Background(), s.ID, a.ID(), []byte("hello"))
	if err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("request for a space it is not a member of: %v", err)
	}
}

func TestQUICOnly(t *testing.T) {
	s := meshtest.NewSpace(t, 2)
	a := newTransport(t, s.Keys[0], []string{"/ip4/127.0.0.1/udp/0/quic-v1"})
	b := newTransport(t, s.Keys[1], loopback)
	for _, addr := range a.Addrs() {
		if !strings.Contains(addr, "/quic-v1/") {
			t.Fatalf("a listens on %s", addr)
		}
	}
	ha := join(t, a, s.ID, members(s.Keys...))
	hb := join(t, b, s.ID, members(s.Keys...))
	if err := b.AddBootstrap(a.Addrs()...); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 10*time.Second, "b connects over QUIC", func() (bool, string) {
		return slices.Contains(b.Peers(s.ID), a.ID()) && slices.Contains(a.Peers(s.ID), b.ID()), ""
	})
	for _, c := range b.Host().Network().ConnsToPeer(a.Host().ID()) {
		if !strings.Contains(c.RemoteMultiaddr().String(), "/quic-v1") {
			t.Fatalf("connection over %s", c.RemoteMultiaddr())
		}
	}
	out, err := b.Request(context.Background(), s.ID, a.ID(), []byte("ping"))
	if err != nil || string(out) != "echo:ping" {
		t.Fatalf("request: %q, %v", out, err)
	}
	big := bytes.Repeat([]byte{7}, 5<<20)
	out, err = b.Request(context.Background(), s.ID, a.ID(), big)
	if err != nil || !bytes.Equal(out[5:], big) {
		t.Fatalf("request of 5 MiB: %d bytes, %v", len(out), err)
	}
	if _, err := b.Request(context.Background(), s.ID, a.ID(), []byte("fail")); !errors.Is(err, mesh.ErrBusy) {
		t.Fatalf("serve error came back as %v", err)
	}
	if _, err := b.Request(context.Background(), s.ID, a.ID(), make([]byte, 49<<20)); !errors.Is(err, mesh.ErrTooLarge) {
		t.Fatalf("oversized request: %v", err)
	}
	// Gossip: valid envelopes arrive; the sender's own do not come back.
	meshtest.Eventually(t, 10*time.Second, "b receives a's push", func() (bool, string) {
		if err := a.Publish(context.Background(), s.ID, s.Bootstrap); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		return hb.count() > 0, ""
	})
	hb.mu.Lock()
	if !bytes.Equal(hb.pushed[0], s.Bootstrap[0]) || hb.from[0] != a.ID() {
		t.Errorf("b got %d envelopes from %s", len(hb.pushed), hb.from[0])
	}
	hb.mu.Unlock()
	if ha.count() != 0 {
		t.Errorf("a got its own push back")
	}
}

func TestPeerIDConversion(t *testing.T) {
	k := meshtest.Key(t, 7)
	id := mesh.PeerOf(k.Public())
	pid, err := p2p.FromPeerID(id)
	if err != nil {
		t.Fatal(err)
	}
	back, err := p2p.ToPeerID(pid)
	if err != nil || back != id {
		t.Fatalf("%s -> %s -> %s, %v", id, pid, back, err)
	}
	tr := newTransport(t, k, []string{"/ip4/127.0.0.1/tcp/0"})
	if tr.ID() != id || tr.Host().ID() != pid {
		t.Fatalf("transport is %s / %s, want %s / %s", tr.ID(), tr.Host().ID(), id, pid)
	}
	if len(tr.Addrs()) == 0 || !strings.HasSuffix(tr.Addrs()[0], "/p2p/"+pid.String()) {
		t.Fatalf("addrs %v", tr.Addrs())
	}
}

// A member whose admission ends (revoked) loses its connection within
// the admission interval and cannot come back; a banned one at once.
func TestRevokedAndBannedDisconnected(t *testing.T) {
	s := meshtest.NewSpace(t, 3)
	trs := startTransports(t, s.Keys)
	var revoked atomic.Bool
	admit := func(p mesh.PeerID) bool {
		if revoked.Load() && p == trs[1].ID() {
			return false
		}
		return members(s.Keys...)(p)
	}
	join(t, trs[0], s.ID, admit)
	join(t, trs[1], s.ID, everyone)
	join(t, trs[2], s.ID, everyone)
	meshtest.Eventually(t, 10*time.Second, "peers connect", func() (bool, string) {
		return len(trs[0].Peers(s.ID)) == 2, fmt.Sprint(trs[0].Peers(s.ID))
	})
	connected := func(i, j int) bool {
		return trs[i].Host().Network().Connectedness(trs[j].Host().ID()) == network.Connected
	}
	revoked.Store(true)
	meshtest.Eventually(t, 5*time.Second, "revoked member disconnected", func() (bool, string) {
		return !connected(0, 1) && !connected(1, 0), ""
	})
	trs[0].Ban(trs[2].ID(), "test")
	meshtest.Eventually(t, 5*time.Second, "banned peer disconnected", func() (bool, string) {
		return !connected(0, 2) && !connected(2, 0), ""
	})
	time.Sleep(time.Second) // both keep re-dialling a
	if connected(0, 1) || connected(0, 2) || len(trs[0].Peers(s.ID)) != 0 {
		t.Fatalf("a reconnected: peers %v", trs[0].Peers(s.ID))
	}
	if _, ok := trs[0].Banned()[trs[2].ID()]; !ok {
		t.Fatalf("banned: %v", trs[0].Banned())
	}
	if !connected(1, 2) {
		t.Fatal("the others lost their own connection")
	}
}

func TestMDNSStartsAndCloses(t *testing.T) {
	tr, err := p2p.New(context.Background(), p2p.Config{Key: meshtest.Key(t, 5), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, MDNS: true, DisableNATPortMap: true})
	if err != nil {
		t.Fatalf("a host asking for mDNS must start whether or not multicast works: %v", err)
	}
	running, why := tr.MDNS()
	if running == (why != nil) {
		t.Fatalf("mDNS running=%v with error %v: exactly one must hold", running, why)
	}
	t.Logf("mDNS running: %v (%v)", running, why)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}
