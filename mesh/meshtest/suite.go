package meshtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh"
)

// Options tune the suite for a transport.
type Options struct {
	CatchUp  int           // changes written while a peer is offline (default 10000)
	Timeout  time.Duration // for each convergence wait (default 60s)
	Interval time.Duration // node sync interval (default 100ms)
}

func (o *Options) defaults() {
	if o.CatchUp == 0 {
		o.CatchUp = 10000
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Interval == 0 {
		o.Interval = 100 * time.Millisecond
	}
}

// Run runs the conformance suite against the transports f builds.
func Run(t *testing.T, o Options, f Factory) {
	o.defaults()
	t.Run("ConvergeAfterPartition", func(t *testing.T) { testConverge(t, o, f) })
	t.Run("OfflinePeerCatchesUp", func(t *testing.T) { testCatchUp(t, o, f) })
	t.Run("ReconnectedPeerReconcilesAtOnce", func(t *testing.T) { testReconnect(t, o, f) })
	t.Run("ForgedDataCutsSenderOff", func(t *testing.T) { testForged(t, o, f) })
	t.Run("RevokedMemberRejected", func(t *testing.T) { testRevoked(t, o, f) })
	t.Run("JoinerAdmittedByProof", func(t *testing.T) { testJoin(t, o, f) })
}

// Cluster is n replicas with nodes over one network.
type Cluster struct {
	Space    *Space
	Net      Network
	Replicas []*replica.Replica
	Nodes    []*mesh.Node
}

// StartCluster makes a space of n members, each with a replica and a
// running node over f's transports.
func StartCluster(t *testing.T, o Options, f Factory, n int) *Cluster {
	t.Helper()
	o.defaults()
	s := NewSpace(t, n)
	c := &Cluster{Space: s, Net: f(t, s.Keys)}
	t.Cleanup(c.Net.Close)
	for i := range n {
		r := s.Member(t)
		node := mesh.NewNode(r, c.Net.Transport(i), mesh.Config{SyncInterval: o.Interval})
		if err := node.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		c.Replicas, c.Nodes = append(c.Replicas, r), append(c.Nodes, node)
	}
	return c
}

// WaitConverged waits until every replica has the same state.
func (c *Cluster) WaitConverged(t *testing.T, timeout time.Duration) string {
	t.Helper()
	return c.waitConverged(t, timeout, nil)
}

// WaitConvergedProgressing waits until every replica has the same state,
// failing only when no replica stores a change for stall: a long catch-up
// on a loaded machine is slow, not wrong; a stuck one is.
func (c *Cluster) WaitConvergedProgressing(t *testing.T, stall time.Duration) string {
	t.Helper()
	return c.waitConverged(t, stall, func() uint64 {
		var n uint64
		for _, r := range c.Replicas {
			if st, err := r.Status(); err == nil {
				n += uint64(st.Changes)
			}
		}
		return n
	})
}

func (c *Cluster) waitConverged(t *testing.T, timeout time.Duration, progress func() uint64) string {
	t.Helper()
	var want string
	EventuallyProgressing(t, timeout, progress, "replicas converge", func() (bool, string) {
		want = State(t, c.Replicas[0])
		for i, r := range c.Replicas[1:] {
			if got := State(t, r); got != want {
				return false, fmt.Sprintf("replica %d differs from replica 0:\n%.300s\n%.300s", i+1, got, want)
			}
		}
		return true, ""
	})
	return want
}

func write(t *testing.T, c *Cluster, i int, doc string, n int) {
	t.Helper()
	ops := []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: doc, Fields: map[string]any{"text": fmt.Sprintf("by %d", i), "n": int64(n)}}}
	if _, err := c.Replicas[i].Write(context.Background(), c.Space.Keys[i], ops, c.Space.Now()); err != nil {
		t.Fatalf("write on %d: %v", i, err)
	}
}

