package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// Subjects are the NATS permissions a member's user needs in one space:
// subjects it publishes to and subjects it subscribes to. An operator
// grants them (and nothing of other spaces) to keep non-members off a
// space; the package doc explains each.
type Subjects struct {
	Publish   []string
	Subscribe []string
}

// Permissions returns the subjects peer needs in space. With
// makeStream, it may also create the space's stream and correct its
// settings; without, the operator (or another member) must have made it.
func Permissions(space core.ID, peer mesh.PeerID, makeStream bool) Subjects {
	s, stream, consumer := space.String(), StreamName(space), ConsumerName(peer)
	pub := []string{
		"tributary." + s + ".changes.*",
		"tributary." + s + ".presence",
		"tributary." + s + ".sync.*",
		"_INBOX.>",
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.CONSUMER.INFO." + stream + "." + consumer,
		"$JS.API.CONSUMER.CREATE." + stream + "." + consumer + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		"$JS.ACK." + stream + "." + consumer + ".>",
	}
	if makeStream {
		pub = append(pub, "$JS.API.STREAM.CREATE."+stream, "$JS.API.STREAM.UPDATE."+stream)
	}
	return Subjects{
		Publish:   pub,
		Subscribe: []string{"tributary." + s + ".presence", "tributary." + s + ".sync." + string(peer), "_INBOX.>"},
	}
}

// permissions collects the permission violations the server reports on
// our connection (only on one we made: an adopted Conn keeps its own
// error handler, and LastError stands in).
type permissions struct {
	mu       sync.Mutex
	seq      int
	watchers map[int]func(error)
}

func (p *permissions) report(err error) {
	p.mu.Lock()
	fns := make([]func(error), 0, len(p.watchers))
	for _, fn := range p.watchers {
		fns = append(fns, fn)
	}
	p.mu.Unlock()
	for _, fn := range fns {
		fn(err)
	}
}

func (p *permissions) watch(fn func(error)) (cancel func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watchers == nil {
		p.watchers = map[int]func(error){}
	}
	p.seq++
	id := p.seq
	p.watchers[id] = fn
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.watchers, id)
	}
}

// concerns reports whether a permission violation is about a subject sp
// uses.
func concerns(err error, sp *space) bool {
	msg := err.Error()
	return strings.Contains(msg, sp.id.String()) || strings.Contains(msg, sp.stream) ||
		strings.Contains(msg, "$JS.API.INFO") || strings.Contains(msg, "_INBOX")
}

func permissionError(sp *space, err error) error {
	return fmt.Errorf("nats transport: space %s: the NATS user may not use a subject the transport needs (%w); the server's operator must allow the subjects the package doc lists for this space", sp.id, err)
}

// operation is a context for the management calls of starting sp's
// session: OperationTimeout, cut short by a permission violation about
// sp's subjects (which the server reports instead of answering).
func (t *Transport) operation(sp *space) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.OperationTimeout)
	ctx, cancelCause := context.WithCancelCause(ctx)
	unwatch := t.perms.watch(func(err error) {
		if concerns(err, sp) {
			cancelCause(err)
		}
	})
	return ctx, func() {
		unwatch()
		cancelCause(nil)
		cancel()
	}
}

// violation returns the permission violation about sp's subjects that
// cut ctx short or that the connection reported since lastBefore (an
// adopted Conn's error handler is not ours: its LastError stands in).
func (t *Transport) violation(ctx context.Context, sp *space, lastBefore error) error {
	if cause := context.Cause(ctx); errors.Is(cause, natsgo.ErrPermissionViolation) {
		return permissionError(sp, cause)
	}
	if last := t.nc.LastError(); last != nil && last != lastBefore && errors.Is(last, natsgo.ErrPermissionViolation) && concerns(last, sp) {
		return permissionError(sp, last)
	}
	return nil
}

// explain turns a failure to start into one naming a denied permission
// when that is what happened.
func (t *Transport) explain(ctx context.Context, sp *space, lastBefore, err error) error {
	if perr := t.violation(ctx, sp, lastBefore); perr != nil {
		return perr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (no answer within OperationTimeout, %s: is JetStream enabled for this account, and the stream's cluster up?)", err, t.cfg.OperationTimeout)
	}
	return err
}
