package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// The stream of a space holds each change once: one subject per change
// ID, at most one message per subject, and a publish to a subject that
// holds one already is refused (DiscardNewPerSubject). Publishing is
// therefore idempotent, whoever publishes and however often, and the
// stream is a copy of the space a new member can bootstrap from.

// streamConfig is the stream a space needs.
func (t *Transport) streamConfig(sp *space) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 sp.stream,
		Description:          "tributary changes of space " + sp.id.String(),
		Subjects:             []string{sp.changes + "*"},
		Storage:              jetstream.FileStorage,
		Retention:            jetstream.LimitsPolicy,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgsPerSubject:    1,
		MaxAge:               t.cfg.StreamMaxAge,
		MaxBytes:             max(t.cfg.StreamMaxBytes, -1),
		Replicas:             t.cfg.Replicas,
	}
}

// streamNeeds reports whether an existing stream's config lacks what
// correctness needs (a stream made by an older version, or edited by
// hand), and returns it corrected. Limits are left as they are.
func streamNeeds(have, want jetstream.StreamConfig) (jetstream.StreamConfig, bool) {
	fixed := have
	fixed.Subjects = want.Subjects
	fixed.Discard = jetstream.DiscardNew
	fixed.DiscardNewPerSubject = true
	fixed.MaxMsgsPerSubject = 1
	if fixed.MaxBytes == 0 {
		fixed.MaxBytes = -1
	}
	same := slices.Equal(have.Subjects, want.Subjects) && have.Discard == fixed.Discard &&
		have.DiscardNewPerSubject && have.MaxMsgsPerSubject == 1
	return fixed, !same
}

func (t *Transport) ensureStream(ctx context.Context, sp *space) (jetstream.Stream, error) {
	want := t.streamConfig(sp)
	s, err := t.js.Stream(ctx, sp.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		s, err = t.js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = t.js.Stream(ctx, sp.stream) // another peer made it first
		}
		if err != nil {
			return nil, fmt.Errorf("nats transport: create stream %s: %w", sp.stream, err)
		}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("nats transport: stream %s: %w", sp.stream, err)
	}
	have := s.CachedInfo().Config
	if fixed, needed := streamNeeds(have, want); needed {
		t.log.Info("stream updated to one message per change", "stream", sp.stream, "subjects", fixed.Subjects)
		if s, err = t.js.UpdateStream(ctx, fixed); err != nil {
			return nil, fmt.Errorf("nats transport: update stream %s to one message per change: %w", sp.stream, err)
		}
	}
	if have.Replicas != want.Replicas {
		t.log.Warn("the stream keeps the replica count it was made with", "stream", sp.stream, "replicas", have.Replicas, "config_replicas", want.Replicas,
			"to_change", fmt.Sprintf("nats stream edit %s --replicas %d", sp.stream, want.Replicas))
	}
	return s, nil
}

// consumerConfig is a peer's durable consumer: from the start of the
// stream (a new member gets the whole space), explicit acks, redelivered
// without limit (a message is acknowledged only once settled).
func (t *Transport) consumerConfig(sp *space) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:           sp.consumer,
		Description:       "tributary peer " + string(t.id),
		FilterSubject:     sp.changes + "*",
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           t.cfg.AckWait,
		MaxDeliver:        -1,
		MaxAckPending:     t.cfg.MaxAckPending,
		InactiveThreshold: t.cfg.ConsumerInactive,
	}
}

