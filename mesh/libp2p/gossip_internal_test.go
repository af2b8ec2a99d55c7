package libp2p

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	golibp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// pushes records what a transport hands over, push by push.
type pushes struct {
	mu   sync.Mutex
	got  [][][]byte
	from []mesh.PeerID
}

func (h *pushes) Pushed(from mesh.PeerID, envs [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, envs)
	h.from = append(h.from, from)
}

func (h *pushes) Serve(context.Context, mesh.PeerID, []byte) ([]byte, error) { return nil, nil }

// times counts the pushes that held exactly envs.
func (h *pushes) times(envs [][]byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, g := range h.got {
		if slices.EqualFunc(g, envs, bytes.Equal) {
			n++
		}
	}
	return n
}

// member starts a transport on loopback whose space admits the keys.
func member(t *testing.T, key core.PrivateKey, space core.ID, keys []core.PrivateKey) (*Transport, *pushes) {
	t.Helper()
	tr, err := New(context.Background(), Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, DisableNATPortMap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	admitted := map[mesh.PeerID]bool{}
	for _, k := range keys {
		admitted[mesh.PeerOf(k.Public())] = true
	}
	tr.SetAdmission(space, mesh.AdmitFunc(func(p mesh.PeerID) bool { return admitted[p] }))
	h := &pushes{}
	if err := tr.Join(space, h); err != nil {
		t.Fatal(err)
	}
	return tr, h
}

// rawPeer is a member's bare libp2p host with gossipsub under the given
// signature policy, publishing by hand: it does what a modified or an old
// node could put on the wire.
type rawPeer struct {
	host  host.Host
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	key   core.PrivateKey
}

func newRawPeer(t *testing.T, key core.PrivateKey, space core.ID, opts ...pubsub.Option) *rawPeer {
	t.Helper()
	priv, err := hostKey(key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := golibp2p.New(golibp2p.Identity(priv), golibp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		golibp2p.Security(noise.ID, noise.New), golibp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, append([]pubsub.Option{pubsub.WithFloodPublish(true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	// Joined, not subscribed: it hears nothing, so what it publishes is
	// never a copy of what it received.
	topic, err := ps.Join(TopicName(space))
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{host: h, ps: ps, topic: topic, key: key}
}

// connect dials tr and waits until gossipsub knows tr takes the topic.
func (r *rawPeer) connect(t *testing.T, tr *Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.host.Connect(ctx, peer.AddrInfo{ID: tr.Host().ID(), Addrs: tr.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 10*time.Second, "the raw peer sees the member's subscription", func() (bool, string) {
		return slices.Contains(r.topic.ListPeers(), tr.Host().ID()), ""
	})
}

func (r *rawPeer) publish(t *testing.T, envs [][]byte, opts ...pubsub.PubOpt) {
	t.Helper()
	data, err := core.Marshal(envs)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.topic.Publish(context.Background(), data, opts...); err != nil {
		t.Fatal(err)
	}
}

// unsigned is how members gossip: no author, no signature, content IDs.
func unsigned() []pubsub.Option {
	return []pubsub.Option{pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(), pubsub.WithMessageIdFn(messageID)}
}

// A relayed push whose change was modified fails the change's signature:
// it is refused, never handed to the node, and its sender is banned.
func TestModifiedPushRefused(t *testing.T) {
	s := meshtest.NewSpace(t, 3)
	b, hb := member(t, s.Keys[1], s.ID, s.Keys)
	r := newRawPeer(t, s.Keys[2], s.ID, unsigned()...)
	r.connect(t, b)
	chain := s.Chain(t, 2)

	// An unsigned push in the wire format passes, handed over as from the
	// peer it came from (not the author of its changes, the admin).
	relay := mesh.PeerOf(s.Keys[2].Public())
	honest := chain[:1]
	r.publish(t, honest)
	meshtest.Eventually(t, 10*time.Second, "b takes the unsigned push", func() (bool, string) {
		return hb.times(honest) == 1, ""
	})
	hb.mu.Lock()
	if hb.from[0] != relay {
		t.Errorf("push handed over as from %s, want the peer that sent it, %s", hb.from[0], relay)
	}
	hb.mu.Unlock()

	c, _, signed, err := core.Open(chain[1])
	if err != nil {
		t.Fatal(err)
	}
	c.Ops[0].Fields["text"] = "tampered on the way"
	if signed.Body, err = core.Marshal(c); err != nil {
		t.Fatal(err)
	}
	tampered, err := signed.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r.publish(t, [][]byte{tampered})
	meshtest.Eventually(t, 10*time.Second, "b bans the peer that sent the modified push", func() (bool, string) {
		_, banned := b.Banned()[relay]
		return banned, ""
	})
	if reason := b.Banned()[relay]; !bytes.Contains([]byte(reason), []byte("invalid gossip")) {
		t.Errorf("ban reason %q", reason)
	}
	if _, banned := b.Banned()[mesh.PeerOf(s.Keys[0].Public())]; banned {
		t.Error("the author of the change the relay modified was banned")
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if len(hb.got) != 1 {
		t.Fatalf("b handed over %d pushes, want only the honest one", len(hb.got))
	}
}

// A push that carries a gossipsub signature and author (a node of the
// protocol's version 1, or a forger) is refused before validation; a
// later unsigned push from the same peer shows it was seen.
func TestSignedPushRefused(t *testing.T) {
	s := meshtest.NewSpace(t, 3)
	b, hb := member(t, s.Keys[1], s.ID, s.Keys)
	// LaxNoSign lets the raw peer publish both kinds.
	r := newRawPeer(t, s.Keys[2], s.ID, pubsub.WithMessageSignaturePolicy(pubsub.LaxNoSign), pubsub.WithNoAuthor(), pubsub.WithMessageIdFn(messageID))
	r.connect(t, b)
	priv, err := hostKey(s.Keys[2])
	if err != nil {
		t.Fatal(err)
	}
	chain := s.Chain(t, 2)
	r.publish(t, chain[:1], pubsub.WithSecretKeyAndPeerId(priv, r.host.ID()))
	r.publish(t, chain[1:])
	meshtest.Eventually(t, 10*time.Second, "b takes the unsigned push sent after the signed one", func() (bool, string) {
		return hb.times(chain[1:]) == 1, ""
	})
	if n := hb.times(chain[:1]); n != 0 {
		t.Fatalf("the signed push was handed over %d times", n)
	}
}

// The same push reaching a member from two peers is handed over once:
// its ID is the hash of its content.
func TestDuplicatePushDeliveredOnce(t *testing.T) {
	s := meshtest.NewSpace(t, 3)
	a, _ := member(t, s.Keys[0], s.ID, s.Keys)
	b, hb := member(t, s.Keys[1], s.ID, s.Keys)
	if err := b.AddBootstrap(a.Addrs()...); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 10*time.Second, "a sees b take the topic", func() (bool, string) {
		a.mu.Lock()
		j := a.spaces[s.ID]
		a.mu.Unlock()
		return slices.Contains(j.topic.ListPeers(), b.Host().ID()), ""
	})
	chain := s.Chain(t, 2)
	push, marker := chain[:1], chain[1:]
	if err := a.Publish(context.Background(), s.ID, push); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 10*time.Second, "b takes a's push", func() (bool, string) {
		return hb.times(push) == 1, ""
	})
	r := newRawPeer(t, s.Keys[2], s.ID, unsigned()...)
	r.connect(t, b)
	r.publish(t, push)
	r.publish(t, marker)
	meshtest.Eventually(t, 10*time.Second, "b takes the marker sent after the copy", func() (bool, string) {
		return hb.times(marker) == 1, ""
	})
	if n := hb.times(push); n != 1 {
		t.Fatalf("the push sent by two peers was handed over %d times", n)
	}
	if len(b.Banned()) != 0 {
		t.Fatalf("b banned %v", b.Banned())
	}
}
