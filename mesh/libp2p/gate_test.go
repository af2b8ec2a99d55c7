package libp2p_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh"
	p2p "github.com/tributary-sync/tributary/mesh/libp2p"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// gateConfig is a transport config with a short probation, for tests of
// the gate.
func gateConfig(key core.PrivateKey) p2p.Config {
	return p2p.Config{
		Key: key, Listen: loopback, DisableNATPortMap: true,
		RedialInterval: 200 * time.Millisecond, AdmissionInterval: 300 * time.Millisecond,
		ProbationTimeout: time.Second, ProbationCooloff: 2 * time.Second, MaxProbation: 4,
	}
}

func startTransport(tb testing.TB, cfg p2p.Config) *p2p.Transport {
	tb.Helper()
	tr, err := p2p.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

// logs keeps what a node logs, for tests that read its refusals.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logs) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// peerNode is a replica with a running node over its own transport.
type peerNode struct {
	key  core.PrivateKey
	r    *replica.Replica
	tr   *p2p.Transport
	node *mesh.Node
	logs *logs
}

func startPeer(t *testing.T, key core.PrivateKey, r *replica.Replica, tcfg p2p.Config, cfg mesh.Config) *peerNode {
	t.Helper()
	p := &peerNode{key: key, r: r, tr: startTransport(t, tcfg), logs: &logs{}}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = 100 * time.Millisecond
	}
	cfg.Logger = p.logs.logger()
	p.node = mesh.NewNode(r, p.tr, cfg)
	if err := p.node.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.node.Close() })
	return p
}

// acknowledging is an admin node's hook.
func acknowledging(r *replica.Replica, admin core.PrivateKey) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := r.Acknowledge(ctx, admin, uint64(time.Now().UnixMilli()))
		return err
	}
}

func connected(a, b *p2p.Transport) bool {
	return a.Host().Network().Connectedness(b.Host().ID()) == network.Connected
}

func note(t *testing.T, r *replica.Replica, key core.PrivateKey, doc string, clock uint64) core.ID {
	t.Helper()
	id, err := r.Write(context.Background(), key, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: doc, Fields: map[string]any{"text": doc}}}, clock)
	if err != nil {
		t.Fatalf("write %s: %v", doc, err)
	}
	return id
}

// (1) With only the inviting admin online, a newcomer holding nothing
// but its signed use of an invite gets in through the join protocol, is
// acknowledged, and both sides sync and push both ways.
func TestJoinerAdmittedByProof(t *testing.T) {
	s := meshtest.NewSpace(t, 3) // two more members, offline throughout
	ra := s.Member(t)
	admin := startPeer(t, s.Keys[0], ra, gateConfig(s.Keys[0]), mesh.Config{Acknowledge: acknowledging(ra, s.Keys[0])})
	code, terms := s.Invite(t, admin.r, meshtest.Millis(time.Hour))
	note(t, admin.r, s.Keys[0], "before", s.Now())

	jkey := meshtest.Key(t, 60)
	proof := meshtest.Use(t, code, terms, jkey.Public(), s.Now())
	jcfg := gateConfig(jkey)
	jcfg.Bootstrap = admin.tr.Addrs()
	joiner := startPeer(t, jkey, s.Newcomer(t, proof), jcfg, mesh.Config{Proof: proof})

	meshtest.Eventually(t, 20*time.Second, "the joiner is a member on both sides and holds the history", func() (bool, string) {
		_, ok, _ := joiner.r.Get("Note", "before")
		return ok && admin.r.IsMember(jkey.Public()) && joiner.r.IsMember(jkey.Public()), meshtest.State(t, joiner.r)
	})
	if got := admin.node.Metrics().Snapshot()["joins_admitted"]; got != 1 {
		t.Fatalf("admin admitted %d joiners by proof, want 1", got)
	}
	meshtest.Eventually(t, 20*time.Second, "the admin acknowledges the use", func() (bool, string) {
		inv := admin.r.Invites()
		return len(inv) == 1 && len(inv[0].Uses) == 1 && inv[0].Uses[0].Acknowledged, fmt.Sprintf("%+v", inv)
	})
	if !slices.Contains(admin.tr.Peers(s.ID), joiner.tr.ID()) || !slices.Contains(joiner.tr.Peers(s.ID), admin.tr.ID()) {
		t.Fatalf("peers: admin %v, joiner %v", admin.tr.Peers(s.ID), joiner.tr.Peers(s.ID))
	}
	note(t, joiner.r, jkey, "from-joiner", s.Now())
	note(t, admin.r, s.Keys[0], "from-admin", s.Now())
	meshtest.Eventually(t, 20*time.Second, "both hold both writes", func() (bool, string) {
		a, j := meshtest.State(t, admin.r), meshtest.State(t, joiner.r)
		return a == j && strings.Contains(a, "from-joiner") && strings.Contains(a, "from-admin"), a + "\n" + j
	})
	if l := joiner.logs.String(); !strings.Contains(l, "a peer admitted us by our invite") {
		t.Fatalf("the joiner did not log its admission:\n%s", l)
	}
}

