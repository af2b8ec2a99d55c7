// Package mesh moves changes between the peers of a space. Each transport
// lives in a subdirectory (libp2p, NATS, an in-memory network, bundle
// files). Every transport is an untrusted pipe: what it delivers goes
// through the same verification (replica.Receive) as anything else.
//
// A Node replicates one space over one Transport:
//
//	n := mesh.NewNode(replica, tr, mesh.Config{
//		Proof:       info.Proof, // a joiner's signed use of its invite, if any
//		Acknowledge: func(ctx context.Context) error { _, err := replica.Acknowledge(ctx, key, now()); return err },
//	})
//	if err := n.Start(ctx); err != nil { ... }
//	defer n.Close()
//
// Only members take part: the node serves sync requests to current
// members only, checked at each request; a gated transport (libp2p) asks
// the node's Admission who may connect. A newcomer gets in by proof, the
// use of an invite granting its own key: over a gated transport on a
// probation connection (see mesh/libp2p), elsewhere with a join request
// the node sends before it syncs. The node admitting it stores the use
// (replica.AdmitUse) and runs Config.Acknowledge; the joiner logs the
// verdict and its reason (RefusalReason: used, expired, revoked, ...).
// When a revocation is stored, the node re-checks its peers before it
// publishes anything else, and lets a transport relay a push only once
// the push's causal past is stored here (Relayer): a revoked member
// receives nothing written after its revocation.
//
// Peers meet without a special node. A transport that can tell says when
// a peer appears (Greeter): the node reconciles with it at once. Over a
// transport that reaches peers at addresses (Locator: libp2p), the node
// signs a record of its own addresses with Config.Key and, on sync, peers
// exchange the records they hold for current members (the newer of a
// member's records wins; a record not signed by a current member is
// refused). The node hands learned records to the transport, which dials
// those members, and keeps them in Config.AddrStore (AddrFile) so a
// restarted node finds them again although the peer that told it is gone.
package mesh
