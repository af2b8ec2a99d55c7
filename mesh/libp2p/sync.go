package libp2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// SyncProtocol carries Request/Serve on a stream per request:
//
//	request: 32-byte space ID, uvarint length, payload (then close-write)
//	reply:   status byte (0 ok, 1 error), uvarint length, payload or error text
const SyncProtocol protocol.ID = "/tributary/sync/1.0.0"

const (
	statusOK  byte = 0
	statusErr byte = 1

	maxErrorText = 4096
)

// writeFrame writes a uvarint length and the payload.
func writeFrame(w *bufio.Writer, payload []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(payload)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads a uvarint length and that many bytes, refusing lengths
// over max without allocating them.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("read frame length: %w", err)
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: frame of %d bytes, limit %d", mesh.ErrTooLarge, n, max)
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(int(n), 1<<20)))
	if _, err := io.CopyN(buf, r, int64(n)); err != nil {
		return nil, fmt.Errorf("read frame of %d bytes: %w", n, err)
	}
	return buf.Bytes(), nil
}

// Request implements mesh.Transport: one stream per request, dialling the
// peer if needed (the gater decides whether it may be dialled).
func (t *Transport) Request(ctx context.Context, space core.ID, to mesh.PeerID, req []byte) ([]byte, error) {
	if len(req) > t.cfg.MaxFrame {
		return nil, fmt.Errorf("%w: request of %d bytes, limit %d", mesh.ErrTooLarge, len(req), t.cfg.MaxFrame)
	}
	pid, err := FromPeerID(to)
	if err != nil {
		return nil, fmt.Errorf("libp2p: %s: %w: %v", to, mesh.ErrNoPeer, err)
	}
	if pid == t.self || t.gater.isOffline() || t.gater.isBanned(pid) {
		return nil, fmt.Errorf("libp2p: %s: %w", to, mesh.ErrNoPeer)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.RequestTimeout)
		defer cancel()
	}
	s, err := t.host.NewStream(ctx, pid, SyncProtocol)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("libp2p: open stream to %s: %w: %v", to, mesh.ErrNoPeer, err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	out, err := t.exchange(s, space, req)
	if err != nil {
		s.Reset()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("libp2p: request to %s: %w", to, err)
	}
	_ = s.Close()
	return out, nil
}

func (t *Transport) exchange(s network.Stream, space core.ID, req []byte) ([]byte, error) {
	w := bufio.NewWriterSize(s, 64<<10)
	_, werr := w.Write(space[:])
	if werr == nil {
		werr = writeFrame(w, req)
	}
	if werr == nil {
		werr = w.Flush()
	}
	// The peer may answer (and close) before our request is all out, e.g.
	// refusing a non-member before reading it; the reply tells.
	_ = s.CloseWrite()
	r := bufio.NewReaderSize(s, 64<<10)
	status, err := r.ReadByte()
	if err != nil {
		if werr != nil {
			return nil, fmt.Errorf("send request: %w", werr)
		}
		return nil, fmt.Errorf("read reply: %w", err)
	}
	switch status {
	case statusOK:
		return readFrame(r, t.cfg.MaxFrame)
	case statusErr:
		msg, err := readFrame(r, maxErrorText)
		if err != nil {
			return nil, err
		}
		return nil, remoteError(string(msg))
	default:
		return nil, fmt.Errorf("%w: reply status %d", mesh.ErrBadPeer, status)
	}
}

// remoteError rebuilds a peer's error, keeping the mesh sentinels it
// names so errors.Is works across the wire.
func remoteError(msg string) error {
	for _, e := range []error{mesh.ErrBusy, mesh.ErrTooLarge, mesh.ErrBadPeer, mesh.ErrRateLimit, mesh.ErrNotMember, mesh.ErrNoPeer} {
		if strings.Contains(msg, e.Error()) {
			return fmt.Errorf("peer replied: %w (%s)", e, msg)
		}
	}
	return fmt.Errorf("peer replied: %s", msg)
}

// handleStream serves one request.
func (t *Transport) handleStream(s network.Stream) {
	if !t.track() {
		s.Reset()
		return
	}
	defer t.wg.Done()
	stop := context.AfterFunc(t.ctx, func() { s.Reset() })
	defer stop()
	remote := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(t.cfg.ReadTimeout))
	r := bufio.NewReaderSize(s, 64<<10)
	var space core.ID
	if _, err := io.ReadFull(r, space[:]); err != nil {
		s.Reset()
		return
	}
	// Membership is checked before the request is read: a newcomer on
	// probation cannot make us read a large frame.
	t.mu.Lock()
	j := t.spaces[space]
	t.mu.Unlock()
	if j == nil {
		t.reply(s, nil, fmt.Errorf("space %s not served here", space.Short()))
		return
	}
	if !t.gater.admittedFor(space, remote) {
		t.reply(s, nil, fmt.Errorf("%w: %w %s", mesh.ErrNoPeer, mesh.ErrNotMember, space.Short()))
		return
	}
	req, err := readFrame(r, t.cfg.MaxFrame)
	if err == nil {
		// The requester closes its side after the frame; waiting for that
		// keeps our close from cancelling its write.
		if _, e := r.ReadByte(); e != io.EOF {
			err = fmt.Errorf("%w: data after the request frame", mesh.ErrBadPeer)
		}
	}
	if err != nil {
		t.log.Debug("bad sync request", "peer", remote, "err", err)
		t.reply(s, nil, err)
		return
	}
	from, err := ToPeerID(remote)
	if err != nil {
		s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.RequestTimeout)
	defer cancel()
	_ = s.SetDeadline(time.Now().Add(t.cfg.RequestTimeout))
	out, err := j.h.Serve(ctx, from, req)
	if err == nil && len(out) > t.cfg.MaxFrame {
		err = fmt.Errorf("%w: reply of %d bytes, limit %d", mesh.ErrTooLarge, len(out), t.cfg.MaxFrame)
	}
	t.reply(s, out, err)
}

func (t *Transport) reply(s network.Stream, out []byte, serveErr error) {
	w := bufio.NewWriterSize(s, 64<<10)
	var err error
	if serveErr != nil {
		msg := serveErr.Error()
		if len(msg) > maxErrorText {
			msg = msg[:maxErrorText]
		}
		err = errors.Join(w.WriteByte(statusErr), writeFrame(w, []byte(msg)))
	} else {
		err = errors.Join(w.WriteByte(statusOK), writeFrame(w, out))
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		s.Reset()
		return
	}
	_ = s.Close()
}
