package nats

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// jsCluster is an embedded JetStream cluster, built the way nats-server's
// own tests build theirs: every server routes to every other.
type jsCluster struct {
	servers []*server.Server
}

// freePorts reserves n free TCP ports on 127.0.0.1 (the routes must be
// known before the servers start).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func startCluster(t *testing.T, n int) *jsCluster {
	t.Helper()
	ports := freePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c := &jsCluster{}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("S-%d", i+1), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(), MaxPayload: 1 << 20,
			Cluster: server.ClusterOpts{Name: "tributary-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		c.servers = append(c.servers, s)
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	for _, s := range c.servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
	}
	meshtest.Eventually(t, 30*time.Second, "the JetStream cluster has a leader and every peer", func() (bool, string) {
		for _, s := range c.servers {
			if s.JetStreamIsLeader() {
				return len(s.JetStreamClusterPeers()) == n, fmt.Sprintf("peers %v", s.JetStreamClusterPeers())
			}
		}
		return false, "no meta leader"
	})
	return c
}

// urls lists the client URLs of the servers still running.
func (c *jsCluster) urls() string {
	var out []string
	for _, s := range c.servers {
		if s.Running() {
			out = append(out, s.ClientURL())
		}
	}
	return strings.Join(out, ",")
}

// server returns the running server named name.
func (c *jsCluster) server(name string) *server.Server {
	for _, s := range c.servers {
		if s.Name() == name && s.Running() {
			return s
		}
	}
	return nil
}

// streamInfo reads a stream through any running server.
func (c *jsCluster) streamInfo(t *testing.T, name string) (*jetstream.StreamInfo, error) {
	nc, err := natsgo.Connect(c.urls())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// TestClusterLeaderLoss: on a 3-server cluster with R=3 streams, the
// server leading the space's stream is killed while A writes; once A has
// gone offline, B, which was offline all along, starts and receives
// every change from the surviving servers.
func TestClusterLeaderLoss(t *testing.T) {
	c := startCluster(t, 3)
	space := meshtest.NewSpace(t, 2)
	ra, rb := space.Member(t), space.Member(t)
	tune := func(cfg *Config) {
		cfg.Replicas = 3
		cfg.PublishTimeout = 2 * time.Second
		// Creating an R=3 consumer on a cluster that just formed can take
		// seconds on a loaded machine.
		cfg.OperationTimeout = 20 * time.Second
		cfg.ReconnectWait = 100 * time.Millisecond
		cfg.RetryDelay, cfg.RetryMaxDelay = 100*time.Millisecond, time.Second
	}
	a := startPeer(t, c.urls(), ra, space.Keys[0], tune, mesh.Config{})
	b := startPeer(t, c.urls(), rb, space.Keys[1], tune, mesh.Config{}) // makes B's durable consumer
	b.stop()

	info, err := c.streamInfo(t, StreamName(space.ID))
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream: replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
	}
	leader := info.Cluster.Leader

	const notes = 1500
	var wg sync.WaitGroup
	written := make(chan int, notes)
	wg.Go(func() {
		defer close(written)
		for i := range notes {
			ops := []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("w%d", i), Fields: map[string]any{"text": "during the failover", "n": int64(i)}}}
			if _, err := ra.Write(context.Background(), space.Keys[0], ops, space.Now()); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
			written <- i
		}
	})
	for i := range written {
		if i == notes/3 {
			break
		}
	}
	killed := time.Now()
	s := c.server(leader)
	s.Shutdown()
	s.WaitForShutdown()
	t.Logf("killed %s, the stream's leader, after %d of %d writes", leader, notes/3, notes)
	wg.Wait()
	want := changes(t, ra)

	meshtest.Eventually(t, time.Minute, "the stream holds every change of A", func() (bool, string) {
		info, err := c.streamInfo(t, StreamName(space.ID))
		if err != nil {
			return false, err.Error()
		}
		return info.State.Msgs == uint64(want), fmt.Sprintf("stream holds %d of %d; leader %v; A's transport %+v", info.State.Msgs, want, info.Cluster, a.tr.Stats())
	})
	recovered := time.Since(killed)
	info, _ = c.streamInfo(t, StreamName(space.ID))
	t.Logf("new leader %s; the stream held all %d changes %s after the kill; A's transport %+v", info.Cluster.Leader, want, recovered.Round(time.Millisecond), a.tr.Stats())
	a.stop()

	b = startPeer(t, c.urls(), rb, space.Keys[1], tune, mesh.Config{})
	meshtest.Eventually(t, time.Minute, "B receives every change from the surviving servers", func() (bool, string) {
		got := changes(t, rb)
		return got == want, fmt.Sprintf("B holds %d of %d; B's transport %+v", got, want, b.tr.Stats())
	})
	if sa, sb := meshtest.State(t, ra), meshtest.State(t, rb); sa != sb {
		t.Fatalf("states differ:\n%.300s\n%.300s", sa, sb)
	}
	if m := b.node.Metrics().Snapshot(); m["bytes_received"] != 0 {
		t.Fatalf("B reconciled with someone: %v", m)
	}
}
