package memnet

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// Faults are injected into every delivery, decided by the seeded RNG.
type Faults struct {
	DropRate        float64       // share of pushes lost
	MaxDelay        time.Duration // pushes and requests delayed up to this (reorders pushes)
	RequestFailRate float64       // share of requests that fail
}

// Network connects endpoints.
type Network struct {
	mu        sync.Mutex
	faults    Faults
	rng       *rand.Rand
	endpoints map[mesh.PeerID]*Endpoint
	group     map[mesh.PeerID]int // partition group; equal groups talk
	closed    bool
	wg        sync.WaitGroup
}

// New makes a network whose faults follow seed.
func New(seed uint64, f Faults) *Network {
	return &Network{faults: f, rng: rand.New(rand.NewPCG(seed, 0x6d656d6e6574)), endpoints: map[mesh.PeerID]*Endpoint{}, group: map[mesh.PeerID]int{}}
}

// Endpoint returns (creating it) the endpoint of peer id.
func (n *Network) Endpoint(id mesh.PeerID) *Endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.endpoints[id]; ok {
		return e
	}
	e := &Endpoint{net: n, id: id, handlers: map[core.ID]mesh.Handler{}, banned: map[mesh.PeerID]string{}}
	n.endpoints[id] = e
	return e
}

// Partition splits the network: peers in different groups cannot reach
// each other; peers not named form one more group. Peers that can reach
// each other again are told (mesh.Greeter).
func (n *Network) Partition(groups ...[]mesh.PeerID) {
	n.mu.Lock()
	before := n.reachablePairs()
	clear(n.group)
	for i, g := range groups {
		for _, p := range g {
			n.group[p] = i + 1
		}
	}
	var met []meeting
	for pair := range n.reachablePairs() {
		if !before[pair] {
			met = append(met, pair)
		}
	}
	n.mu.Unlock()
	n.greet(met)
}

// Heal removes every partition.
func (n *Network) Heal() { n.Partition() }

// SetFaults changes the faults from now on.
func (n *Network) SetFaults(f Faults) {
	n.mu.Lock()
	n.faults = f
	n.mu.Unlock()
}

// meeting is an endpoint in a space that can reach another one.
type meeting struct {
	e, o  *Endpoint
	space core.ID
}

// reachablePairs lists, for every space, the endpoints that reach each
// other in it; net.mu held.
func (n *Network) reachablePairs() map[meeting]bool {
	out := map[meeting]bool{}
	for _, e := range n.endpoints {
		for space := range e.handlers {
			for _, o := range n.endpoints {
				if _, ok := e.reachable(o, space); ok {
					out[meeting{e, o, space}] = true
				}
			}
		}
	}
	return out
}

// greet tells each endpoint's handler that the other one appeared; net.mu
// not held (a handler may call the transport).
func (n *Network) greet(met []meeting) {
	for _, m := range met {
		n.mu.Lock()
		h := m.e.handlers[m.space]
		_, still := m.e.reachable(m.o, m.space)
		n.mu.Unlock()
		if g, ok := h.(mesh.Greeter); ok && still {
			g.Appeared(m.o.id)
		}
	}
}

// Close stops deliveries and waits for those in flight.
func (n *Network) Close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.wg.Wait()
}

func (n *Network) connected(a, b mesh.PeerID) bool { return n.group[a] == n.group[b] }

// decide draws the fault for one delivery.
func (n *Network) decide(rate float64) (lost bool, delay time.Duration) {
	lost = rate > 0 && n.rng.Float64() < rate
	if n.faults.MaxDelay > 0 {
		delay = time.Duration(n.rng.Int64N(int64(n.faults.MaxDelay)))
	}
	return lost, delay
}

// Endpoint is one peer's transport.
type Endpoint struct {
	net      *Network
	id       mesh.PeerID
	handlers map[core.ID]mesh.Handler // guarded by net.mu
	banned   map[mesh.PeerID]string   // guarded by net.mu
}

