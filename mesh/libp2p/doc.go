// Package libp2p is the mesh transport over libp2p: Noise-secured TCP and
// QUIC, hole punching and the relay client, a gossipsub topic per space
// for pushes and a stream protocol for reconciliation requests.
//
//	tr, _ := libp2p.New(ctx, libp2p.Config{Key: key, Bootstrap: invite.Addrs})
//	defer tr.Close()
//	node := mesh.NewNode(replica, tr, mesh.Config{})
//	_ = node.Start(ctx) // tells the gater who the space's members are
//	invite.Addrs = tr.Addrs() // /ip4/…/tcp/7466/p2p/12D3Koo…, for others' Bootstrap
//
// The host's identity is the node's signing key, so a peer's libp2p ID and
// its mesh.PeerID name the same Ed25519 key (ToPeerID, FromPeerID).
//
// # Admission
//
// The node hands each space's mesh.Admission to the transport
// (SetAdmission, at Node.Start). Right after the Noise handshake, before
// any data, the connection gater decides:
//
//   - a current member of some space (Admission.Admit: a member's own key,
//     never an invite key) gets a connection;
//   - a newcomer gets a probation connection only while some space holds
//     an invite that is open and not expired (Admission.Open), at most
//     Config.MaxProbation at once, for at most Config.ProbationTimeout;
//     a node that is joining (Admission.Proof) dials its bootstrap peers
//     on probation too;
//   - anyone else, a banned peer, and a peer kept off (refused or timed
//     out on probation, for Config.ProbationCooloff) is refused.
//
// The only protocol served on probation is JoinProtocol: the newcomer
// sends its proof (the signed use of an invite granting its own key, at
// most mesh.MaxProofBytes) and the node judges it (Admission.Join, the
// replica's AdmitUse). Admitted, the peer is a member and the connection
// carries sync and gossip at once; refused, it gets the reason ("invite
// already used", "invite expired", ...; mesh.Refusal rebuilds it), its
// connection is closed a moment later and it is kept off. Silence until
// the deadline, or an oversized proof, ends the same way. A joining node
// presents its proof to every peer it connects to and tells its node the
// verdict (Admission.Presented); PresentProof does the same from a
// throwaway host, for `tributary join`:
//
//	err := libp2p.PresentProof(ctx, key, code.Space, proof, code.Bootstrap)
//	// nil: admitted; errors.Is(err, replica.ErrInviteUsed): used; mesh.ErrNoPeer: offline
//
// Nothing of a space flows to or from a peer the space does not admit
// now: each sync request is checked when it arrives; each gossip message
// is dropped unless its sender (the peer it came from) is admitted; a
// probation peer's gossip score is sunk (no pushes reach it, its messages
// are ignored) and a peer's subscription to a space's topic is recorded
// only if the space admits it (or it is on probation). A revoked member
// is cut as soon as the node stores the revocation: Recheck closes the
// connections the admissions no longer allow, and the node calls it
// before it publishes or lets a push be relayed (mesh.Relayer: a push is
// relayed only once its parents are stored here and the peers were
// re-checked, so nothing written after a revocation is relayed to the
// revoked member). A check every Config.AdmissionInterval catches the
// rest. Relays and bootstrap peers are gated like everyone else: they
// must be members of a space.
//
// Pushes go to the topic "/tributary/2/<space>/changes" as CBOR [][]byte
// of envelopes. Gossip messages are unsigned (no author, no sequence
// number: each change is signed by its author already) and a message's ID
// is the hash of its topic and data, so a push relayed by several peers
// is delivered once. The topic validator opens every envelope (signature
// verified, right space) before a message is delivered or forwarded;
// anything else is rejected, which drops the sender's gossipsub score, and
// the sender (the peer it came from) is banned. Messages are validated
// one at a time in the order they arrived and handed to the node from the
// validator, so a change rarely waits for a parent still in flight. A
// push may be lost (a message published as a peer appears, an envelope
// over MaxPushBytes, a full gossipsub queue, logged):
// reconciliation delivers it.
//
// Requests use SyncProtocol, one stream each: space ID, uvarint length
// and payload; the reply is a status byte, a length and the payload or
// the error text (a mesh sentinel it names survives errors.Is). Frames
// are capped at Config.MaxFrame (48 MiB).
//
// Bootstrap peers, peers added with AddBootstrap, peers once connected
// and members whose addresses the node learned through the space
// (mesh.Locator: Locate, from signed address records) are re-dialled
// every Config.RedialInterval while disconnected; MDNS finds peers on the
// LAN. A peer that connects and is admitted is announced to the space's
// node (mesh.Greeter), which reconciles with it at once. SetOffline(true) closes every connection and
// refuses all until SetOffline(false) (tests isolate peers with it).
package libp2p
