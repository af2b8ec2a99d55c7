package libp2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	golibp2p "github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// JoinProtocol carries a newcomer's proof of pending membership, the
// only protocol a probation connection is served:
//
//	request: 32-byte space ID, uvarint length, proof (at most
//	         mesh.MaxProofBytes), then close-write
//	reply:   status byte (0 admitted, 1 refused), uvarint length, reason
//
// The reason is the refusal's text; mesh.Refusal rebuilds it.
const JoinProtocol protocol.ID = "/tributary/join/1.0.0"

// handleJoin judges one proof. Refused, a peer that is a member of no
// space loses its connection and is kept off for the cool-off.
func (t *Transport) handleJoin(s network.Stream) {
	if !t.track() {
		s.Reset()
		return
	}
	defer t.wg.Done()
	stop := context.AfterFunc(t.ctx, func() { s.Reset() })
	defer stop()
	remote := s.Conn().RemotePeer()
	select {
	case t.joins <- struct{}{}:
		defer func() { <-t.joins }()
	default:
		t.refuseJoin(s, remote, fmt.Errorf("%w: too many joins at once", mesh.ErrBusy))
		return
	}
	_ = s.SetDeadline(time.Now().Add(t.cfg.ProbationTimeout))
	r := bufio.NewReaderSize(s, 4<<10)
	var space core.ID
	if _, err := io.ReadFull(r, space[:]); err != nil {
		s.Reset()
		return
	}
	proof, err := readFrame(r, mesh.MaxProofBytes)
	if err == nil {
		if _, e := r.ReadByte(); e != io.EOF {
			err = fmt.Errorf("%w: data after the proof", mesh.ErrTooLarge)
		}
	}
	if err != nil {
		t.refuseJoin(s, remote, err)
		return
	}
	from, err := ToPeerID(remote)
	if err != nil {
		s.Reset()
		return
	}
	a := t.gater.admissionFor(space)
	if a == nil {
		t.refuseJoin(s, remote, fmt.Errorf("space %s not served here", space.Short()))
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.ProbationTimeout)
	defer cancel()
	if err := a.Join(ctx, from, proof); err != nil {
		t.refuseJoin(s, remote, err)
		return
	}
	t.gater.endProbation(remote)
	t.log.Info("peer admitted by its invite", "remote", remote, "space", space.Short())
	t.answerJoin(s, statusOK, "")
	t.greet(remote)
	t.kick()
}

// refuseJoin answers a refusal and, unless the peer is a member of some
// space, keeps it off: its connection is closed once it had a moment to
// read the answer (the probation reaper does it).
func (t *Transport) refuseJoin(s network.Stream, remote peer.ID, why error) {
	t.log.Info("proof of membership refused", "remote", remote, "reason", mesh.RefusalReason(why), "err", why)
	if !t.gater.member(remote) {
		t.gater.refused(remote, min(time.Second, t.cfg.ProbationTimeout))
	}
	t.answerJoin(s, statusErr, why.Error())
}

func (t *Transport) answerJoin(s network.Stream, status byte, text string) {
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
	}
	w := bufio.NewWriter(s)
	err := errors.Join(w.WriteByte(status), writeFrame(w, []byte(text)), w.Flush())
	if err != nil {
		s.Reset()
		return
	}
	_ = s.CloseWrite()
}

