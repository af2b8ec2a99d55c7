package libp2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// gater is the host's connection gater: a peer gets a connection only if
// it is a member of some space the node serves (its admit function says
// so) and is not banned; offline, nobody does.
type gater struct {
	self peer.ID

	mu      sync.RWMutex
	admit   map[core.ID]func(mesh.PeerID) bool
	banned  map[peer.ID]string
	offline bool
}

func newGater(self peer.ID) *gater {
	return &gater{self: self, admit: map[core.ID]func(mesh.PeerID) bool{}, banned: map[peer.ID]string{}}
}

func (g *gater) setAdmission(space core.ID, admit func(mesh.PeerID) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if admit == nil {
		delete(g.admit, space)
		return
	}
	g.admit[space] = admit
}

// admitFor returns the space's admit function, nil when none was set.
func (g *gater) admitFor(space core.ID) func(mesh.PeerID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.admit[space]
}

func (g *gater) ban(p peer.ID, reason string) (already bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, already = g.banned[p]
	if !already {
		g.banned[p] = reason
	}
	return already
}

func (g *gater) isBanned(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.banned[p]
	return ok
}

func (g *gater) bannedList() map[peer.ID]string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make(map[peer.ID]string, len(g.banned))
	for k, v := range g.banned {
		out[k] = v
	}
	return out
}

func (g *gater) setOffline(off bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.offline = off
}

func (g *gater) isOffline() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.offline
}

// allowed reports whether p may hold a connection: online, not banned,
// a member of some space.
func (g *gater) allowed(p peer.ID) bool {
	if p == g.self {
		return false
	}
	g.mu.RLock()
	if g.offline {
		g.mu.RUnlock()
		return false
	}
	if _, b := g.banned[p]; b {
		g.mu.RUnlock()
		return false
	}
	fns := make([]func(mesh.PeerID) bool, 0, len(g.admit))
	for _, f := range g.admit {
		fns = append(fns, f)
	}
	g.mu.RUnlock()
	if len(fns) == 0 {
		return false
	}
	id, err := ToPeerID(p)
	if err != nil {
		return false
	}
	for _, f := range fns {
		if f(id) {
			return true
		}
	}
	return false
}

// admittedFor reports whether p may take part in space: not banned, and
// a member when the space has an admit function.
func (g *gater) admittedFor(space core.ID, p peer.ID) bool {
	g.mu.RLock()
	_, banned := g.banned[p]
	f := g.admit[space]
	off := g.offline
	g.mu.RUnlock()
	if banned || off {
		return false
	}
	if f == nil {
		return true
	}
	id, err := ToPeerID(p)
	return err == nil && f(id)
}

// InterceptPeerDial implements connmgr.ConnectionGater.
func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.allowed(p) }

// InterceptAddrDial implements connmgr.ConnectionGater.
func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return !g.isOffline() }

// InterceptAccept implements connmgr.ConnectionGater.
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return !g.isOffline() }

// InterceptSecured implements connmgr.ConnectionGater: once the handshake
// proved the remote's key, non-members are refused before any data.
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}

// InterceptUpgraded implements connmgr.ConnectionGater.
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