func testConverge(t *testing.T, o Options, f Factory) {
	c := StartCluster(t, o, f, 3)
	for round := range 5 {
		for i := range 3 {
			write(t, c, i, fmt.Sprintf("n%d-%d", i, round), round)
		}
	}
	c.WaitConverged(t, o.Timeout)
	c.Net.Isolate(2)
	for round := range 5 {
		for i := range 3 {
			write(t, c, i, fmt.Sprintf("p%d-%d", i, round), round)
			// the same document on both sides of the partition: a conflict
			if _, err := c.Replicas[i].Write(context.Background(), c.Space.Keys[i],
				[]core.Op{{Kind: core.OpSet, Coll: "Note", Doc: "n0-0", Field: "text", Value: fmt.Sprintf("side %d round %d", i, round)}}, c.Space.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(3 * o.Interval)
	if State(t, c.Replicas[2]) == State(t, c.Replicas[0]) {
		t.Fatal("the isolated replica saw the others' writes during the partition")
	}
	c.Net.Heal()
	state := c.WaitConverged(t, o.Timeout)
	docs, err := c.Replicas[0].Query("Note", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 30 {
		t.Fatalf("converged on %d notes, want 30\n%.500s", len(docs), state)
	}
}

func testCatchUp(t *testing.T, o Options, f Factory) {
	c := StartCluster(t, o, f, 2)
	c.Net.Isolate(1)
	chain := c.Space.Chain(t, o.CatchUp)
	ctx := context.Background()
	missingBytes := 0
	for i := 0; i < len(chain); i += 2000 {
		batch := chain[i:min(i+2000, len(chain))]
		rep, err := c.Replicas[0].Receive(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Applied != len(batch) {
			t.Fatalf("writer applied %d of %d: %+v", rep.Applied, len(batch), rep.Rejected)
		}
		for _, b := range batch {
			missingBytes += len(b)
		}
	}
	before := c.Nodes[1].Metrics().Snapshot()
	start := time.Now()
	c.Net.Heal()
	c.WaitConvergedProgressing(t, o.Timeout)
	took := time.Since(start)
	after := c.Nodes[1].Metrics().Snapshot()
	after0 := c.Nodes[0].Metrics().Snapshot()
	rounds := after["sync_rounds"] - before["sync_rounds"]
	recv := after["bytes_received"] - before["bytes_received"]
	sent := after["bytes_sent"] - before["bytes_sent"]
	t.Logf("catch-up of %d changes (%d bytes of envelopes) in %s: peer made %d reconcile round trips in %d syncs, received %d bytes, sent %d bytes; writer made %d syncs",
		len(chain), missingBytes, took.Round(time.Millisecond), rounds, after["syncs_started"]-before["syncs_started"], recv, sent, after0["syncs_started"])
	// Each sync of the peer costs at most log16(n/64)+2 rounds; a few syncs
	// may run while the fetch is under way (both sides initiate).
	if syncs := after["syncs_started"] - before["syncs_started"] + 1; rounds > 8*syncs {
		t.Fatalf("%d round trips in %d syncs", rounds, syncs)
	}
	// Each missing change crosses once: when both sides reconcile at
	// once, the one the peer pulls from does not push it too.
	if recv > uint64(missingBytes)*3/2+1<<20 {
		t.Fatalf("received %d bytes for %d bytes of missing changes (more than 1.5 times: changes sent twice?)", recv, missingBytes)
	}
}

// testReconnect: with the periodic sync an hour apart, a peer that was
// offline while the other stored changes it never pushed converges once
// it is back: the transport tells the node that the peer appeared, and
// the node reconciles with it at once.
func testReconnect(t *testing.T, o Options, f Factory) {
	o.Interval = time.Hour
	c := StartCluster(t, o, f, 2)
	c.Net.Isolate(1)
	chain := c.Space.Chain(t, 200)
	rep, err := c.Replicas[0].Receive(context.Background(), chain) // stored, never pushed
	if err != nil || rep.Applied != len(chain) {
		t.Fatalf("writer applied %+v, err %v", rep, err)
	}
	// The returning peer holds a change of its own, never pushed either.
	scratch := c.Space.Member(t)
	id, err := scratch.Write(context.Background(), c.Space.Keys[1], []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: "while-away", Fields: map[string]any{"text": "by 1"}}}, c.Space.Now())
	if err != nil {
		t.Fatal(err)
	}
	env, err := scratch.Envelope(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Replicas[1].Receive(context.Background(), [][]byte{env}); err != nil {
		t.Fatal(err)
	}
	c.Net.Heal()
	c.WaitConverged(t, o.Timeout)
	if _, ok, _ := c.Replicas[0].Get("Note", "while-away"); !ok {
		t.Fatal("the returning peer's write did not reach the other")
	}
}

func testForged(t *testing.T, o Options, f Factory) {
	c := StartCluster(t, o, f, 3)
	write(t, c, 2, "honest", 1)
	c.WaitConverged(t, o.Timeout)
	// Peer 2 turns hostile: its node stops, and it publishes by hand a
	// change with a broken signature and bytes that are no change at all.
	c.Nodes[2].Close()
	evil, err := c.Replicas[2].Write(context.Background(), c.Space.Keys[2], []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: "forged", Fields: map[string]any{"text": "x"}}}, c.Space.Now())
	if err != nil {
		t.Fatal(err)
	}
	env, err := c.Replicas[2].Envelope(evil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.DecodeSigned(env)
	if err != nil {
		t.Fatal(err)
	}
	s.Sig[5] ^= 0x40
	forged, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Net.Transport(2)
	if err := tr.Join(c.Space.ID, idle{}); err != nil {
		t.Fatal(err)
	}
	bad := mesh.PeerOf(c.Space.Keys[2].Public())
	Eventually(t, o.Timeout, "honest peers see the hostile peer", func() (bool, string) {
		return len(tr.Peers(c.Space.ID)) == 2, fmt.Sprint(tr.Peers(c.Space.ID))
	})
	for i := range 2 {
		// The hostile peer keeps publishing, as an attacker would: a lossy
		// network may drop any one message.
		Eventually(t, o.Timeout, fmt.Sprintf("peer %d cuts the hostile peer off", i), func() (bool, string) {
			for _, p := range c.Net.Transport(i).Peers(c.Space.ID) {
				if p == bad {
					if err := tr.Publish(context.Background(), c.Space.ID, [][]byte{forged, []byte("not a change")}); err != nil {
						t.Fatal(err)
					}
					return false, fmt.Sprintf("peers of %d: %v; banned: %v", i, c.Net.Transport(i).Peers(c.Space.ID), c.Nodes[i].Banned())
				}
			}
			return true, ""
		})
		if c.Replicas[i].Has(evil) {
			t.Fatalf("peer %d applied the forged change", i)
		}
	}
}

// idle is a handler that serves nothing.
type idle struct{}

func (idle) Pushed(mesh.PeerID, [][]byte) {}
func (idle) Serve(context.Context, mesh.PeerID, []byte) ([]byte, error) {
	return nil, fmt.Errorf("not serving")
}

func testRevoked(t *testing.T, o Options, f Factory) {
	c := StartCluster(t, o, f, 3)
	c.WaitConverged(t, o.Timeout)
	// Peer 2 is cut off; the admin revokes it; meanwhile it keeps writing.
	c.Net.Isolate(2)
	if _, err := c.Replicas[0].Write(context.Background(), c.Space.Keys[0], []core.Op{{Kind: core.OpRevoke, Member: c.Space.Keys[2].Public()}}, c.Space.Now()); err != nil {
		t.Fatal(err)
	}
	var late []core.ID
	for i := range 3 {
		id, err := c.Replicas[2].Write(context.Background(), c.Space.Keys[2], []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("late-%d", i), Fields: map[string]any{"text": "after revocation"}}}, c.Space.Now())
		if err != nil {
			t.Fatal(err)
		}
		late = append(late, id)
	}
	write(t, c, 1, "still-member", 1)
	c.Net.Heal()
	// Gated transports refuse the revoked peer outright; the others let it
	// sync. Either way the honest replicas agree and none of its changes
	// after the revocation has an effect.
	Eventually(t, o.Timeout, "honest replicas converge without the revoked writes", func() (bool, string) {
		a, b := StoredState(t, c.Replicas[0]), StoredState(t, c.Replicas[1])
		if a != b {
			s0, _ := c.Replicas[0].Status()
			s1, _ := c.Replicas[1].Status()
			return false, fmt.Sprintf("replicas 0 and 1 differ: %d and %d changes, %d and %d held; banned by 0: %v, by 1: %v",
				s0.Changes, s1.Changes, len(c.Replicas[0].Orphans()), len(c.Replicas[1].Orphans()), c.Nodes[0].Banned(), c.Nodes[1].Banned())
		}
		for i := range 2 {
			for _, d := range []string{"late-0", "late-1", "late-2"} {
				if _, ok, _ := c.Replicas[i].Get("Note", d); ok {
					return false, fmt.Sprintf("replica %d shows %s", i, d)
				}
			}
			if _, ok, _ := c.Replicas[i].Get("Note", "still-member"); !ok {
				return false, fmt.Sprintf("replica %d lacks still-member", i)
			}
		}
		return true, ""
	})
	for i := range 2 {
		for _, id := range late {
			if c.Replicas[i].Has(id) {
				if valid, _, _ := c.Replicas[i].Verdict(id); valid {
					t.Fatalf("replica %d judged a revoked member's change valid", i)
				}
			}
		}
	}
}

// testJoin: a newcomer holding only its signed use of an invite gets in
// with only the inviting admin online, is acknowledged, and both sync
// both ways.
func testJoin(t *testing.T, o Options, f Factory) {
	s := NewSpace(t, 1)
	admin, joinerKey := s.Keys[0], Key(t, 77)
	net := f(t, []core.PrivateKey{admin, joinerKey})
	t.Cleanup(net.Close)
	ra := s.Member(t)
	code, terms := s.Invite(t, ra, Millis(time.Hour))
	proof := Use(t, code, terms, joinerKey.Public(), s.Now())
	rj := s.Newcomer(t, proof)
	ctx := context.Background()
	na := mesh.NewNode(ra, net.Transport(0), mesh.Config{SyncInterval: o.Interval, Acknowledge: func(ctx context.Context) error {
		_, err := ra.Acknowledge(ctx, admin, uint64(time.Now().UnixMilli()))
		return err
	}})
	nj := mesh.NewNode(rj, net.Transport(1), mesh.Config{SyncInterval: o.Interval, Proof: proof})
	for _, n := range []*mesh.Node{na, nj} {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
	}
	Eventually(t, o.Timeout, "the joiner is a member on both sides", func() (bool, string) {
		return ra.IsMember(joinerKey.Public()) && rj.IsMember(joinerKey.Public()), State(t, rj)
	})
	Eventually(t, o.Timeout, "the admin acknowledges the use", func() (bool, string) {
		inv := ra.Invites()
		return len(inv) == 1 && len(inv[0].Uses) == 1 && inv[0].Uses[0].Acknowledged, fmt.Sprintf("%+v", inv)
	})
	if _, err := rj.Write(ctx, joinerKey, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: "by-joiner", Fields: map[string]any{"text": "hello"}}}, s.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.Write(ctx, admin, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: "by-admin", Fields: map[string]any{"text": "welcome"}}}, s.Now()); err != nil {
		t.Fatal(err)
	}
	Eventually(t, o.Timeout, "both hold both writes", func() (bool, string) {
		for _, r := range []*replica.Replica{ra, rj} {
			for _, d := range []string{"by-joiner", "by-admin"} {
				if _, ok, _ := r.Get("Note", d); !ok {
					return false, State(t, r)
				}
			}
		}
		return State(t, ra) == State(t, rj), "replicas differ"
	})
}
