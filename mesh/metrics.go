package mesh

import "sync/atomic"

// Metrics count what a node did; every limit has a counter here.
type Metrics struct {
	PushesSent       atomic.Uint64 // publish calls
	ChangesPushed    atomic.Uint64 // envelopes published
	PushesReceived   atomic.Uint64 // pushes delivered to us
	ChangesReceived  atomic.Uint64 // envelopes received by push, fetch or peer push
	ChangesApplied   atomic.Uint64 // newly stored
	ChangesRejected  atomic.Uint64 // refused by verification
	PeersBanned      atomic.Uint64 // peers cut off for invalid data
	PushRateLimited  atomic.Uint64 // pushes dropped by the per-peer rate limit
	PushQueueFull    atomic.Uint64 // pushes dropped because the inbound queue was full
	PushesDeferred   atomic.Uint64 // pushes applied in part or not at all, to be delivered again (Apply: rate or orphan limit)
	PushesGrouped    atomic.Uint64 // pushes that queued up and were applied with others, in one commit
	OutboxFull       atomic.Uint64 // local changes not published because the outbox was full
	SyncsStarted     atomic.Uint64 // reconciliations we initiated
	SyncsFailed      atomic.Uint64
	SyncsServed      atomic.Uint64 // reconciliation requests answered
	SyncsRefused     atomic.Uint64 // refused: too many in flight
	SyncRounds       atomic.Uint64 // reconcile round trips we made
	MessagesTooLarge atomic.Uint64 // requests or replies over the size limit
	BytesSent        atomic.Uint64 // request and reply bytes we sent
	BytesReceived    atomic.Uint64 // request and reply bytes we received
	OrphansHeld      atomic.Uint64 // changes received whose parents were missing
	OrphanLimit      atomic.Uint64 // changes dropped: the replica's orphan limit was reached
	JoinsAdmitted    atomic.Uint64 // newcomers admitted by their proof
	JoinsRefused     atomic.Uint64 // proofs refused
	RequestsRefused  atomic.Uint64 // sync requests refused: the peer is not a member
	PeersAppeared    atomic.Uint64 // peers a transport said (re)appeared: each starts a reconciliation
	AddrsLearned     atomic.Uint64 // members' address records taken from peers (or the store) and handed to the transport
	AddrsRefused     atomic.Uint64 // address records refused: not a current member's, badly signed, malformed
}

// MetricsSnapshot is a plain copy of Metrics.
type MetricsSnapshot map[string]uint64

// Snapshot copies the counters.
func (m *Metrics) Snapshot() MetricsSnapshot {
	return MetricsSnapshot{
		"pushes_sent": m.PushesSent.Load(), "changes_pushed": m.ChangesPushed.Load(),
		"pushes_received": m.PushesReceived.Load(), "changes_received": m.ChangesReceived.Load(),
		"changes_applied": m.ChangesApplied.Load(), "changes_rejected": m.ChangesRejected.Load(),
		"peers_banned": m.PeersBanned.Load(), "push_rate_limited": m.PushRateLimited.Load(),
		"push_queue_full": m.PushQueueFull.Load(), "pushes_deferred": m.PushesDeferred.Load(),
		"outbox_full": m.OutboxFull.Load(), "syncs_started": m.SyncsStarted.Load(),
		"syncs_failed": m.SyncsFailed.Load(), "syncs_served": m.SyncsServed.Load(),
		"syncs_refused": m.SyncsRefused.Load(), "sync_rounds": m.SyncRounds.Load(),
		"messages_too_large": m.MessagesTooLarge.Load(), "bytes_sent": m.BytesSent.Load(),
		"bytes_received": m.BytesReceived.Load(), "orphans_held": m.OrphansHeld.Load(),
		"orphan_limit": m.OrphanLimit.Load(), "joins_admitted": m.JoinsAdmitted.Load(),
		"joins_refused": m.JoinsRefused.Load(), "requests_refused": m.RequestsRefused.Load(),
		"peers_appeared": m.PeersAppeared.Load(), "addrs_learned": m.AddrsLearned.Load(),
		"addrs_refused": m.AddrsRefused.Load(), "pushes_grouped": m.PushesGrouped.Load(),
	}
}
