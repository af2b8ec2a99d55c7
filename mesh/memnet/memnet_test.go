package memnet_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/memnet"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the network's faults (0: time-based)")

type network struct {
	net *memnet.Network
	ids []mesh.PeerID
}

func (n *network) Transport(i int) mesh.Transport { return n.net.Endpoint(n.ids[i]) }
func (n *network) Isolate(i int)                  { n.net.Partition([]mesh.PeerID{n.ids[i]}) }
func (n *network) Heal()                          { n.net.Heal() }
func (n *network) Close()                         { n.net.Close() }

func factory(faults memnet.Faults) meshtest.Factory {
	return func(t *testing.T, keys []core.PrivateKey) meshtest.Network {
		seed := *seedFlag
		if seed == 0 {
			seed = uint64(time.Now().UnixNano())
		}
		t.Logf("memnet seed %d (rerun with -seed=%d)", seed, seed)
		n := &network{net: memnet.New(seed, faults)}
		for _, k := range keys {
			n.ids = append(n.ids, mesh.PeerOf(k.Public()))
		}
		return n
	}
}

func TestConformance(t *testing.T) {
	meshtest.Run(t, meshtest.Options{CatchUp: catchUp, Timeout: 3 * time.Minute}, factory(memnet.Faults{}))
}

// TestConformanceWithFaults: drops, delays (so reordering) and failed
// requests change nothing about the outcome.
func TestConformanceWithFaults(t *testing.T) {
	meshtest.Run(t, meshtest.Options{CatchUp: 5000}, factory(memnet.Faults{DropRate: 0.3, MaxDelay: 10 * time.Millisecond, RequestFailRate: 0.1}))
}

// A reconciliation that fails as a peer comes back is retried soon (with
// backoff), not left for the next anti-entropy round, an hour here.
func TestFailedSyncIsRetried(t *testing.T) {
	var net *memnet.Network
	f := func(t *testing.T, keys []core.PrivateKey) meshtest.Network {
		net = memnet.New(1, memnet.Faults{})
		n := &network{net: net}
		for _, k := range keys {
			n.ids = append(n.ids, mesh.PeerOf(k.Public()))
		}
		return n
	}
	c := meshtest.StartCluster(t, meshtest.Options{Interval: time.Hour}, f, 2)
	c.Net.Isolate(1)
	chain := c.Space.Chain(t, 50)
	if rep, err := c.Replicas[0].Receive(context.Background(), chain); err != nil || rep.Applied != len(chain) {
		t.Fatalf("writer applied %+v, err %v", rep, err) // stored, never pushed
	}
	net.SetFaults(memnet.Faults{RequestFailRate: 1})
	c.Net.Heal() // both sides reconcile at once, and every request fails
	meshtest.Eventually(t, 30*time.Second, "a sync fails as the peer comes back", func() (bool, string) {
		failed := c.Nodes[0].Metrics().SyncsFailed.Load() + c.Nodes[1].Metrics().SyncsFailed.Load()
		return failed >= 2, fmt.Sprintf("%d failed syncs", failed)
	})
	net.SetFaults(memnet.Faults{})
	c.WaitConverged(t, 30*time.Second)
}
