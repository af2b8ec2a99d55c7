package mesh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hdevalence/ed25519consensus"

	"github.com/tributary-sync/tributary/core"
)

// Address learning.
//
// Over a transport that reaches peers at addresses (a Locator: libp2p),
// members learn where the other members are through the space, so no
// node is special: every node signs a record of its own addresses (with
// Config.Key, timestamped), and on sync peers exchange the records they
// hold for current members. A record is taken only if its key is a
// current member here and signed it for this space; of two records of
// one member the newer wins. Learned records are handed to the transport,
// which dials the members it is not connected to, and kept in
// Config.AddrStore, so a restarted node dials them again although the
// peer that told it is gone.

// Locator is implemented by transports that reach peers at addresses
// (libp2p).
type Locator interface {
	// LocalAddrs are the addresses other peers may reach this node at
	// (without the peer's name: /ip4/…/tcp/7466).
	LocalAddrs() []string
	// Locate tells the transport where a member of a space may be
	// reached: it dials the member when not connected, now and later.
	Locate(peer PeerID, addrs []string)
}

// AddrStore keeps the address records a node holds across restarts
// (AddrFile: a file in the node's home).
type AddrStore interface {
	// Load returns the records saved last; none (and no error) when
	// nothing was saved yet.
	Load() ([]AddrRecord, error)
	// Save replaces the saved records.
	Save(records []AddrRecord) error
}

// AddrRecord says where a member of a space may be reached, signed by the
// member's key.
type AddrRecord struct {
	_     struct{}       `cbor:",toarray"`
	Peer  core.PublicKey `json:"peer"`
	Addrs []string       `json:"addrs"`
	Time  uint64         `json:"time"` // ms since the epoch when signed: of two records of a peer, the newer wins
	Sig   []byte         `json:"sig"`
}

// Limits of address records.
const (
	MaxAddrsPerRecord = 16
	MaxAddrBytes      = 512
	MaxAddrRecords    = 4096 // in one exchange, and kept
	// MaxAddrSkew is how far in the future a record's time may be.
	MaxAddrSkew = 10 * time.Minute
)

// ErrBadAddrRecord: an address record is malformed, badly signed, or not
// a current member's.
var ErrBadAddrRecord = errors.New("invalid address record")

// addrDomain separates address-record signatures from any other use of
// the key (change signatures have their own).
const addrDomain = "tributary/addrs/v1\x00"

type addrBody struct {
	_     struct{} `cbor:",toarray"`
	Space core.ID
	Peer  core.PublicKey
	Addrs []string
	Time  uint64
}

func (r *AddrRecord) message(space core.ID) ([]byte, error) {
	body, err := core.Marshal(&addrBody{Space: space, Peer: r.Peer, Addrs: r.Addrs, Time: r.Time})
	if err != nil {
		return nil, err
	}
	return append([]byte(addrDomain), body...), nil
}

// SignAddrs makes key's record of addrs for space at time ms.
func SignAddrs(key core.PrivateKey, space core.ID, addrs []string, ms uint64) (AddrRecord, error) {
	r := AddrRecord{Peer: key.Public(), Addrs: slices.Clone(addrs), Time: ms}
	if err := r.wellFormed(); err != nil {
		return AddrRecord{}, err
	}
	msg, err := r.message(space)
	if err != nil {
		return AddrRecord{}, err
	}
	r.Sig = ed25519.Sign(ed25519.PrivateKey(key), msg)
	return r, nil
}

func (r *AddrRecord) wellFormed() error {
	if len(r.Addrs) == 0 || len(r.Addrs) > MaxAddrsPerRecord {
		return fmt.Errorf("%w: %d addresses, want 1 to %d", ErrBadAddrRecord, len(r.Addrs), MaxAddrsPerRecord)
	}
	for _, a := range r.Addrs {
		if a == "" || len(a) > MaxAddrBytes || !utf8.ValidString(a) {
			return fmt.Errorf("%w: address %.40q: empty, over %d bytes or not UTF-8", ErrBadAddrRecord, a, MaxAddrBytes)
		}
	}
	return nil
}

// Verify checks that r is well formed and signed by its peer for space.
func (r *AddrRecord) Verify(space core.ID) error {
	if err := r.wellFormed(); err != nil {
		return err
	}
	msg, err := r.message(space)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddrRecord, err)
	}
	if len(r.Sig) != ed25519.SignatureSize || !ed25519consensus.Verify(ed25519.PublicKey(r.Peer[:]), msg, r.Sig) {
		return fmt.Errorf("%w: signature of %s does not verify for space %s", ErrBadAddrRecord, r.Peer, space.Short())
	}
	return nil
}

