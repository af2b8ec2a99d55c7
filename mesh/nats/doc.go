// Package nats is a mesh.Transport over a NATS server with JetStream: the
// peers of a space need not reach each other, only the server (or
// cluster), which stores pushes for peers that are away.
//
//	tr, _ := nats.New(nats.Config{URL: "nats://hub:4222", Key: key})
//	defer tr.Close()
//	node := mesh.NewNode(replica, tr, mesh.Config{})
//	_ = node.Start(ctx) // Join: stream and durable consumer made if missing
//
// Per space (its ID's String, a lowercase base32 CID) and peer (its
// PeerID, the lowercase base32 Ed25519 key):
//
//	tributary.<space>.changes        pushes: CBOR [][]byte envelopes, header Trib-From
//	tributary.<space>.presence       heartbeats: the PeerID, every HeartbeatInterval
//	tributary.<space>.sync.<peer>    requests to that peer; replies on the requester's inbox
//	stream TRIB_<space>              stores .changes (file storage, StreamMaxAge, StreamMaxBytes)
//	consumer peer_<peer>             that peer's durable consumer, explicit acks
//
// Pushes go through the stream, so a peer that was offline (its process
// stopped, or Pause) gets what was published meanwhile from its durable
// consumer when it comes back, before any reconciliation. A peer's
// consumer is created on its first Join and starts from then: older
// history comes from reconciliation. Peers lists the peers heard within
// three heartbeats; Leave, Pause and Close say goodbye so that the others
// drop us at once.
//
// Requests and replies (up to MaxMessageBytes, 32 MiB) larger than the
// server's max_payload (1 MiB by default) travel in chunks headed
// "Trib-Chunk: i/n" and are reassembled within MaxReassemblyBytes;
// incomplete ones are dropped after ReassemblyTimeout. An error returned
// by the peer's Handler.Serve comes back as a *RemoteError that wraps the
// mesh error it stands for (errors.Is(err, mesh.ErrBusy) holds).
//
// NATS is an untrusted pipe: Trib-From is a claim, and the Node verifies
// every change. What cannot be decoded is refused, logged and counted
// (Stats); after Ban nothing from the peer is delivered.
//
// Pause cuts the transport off as a partition would (tests use it for
// isolation); Resume reconnects the subscriptions and the durable
// consumers deliver the backlog:
//
//	tr.Pause()  // Publish and Request fail with mesh.ErrNoPeer
//	_ = tr.Resume()
package nats
