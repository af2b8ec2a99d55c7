package libp2p

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

const dialTimeout = 10 * time.Second

// parseAddrs parses multiaddrs; what names them in errors.
func parseAddrs(what string, addrs []string) ([]ma.Multiaddr, error) {
	ms := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("libp2p: %s address %q: %w", what, a, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func parsePeers(addrs []string) ([]peer.AddrInfo, error) {
	ms, err := parseAddrs("peer", addrs)
	if err != nil {
		return nil, err
	}
	infos, err := peer.AddrInfosFromP2pAddrs(ms...)
	if err != nil {
		return nil, fmt.Errorf("libp2p: peer addresses (each needs /p2p/<id>): %w", err)
	}
	return infos, nil
}

// AddBootstrap adds peers (multiaddrs with /p2p/) to dial now and
// re-dial whenever disconnected, as Config.Bootstrap.
func (t *Transport) AddBootstrap(addrs ...string) error {
	infos, err := parsePeers(addrs)
	if err != nil {
		return err
	}
	t.addBootstrap(infos)
	t.kick()
	return nil
}

func (t *Transport) addBootstrap(infos []peer.AddrInfo) {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	for _, in := range infos {
		if in.ID == t.self {
			continue
		}
		t.host.Peerstore().AddAddrs(in.ID, in.Addrs, peerstore.PermanentAddrTTL)
		t.bootstrap[in.ID] = true
	}
}

// connected remembers every peer we get a connection to, so it is
// re-dialled after a disconnection (its addresses stay in the peerstore
// for a while).
func (t *Transport) connected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	t.peersMu.Lock()
	t.known[p] = true
	t.peersMu.Unlock()
	// While joining, our proof goes to every peer we connect to (the
	// Admission tells; it reads the replica, so not on this goroutine);
	// then the spaces that admit the peer reconcile with it at once.
	t.spawn(func() {
		t.present(p)
		t.greet(p)
	})
}

// greet tells the nodes of the spaces that admit p that it appeared
// (mesh.Greeter): they reconcile with it at once, rather than at their
// next periodic sync.
func (t *Transport) greet(p peer.ID) {
	id, err := ToPeerID(p)
	if err != nil || t.host.Network().Connectedness(p) != network.Connected {
		return
	}
	t.mu.Lock()
	handlers := make(map[core.ID]mesh.Handler, len(t.spaces))
	for s, j := range t.spaces {
		handlers[s] = j.h
	}
	t.mu.Unlock()
	for space, h := range handlers {
		if g, ok := h.(mesh.Greeter); ok && t.gater.admittedFor(space, p) {
			g.Appeared(id)
		}
	}
}

// disconnected frees a probation place when the peer's last connection
// goes.
func (t *Transport) disconnected(nw network.Network, c network.Conn) {
	if nw.Connectedness(c.RemotePeer()) != network.Connected {
		t.gater.gone(c.RemotePeer())
	}
}

// kick asks the maintenance loop to dial now.
func (t *Transport) kick() {
	select {
	case t.redial <- struct{}{}:
	default:
	}
}

// maintain re-dials disconnected peers and closes connections to peers no
// longer admitted (a revoked member).
func (t *Transport) maintain() {
	defer t.wg.Done()
	redial := time.NewTicker(t.cfg.RedialInterval)
	defer redial.Stop()
	check := time.NewTicker(t.cfg.AdmissionInterval)
	defer check.Stop()
	probation := time.NewTicker(max(t.cfg.ProbationTimeout/5, 20*time.Millisecond))
	defer probation.Stop()
	t.dialAll()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-redial.C:
			t.dialAll()
		case <-t.redial:
			t.dialAll()
		case <-check.C:
			t.closeUnadmitted()
		case <-probation.C:
			t.endProbations()
		}
	}
}

// closeUnadmitted closes the connections of peers admitted nowhere (a
// revoked member) and of peers subscribed to a space that no longer
// admits them.
func (t *Transport) closeUnadmitted() {
	t.mu.Lock()
	spaces := make([]core.ID, 0, len(t.spaces))
	for s := range t.spaces {
		spaces = append(spaces, s)
	}
	t.mu.Unlock()
	if len(spaces) == 0 {
		nw := t.host.Network()
		for _, p := range nw.Peers() {
			if !t.gater.connAllowed(p) {
				_ = nw.ClosePeer(p)
			}
		}
	}
	for _, s := range spaces {
		t.Recheck(s)
	}
}