// addrBook is the node's address records: the newest of each member.
type addrBook struct {
	saveMu  sync.Mutex // one AddrStore.Save at a time
	mu      sync.Mutex
	recs    map[core.PublicKey]AddrRecord
	version uint64              // bumped by every change
	saved   uint64              // version saved last
	sent    map[PeerID]sentMark // what each peer got from us
}

type sentMark struct {
	version uint64
	at      time.Time
}

func newAddrBook() addrBook {
	return addrBook{recs: map[core.PublicKey]AddrRecord{}, sent: map[PeerID]sentMark{}}
}

// locator returns the transport as a Locator when it is one.
func (n *Node) locator() (Locator, bool) {
	l, ok := n.tr.(Locator)
	return l, ok
}

// loadAddrs reads the saved records and tells the transport where the
// members among them are, and signs (and saves) this node's record; at
// Start.
func (n *Node) loadAddrs() {
	l, ok := n.locator()
	if !ok {
		return
	}
	defer n.saveAddrs()
	defer n.ownAddrs(l)
	if n.cfg.AddrStore == nil {
		return
	}
	recs, err := n.cfg.AddrStore.Load()
	if err != nil {
		n.log.Warn("saved peer addresses unreadable; learning them again from peers", "err", err)
		return
	}
	taken := 0
	for _, r := range recs {
		if n.takeAddr(r, l) == nil {
			taken++
		}
	}
	n.book.mu.Lock()
	n.book.saved = n.book.version
	n.book.mu.Unlock()
	if taken > 0 {
		n.log.Info("dialling members at their saved addresses", "members", taken)
	}
}

// takeAddr checks a record from a peer (or the store) and keeps it if it
// is newer than the one held; the transport is told where the member is.
func (n *Node) takeAddr(r AddrRecord, l Locator) error {
	self := n.cfg.Key != nil && r.Peer == n.cfg.Key.Public()
	if !self && (!n.store.HasGenesis() || !n.store.IsMember(r.Peer)) {
		return fmt.Errorf("%w: %s is not a member of the space", ErrBadAddrRecord, r.Peer)
	}
	if now := uint64(time.Now().Add(MaxAddrSkew).UnixMilli()); r.Time > now {
		return fmt.Errorf("%w: %s's record is dated in the future", ErrBadAddrRecord, r.Peer)
	}
	n.book.mu.Lock()
	old, held := n.book.recs[r.Peer]
	n.book.mu.Unlock()
	if held && old.Time >= r.Time {
		return nil
	}
	if err := r.Verify(n.space); err != nil {
		return err
	}
	n.book.mu.Lock()
	if old, held := n.book.recs[r.Peer]; held && old.Time >= r.Time {
		n.book.mu.Unlock()
		return nil
	}
	if !held && len(n.book.recs) >= MaxAddrRecords {
		n.book.mu.Unlock()
		return fmt.Errorf("%w: %d records held already", ErrBadAddrRecord, MaxAddrRecords)
	}
	n.book.recs[r.Peer] = r
	n.book.version++
	n.book.mu.Unlock()
	if !self {
		n.metrics.AddrsLearned.Add(1)
		l.Locate(PeerOf(r.Peer), r.Addrs)
	}
	return nil
}

// ownAddrs signs a new record of this node's addresses when they changed.
func (n *Node) ownAddrs(l Locator) {
	if n.cfg.Key == nil {
		return
	}
	addrs := slices.Clone(l.LocalAddrs())
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	if len(addrs) > MaxAddrsPerRecord {
		addrs = addrs[:MaxAddrsPerRecord]
	}
	if len(addrs) == 0 {
		return
	}
	me := n.cfg.Key.Public()
	n.book.mu.Lock()
	old, held := n.book.recs[me]
	n.book.mu.Unlock()
	if held && slices.Equal(old.Addrs, addrs) {
		return
	}
	ms := uint64(time.Now().UnixMilli())
	if held && ms <= old.Time {
		ms = old.Time + 1
	}
	r, err := SignAddrs(n.cfg.Key, n.space, addrs, ms)
	if err != nil {
		n.log.Warn("cannot sign our address record", "err", err)
		return
	}
	n.book.mu.Lock()
	n.book.recs[me] = r
	n.book.version++
	n.book.mu.Unlock()
}