func (t *Transport) ensureConsumer(ctx context.Context, s jetstream.Stream, sp *space) (jetstream.Consumer, error) {
	want := t.consumerConfig(sp)
	c, err := s.Consumer(ctx, sp.consumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		c, err = s.CreateConsumer(ctx, want)
		if errors.Is(err, jetstream.ErrConsumerExists) || errors.Is(err, jetstream.ErrConsumerNameAlreadyInUse) {
			c, err = s.Consumer(ctx, sp.consumer)
		}
		if err != nil {
			return nil, fmt.Errorf("nats transport: create consumer %s: %w", sp.consumer, err)
		}
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("nats transport: consumer %s: %w", sp.consumer, err)
	}
	have := c.CachedInfo().Config
	if have.FilterSubject != want.FilterSubject || have.MaxDeliver != want.MaxDeliver || have.AckWait != want.AckWait ||
		have.MaxAckPending != want.MaxAckPending || have.InactiveThreshold != want.InactiveThreshold || len(have.FilterSubjects) > 0 {
		fixed := have // its position and deliver policy stay
		fixed.FilterSubject, fixed.FilterSubjects = want.FilterSubject, nil
		fixed.MaxDeliver, fixed.AckWait, fixed.MaxAckPending, fixed.InactiveThreshold = want.MaxDeliver, want.AckWait, want.MaxAckPending, want.InactiveThreshold
		if c, err = s.UpdateConsumer(ctx, fixed); err != nil {
			return nil, fmt.Errorf("nats transport: update consumer %s: %w", sp.consumer, err)
		}
	}
	return c, nil
}

// envelopeID is the ID an envelope is published under: its change's, or
// for bytes that are no change the digest of the bytes (the receiving
// node refuses them and bans the sender, as over any transport).
func envelopeID(env []byte) core.ID {
	if s, err := core.DecodeSigned(env); err == nil {
		return s.ID()
	}
	return core.IDOf(env)
}

// Publish implements mesh.Transport: each envelope goes into the space's
// stream as its own message, pipelined, and Publish returns when
// JetStream has stored them all (or refused them as held already). A
// failure also asks stream sync to try again soon: what the stream
// lacks still reaches it. An envelope too large for one message is left
// to reconciliation (the error wraps mesh.ErrTooLarge).
func (t *Transport) Publish(ctx context.Context, id core.ID, envelopes [][]byte) error {
	sp, err := t.active(id)
	if err != nil {
		return err
	}
	if len(envelopes) == 0 {
		return nil
	}
	p := t.publisher(ctx, id)
	for _, env := range envelopes {
		if !p.add(envelopeID(env), env) {
			break
		}
	}
	if err := p.finish(); err != nil {
		if sp != nil {
			t.resync(sp)
		}
		return fmt.Errorf("nats transport: publish to %s: %w", StreamName(id), err)
	}
	if p.tooLarge > 0 {
		return fmt.Errorf("nats transport: %d envelopes exceed max_payload (%d bytes): %w", p.tooLarge, t.maxChunk(), mesh.ErrTooLarge)
	}
	return nil
}

// publisher publishes changes into a stream with at most
// MaxPublishPending awaiting JetStream's acknowledgement.
type publisher struct {
	t                      *Transport
	ctx                    context.Context
	prefix, stream         string
	futs                   []jetstream.PubAckFuture
	sent, stored, tooLarge int
	err                    error
}

func (t *Transport) publisher(ctx context.Context, space core.ID) *publisher {
	return &publisher{t: t, ctx: ctx, prefix: changesPrefix(space), stream: StreamName(space)}
}

// add publishes one change; it reports false once publishing failed.
func (p *publisher) add(id core.ID, env []byte) bool {
	if p.err != nil {
		return false
	}
	if len(env) > p.t.maxChunk() {
		p.tooLarge++
		p.t.stats.tooLarge.Add(1)
		return true
	}
	msg := &natsgo.Msg{Subject: p.prefix + id.String(), Data: env, Header: natsgo.Header{hdrFrom: []string{string(p.t.id)}}}
	fut, err := p.t.js.PublishMsgAsync(msg, jetstream.WithExpectStream(p.stream), jetstream.WithStallWait(p.t.cfg.PublishTimeout))
	if err != nil {
		p.err = err
		return false
	}
	p.futs = append(p.futs, fut)
	if len(p.futs) >= p.t.cfg.MaxPublishPending {
		p.settle(len(p.futs) / 2)
	}
	return p.err == nil
}