// (2) The holder of a used code (its own key, a second use of the code)
// is refused at the gate with the reason "used", and receives nothing of
// what is written afterwards.
func TestUsedCodeRefused(t *testing.T) {
	s := meshtest.NewSpace(t, 1)
	ra := s.Member(t)
	admin := startPeer(t, s.Keys[0], ra, gateConfig(s.Keys[0]), mesh.Config{Acknowledge: acknowledging(ra, s.Keys[0])})
	code, terms := s.Invite(t, ra, meshtest.Millis(time.Hour))
	s.Invite(t, ra, meshtest.Millis(time.Hour)) // another invite, open: newcomers get probation

	first := meshtest.Key(t, 61)
	proof := meshtest.Use(t, code, terms, first.Public(), s.Now())
	if err := p2p.PresentProof(context.Background(), first, s.ID, proof, admin.tr.Addrs()); err != nil {
		t.Fatalf("first use: %v", err)
	}
	meshtest.Eventually(t, 10*time.Second, "the first use is acknowledged", func() (bool, string) {
		return len(ra.Invites()[0].Uses) == 1 && ra.Invites()[0].Uses[0].Acknowledged, fmt.Sprintf("%+v", ra.Invites()[0])
	})

	second := meshtest.Key(t, 62)
	reuse := meshtest.Use(t, code, terms, second.Public(), s.Now())
	err := p2p.PresentProof(context.Background(), second, s.ID, reuse, admin.tr.Addrs())
	if !errors.Is(err, mesh.ErrJoinRefused) || !errors.Is(err, replica.ErrInviteUsed) || mesh.RefusalReason(err) != "used" {
		t.Fatalf("reuse of a code: %v (reason %q)", err, mesh.RefusalReason(err))
	}
	t.Logf("reuse refused: %v", err)

	// Its node keeps trying; nothing written from now on reaches it.
	scfg := gateConfig(second)
	scfg.Bootstrap = admin.tr.Addrs()
	holder := startPeer(t, second, s.Newcomer(t, reuse), scfg, mesh.Config{Proof: reuse})
	var later []core.ID
	for i := range 20 {
		later = append(later, note(t, ra, s.Keys[0], fmt.Sprintf("later-%d", i), s.Now()))
		time.Sleep(100 * time.Millisecond)
	}
	meshtest.Eventually(t, 10*time.Second, "the holder logs the refusal and its reason", func() (bool, string) {
		l := holder.logs.String()
		return strings.Contains(l, "refused our invite") && strings.Contains(l, "reason=used"), l
	})
	time.Sleep(time.Second)
	for _, id := range later {
		if holder.r.Has(id) {
			t.Fatalf("the holder of a used code received %s", id.Short())
		}
	}
	st, err := holder.r.Status()
	if err != nil {
		t.Fatal(err)
	}
	m := holder.node.Metrics().Snapshot()
	if st.Changes != 0 || m["changes_received"] != 0 || m["pushes_received"] != 0 || m["bytes_received"] != 0 {
		t.Fatalf("the holder of a used code got data: %d changes stored, metrics %v", st.Changes, m)
	}
	if ra.IsMember(second.Public()) || !ra.IsMember(first.Public()) {
		t.Fatal("the reuse displaced the member")
	}
	if slices.Contains(admin.tr.Peers(s.ID), holder.tr.ID()) {
		t.Fatalf("the holder is among the admin's peers: %v", admin.tr.Peers(s.ID))
	}
}