// askJoin presents proof for space to p over h and returns the verdict:
// nil (admitted), a refusal (wrapping mesh.ErrJoinRefused), or another
// error when the peer could not be asked.
func askJoin(ctx context.Context, h host.Host, p peer.ID, space core.ID, proof []byte) error {
	s, err := h.NewStream(ctx, p, JoinProtocol)
	if err != nil {
		return fmt.Errorf("%w: open join stream: %v", mesh.ErrNoPeer, err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	w := bufio.NewWriter(s)
	if err := errors.Join(func() error { _, err := w.Write(space[:]); return err }(), writeFrame(w, proof), w.Flush()); err != nil {
		s.Reset()
		return fmt.Errorf("send proof: %w", err)
	}
	_ = s.CloseWrite()
	r := bufio.NewReader(s)
	status, err := r.ReadByte()
	if err != nil {
		s.Reset()
		return fmt.Errorf("read join answer: %w", err)
	}
	text, err := readFrame(r, maxErrorText)
	_ = s.Close()
	if err != nil {
		return fmt.Errorf("read join answer: %w", err)
	}
	id, _ := ToPeerID(p)
	switch status {
	case statusOK:
		return nil
	case statusErr:
		return mesh.Refusal(id, string(text))
	default:
		return fmt.Errorf("%w: join answer status %d", mesh.ErrBadPeer, status)
	}
}

// present offers our proofs to a peer we just connected to, for every
// space we are joining, and tells the spaces' nodes the verdicts.
func (t *Transport) present(p peer.ID) {
	t.peersMu.Lock()
	if t.presenting[p] {
		t.peersMu.Unlock()
		return
	}
	t.presenting[p] = true
	t.peersMu.Unlock()
	defer func() {
		t.peersMu.Lock()
		delete(t.presenting, p)
		t.peersMu.Unlock()
	}()
	id, err := ToPeerID(p)
	if err != nil {
		return
	}
	for space, a := range t.gater.admissions() {
		proof := a.Proof()
		if proof == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.ProbationTimeout)
		verdict := askJoin(network.WithNoDial(ctx, "present proof"), t.host, p, space, proof)
		cancel()
		switch {
		case verdict == nil:
			t.gater.endProbation(p)
			a.Presented(id, nil)
		case errors.Is(verdict, mesh.ErrJoinRefused):
			t.log.Warn("our proof of membership was refused", "remote", p, "space", space.Short(), "reason", mesh.RefusalReason(verdict), "err", verdict)
			a.Presented(id, verdict)
			if !t.gater.member(p) {
				t.gater.keepOff(p)
				_ = t.host.Network().ClosePeer(p)
			}
			return
		default:
			t.log.Debug("could not present our proof", "remote", p, "space", space.Short(), "err", verdict)
		}
	}
}

// PresentProof presents proof, a joiner's signed use of an invite of
// space, to the peers at addrs (multiaddrs with /p2p/, an invite code's
// bootstrap addresses) in turn, as key's owner, and returns the first
// verdict: nil when a peer admitted it (key is a member there now, and
// the joiner's next sync fetches the space), an error wrapping
// mesh.ErrJoinRefused and the reason (replica.ErrInviteUsed,
// ErrInviteExpired, ErrInviteRevoked, ErrInviteContested,
// ErrInviteUnknown; mesh.RefusalReason names it) when one refused it, or
// an error wrapping mesh.ErrNoPeer when none could be asked (offline, or
// the peer took no newcomer then): the proof then travels with the
// joiner's first sync.
func PresentProof(ctx context.Context, key core.PrivateKey, space core.ID, proof []byte, addrs []string) error {
	priv, err := hostKey(key)
	if err != nil {
		return err
	}
	if len(proof) > mesh.MaxProofBytes {
		return fmt.Errorf("%w: proof of %d bytes, limit %d", mesh.ErrTooLarge, len(proof), mesh.MaxProofBytes)
	}
	infos, err := parsePeers(addrs)
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		return fmt.Errorf("%w: no peer address to present the proof to", mesh.ErrNoPeer)
	}
	h, err := golibp2p.New(
		golibp2p.Identity(priv),
		golibp2p.NoListenAddrs,
		golibp2p.Security(noise.ID, noise.New),
		golibp2p.Transport(tcp.NewTCPTransport),
		golibp2p.Transport(libp2pquic.NewTransport),
		golibp2p.DisableRelay(),
		golibp2p.DisableMetrics(),
	)
	if err != nil {
		return fmt.Errorf("libp2p: start host: %w", err)
	}
	defer h.Close()
	var errs []error
	for _, in := range infos {
		verdict := func() error {
			cctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			if err := h.Connect(cctx, in); err != nil {
				return fmt.Errorf("%w: %s: %v", mesh.ErrNoPeer, in.ID, err)
			}
			return askJoin(cctx, h, in.ID, space, proof)
		}()
		if verdict == nil || errors.Is(verdict, mesh.ErrJoinRefused) {
			return verdict
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, verdict)
	}
	return fmt.Errorf("%w: no peer answered: %w", mesh.ErrNoPeer, errors.Join(errs...))
}
