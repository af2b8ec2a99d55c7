package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// session is one space's subscriptions and loops between Join (or
// Resume) and Leave (or Pause, Close). Callbacks run only while it is
// open; stop waits for them, for the requests being served and for its
// two loops: consume (the durable consumer into the Handler) and stream
// sync (our changes into the stream).
type session struct {
	ctx    context.Context // callbacks, Serve and Apply; cancelled last
	cancel context.CancelFunc
	// syncCtx bounds stream sync and is cancelled first.
	syncCtx    context.Context
	syncCancel context.CancelFunc
	resync     chan struct{} // asks stream sync for a pass now

	stream jetstream.Stream
	subs   []*natsgo.Subscription
	asm    *assembler

	// The consumer's callback hands messages to the consume loop through
	// inbox (blocking when it is full: the consumer then stops pulling).
	cc        jetstream.ConsumeContext
	inbox     chan jetstream.Msg
	inputDone chan struct{} // closed once the callback adds no more
	consumed  chan struct{} // closed when the consume loop has returned
	loops     sync.WaitGroup

	mu   sync.Mutex
	open bool
	wg   sync.WaitGroup
}

func (s *session) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *session) leave() { s.wg.Done() }

// start ensures the stream and our durable consumer, subscribes to
// presence and requests, and starts consuming and the first stream sync.
// A permission the server denies fails it with an error naming the
// subject.
func (t *Transport) start(sp *space) (_ *session, err error) {
	ctx, done := t.operation(sp)
	defer done()
	lastBefore := t.nc.LastError()
	defer func() {
		if err != nil {
			err = t.explain(ctx, sp, lastBefore, err)
		}
	}()
	stream, err := t.ensureStream(ctx, sp)
	if err != nil {
		return nil, err
	}
	cons, err := t.ensureConsumer(ctx, stream, sp)
	if err != nil {
		return nil, err
	}
	sess := &session{open: true, asm: newAssembler(t), stream: stream, resync: make(chan struct{}, 1)}
	sess.ctx, sess.cancel = context.WithCancel(context.Background())
	sess.syncCtx, sess.syncCancel = context.WithCancel(sess.ctx)
	defer func() {
		if err != nil {
			t.stop(sess)
		}
	}()
	pres, err := t.nc.Subscribe(sp.presenceSubj, func(m *natsgo.Msg) {
		if sess.enter() {
			defer sess.leave()
			t.onPresence(sp, m)
		}
	})
	if err != nil {
		return sess, fmt.Errorf("nats transport: subscribe presence: %w", err)
	}
	sess.subs = append(sess.subs, pres)
	serve, err := t.nc.Subscribe(sp.serveSubj, func(m *natsgo.Msg) {
		if sess.enter() {
			defer sess.leave()
			t.onRequest(sp, sess, m)
		}
	})
	if err != nil {
		return sess, fmt.Errorf("nats transport: subscribe requests: %w", err)
	}
	sess.subs = append(sess.subs, serve)
	pendingBytes := max(64<<20, int(t.cfg.MaxReassemblyBytes)+2*t.cfg.MaxMessageBytes)
	if err := serve.SetPendingLimits(1<<16, pendingBytes); err != nil {
		return sess, err
	}
	sess.inbox, sess.inputDone, sess.consumed = make(chan jetstream.Msg, 2*t.cfg.ApplyBatch), make(chan struct{}), make(chan struct{})
	sess.loops.Add(1)
	go t.consumeLoop(sp, sess)
	sess.cc, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case sess.inbox <- m:
		case <-sess.ctx.Done(): // stopping: delivered again after AckWait
		}
	},
		jetstream.PullMaxMessagesWithBytesLimit(2*t.cfg.ApplyBatch, max(t.cfg.ConsumerMaxBytes, 2*int(t.nc.MaxPayload()))),
		jetstream.PullExpiry(t.cfg.PullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			t.log.Debug("push consumer", "space", sp.id.Short(), "err", err)
		}))
	if err != nil {
		return sess, fmt.Errorf("nats transport: consume %s: %w", sp.consumer, err)
	}
	if err := t.nc.FlushTimeout(t.cfg.OperationTimeout); err != nil {
		return sess, fmt.Errorf("nats transport: flush: %w", err)
	}
	if err := t.violation(ctx, sp, lastBefore); err != nil {
		return sess, err
	}
	sess.loops.Add(1)
	go t.syncLoop(sp, sess)
	return sess, nil
}

// stop ends a session: stream sync stops, the consumer drains (what is
// buffered is applied and acknowledged, within OperationTimeout; the rest
// is delivered again later), callbacks stop, requests being served are
// cancelled and awaited.
func (t *Transport) stop(s *session) {
	s.syncCancel()
	if s.cc != nil {
		if t.nc.IsConnected() {
			s.cc.Drain()
		} else {
			s.cc.Stop() // what is buffered is delivered again later
		}
		select {
		case <-s.cc.Closed():
		case <-time.After(t.cfg.OperationTimeout):
			t.log.Warn("push consumer did not drain in time; the rest is delivered again later")
			s.cc.Stop()
			s.cancel()
			<-s.cc.Closed()
		}
	}
	if s.inputDone != nil {
		close(s.inputDone)
		select {
		case <-s.consumed:
		case <-time.After(t.cfg.OperationTimeout):
			t.log.Warn("pushes not settled in time; they are delivered again later")
			s.cancel()
			<-s.consumed
		}
	}
	s.mu.Lock()
	s.open = false
	s.mu.Unlock()
	s.cancel()
	for _, sub := range s.subs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) && !errors.Is(err, natsgo.ErrBadSubscription) {
			t.log.Debug("unsubscribe", "subject", sub.Subject, "err", err)
		}
	}
	s.wg.Wait()
	s.loops.Wait()
	s.asm.reset()
}

// resync asks the space's stream sync for a pass now (after a failed
// publish).
func (t *Transport) resync(sp *space) {
	t.mu.Lock()
	sess := sp.sess
	t.mu.Unlock()
	if sess == nil {
		return
	}
	select {
	case sess.resync <- struct{}{}:
	default:
	}
}

// retryDelay is RetryDelay doubled per consecutive failure, up to
// RetryMaxDelay.
func (t *Transport) retryDelay(failures int) time.Duration {
	d := t.cfg.RetryDelay
	for range min(failures, 20) {
		d *= 2
		if d >= t.cfg.RetryMaxDelay {
			return t.cfg.RetryMaxDelay
		}
	}
	return min(d, t.cfg.RetryMaxDelay)
}
