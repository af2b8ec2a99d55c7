package libp2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// gater is the host's connection gater. A peer gets a connection if it is
// not banned and either some space's Admission admits it (a member), or
// it is let in on probation: while a space holds an open invite (a
// newcomer dialling us) or while we are joining (us dialling a peer to
// present our proof), for at most Config.ProbationTimeout, with at most
// Config.MaxProbation such peers at once. A peer whose probation ends
// without admission, or whose proof is refused, is kept off for
// Config.ProbationCooloff. Offline, nobody gets a connection.
type gater struct {
	self    peer.ID
	timeout time.Duration
	most    int
	cooloff time.Duration

	mu        sync.Mutex
	spaces    map[core.ID]mesh.Admission
	banned    map[peer.ID]string
	probation map[peer.ID]time.Time // deadline
	cooling   map[peer.ID]time.Time // kept off until
	offline   bool
}

func newGater(self peer.ID, cfg *Config) *gater {
	return &gater{
		self: self, timeout: cfg.ProbationTimeout, most: cfg.MaxProbation, cooloff: cfg.ProbationCooloff,
		spaces: map[core.ID]mesh.Admission{}, banned: map[peer.ID]string{},
		probation: map[peer.ID]time.Time{}, cooling: map[peer.ID]time.Time{},
	}
}

func (g *gater) setAdmission(space core.ID, a mesh.Admission) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a == nil {
		delete(g.spaces, space)
		return
	}
	g.spaces[space] = a
}

// admissionFor returns the space's Admission, nil when none was set.
func (g *gater) admissionFor(space core.ID) mesh.Admission {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.spaces[space]
}

// admissions lists every space's Admission; they are called without the
// lock held (they read the replicas).
func (g *gater) admissions() map[core.ID]mesh.Admission {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[core.ID]mesh.Admission, len(g.spaces))
	for s, a := range g.spaces {
		out[s] = a
	}
	return out
}

func (g *gater) ban(p peer.ID, reason string) (already bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, already = g.banned[p]
	if !already {
		g.banned[p] = reason
		delete(g.probation, p)
	}
	return already
}

func (g *gater) isBanned(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.banned[p]
	return ok
}

func (g *gater) bannedList() map[peer.ID]string {
	g.mu.Lock()
	defer g.mu.Unlock()
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
	if off {
		clear(g.probation)
	}
}

func (g *gater) isOffline() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.offline
}

// shut reports whether p gets nothing at all: ourselves, offline, banned.
func (g *gater) shut(p peer.ID) bool {
	if p == g.self {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, banned := g.banned[p]
	return g.offline || banned
}

// member reports whether some space admits p now.
func (g *gater) member(p peer.ID) bool {
	if g.shut(p) {
		return false
	}
	id, err := ToPeerID(p)
	if err != nil {
		return false
	}
	for _, a := range g.admissions() {
		if a.Admit(id) {
			return true
		}
	}
	return false
}

// admittedFor reports whether p may take part in space: not banned, and
// admitted when the space has an Admission.
func (g *gater) admittedFor(space core.ID, p peer.ID) bool {
	if g.shut(p) {
		return false
	}
	a := g.admissionFor(space)
	if a == nil {
		return true
	}
	id, err := ToPeerID(p)
	return err == nil && a.Admit(id)
}

// onProbation reports whether p holds a probation connection.
func (g *gater) onProbation(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	dl, ok := g.probation[p]
	return ok && time.Now().Before(dl)
}

// connAllowed reports whether p may keep a connection: a member or on
// probation.
func (g *gater) connAllowed(p peer.ID) bool {
	return !g.shut(p) && (g.onProbation(p) || g.member(p))
}

// cooling reports whether p is kept off.
func (g *gater) isCooling(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.cooling[p]
	if ok && time.Now().After(until) {
		delete(g.cooling, p)
		return false
	}
	return ok
}

// open reports whether some space takes newcomers now.
func (g *gater) open() bool {
	for _, a := range g.admissions() {
		if a.Open() {
			return true
		}
	}
	return false
}

// joining reports whether some space of ours is not ours yet: we have a
// proof to present.
func (g *gater) joining() bool {
	for _, a := range g.admissions() {
		if a.Proof() != nil {
			return true
		}
	}
	return false
}

// maxCooling bounds the peers remembered as kept off.
const maxCooling = 4096

// admit decides a secured connection of p, a non-member: probation if
// it is offered in that direction and a place is free.
func (g *gater) admit(dir network.Direction, p peer.ID) bool {
	if g.isCooling(p) {
		return false
	}
	var offered bool
	switch dir {
	case network.DirInbound:
		offered = g.open()
	case network.DirOutbound:
		offered = g.joining()
	}
	if !offered {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if dl, ok := g.probation[p]; ok && time.Now().Before(dl) {
		return true // another connection of the same peer (TCP and QUIC)
	}
	if len(g.probation) >= g.most {
		return false
	}
	g.probation[p] = time.Now().Add(g.timeout)
	return true
}

// endProbation forgets p's probation: it was admitted.
func (g *gater) endProbation(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.probation, p)
}

// gone frees p's probation place when its last connection went; past
// its deadline (closed by whichever check saw it first), it is kept off.
func (g *gater) gone(p peer.ID) {
	g.mu.Lock()
	dl, ok := g.probation[p]
	g.mu.Unlock()
	if !ok {
		return
	}
	if time.Now().After(dl) {
		g.keepOff(p)
		return
	}
	g.endProbation(p)
}

// keepOff ends p's probation and refuses it for the cool-off.
func (g *gater) keepOff(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.probation, p)
	if len(g.cooling) >= maxCooling {
		now := time.Now()
		for q, until := range g.cooling {
			if now.After(until) || len(g.cooling) >= maxCooling {
				delete(g.cooling, q)
			}
		}
	}
	g.cooling[p] = time.Now().Add(g.cooloff)
}

// refused keeps p off from now on and leaves its connection a short
// grace (to read why), after which the probation reaper closes it.
func (g *gater) refused(p peer.ID, grace time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	g.cooling[p] = now.Add(g.cooloff)
	if dl, ok := g.probation[p]; !ok || dl.After(now.Add(grace)) {
		g.probation[p] = now.Add(grace)
	}
}

// expired removes the probations past their deadline and returns the
// peers they were for.
func (g *gater) expired() []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	var out []peer.ID
	for p, dl := range g.probation {
		if now.After(dl) {
			delete(g.probation, p)
			out = append(out, p)
		}
	}
	return out
}

// InterceptPeerDial implements connmgr.ConnectionGater: we dial members,
// and, while joining, the peers we may present our proof to.
func (g *gater) InterceptPeerDial(p peer.ID) bool {
	if g.shut(p) {
		return false
	}
	return g.member(p) || g.onProbation(p) || !g.isCooling(p) && g.joining()
}

// InterceptAddrDial implements connmgr.ConnectionGater.
func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return !g.isOffline() }

// InterceptAccept implements connmgr.ConnectionGater.
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return !g.isOffline() }

// InterceptSecured implements connmgr.ConnectionGater: once the handshake
// proved the remote's key, a member passes, a newcomer may get probation,
// anyone else is refused before any data.
func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if g.shut(p) {
		return false
	}
	return g.member(p) || g.admit(dir, p)
}

// InterceptUpgraded implements connmgr.ConnectionGater.
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