// (3) The invite key itself never gets in: it presents a proof (the
// joiner's use, or one granting itself) and is refused; without a proof
// its probation runs out.
func TestInviteKeyRefused(t *testing.T) {
	s := meshtest.NewSpace(t, 1)
	ra := s.Member(t)
	// The node's own cool-off is short here so that each proof is judged.
	admin := startPeer(t, s.Keys[0], ra, gateConfig(s.Keys[0]), mesh.Config{Acknowledge: acknowledging(ra, s.Keys[0]), JoinCooloff: time.Millisecond})
	code, terms := s.Invite(t, ra, meshtest.Millis(time.Hour))
	ikey, err := core.PrivateKeyFromSeed(code.Seed)
	if err != nil {
		t.Fatal(err)
	}

	// Without a proof: probation, nothing served, closed.
	icfg := gateConfig(ikey)
	icfg.Bootstrap = admin.tr.Addrs()
	it := startTransport(t, icfg)
	h := join(t, it, s.ID, everyone)
	meshtest.Eventually(t, 10*time.Second, "the invite key connects on probation", func() (bool, string) {
		return connected(admin.tr, it), ""
	})
	if _, err := it.Request(context.Background(), s.ID, admin.tr.ID(), []byte("hello")); err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("a sync request on probation: %v", err)
	}
	note(t, ra, s.Keys[0], "during-probation", s.Now())
	meshtest.Eventually(t, 10*time.Second, "the probation runs out", func() (bool, string) {
		return !connected(admin.tr, it) && !connected(it, admin.tr), ""
	})
	if h.count() != 0 || slices.Contains(admin.tr.Peers(s.ID), it.ID()) {
		t.Fatalf("the invite key got %d pushes; admin's peers %v", h.count(), admin.tr.Peers(s.ID))
	}
	it.Close()

	// With proofs, once the probation's cool-off is over.
	joinerKey := meshtest.Key(t, 63)
	use := meshtest.Use(t, code, terms, joinerKey.Public(), s.Now())
	selfGrant := grantBy(t, code, terms, ikey, ikey.Public(), s.Now())
	for i, proof := range [][]byte{use, selfGrant} {
		var err error
		meshtest.Eventually(t, 10*time.Second, "the invite key is let on probation again", func() (bool, string) {
			err = p2p.PresentProof(context.Background(), ikey, s.ID, proof, admin.tr.Addrs())
			return !errors.Is(err, mesh.ErrNoPeer), fmt.Sprint(err)
		})
		if !errors.Is(err, replica.ErrNotInviteUse) {
			t.Fatalf("proof %d by the invite key: %v", i, err)
		}
		t.Logf("proof %d refused: %v", i, err)
	}
	// The joiner uses it; the invite key is still no member.
	if err := p2p.PresentProof(context.Background(), joinerKey, s.ID, use, admin.tr.Addrs()); err != nil {
		t.Fatal(err)
	}
	if ra.IsMember(ikey.Public()) || !ra.IsMember(joinerKey.Public()) {
		t.Fatal("membership after the use")
	}
	if _, ok := admin.node.Banned()[mesh.PeerOf(ikey.Public())]; ok {
		t.Log("the invite key was banned as well")
	}
}

