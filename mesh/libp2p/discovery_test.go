package libp2p_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// diskPeer is a member whose replica and learned addresses live in a
// directory, so it can stop and start again as a node does.
type diskPeer struct {
	space  core.ID
	key    core.PrivateKey
	dir    string
	listen []string
	boot   []string
	proof  []byte
	*peerNode
}

func (d *diskPeer) start(t *testing.T) {
	t.Helper()
	r, err := replica.Open(replica.Options{Dir: filepath.Join(d.dir, "db"), Space: d.space})
	if err != nil {
		t.Fatal(err)
	}
	if d.proof != nil && !r.HasGenesis() {
		if _, err := r.Receive(context.Background(), [][]byte{d.proof}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := gateConfig(d.key)
	cfg.Listen, cfg.Bootstrap = d.listen, d.boot // mDNS stays off
	mcfg := mesh.Config{Key: d.key, AddrStore: &mesh.AddrFile{Path: filepath.Join(d.dir, "addrs.json")}}
	if !r.IsMember(d.key.Public()) {
		mcfg.Proof = d.proof
	}
	d.peerNode = startPeer(t, d.key, r, cfg, mcfg)
	t.Cleanup(func() { r.Close() })
	// Restarted, it listens where its record says it is.
	d.listen = d.tr.LocalAddrs()
}

func (d *diskPeer) stop() {
	d.node.Close()
	d.tr.Close()
	d.r.Close()
}

// knows reports whether p holds an address record of member.
func knows(p *peerNode, member core.PrivateKey) bool {
	return slices.ContainsFunc(p.node.AddrRecords(), func(r mesh.AddrRecord) bool { return r.Peer == member.Public() })
}

// The inviter is not special: A invites B and C, who are given nothing
// but A's addresses (mDNS off). They learn each other's addresses through
// the space, so once A is gone B and C keep syncing, also after both
// restart (from the addresses they saved).
func TestMembersFindEachOtherWithoutTheInviter(t *testing.T) {
	s := meshtest.NewSpace(t, 1)
	ra := s.Member(t)
	acfg := gateConfig(s.Keys[0])
	acfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	a := startPeer(t, s.Keys[0], ra, acfg, mesh.Config{Key: s.Keys[0], Acknowledge: acknowledging(ra, s.Keys[0])})
	note(t, a.r, s.Keys[0], "by-a", s.Now())

	joiner := func(seed byte) *diskPeer {
		code, terms := s.Invite(t, a.r, meshtest.Millis(time.Hour))
		key := meshtest.Key(t, seed)
		d := &diskPeer{space: s.ID, key: key, dir: t.TempDir(), listen: []string{"/ip4/127.0.0.1/tcp/0"}, boot: a.tr.Addrs(),
			proof: meshtest.Use(t, code, terms, key.Public(), s.Now())}
		d.start(t)
		return d
	}
	b, c := joiner(61), joiner(62)
	meshtest.Eventually(t, 30*time.Second, "B and C are members and hold A's history", func() (bool, string) {
		_, okB, _ := b.r.Get("Note", "by-a")
		_, okC, _ := c.r.Get("Note", "by-a")
		return okB && okC && b.r.IsMember(b.key.Public()) && c.r.IsMember(c.key.Public()), meshtest.State(t, c.r)
	})
	meshtest.Eventually(t, 30*time.Second, "B and C learn each other's addresses through the space", func() (bool, string) {
		return knows(b.peerNode, c.key) && knows(c.peerNode, b.key), ""
	})
	if got := b.node.Metrics().Snapshot()["addrs_learned"]; got == 0 {
		t.Fatal("B learned no address record")
	}

	// A leaves for good.
	a.node.Close()
	a.tr.Close()

	exchange := func(round string) {
		t.Helper()
		note(t, b.r, b.key, "by-b-"+round, s.Now())
		meshtest.Eventually(t, 30*time.Second, "C receives B's write "+round, func() (bool, string) {
			_, ok, _ := c.r.Get("Note", "by-b-"+round)
			return ok, meshtest.State(t, c.r)
		})
		note(t, c.r, c.key, "by-c-"+round, s.Now())
		meshtest.Eventually(t, 30*time.Second, "B receives C's write "+round, func() (bool, string) {
			_, ok, _ := b.r.Get("Note", "by-c-"+round)
			return ok, meshtest.State(t, b.r)
		})
	}
	exchange("after-a-left")

	// Both restart: nothing but A's (dead) address is configured; they
	// find each other from the records they saved.
	b.stop()
	c.stop()
	for _, d := range []*diskPeer{b, c} {
		recs, err := (&mesh.AddrFile{Path: filepath.Join(d.dir, "addrs.json")}).Load()
		if err != nil || len(recs) < 3 {
			t.Fatalf("saved address records: %d, err %v; want A's, B's and C's", len(recs), err)
		}
	}
	b.start(t)
	c.start(t)
	exchange("after-restart")
	if l := b.logs.String(); !strings.Contains(l, "dialling members at their saved addresses") {
		t.Fatalf("B did not use its saved addresses:\n%.2000s", l)
	}
	if slices.Contains(b.tr.Peers(s.ID), a.tr.ID()) {
		t.Fatal("A is gone but B lists it as a peer")
	}
}

// A record is taken only from a current member's key, signed for this
// space; of two records of one member the newer wins.
func TestAddrRecordsChecked(t *testing.T) {
	s := meshtest.NewSpace(t, 2)
	rec, err := mesh.SignAddrs(s.Keys[1], s.ID, []string{"/ip4/127.0.0.1/tcp/1"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Verify(s.ID); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	other := meshtest.NewSpace(t, 1).ID
	if err := rec.Verify(other); err == nil {
		t.Fatal("a record verified for another space")
	}
	forged := rec
	forged.Addrs = []string{"/ip4/10.0.0.1/tcp/1"}
	if err := forged.Verify(s.ID); err == nil {
		t.Fatal("a record with changed addresses verified")
	}
	if _, err := mesh.SignAddrs(s.Keys[1], s.ID, nil, 1000); err == nil {
		t.Fatal("a record without addresses was signed")
	}

	// A node takes, from its store as from peers, the newest record of
	// each current member and nothing of a stranger's.
	stranger := meshtest.Key(t, 99)
	bad, err := mesh.SignAddrs(stranger, s.ID, []string{"/ip4/127.0.0.1/tcp/9"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := mesh.SignAddrs(s.Keys[1], s.ID, []string{"/ip4/127.0.0.1/tcp/2"}, 2000)
	if err != nil {
		t.Fatal(err)
	}
	file := &mesh.AddrFile{Path: filepath.Join(t.TempDir(), "addrs.json")}
	if err := file.Save([]mesh.AddrRecord{bad, newer, rec, forged}); err != nil {
		t.Fatal(err)
	}
	n := mesh.NewNode(s.Member(t), newTransport(t, s.Keys[0], []string{"/ip4/127.0.0.1/tcp/0"}), mesh.Config{AddrStore: file})
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	recs := n.AddrRecords()
	if len(recs) != 1 || recs[0].Peer != s.Keys[1].Public() || recs[0].Time != 2000 {
		t.Fatalf("records taken %+v, want B's newer one only", recs)
	}
	if got := n.Metrics().Snapshot()["addrs_learned"]; got != 1 {
		t.Fatalf("addrs_learned %d, want 1", got)
	}
}