// endProbations closes the connections of newcomers whose probation ran
// out without admission, and keeps them off for the cool-off.
func (t *Transport) endProbations() {
	for _, p := range t.gater.expired() {
		if t.gater.member(p) {
			continue
		}
		t.gater.keepOff(p)
		if t.host.Network().Connectedness(p) == network.Connected {
			t.log.Info("closing a probation connection: no admission in time", "remote", p)
			_ = t.host.Network().ClosePeer(p)
		}
	}
}

// dialAll dials the bootstrap and known peers that are admitted and not
// connected, in parallel. Our own schedule is the backoff: the swarm's
// dial backoff for the peer (left by refusals while it or we were
// offline, or before it admitted us) is cleared first.
func (t *Transport) dialAll() {
	if t.gater.isOffline() {
		return
	}
	t.peersMu.Lock()
	peers := make([]peer.ID, 0, len(t.bootstrap)+len(t.known))
	for p := range t.bootstrap {
		peers = append(peers, p)
	}
	for p := range t.known {
		if !t.bootstrap[p] {
			peers = append(peers, p)
		}
	}
	t.peersMu.Unlock()
	nw := t.host.Network()
	var wg sync.WaitGroup
	for _, p := range peers {
		if nw.Connectedness(p) == network.Connected || !t.gater.InterceptPeerDial(p) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.dial(p)
		}()
	}
	wg.Wait()
}

func (t *Transport) dial(p peer.ID) {
	if sw, ok := t.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
	ctx, cancel := context.WithTimeout(t.ctx, dialTimeout)
	defer cancel()
	if err := t.host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
		t.log.Debug("dial failed", "remote", p, "err", err)
	}
}

// mdnsNotifee dials peers found on the LAN; the gater keeps non-members
// out.
type mdnsNotifee struct{ t *Transport }

func (n mdnsNotifee) HandlePeerFound(in peer.AddrInfo) {
	t := n.t
	if in.ID == t.self || len(in.Addrs) == 0 {
		return
	}
	t.host.Peerstore().AddAddrs(in.ID, in.Addrs, peerstore.RecentlyConnectedAddrTTL)
	t.peersMu.Lock()
	t.known[in.ID] = true
	t.peersMu.Unlock()
	if t.gater.InterceptPeerDial(in.ID) {
		t.kick()
	}
}

// LocalAddrs implements mesh.Locator: the host's listen addresses, as
// others may dial them (without /p2p/).
func (t *Transport) LocalAddrs() []string {
	ms := t.host.Addrs()
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.String())
	}
	return out
}

// Locate implements mesh.Locator: the member's addresses go to the
// peerstore (replacing those of its previous record) and it is dialled
// now and re-dialled whenever disconnected, like a bootstrap peer; the
// gater still decides (a peer no space admits is not dialled).
// Addresses that do not parse, or name another peer, are skipped.
func (t *Transport) Locate(p mesh.PeerID, addrs []string) {
	pid, err := FromPeerID(p)
	if err != nil || pid == t.self {
		return
	}
	ms := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			continue
		}
		if rest, last := ma.SplitLast(m); last != nil && last.Protocol().Code == ma.P_P2P {
			if id, err := peer.IDFromBytes(last.RawValue()); err != nil || id != pid {
				continue
			}
			m = rest
		}
		if len(m) > 0 {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return
	}
	ps := t.host.Peerstore()
	t.peersMu.Lock()
	if old := t.located[pid]; len(old) > 0 {
		ps.SetAddrs(pid, old, 0) // the previous record's addresses go
	}
	t.located[pid] = ms
	t.known[pid] = true
	t.peersMu.Unlock()
	ps.AddAddrs(pid, ms, peerstore.PermanentAddrTTL)
	if t.host.Network().Connectedness(pid) != network.Connected && t.gater.InterceptPeerDial(pid) {
		t.kick()
	}
}