// grantBy signs, with key, a change that has the shape of a use of the
// invite but that no invite allows (e.g. the invite key granting itself).
func grantBy(t *testing.T, code core.InviteCode, terms core.InviteTerms, key core.PrivateKey, member core.PublicKey, now uint64) []byte {
	t.Helper()
	inv, err := core.DecodeSigned(code.Invite)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := inv.Decode()
	if err != nil {
		t.Fatal(err)
	}
	c := &core.Change{Version: core.ChangeVersion, Space: code.Space, Author: key.Public(), Seq: 1,
		Parents: []core.ID{terms.Change}, Height: ic.Height + 1, HLC: core.HLC{Wall: max(now, ic.HLC.Wall+1)},
		Ops: []core.Op{{Kind: core.OpGrant, Member: member, Role: terms.Role}}}
	signed, _, err := core.Sign(c, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := signed.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// (4) A revoked member is cut as soon as the revocation is stored (the
// periodic admission check is off here) and receives none of the writes
// made after it, by push, relay or sync.
func TestRevokedMemberCut(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	s := meshtest.NewSpace(t, 3)
	var peers []*peerNode
	for i, k := range s.Keys {
		cfg := gateConfig(k)
		cfg.AdmissionInterval = time.Hour
		for _, p := range peers {
			cfg.Bootstrap = append(cfg.Bootstrap, p.tr.Addrs()...)
		}
		var mc mesh.Config
		r := s.Member(t)
		if i == 0 {
			mc.Acknowledge = acknowledging(r, k)
		}
		peers = append(peers, startPeer(t, k, r, cfg, mc))
	}
	a, b, revoked := peers[0], peers[1], peers[2]
	// An open invite: the revoked member may even come back on probation.
	s.Invite(t, a.r, meshtest.Millis(time.Hour))
	meshtest.Eventually(t, 20*time.Second, "all connected and converged", func() (bool, string) {
		st := meshtest.State(t, a.r)
		return len(a.tr.Peers(s.ID)) == 2 && len(b.tr.Peers(s.ID)) == 2 && len(revoked.tr.Peers(s.ID)) == 2 &&
			meshtest.State(t, b.r) == st && meshtest.State(t, revoked.r) == st, st
	})
	note(t, revoked.r, s.Keys[2], "by-member", s.Now())
	meshtest.Eventually(t, 20*time.Second, "the member's write arrives", func() (bool, string) {
		_, ok, _ := a.r.Get("Note", "by-member")
		return ok, ""
	})

	rev, err := a.r.Write(context.Background(), s.Keys[0], []core.Op{{Kind: core.OpRevoke, Member: s.Keys[2].Public()}}, s.Now())
	if err != nil {
		t.Fatal(err)
	}
	var after []core.ID
	for i := range 10 + rng.IntN(20) {
		after = append(after, note(t, a.r, s.Keys[0], fmt.Sprintf("a-after-%d", i), s.Now()))
		if rng.IntN(3) == 0 {
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		}
	}
	meshtest.Eventually(t, 20*time.Second, "b holds the revocation", func() (bool, string) { return b.r.Has(rev), "" })
	for i := range 5 + rng.IntN(10) {
		after = append(after, note(t, b.r, s.Keys[1], fmt.Sprintf("b-after-%d", i), s.Now()))
		if rng.IntN(3) == 0 {
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		}
	}
	// It may come back on probation (an invite is open), where nothing
	// flows; it is no peer of the space any more.
	meshtest.Eventually(t, 20*time.Second, "the revoked member is cut off by both", func() (bool, string) {
		return !slices.Contains(a.tr.Peers(s.ID), revoked.tr.ID()) && !slices.Contains(b.tr.Peers(s.ID), revoked.tr.ID()), ""
	})
	meshtest.Eventually(t, 20*time.Second, "the members converge", func() (bool, string) {
		return meshtest.State(t, a.r) == meshtest.State(t, b.r), ""
	})
	time.Sleep(time.Second) // the revoked member keeps syncing and re-dialling
	for _, id := range after {
		if revoked.r.Has(id) {
			t.Fatalf("the revoked member received %s, written after its revocation", id.Short())
		}
	}
	t.Logf("%d writes after the revocation; the revoked member holds the revocation: %v", len(after), revoked.r.Has(rev))
}

// (5) Uses of an expired and of a revoked invite are refused with those
// reasons; with no invite open, a newcomer is refused at the handshake.
func TestExpiredAndRevokedInvitesRefused(t *testing.T) {
	s := meshtest.NewSpace(t, 1)
	ra := s.Member(t)
	admin := startPeer(t, s.Keys[0], ra, gateConfig(s.Keys[0]), mesh.Config{Acknowledge: acknowledging(ra, s.Keys[0])})
	expCode, expTerms := s.Invite(t, ra, meshtest.Millis(300*time.Millisecond))
	revCode, revTerms := s.Invite(t, ra, meshtest.Millis(time.Hour))
	if _, err := ra.RevokeInvite(context.Background(), s.Keys[0], revTerms.Change, s.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	x1, x2 := meshtest.Key(t, 64), meshtest.Key(t, 65)
	late := meshtest.Use(t, expCode, expTerms, x1.Public(), s.Now())
	revUse := meshtest.Use(t, revCode, revTerms, x2.Public(), s.Now())

	// No invite open: refused before the handshake completes, no reason.
	err := p2p.PresentProof(context.Background(), x1, s.ID, late, admin.tr.Addrs())
	if !errors.Is(err, mesh.ErrNoPeer) || errors.Is(err, mesh.ErrJoinRefused) {
		t.Fatalf("with no invite open: %v", err)
	}

	s.Invite(t, ra, meshtest.Millis(time.Hour)) // open one: probation is offered again
	for _, c := range []struct {
		key    core.PrivateKey
		proof  []byte
		reason string
		err    error
	}{{x1, late, "expired", replica.ErrInviteExpired}, {x2, revUse, "revoked", replica.ErrInviteRevoked}} {
		err := p2p.PresentProof(context.Background(), c.key, s.ID, c.proof, admin.tr.Addrs())
		if !errors.Is(err, c.err) || mesh.RefusalReason(err) != c.reason {
			t.Fatalf("%s invite: %v (reason %q)", c.reason, err, mesh.RefusalReason(err))
		}
		t.Logf("%s: %v", c.reason, err)
		if ra.IsMember(c.key.Public()) {
			t.Fatalf("admitted through a %s invite", c.reason)
		}
	}
	if got := admin.node.Metrics().Snapshot()["joins_refused"]; got != 2 {
		t.Fatalf("joins refused: %d, want 2", got)
	}
}

// (6) A non-member without a proof gets nothing: refused at the
// handshake when no invite is open; on probation otherwise, where it gets
// no sync and no push, is closed when it sends nothing or too much, and
// is kept off; probation places are few.
func TestProbationBounded(t *testing.T) {
	s := meshtest.NewSpace(t, 2)
	ra := s.Member(t)
	acfg := gateConfig(s.Keys[0])
	acfg.MaxProbation = 1
	acfg.ProbationTimeout = 5 * time.Second // long enough for what is checked during it
	acfg.ProbationCooloff = time.Minute
	admin := startPeer(t, s.Keys[0], ra, acfg, mesh.Config{Acknowledge: acknowledging(ra, s.Keys[0])})
	info := peer.AddrInfo{ID: admin.tr.Host().ID(), Addrs: admin.tr.Host().Addrs()}

	// No invite open: refused before any data.
	o1 := startTransport(t, gateConfig(meshtest.Key(t, 66)))
	h1 := join(t, o1, s.ID, everyone)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o1.Host().Connect(ctx, info); err == nil {
		meshtest.Eventually(t, time.Second, "the admin closes the outsider's connection at once", func() (bool, string) {
			return !connected(o1, admin.tr), ""
		})
	}
	if _, err := o1.Request(context.Background(), s.ID, admin.tr.ID(), []byte("hello")); err == nil {
		t.Fatal("an outsider got a sync reply")
	}

	// An invite open: probation, where nothing flows.
	s.Invite(t, ra, meshtest.Millis(time.Hour))
	if err := o1.AddBootstrap(admin.tr.Addrs()...); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 10*time.Second, "the outsider gets probation", func() (bool, string) {
		return connected(admin.tr, o1), ""
	})
	// A second newcomer finds no place while the first holds it.
	o2 := startTransport(t, gateConfig(meshtest.Key(t, 67)))
	join(t, o2, s.ID, everyone)
	c2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	if err := o2.Host().Connect(c2, info); err == nil {
		meshtest.Eventually(t, time.Second, "no second probation place", func() (bool, string) {
			return !connected(o2, admin.tr), ""
		})
	}
	cancel2()
	for i := range 5 {
		note(t, ra, s.Keys[0], fmt.Sprintf("during-%d", i), s.Now())
		if err := admin.tr.Publish(context.Background(), s.ID, s.Bootstrap); err != nil {
			t.Fatal(err)
		}
		if _, err := o1.Request(context.Background(), s.ID, admin.tr.ID(), []byte("hello")); err == nil || !strings.Contains(err.Error(), "not a member") {
			t.Fatalf("a sync request on probation: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	meshtest.Eventually(t, 10*time.Second, "a silent probation is closed", func() (bool, string) {
		return !connected(admin.tr, o1) && !connected(o1, admin.tr), ""
	})
	if h1.count() != 0 {
		t.Fatalf("the outsider got %d pushed envelopes", h1.count())
	}
	time.Sleep(500 * time.Millisecond) // it keeps re-dialling: kept off
	if connected(admin.tr, o1) {
		t.Fatal("the outsider came back during its cool-off")
	}
	o1.Close()

	// Too much: a proof over the limit is refused and the connection cut.
	o3 := startTransport(t, gateConfig(meshtest.Key(t, 68)))
	join(t, o3, s.ID, everyone)
	var st network.Stream
	meshtest.Eventually(t, 10*time.Second, "a third newcomer opens a join stream", func() (bool, string) {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := o3.Host().Connect(c, info); err != nil {
			return false, err.Error()
		}
		var err error
		st, err = o3.Host().NewStream(c, info.ID, p2p.JoinProtocol)
		return err == nil, fmt.Sprint(err)
	})
	w := bufio.NewWriter(st)
	w.Write(s.ID[:])
	var hdr [binary.MaxVarintLen64]byte
	w.Write(hdr[:binary.PutUvarint(hdr[:], 1<<20)])
	w.Write(make([]byte, 64<<10))
	w.Flush()
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, _ := bufio.NewReader(st).ReadBytes(0xff)
	if len(reply) == 0 || reply[0] != 1 || !bytes.Contains(reply, []byte(mesh.ErrTooLarge.Error())) {
		t.Fatalf("answer to an oversized proof: %q", reply)
	}
	meshtest.Eventually(t, 5*time.Second, "an oversized proof costs the connection", func() (bool, string) {
		return !connected(admin.tr, o3), ""
	})
}
