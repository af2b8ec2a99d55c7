// Package nats is a mesh.Transport over a NATS server (or cluster) with
// JetStream: the peers of a space need not reach each other, only the
// server, which keeps the space's changes for peers that are away and
// for members who join while everyone else is offline.
//
//	cfg := nats.DefaultConfig()
//	cfg.URL, cfg.Key, cfg.CredsFile = "nats://hub:4222", key, "/etc/tributary/member.creds"
//	tr, err := nats.New(cfg) // Validate, then connect
//	if err != nil { ... }   // e.g. the server refused our credentials
//	defer tr.Close()
//	node := mesh.NewNode(replica, tr, mesh.Config{})
//	_ = node.Start(ctx) // Join: stream and durable consumer made or checked
//	defer node.Close()  // before tr.Close
//
// # Subjects and streams
//
// Per space S (its ID's String, a lowercase base32 CID) and peer P (its
// PeerID, the lowercase base32 Ed25519 key):
//
//	tributary.S.changes.<change>   one message per change: its envelope, header Trib-From: P
//	tributary.S.presence           heartbeats: the PeerID, every HeartbeatInterval
//	tributary.S.sync.P             requests to P; replies on the requester's inbox
//	stream TRIB_S                  stores tributary.S.changes.*: one message per subject,
//	                               a second publish to a subject refused (discard new per subject)
//	consumer peer_P                P's durable consumer: from the start of the stream,
//	                               explicit acks, redelivered without limit
//
// The stream holds each change of the space once, whoever published it
// and however often: publishing is idempotent. It is therefore a copy of
// the space (within StreamMaxAge and StreamMaxBytes; by default it keeps
// everything), and a peer's consumer, which starts at the beginning,
// brings a new member the whole space with every other member offline.
//
// # What enters the stream
//
// The node publishes each local change as it is written (Publish returns
// once JetStream has stored it). Besides, stream sync compares the
// changes the node holds (mesh.History) with the stream's subjects and
// publishes what the stream lacks, parents first, then the changes held
// for missing parents (a joiner's own grant): every time the transport
// reaches the server (Join, Resume, a new process), every
// StreamSyncInterval, and soon after a publish failed (a cluster leader
// lost, say), retrying after RetryDelay doubling up to RetryMaxDelay. So
// history written before a node first reached NATS, changes received
// over another transport, and pushes that failed all reach the stream.
//
// # Delivery
//
// The consume loop takes the consumer's messages in batches (what has
// arrived, up to ApplyBatch; it never waits for more, so a lone change is
// stored at once) and hands each run from one sender to the node's
// mesh.Applier.Apply, which returns once the replica has stored them,
// held them durably for missing parents, or refused them. Only then is a
// message acknowledged. When the node is busy (over the sender's push
// rate, or its limit of held changes reached) the batch is negatively
// acknowledged with a delay and the loop waits as long: the node pushes
// back and nothing is dropped. A batch taking long is kept from
// redelivery by in-progress acks. A refusal (forged or malformed data, a
// banned sender) is terminated, so it is never delivered again, and the
// node bans the sender. Our own messages are acknowledged unread.
// Handlers that are not Appliers get Pushed, and the message is
// acknowledged when Pushed returns.
//
// # Trust model
//
// NATS is an untrusted pipe: Trib-From is a claim, a subject is a claim,
// and the node verifies every change it is handed (signature, membership,
// rules) exactly as over any transport. The transport refuses, counts
// (Stats.Refused) and terminates what cannot be a peer's change: no
// valid sender, a subject that names no change, a change filed under
// another change's subject. After Ban nothing from the peer is
// delivered.
//
// What verification cannot do is stop a client that may publish on a
// space's subjects from filling the stream, claiming to be a member
// (getting it banned by the others), or squatting a change's subject
// with garbage so that the real change reaches offline peers only by
// reconciliation. Keeping non-members off the subjects is the NATS
// operator's job, with accounts, credentials (CredsFile, NKeySeedFile,
// User/Password or Token, and TLS with CAFile, CertFile and KeyFile)
// and subject permissions. A member's user needs, for space S and its
// own PeerID P (Permissions returns these lists):
//
//	publish    tributary.S.changes.*              its changes, into the stream
//	           tributary.S.presence
//	           tributary.S.sync.*                 requests to the other members
//	           _INBOX.>                           replies to their requests
//	           $JS.API.STREAM.INFO.TRIB_S
//	           $JS.API.STREAM.CREATE.TRIB_S       (only if it may make the stream;
//	           $JS.API.STREAM.UPDATE.TRIB_S        else the operator makes it first)
//	           $JS.API.CONSUMER.INFO.TRIB_S.peer_P
//	           $JS.API.CONSUMER.CREATE.TRIB_S.peer_P.>
//	           $JS.API.CONSUMER.MSG.NEXT.TRIB_S.peer_P
//	           $JS.ACK.TRIB_S.peer_P.>
//	subscribe  tributary.S.presence
//	           tributary.S.sync.P
//	           _INBOX.>                           replies, publish acks, consumer deliveries
//
// A user lacking one of these fails Join with an error naming the
// subject the server refused (and a wrong or missing credential fails
// New with one saying so). A revoked member's credentials must be
// revoked by the operator too: the node ignores its later changes, but
// only NATS can stop it reading the stream.
//
// # Clusters
//
// On a JetStream cluster set Replicas to 3 (or 5): the stream and the
// consumers survive the loss of a server, including the one leading the
// stream; publishes that fail during the election are made again by
// stream sync. An existing stream keeps the replica count it was made
// with (the transport logs the `nats stream edit` that changes it).
//
// # Limits
//
// A change larger than the server's max_payload (1 MiB by default; a
// change may be up to 4 MiB) cannot be one message: it reaches others by
// reconciliation only (Stats.TooLarge); set max_payload to 8MB for every
// change to go through the stream. Every timeout and limit the transport
// uses is a Config field; Validate explains a wrong one.
//
// Requests and replies (up to MaxMessageBytes, 32 MiB) larger than the
// server's max_payload travel in chunks headed "Trib-Chunk: i/n" and are
// reassembled within MaxReassemblyBytes; incomplete ones are dropped
// after ReassemblyTimeout. An error returned by the peer's Handler.Serve
// comes back as a *RemoteError that wraps the mesh error it stands for
// (errors.Is(err, mesh.ErrBusy) holds). Peers lists the peers heard
// within three heartbeats; Leave, Pause and Close say goodbye so that the
// others drop us at once.
//
// Pause cuts the transport off as a partition would (tests use it for
// isolation); Resume reconnects the subscriptions, the durable consumer
// delivers the backlog and stream sync runs:
//
//	tr.Pause()  // Publish and Request fail with mesh.ErrNoPeer
//	_ = tr.Resume()
package nats