// settle waits for the first k acknowledgements.
func (p *publisher) settle(k int) {
	for _, f := range p.futs[:k] {
		select {
		case <-f.Ok():
			p.sent++
		case err := <-f.Err():
			if heldAlready(err) {
				p.stored++
			} else if p.err == nil {
				p.err = err
			}
		case <-p.ctx.Done():
			if p.err == nil {
				p.err = p.ctx.Err()
			}
			// The rest settle by PublishTimeout; nobody waits for them.
			p.futs = nil
			return
		}
	}
	p.futs = slices.Delete(p.futs, 0, k)
}

// finish waits for every acknowledgement and counts.
func (p *publisher) finish() error {
	p.settle(len(p.futs))
	p.t.stats.pushesSent.Add(uint64(p.sent))
	p.t.stats.alreadyStored.Add(uint64(p.stored))
	return p.err
}

// heldAlready reports whether a publish was refused because the stream
// holds that change already.
func heldAlready(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && strings.Contains(api.Description, "maximum messages per subject")
}

// syncLoop runs stream sync at the start of the session, every
// StreamSyncInterval, and soon after a publish failed; a failed pass is
// retried after RetryDelay, doubling up to RetryMaxDelay.
func (t *Transport) syncLoop(sp *space, sess *session) {
	defer sess.loops.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-sess.syncCtx.Done():
			return
		case <-timer.C:
		case <-sess.resync:
		}
		err := t.syncStream(sess.syncCtx, sp, sess)
		next := t.cfg.StreamSyncInterval
		if err != nil {
			if sess.syncCtx.Err() != nil {
				return
			}
			next = t.retryDelay(failures)
			failures++
			t.log.Warn("stream sync failed; retrying", "space", sp.id.Short(), "in", next, "err", err)
		} else {
			failures = 0
		}
		timer.Reset(next)
	}
}

// syncStream publishes the changes the Handler holds (stored, in height
// order, then held for missing parents) that the stream lacks.
func (t *Transport) syncStream(ctx context.Context, sp *space, sess *session) error {
	hist, ok := sp.h.(mesh.History)
	if !ok {
		return nil
	}
	items, err := hist.Changes()
	if err != nil {
		return fmt.Errorf("list our changes: %w", err)
	}
	held := hist.Held()
	if len(items)+len(held) == 0 {
		t.stats.streamSyncs.Add(1)
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, t.cfg.OperationTimeout)
	info, err := sess.stream.Info(ictx, jetstream.WithSubjectFilter(sp.changes+"*"))
	cancel()
	if err != nil {
		return fmt.Errorf("list the stream's changes: %w", err)
	}
	have := make(map[core.ID]struct{}, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		if id, ok := changeOfSubject(sp, subj); ok {
			have[id] = struct{}{}
		}
	}
	p := t.publisher(ctx, sp.id)
	for _, it := range items {
		if _, ok := have[it.ID]; ok {
			continue
		}
		env, err := hist.Envelope(it.ID)
		if err != nil {
			continue // gone since listed
		}
		if !p.add(it.ID, env) {
			break
		}
	}
	for _, env := range held {
		id := envelopeID(env)
		if _, ok := have[id]; ok {
			continue
		}
		if !p.add(id, env) {
			break
		}
	}
	err = p.finish()
	t.stats.uploaded.Add(uint64(p.sent))
	if p.sent > 0 || p.tooLarge > 0 {
		t.log.Info("stream sync: added the changes the stream lacked", "space", sp.id.Short(), "added", p.sent,
			"held_already", p.stored, "too_large", p.tooLarge, "stream_had", len(have), "we_hold", len(items)+len(held))
	}
	if err != nil {
		return fmt.Errorf("publish the changes the stream lacks: %w", err)
	}
	t.stats.streamSyncs.Add(1)
	return nil
}

// changeOfSubject parses the change ID a subject of sp's stream names.
func changeOfSubject(sp *space, subject string) (core.ID, bool) {
	rest, ok := strings.CutPrefix(subject, sp.changes)
	if !ok {
		return core.ID{}, false
	}
	id, err := core.ParseID(rest)
	return id, err == nil
}
