package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// Requests and replies larger than the server's max_payload travel in
// chunks: each carries "Trib-Chunk: i/n"; the chunks of a request share a
// Trib-Req ID and its reply subject. NATS keeps the order of one
// publisher's messages, but reassembly does not depend on it.

// minChunk bounds the chunk count a message may claim (MaxMessageBytes /
// minChunk), so that a forged header cannot make us allocate much.
const minChunk = 4 << 10

// RemoteError is an error the peer's Handler.Serve returned. It wraps the
// mesh error it stands for (mesh.ErrBusy, mesh.ErrTooLarge, ...) when the
// peer said which.
type RemoteError struct {
	Peer mesh.PeerID
	Msg  string
	Kind error
}

func (e *RemoteError) Error() string {
	p := string(e.Peer)
	if len(p) > 8 {
		p = p[:8]
	}
	return fmt.Sprintf("peer %s: %s", p, e.Msg)
}

func (e *RemoteError) Unwrap() error { return e.Kind }

var errorCodes = []struct {
	code string
	err  error
}{
	{"busy", mesh.ErrBusy},
	{"too-large", mesh.ErrTooLarge},
	{"bad-peer", mesh.ErrBadPeer},
	{"no-peer", mesh.ErrNoPeer},
	{"rate-limit", mesh.ErrRateLimit},
}

func codeOf(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

func errorOf(code string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// headerValue makes s safe for a NATS header and bounds it.
func headerValue(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > limit {
		s = s[:limit]
	}
	return s
}

// subjectToken reports whether s can be one token of a subject.
func subjectToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

func parseChunk(h natsgo.Header) (i, n int, err error) {
	v := h.Get(hdrChunk)
	if v == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(v, "/")
	if !ok {
		return 0, 0, fmt.Errorf("bad chunk header %q", headerValue(v, 32))
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("bad chunk header %q", headerValue(v, 32))
	}
	return i, n, nil
}

// assembly gathers the chunks of one message.
type assembly struct {
	from    mesh.PeerID
	parts   [][]byte
	got     int
	size    int
	started time.Time
	failed  bool // refused: later chunks are ignored until it expires
}

// add stores chunk i; it reports whether the message is complete.
func (a *assembly) add(i, n int, data []byte) (bool, error) {
	if n != len(a.parts) {
		return false, fmt.Errorf("chunk count changed from %d to %d", len(a.parts), n)
	}
	if a.parts[i] != nil {
		return false, nil // duplicate
	}
	if data == nil {
		data = []byte{}
	}
	a.parts[i] = data
	a.got++
	a.size += len(data)
	return a.got == n, nil
}

func (a *assembly) join() []byte {
	out := make([]byte, 0, a.size)
	for _, p := range a.parts {
		out = append(out, p...)
	}
	return out
}

// assembler reassembles a session's chunked incoming requests, within
// the transport's memory bound; ones incomplete after ReassemblyTimeout
// are dropped.
type assembler struct {
	t  *Transport
	mu sync.Mutex
	m  map[string]*assembly
}

func newAssembler(t *Transport) *assembler { return &assembler{t: t, m: map[string]*assembly{}} }

type asmResult int

const (
	asmPartial asmResult = iota
	asmComplete
	asmIgnored
	asmTooLarge
	asmBusy
	asmBad
)

func (s *assembler) add(key string, from mesh.PeerID, i, n int, data []byte) ([]byte, asmResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.m[key]
	if a == nil {
		if n > s.t.cfg.MaxMessageBytes/minChunk+1 {
			s.m[key] = &assembly{from: from, started: time.Now(), failed: true}
			s.t.stats.reassemblyFailed.Add(1)
			return nil, asmTooLarge
		}
		a = &assembly{from: from, parts: make([][]byte, n), started: time.Now()}
		s.m[key] = a
	}
	if a.failed || a.from != from {
		return nil, asmIgnored
	}
	fail := func(r asmResult) ([]byte, asmResult) {
		s.t.reassembling.Add(-int64(a.size))
		a.parts, a.size, a.failed = nil, 0, true
		s.t.stats.reassemblyFailed.Add(1)
		return nil, r
	}
	if a.size+len(data) > s.t.cfg.MaxMessageBytes {
		return fail(asmTooLarge)
	}
	if s.t.reassembling.Add(int64(len(data))) > s.t.cfg.MaxReassemblyBytes {
		s.t.reassembling.Add(-int64(len(data)))
		return fail(asmBusy)
	}
	done, err := a.add(i, n, data)
	if err != nil {
		s.t.reassembling.Add(-int64(len(data)))
		return fail(asmBad)
	}
	if !done {
		return nil, asmPartial
	}
	delete(s.m, key)
	s.t.reassembling.Add(-int64(a.size))
	return a.join(), asmComplete
}

// expire drops assemblies older than the reassembly timeout.
func (s *assembler) expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, a := range s.m {
		if now.Sub(a.started) > s.t.cfg.ReassemblyTimeout {
			if !a.failed {
				s.t.stats.reassemblyFailed.Add(1)
				s.t.log.Warn("incomplete request dropped", "peer", a.from, "chunks", a.got, "of", len(a.parts), "bytes", a.size)
			}
			s.t.reassembling.Add(-int64(a.size))
			delete(s.m, k)
		}
	}
}

// reset drops every assembly.
func (s *assembler) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, a := range s.m {
		s.t.reassembling.Add(-int64(a.size))
		delete(s.m, k)
	}
}

