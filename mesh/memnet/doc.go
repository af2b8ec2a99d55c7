// Package memnet is an in-memory network for tests: endpoints that
// implement mesh.Transport, with seeded faults (dropped and delayed pushes,
// hence reordering, failed requests) and partitions that tests open and
// heal.
//
//	net := memnet.New(seed, memnet.Faults{DropRate: 0.2, MaxDelay: 5 * time.Millisecond})
//	defer net.Close()
//	a, b := net.Endpoint("peer-a"), net.Endpoint("peer-b")
//	net.Partition([]mesh.PeerID{"peer-a"}, []mesh.PeerID{"peer-b"})
//	net.Heal()
package memnet
