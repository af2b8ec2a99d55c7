package nats

import (
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// consumeLoop takes the messages of our durable consumer in batches (up
// to ApplyBatch of those already received: it never waits for more) and
// delivers them. When the Handler cannot take a batch now, the batch is
// negatively acknowledged with a delay and the loop waits as long, so a
// busy node pushes back instead of dropping. It returns once the
// consumer has stopped and every message received is settled.
func (t *Transport) consumeLoop(sp *space, sess *session) {
	defer sess.loops.Done()
	defer close(sess.consumed)
	busy := 0
	for {
		var m jetstream.Msg
		select {
		case m = <-sess.inbox:
		case <-sess.inputDone:
			select {
			case m = <-sess.inbox:
			default:
				return
			}
		}
		batch := []jetstream.Msg{m}
		size := len(m.Data())
		// Take what has arrived, never waiting for more: a lone change
		// is stored at once, and while the node is slower than the flow
		// the inbox fills and batches grow by themselves.
	more:
		for len(batch) < t.cfg.ApplyBatch && size < t.cfg.ConsumerMaxBytes/2 {
			select {
			case m := <-sess.inbox:
				batch = append(batch, m)
				size += len(m.Data())
			default:
				break more
			}
		}
		delay := t.retryDelay(busy)
		if !t.deliver(sp, sess, batch, delay) {
			busy = 0
			continue
		}
		busy++
		select {
		case <-sess.ctx.Done():
		case <-sess.inputDone:
		case <-time.After(delay):
		}
	}
}

// delivery is a run of consecutive messages from one sender.
type delivery struct {
	from mesh.PeerID
	msgs []jetstream.Msg
	envs [][]byte
}

// deliver hands a batch to the Handler and settles each message: acked
// once the Handler has what it carries (or it is ours, or a duplicate),
// terminated when refused (redelivery would not change the verdict), and
// negatively acknowledged, to come again after delay, when the Handler
// could not take it now. It reports whether the Handler was busy.
func (t *Transport) deliver(sp *space, sess *session, batch []jetstream.Msg, delay time.Duration) (busy bool) {
	stop := t.keepAlive(sess, batch)
	defer stop()
	var runs []delivery
	for _, m := range batch {
		from := mesh.PeerID(m.Headers().Get(hdrFrom))
		switch {
		case from == t.id:
			t.settle(m, ack, "")
			continue
		case !validPeer(from):
			t.refuse(sp, m, from, "no valid sender")
			continue
		case t.isBanned(from):
			t.stats.dropped.Add(1)
			t.settle(m, term, "sender banned")
			continue
		}
		id, ok := changeOfSubject(sp, m.Subject())
		if !ok {
			t.refuse(sp, m, from, "subject names no change")
			continue
		}
		if s, err := core.DecodeSigned(m.Data()); err == nil && s.ID() != id {
			// Filed under another change's subject, where it would keep
			// that change out of the stream: not from an honest peer.
			t.refuse(sp, m, from, "change filed under another change's subject")
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].from == from {
			runs[n-1].msgs = append(runs[n-1].msgs, m)
			runs[n-1].envs = append(runs[n-1].envs, m.Data())
		} else {
			runs = append(runs, delivery{from: from, msgs: []jetstream.Msg{m}, envs: [][]byte{m.Data()}})
		}
	}
	applier, sync := sp.h.(mesh.Applier)
	for i, d := range runs {
		t.stats.pushesReceived.Add(uint64(len(d.msgs)))
		if !sync {
			sp.h.Pushed(d.from, d.envs)
			t.settleAll(d.msgs, ack, "")
			continue
		}
		err := applier.Apply(sess.ctx, d.from, d.envs)
		switch {
		case err == nil:
			t.settleAll(d.msgs, ack, "")
		case errors.Is(err, mesh.ErrBadPeer):
			t.settleAll(d.msgs, term, "refused: "+err.Error())
		default:
			stopping := sess.ctx.Err() != nil
			how := nakDelay
			if stopping {
				how = nak // delivered again at once, to our next session
			} else {
				t.log.Info("node busy: delivery deferred", "space", sp.id.Short(), "from", d.from, "changes", len(d.envs), "retry_in", delay, "err", err)
			}
			for _, r := range runs[i:] {
				t.stats.deferred.Add(uint64(len(r.msgs)))
				for _, m := range r.msgs {
					t.settle(m, how, "", delay)
				}
			}
			return !stopping
		}
	}
	return false
}

// refuse terminates a message that is not ours to deliver.
func (t *Transport) refuse(sp *space, m jetstream.Msg, from mesh.PeerID, why string) {
	t.stats.refused.Add(1)
	t.log.Warn("push refused: "+why, "space", sp.id.Short(), "from", truncate(string(from)), "subject", truncate(m.Subject()))
	t.settle(m, term, why)
}

type settlement int

const (
	ack settlement = iota
	term
	nak
	nakDelay
)

func (t *Transport) settle(m jetstream.Msg, how settlement, reason string, delay ...time.Duration) {
	var err error
	switch how {
	case ack:
		err = m.Ack()
	case term:
		err = m.TermWithReason(reason)
	case nak:
		err = m.Nak()
	case nakDelay:
		err = m.NakWithDelay(delay[0])
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		t.log.Debug("settle push", "err", err) // unsettled: delivered again after AckWait
	}
}

func (t *Transport) settleAll(ms []jetstream.Msg, how settlement, reason string) {
	for _, m := range ms {
		t.settle(m, how, reason)
	}
}

// keepAlive tells JetStream that the batch is being worked on, every
// third of AckWait, so that a slow store does not get it delivered
// again meanwhile; stop ends it and waits.
func (t *Transport) keepAlive(sess *session, batch []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(t.cfg.AckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-sess.ctx.Done():
				return
			case <-tick.C:
				for _, m := range batch {
					_ = m.InProgress()
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