// Request implements mesh.Transport: the request goes to the peer's
// subject in the space, in chunks if it is larger than max_payload, and
// the (possibly chunked) reply or error comes back on an inbox of ours.
func (t *Transport) Request(ctx context.Context, id core.ID, to mesh.PeerID, req []byte) ([]byte, error) {
	if _, err := t.active(id); err != nil {
		return nil, err
	}
	if to == t.id || !subjectToken(string(to)) {
		return nil, fmt.Errorf("nats transport: %q: %w", truncate(string(to)), mesh.ErrNoPeer)
	}
	if t.isBanned(to) {
		return nil, fmt.Errorf("nats transport: %s is banned: %w", to, mesh.ErrNoPeer)
	}
	if len(req) > t.cfg.MaxMessageBytes {
		return nil, fmt.Errorf("nats transport: request of %d bytes, limit %d: %w", len(req), t.cfg.MaxMessageBytes, mesh.ErrTooLarge)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.RequestTimeout)
		defer cancel()
	}
	inbox := t.nc.NewInbox()
	sub, err := t.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("nats transport: subscribe reply inbox: %w", err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(1<<16, max(64<<20, 2*t.cfg.MaxMessageBytes)); err != nil {
		return nil, err
	}

	chunk := t.maxChunk()
	n := max(1, (len(req)+chunk-1)/chunk)
	h := natsgo.Header{hdrFrom: []string{string(t.id)}}
	if n > 1 {
		h.Set(hdrReq, nuid.Next())
	}
	subject := serveSubject(id, to)
	for i := range n {
		if n > 1 {
			h.Set(hdrChunk, strconv.Itoa(i)+"/"+strconv.Itoa(n))
		}
		// PublishMsg copies the message into the connection's buffer.
		msg := &natsgo.Msg{Subject: subject, Reply: inbox, Header: h, Data: req[i*chunk : min(len(req), (i+1)*chunk)]}
		if err := t.nc.PublishMsg(msg); err != nil {
			return nil, fmt.Errorf("nats transport: send request: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}

	var asm *assembly
	for {
		m, err := sub.NextMsgWithContext(ctx)
		switch {
		case errors.Is(err, natsgo.ErrNoResponders):
			return nil, fmt.Errorf("nats transport: %s does not serve space %s: %w", to, id.Short(), mesh.ErrNoPeer)
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("nats transport: request to %s: %w", to, ctx.Err())
			}
			return nil, fmt.Errorf("nats transport: request to %s: %w", to, err)
		}
		if mesh.PeerID(m.Header.Get(hdrFrom)) != to {
			t.stats.refused.Add(1)
			continue // not from the peer we asked
		}
		if e := m.Header.Get(hdrError); e != "" {
			return nil, &RemoteError{Peer: to, Msg: e, Kind: errorOf(m.Header.Get(hdrErrorCode))}
		}
		i, n, err := parseChunk(m.Header)
		if err != nil {
			return nil, fmt.Errorf("nats transport: reply from %s: %v: %w", to, err, mesh.ErrBadPeer)
		}
		if n == 1 {
			t.stats.requestsSent.Add(1)
			return m.Data, nil
		}
		if asm == nil {
			if n > t.cfg.MaxMessageBytes/minChunk+1 {
				return nil, fmt.Errorf("nats transport: reply from %s in %d chunks: %w", to, n, mesh.ErrTooLarge)
			}
			asm = &assembly{from: to, parts: make([][]byte, n)}
		}
		if asm.size+len(m.Data) > t.cfg.MaxMessageBytes {
			return nil, fmt.Errorf("nats transport: reply from %s over %d bytes: %w", to, t.cfg.MaxMessageBytes, mesh.ErrTooLarge)
		}
		done, err := asm.add(i, n, m.Data)
		if err != nil {
			return nil, fmt.Errorf("nats transport: reply from %s: %v: %w", to, err, mesh.ErrBadPeer)
		}
		if done {
			t.stats.requestsSent.Add(1)
			return asm.join(), nil
		}
	}
}

// onRequest handles one message on our request subject of sp.
func (t *Transport) onRequest(sp *space, sess *session, m *natsgo.Msg) {
	from := mesh.PeerID(m.Header.Get(hdrFrom))
	if m.Reply == "" || !validPeer(from) || from == t.id {
		t.stats.refused.Add(1)
		t.log.Warn("request refused: no reply subject or sender", "space", sp.id.Short(), "from", truncate(string(from)))
		return
	}
	if t.isBanned(from) {
		t.stats.dropped.Add(1)
		return
	}
	i, n, err := parseChunk(m.Header)
	if err != nil {
		t.stats.refused.Add(1)
		t.log.Warn("request refused", "space", sp.id.Short(), "from", from, "err", err)
		return
	}
	data := m.Data
	if n > 1 {
		out, res := sess.asm.add(m.Reply+"\x00"+m.Header.Get(hdrReq), from, i, n, m.Data)
		switch res {
		case asmPartial, asmIgnored:
			return
		case asmTooLarge:
			t.log.Warn("request refused: too large", "space", sp.id.Short(), "from", from, "chunks", n)
			t.respond(m.Reply, nil, fmt.Errorf("request over %d bytes: %w", t.cfg.MaxMessageBytes, mesh.ErrTooLarge))
			return
		case asmBusy:
			t.stats.busy.Add(1)
			t.log.Warn("request refused: reassembly memory full", "space", sp.id.Short(), "from", from, "limit", t.cfg.MaxReassemblyBytes)
			t.respond(m.Reply, nil, fmt.Errorf("too many large requests in flight: %w", mesh.ErrBusy))
			return
		case asmBad:
			t.stats.refused.Add(1)
			t.respond(m.Reply, nil, fmt.Errorf("inconsistent chunks: %w", mesh.ErrBadPeer))
			return
		}
		data = out
	}
	select {
	case t.serving <- struct{}{}:
	default:
		t.stats.busy.Add(1)
		t.respond(m.Reply, nil, fmt.Errorf("%w: %d requests being served", mesh.ErrBusy, t.cfg.MaxServing))
		return
	}
	if !sess.enter() {
		<-t.serving
		return
	}
	reply := m.Reply
	go func() {
		defer sess.leave()
		defer func() { <-t.serving }()
		ctx, cancel := context.WithTimeout(sess.ctx, t.cfg.ServeTimeout)
		defer cancel()
		out, err := sp.h.Serve(ctx, from, data)
		if err == nil && len(out) > t.cfg.MaxMessageBytes {
			err = fmt.Errorf("reply of %d bytes, limit %d: %w", len(out), t.cfg.MaxMessageBytes, mesh.ErrTooLarge)
		}
		if sess.ctx.Err() != nil {
			return // paused or left: the requester times out
		}
		t.respond(reply, out, err)
		if err == nil {
			t.stats.requestsServed.Add(1)
		}
	}()
}

// respond sends Serve's reply, in chunks if needed, or its error.
func (t *Transport) respond(reply string, out []byte, err error) {
	h := natsgo.Header{hdrFrom: []string{string(t.id)}}
	if err != nil {
		h.Set(hdrError, headerValue(err.Error(), 2048))
		if c := codeOf(err); c != "" {
			h.Set(hdrErrorCode, c)
		}
		if err := t.nc.PublishMsg(&natsgo.Msg{Subject: reply, Header: h}); err != nil {
			t.log.Debug("send error reply", "err", err)
		}
		return
	}
	chunk := t.maxChunk()
	n := max(1, (len(out)+chunk-1)/chunk)
	for i := range n {
		if n > 1 {
			h.Set(hdrChunk, strconv.Itoa(i)+"/"+strconv.Itoa(n))
		}
		msg := &natsgo.Msg{Subject: reply, Header: h, Data: out[i*chunk : min(len(out), (i+1)*chunk)]}
		if err := t.nc.PublishMsg(msg); err != nil {
			t.log.Debug("send reply", "err", err)
			return
		}
	}
}