var (
	_ mesh.Transport = (*Endpoint)(nil)
	_ mesh.Banner    = (*Endpoint)(nil)
)

// ID is the endpoint's peer ID.
func (e *Endpoint) ID() mesh.PeerID { return e.id }

// Join implements mesh.Transport; the space's other endpoints that e
// reaches, and e, are told (mesh.Greeter).
func (e *Endpoint) Join(space core.ID, h mesh.Handler) error {
	e.net.mu.Lock()
	if _, ok := e.handlers[space]; ok {
		e.net.mu.Unlock()
		return fmt.Errorf("memnet: %s already joined space %s", e.id, space.Short())
	}
	e.handlers[space] = h
	var met []meeting
	for _, o := range e.net.endpoints {
		if _, ok := o.reachable(e, space); ok {
			met = append(met, meeting{o, e, space}, meeting{e, o, space})
		}
	}
	e.net.mu.Unlock()
	e.net.greet(met)
	return nil
}

// Leave implements mesh.Transport.
func (e *Endpoint) Leave(space core.ID) error {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	delete(e.handlers, space)
	return nil
}

// Ban implements mesh.Banner: nothing flows between e and peer any more.
func (e *Endpoint) Ban(peer mesh.PeerID, reason string) {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	e.banned[peer] = reason
}

// reachable reports whether e can talk to o about space; net.mu held.
func (e *Endpoint) reachable(o *Endpoint, space core.ID) (mesh.Handler, bool) {
	if o == e || !e.net.connected(e.id, o.id) {
		return nil, false
	}
	if _, b := e.banned[o.id]; b {
		return nil, false
	}
	if _, b := o.banned[e.id]; b {
		return nil, false
	}
	h, ok := o.handlers[space]
	return h, ok
}

// Peers implements mesh.Transport.
func (e *Endpoint) Peers(space core.ID) []mesh.PeerID {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if _, ok := e.handlers[space]; !ok {
		return nil
	}
	var out []mesh.PeerID
	for id, o := range e.net.endpoints {
		if _, ok := e.reachable(o, space); ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func clone(envs [][]byte) [][]byte {
	out := make([][]byte, len(envs))
	for i, b := range envs {
		out[i] = bytes.Clone(b)
	}
	return out
}

// Publish implements mesh.Transport: each reachable peer gets the
// envelopes after a random delay, or loses them.
func (e *Endpoint) Publish(ctx context.Context, space core.ID, envs [][]byte) error {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if e.net.closed {
		return fmt.Errorf("memnet: network closed")
	}
	for _, o := range e.net.endpoints {
		h, ok := e.reachable(o, space)
		if !ok {
			continue
		}
		lost, delay := e.net.decide(e.net.faults.DropRate)
		if lost {
			continue
		}
		msg := clone(envs)
		from := e.id
		e.net.wg.Add(1)
		go func() {
			defer e.net.wg.Done()
			time.Sleep(delay)
			e.net.mu.Lock()
			_, still := e.reachable(o, space)
			closed := e.net.closed
			e.net.mu.Unlock()
			if still && !closed {
				h.Pushed(from, msg)
			}
		}()
	}
	return nil
}

// Request implements mesh.Transport.
func (e *Endpoint) Request(ctx context.Context, space core.ID, to mesh.PeerID, req []byte) ([]byte, error) {
	e.net.mu.Lock()
	o := e.net.endpoints[to]
	var h mesh.Handler
	ok := false
	if o != nil {
		h, ok = e.reachable(o, space)
	}
	lost, delay := e.net.decide(e.net.faults.RequestFailRate)
	closed := e.net.closed
	e.net.mu.Unlock()
	if !ok || closed {
		return nil, fmt.Errorf("memnet: %s: %w", to, mesh.ErrNoPeer)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	if lost {
		return nil, fmt.Errorf("memnet: request to %s lost (injected fault)", to)
	}
	out, err := h.Serve(ctx, e.id, bytes.Clone(req))
	if err != nil {
		return nil, err
	}
	return bytes.Clone(out), nil
}
