package mesh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// Request kinds of the sync protocol.
const (
	reqReconcile uint8 = 1 // Ranges: a reconciliation round
	reqFetch     uint8 = 2 // IDs: send me these changes
	reqPush      uint8 = 3 // Envelopes: changes you lack
	reqJoin      uint8 = 4 // Envelopes[0]: a newcomer's proof, the use of an invite granting it
	reqAddrs     uint8 = 5 // Addrs: the address records I hold; the reply: those you lack
)

type request struct {
	_         struct{} `cbor:",toarray"`
	Kind      uint8
	Ranges    []Range
	IDs       []core.ID
	Envelopes [][]byte
	Addrs     []AddrRecord
}

type response struct {
	_         struct{} `cbor:",toarray"`
	Ranges    []Range
	Envelopes [][]byte
	Applied   int
	Addrs     []AddrRecord
}

// Serve implements Handler: it answers reconciliation, fetch and push
// requests from current members (checked at each request), at most
// MaxSyncsInFlight at once, and join requests from anyone.
func (n *Node) Serve(ctx context.Context, from PeerID, data []byte) ([]byte, error) {
	if n.isBanned(from) {
		return nil, fmt.Errorf("%w: %s is banned", ErrBadPeer, from)
	}
	member := n.admits(from)
	if !member && len(data) > MaxProofBytes+64 {
		n.metrics.RequestsRefused.Add(1)
		return nil, fmt.Errorf("%w: %s", ErrNotMember, from)
	}
	if len(data) > n.cfg.MaxMessageBytes {
		n.metrics.MessagesTooLarge.Add(1)
		n.log.Warn("request refused: too large", "peer", from, "bytes", len(data), "limit", n.cfg.MaxMessageBytes)
		return nil, fmt.Errorf("%w: request of %d bytes, limit %d", ErrTooLarge, len(data), n.cfg.MaxMessageBytes)
	}
	select {
	case n.serving <- struct{}{}:
		defer func() { <-n.serving }()
	default:
		n.metrics.SyncsRefused.Add(1)
		n.log.Warn("sync refused: too many in flight", "peer", from, "limit", n.cfg.MaxSyncsInFlight)
		return nil, fmt.Errorf("%w (limit %d)", ErrBusy, n.cfg.MaxSyncsInFlight)
	}
	n.metrics.BytesReceived.Add(uint64(len(data)))
	var req request
	if err := core.Unmarshal(data, &req); err != nil {
		n.ban(from, "malformed sync request: "+err.Error())
		return nil, fmt.Errorf("%w: malformed request: %v", ErrBadPeer, err)
	}
	if req.Kind == reqJoin {
		if len(req.Envelopes) != 1 {
			return nil, fmt.Errorf("%w: a join request carries one proof, not %d", replica.ErrNotInviteUse, len(req.Envelopes))
		}
		if err := n.join(ctx, from, req.Envelopes[0]); err != nil {
			return nil, err
		}
		return core.Marshal(&response{})
	}
	if !member {
		n.metrics.RequestsRefused.Add(1)
		return nil, fmt.Errorf("%w: %s", ErrNotMember, from)
	}
	var resp response
	switch req.Kind {
	case reqReconcile:
		n.metrics.SyncsServed.Add(1)
		n.limMu.Lock()
		n.pulling[from] = time.Now()
		n.limMu.Unlock()
		items, err := n.snapshot()
		if err != nil {
			return nil, err
		}
		resp.Ranges = n.cfg.Reconciler.Respond(items, req.Ranges)
	case reqFetch:
		size := 0
		for _, id := range req.IDs {
			b, err := n.store.Envelope(id)
			if err != nil {
				break // we do not have it (any more): the peer asks elsewhere
			}
			if size+len(b) > n.cfg.MaxMessageBytes-4096 && len(resp.Envelopes) > 0 {
				break // the rest in the next request
			}
			size += len(b)
			resp.Envelopes = append(resp.Envelopes, b)
		}
	case reqPush:
		rep, err := n.receive(ctx, from, req.Envelopes)
		if err != nil {
			return nil, err
		}
		resp.Applied = rep.Applied
	case reqAddrs:
		resp.Addrs = n.serveAddrs(from, req.Addrs)
	default:
		n.ban(from, fmt.Sprintf("unknown sync request kind %d", req.Kind))
		return nil, fmt.Errorf("%w: unknown request kind %d", ErrBadPeer, req.Kind)
	}
	out, err := core.Marshal(&resp)
	if err != nil {
		return nil, err
	}
	n.metrics.BytesSent.Add(uint64(len(out)))
	return out, nil
}

