// Package libp2p is the mesh transport over libp2p: Noise-secured TCP and
// QUIC, hole punching and the relay client, a gossipsub topic per space
// for pushes and a stream protocol for reconciliation requests.
//
//	tr, _ := libp2p.New(ctx, libp2p.Config{Key: key, Bootstrap: invite.Addrs})
//	defer tr.Close()
//	node := mesh.NewNode(replica, tr, mesh.Config{})
//	_ = node.Start(ctx) // tells the gater who the space's members are
//	invite.Addrs = tr.Addrs() // /ip4/…/tcp/4001/p2p/12D3Koo…, for others' Bootstrap
//
// The host's identity is the node's signing key, so a peer's libp2p ID and
// its mesh.PeerID name the same Ed25519 key (ToPeerID, FromPeerID). The
// connection gater admits a peer only if some space's admit function (set
// by the node through SetAdmission) says it is a member and it is not
// banned: a non-member is refused right after the handshake, before any
// data, and a revoked member's connections are closed within
// Config.AdmissionInterval. Inside a space, its topic and its requests
// are open to that space's members only. Relays and bootstrap peers are
// gated like everyone else: they must be members of a space.
//
// Pushes go to the topic "/tributary/1/<space>/changes" as CBOR [][]byte
// of envelopes. The topic validator opens every envelope (signature
// verified, right space) before a message is delivered or forwarded;
// anything else is rejected, which drops the sender's gossipsub score, and
// the sender is banned. A push may be lost (a message published as a peer
// appears, an envelope over MaxPushBytes): reconciliation delivers it.
//
// Requests use SyncProtocol, one stream each: space ID, uvarint length
// and payload; the reply is a status byte, a length and the payload or
// the error text (a mesh sentinel it names survives errors.Is). Frames
// are capped at Config.MaxFrame (48 MiB).
//
// Bootstrap peers, peers added with AddBootstrap and peers once connected
// are re-dialled every Config.RedialInterval while disconnected; MDNS
// finds peers on the LAN. SetOffline(true) closes every connection and
// refuses all until SetOffline(false) (tests isolate peers with it).
package libp2p
