package memnet_test

import (
	"flag"
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