// call sends one request to peer and decodes the reply.
func (n *Node) call(ctx context.Context, peer PeerID, req *request, st *SyncStats) (*response, error) {
	data, err := core.Marshal(req)
	if err != nil {
		return nil, err
	}
	if len(data) > n.cfg.MaxMessageBytes {
		n.metrics.MessagesTooLarge.Add(1)
		return nil, fmt.Errorf("%w: request of %d bytes, limit %d", ErrTooLarge, len(data), n.cfg.MaxMessageBytes)
	}
	st.BytesSent += len(data)
	n.metrics.BytesSent.Add(uint64(len(data)))
	out, err := n.tr.Request(ctx, n.space, peer, data)
	if err != nil {
		return nil, err
	}
	st.BytesRecv += len(out)
	n.metrics.BytesReceived.Add(uint64(len(out)))
	if len(out) > n.cfg.MaxMessageBytes {
		n.metrics.MessagesTooLarge.Add(1)
		return nil, fmt.Errorf("%w: reply of %d bytes, limit %d", ErrTooLarge, len(out), n.cfg.MaxMessageBytes)
	}
	var resp response
	if err := core.Unmarshal(out, &resp); err != nil {
		n.ban(peer, "malformed sync reply: "+err.Error())
		return nil, fmt.Errorf("%w: malformed reply: %v", ErrBadPeer, err)
	}
	return &resp, nil
}

// SyncWith reconciles with one peer: range-based set reconciliation over
// (height, ID) finds what each side lacks in a logarithmic number of round
// trips; then the missing changes are fetched in height order and ours are
// pushed. A joining node first presents its proof (over a gated
// transport, the transport does that as it connects).
func (n *Node) SyncWith(ctx context.Context, peer PeerID) (SyncStats, error) {
	st := SyncStats{Peer: peer}
	n.metrics.SyncsStarted.Add(1)
	err := n.syncWith(ctx, peer, &st)
	if err != nil {
		n.metrics.SyncsFailed.Add(1)
		return st, fmt.Errorf("sync with %s: %w", peer, err)
	}
	return st, nil
}

func (n *Node) syncWith(ctx context.Context, peer PeerID, st *SyncStats) error {
	if _, gated := n.tr.(Gated); !gated {
		if err := n.present(ctx, peer, st); err != nil {
			return err
		}
	}
	items, err := n.snapshot()
	if err != nil {
		return err
	}
	// Checked after the snapshot: a revocation among what we send has
	// already cut the peer it revokes.
	if !n.admits(peer) {
		return fmt.Errorf("%w: %s", ErrNotMember, peer)
	}
	if err := n.exchangeAddrs(ctx, peer, st); err != nil {
		n.log.Debug("address exchange failed; syncing on", "peer", peer, "err", err)
	}
	rc := n.cfg.Reconciler
	msg := rc.Initiate(items)
	var have, need []Item
	for len(msg) > 0 {
		if st.Rounds == n.cfg.MaxRounds {
			return fmt.Errorf("reconciliation did not converge in %d rounds", n.cfg.MaxRounds)
		}
		st.Rounds++
		n.metrics.SyncRounds.Add(1)
		resp, err := n.call(ctx, peer, &request{Kind: reqReconcile, Ranges: msg}, st)
		if err != nil {
			return fmt.Errorf("reconcile round %d: %w", st.Rounds, err)
		}
		var h, nd []Item
		msg, h, nd = rc.Step(items, resp.Ranges)
		have, need = append(have, h...), append(need, nd...)
	}
	if err := n.fetch(ctx, peer, need, st); err != nil {
		return err
	}
	// Both sides reconcile on their own schedule and each pulls what it
	// lacks; pushing ours too only helps a peer that cannot reach us, so
	// it is bounded to avoid sending a large backlog twice.
	if len(have) > n.cfg.PushHaveMax {
		n.log.Debug("peer lacks many of our changes; leaving them for its own pull", "peer", peer, "changes", len(have))
		return nil
	}
	// A peer reconciling with us right now (both sides often start at
	// once, when they meet) pulls these itself: pushing them too would
	// send every change twice.
	n.limMu.Lock()
	since, pulls := n.pulling[peer]
	n.limMu.Unlock()
	if pulls && time.Since(since) < n.cfg.SyncTimeout {
		n.log.Debug("peer is reconciling with us; leaving our changes for its pull", "peer", peer, "changes", len(have))
		return nil
	}
	return n.pushItems(ctx, peer, have, st)
}