// addrRecords lists the records of current members (and ours), sorted by
// key; newerThan, when given, leaves out those the peer holds already.
func (n *Node) addrRecords(newerThan map[core.PublicKey]uint64) []AddrRecord {
	n.book.mu.Lock()
	recs := make([]AddrRecord, 0, len(n.book.recs))
	for _, r := range n.book.recs {
		if t, ok := newerThan[r.Peer]; ok && t >= r.Time {
			continue
		}
		recs = append(recs, r)
	}
	n.book.mu.Unlock()
	self := core.PublicKey{}
	if n.cfg.Key != nil {
		self = n.cfg.Key.Public()
	}
	recs = slices.DeleteFunc(recs, func(r AddrRecord) bool { return r.Peer != self && !n.store.IsMember(r.Peer) })
	slices.SortFunc(recs, func(a, b AddrRecord) int { return slices.Compare(a.Peer[:], b.Peer[:]) })
	return recs
}

// AddrRecords lists the address records the node holds for current
// members, its own included.
func (n *Node) AddrRecords() []AddrRecord { return n.addrRecords(nil) }

// takeAddrs takes the records a peer sent; those refused are counted and
// the first reason logged.
func (n *Node) takeAddrs(from PeerID, recs []AddrRecord, l Locator) {
	refused := 0
	var first error
	for _, r := range recs {
		if err := n.takeAddr(r, l); err != nil {
			refused++
			if first == nil {
				first = err
			}
		}
	}
	if refused > 0 {
		n.metrics.AddrsRefused.Add(uint64(refused))
		n.log.Debug("address records refused", "peer", from, "refused", refused, "first", first)
	}
}

// saveAddrs writes the records to the AddrStore if they changed; one
// save at a time, so the file never goes back to an older book.
func (n *Node) saveAddrs() {
	if n.cfg.AddrStore == nil {
		return
	}
	n.book.saveMu.Lock()
	defer n.book.saveMu.Unlock()
	n.book.mu.Lock()
	v, saved := n.book.version, n.book.saved
	n.book.mu.Unlock()
	if v == saved {
		return
	}
	if err := n.cfg.AddrStore.Save(n.addrRecords(nil)); err != nil {
		n.log.Warn("save peer addresses", "err", err)
		return
	}
	n.book.mu.Lock()
	n.book.saved = v
	n.book.mu.Unlock()
}

// exchangeAddrs sends peer our records and takes the ones it holds that
// we lack, when ours changed since we last sent them or
// Config.AddrInterval passed. Errors are the peer's; the sync goes on.
func (n *Node) exchangeAddrs(ctx context.Context, peer PeerID, st *SyncStats) error {
	l, ok := n.locator()
	if !ok {
		return nil
	}
	n.ownAddrs(l)
	n.book.mu.Lock()
	v, mark := n.book.version, n.book.sent[peer]
	n.book.mu.Unlock()
	if mark.version == v && time.Since(mark.at) < n.cfg.AddrInterval {
		return nil
	}
	recs := n.addrRecords(nil)
	if len(recs) > MaxAddrRecords {
		recs = recs[:MaxAddrRecords]
	}
	resp, err := n.call(ctx, peer, &request{Kind: reqAddrs, Addrs: recs}, st)
	if err != nil {
		return fmt.Errorf("exchange addresses: %w", err)
	}
	if len(resp.Addrs) > MaxAddrRecords {
		resp.Addrs = resp.Addrs[:MaxAddrRecords]
	}
	n.takeAddrs(peer, resp.Addrs, l)
	n.book.mu.Lock()
	if len(n.book.sent) >= maxKicked {
		clear(n.book.sent)
	}
	n.book.sent[peer] = sentMark{version: v, at: time.Now()}
	n.book.mu.Unlock()
	n.saveAddrs()
	return nil
}

// serveAddrs takes a peer's records and answers with ours that it lacks
// or holds older.
func (n *Node) serveAddrs(from PeerID, recs []AddrRecord) []AddrRecord {
	l, ok := n.locator()
	if !ok {
		return nil
	}
	if len(recs) > MaxAddrRecords {
		recs = recs[:MaxAddrRecords]
	}
	n.ownAddrs(l)
	n.takeAddrs(from, recs, l)
	n.saveAddrs()
	theirs := make(map[core.PublicKey]uint64, len(recs))
	for _, r := range recs {
		theirs[r.Peer] = max(theirs[r.Peer], r.Time)
	}
	return n.addrRecords(theirs)
}