// fetch gets need (sorted by height: parents first) in batches. It is a
// pipeline: a goroutine requests the next batch and verifies it
// (core.OpenBatch) while this one applies the batch before, so the
// network, verification and the store's commit overlap.
func (n *Node) fetch(ctx context.Context, peer PeerID, need []Item, st *SyncStats) error {
	sortItems(need)
	ctx, cancel := context.WithCancel(ctx)
	batches := make(chan fetched, 1)
	go n.fetchBatches(ctx, peer, need, st, batches)
	defer func() {
		cancel()
		for range batches { // the goroutine has returned once it is closed
		}
	}()
	for b := range batches {
		if b.err != nil {
			return fmt.Errorf("fetch: %w", b.err)
		}
		var rep replica.Report
		var err error
		if vs, ok := n.store.(VerifiedStore); ok && b.verified != nil {
			n.metrics.ChangesReceived.Add(uint64(len(b.envs)))
			rep, err = vs.ReceiveVerified(ctx, b.verified)
			rep, err = n.settle(peer, rep, err)
		} else {
			rep, err = n.receive(ctx, peer, b.envs)
		}
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		st.Fetched += len(b.envs)
		st.Applied += rep.Applied
	}
	return nil
}

// fetched is one batch of a fetch: the envelopes, and the changes opened
// and verified when every one of them was (else nil: Receive judges them
// and the peer).
type fetched struct {
	envs     [][]byte
	verified []core.Verified
	err      error
}

// fetchBatches requests need batch by batch and sends each, verified, to
// out, which it closes when done. It touches only the byte counts of st.
func (n *Node) fetchBatches(ctx context.Context, peer PeerID, need []Item, st *SyncStats, out chan<- fetched) {
	defer close(out)
	send := func(b fetched) bool {
		select {
		case out <- b:
			return b.err == nil
		case <-ctx.Done():
			return false
		}
	}
	for len(need) > 0 {
		k := min(len(need), n.cfg.FetchBatch)
		ids := make([]core.ID, k)
		for i := range ids {
			ids[i] = need[i].ID
		}
		resp, err := n.call(ctx, peer, &request{Kind: reqFetch, IDs: ids}, st)
		if err != nil {
			send(fetched{err: err})
			return
		}
		if len(resp.Envelopes) == 0 {
			send(fetched{err: errors.New("peer sent none of the changes it listed")})
			return
		}
		if len(resp.Envelopes) > k {
			n.ban(peer, "sent more changes than asked")
			send(fetched{err: fmt.Errorf("%w: %d changes for %d asked", ErrBadPeer, len(resp.Envelopes), k)})
			return
		}
		b := fetched{envs: resp.Envelopes}
		if _, ok := n.store.(VerifiedStore); ok {
			vs, errs := core.OpenBatch(resp.Envelopes)
			if !slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
				b.verified = vs
			}
		}
		if !send(b) {
			return
		}
		need = need[len(resp.Envelopes):]
	}
}

// pushItems sends the peer the changes it lacks, in height order, in
// messages under the size limit.
func (n *Node) pushItems(ctx context.Context, peer PeerID, have []Item, st *SyncStats) error {
	sortItems(have)
	var batch [][]byte
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := n.call(ctx, peer, &request{Kind: reqPush, Envelopes: batch}, st); err != nil {
			return fmt.Errorf("push: %w", err)
		}
		st.Pushed += len(batch)
		batch, size = nil, 0
		return nil
	}
	for _, it := range have {
		b, err := n.store.Envelope(it.ID)
		if err != nil {
			continue
		}
		if size+len(b) > n.cfg.MaxMessageBytes/2 || len(batch) == n.cfg.FetchBatch {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, b)
		size += len(b)
	}
	return flush()
}

func sortItems(xs []Item) { slices.SortFunc(xs, Item.Compare) }

// present sends our proof, if we are joining, to a peer that has not
// accepted it yet, with a join request.
func (n *Node) present(ctx context.Context, peer PeerID, st *SyncStats) error {
	proof := n.proof()
	if proof == nil {
		return nil
	}
	n.adm.mu.Lock()
	done := n.adm.vouched[peer]
	n.adm.mu.Unlock()
	if done {
		return nil
	}
	if _, err := n.call(ctx, peer, &request{Kind: reqJoin, Envelopes: [][]byte{proof}}, st); err != nil {
		verdict := Refusal(peer, err.Error())
		switch RefusalReason(verdict) {
		case "used", "expired", "revoked", "contested", "unknown", "not-a-use":
			n.presented(peer, verdict)
			return verdict
		}
		return fmt.Errorf("present our invite: %w", err)
	}
	n.presented(peer, nil)
	return nil
}
