package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/adapters/memory"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
)

// sinkOpener checks a sink's config and returns how to connect it, for
// the sink's claim. connect is called until it succeeds, with backoff: a
// database that is down delays its sink, not the node.
type sinkOpener func(sc sinkConfig, claim checkpoint.Claim) (connect func(ctx context.Context) (checkpoint.Sink, error), err error)

// sinkOpeners open a sink of each type; the database adapters register
// theirs in sinks_*.go.
var sinkOpeners = map[string]sinkOpener{
	"memory": func(sc sinkConfig, _ checkpoint.Claim) (func(context.Context) (checkpoint.Sink, error), error) {
		if err := knownOptions(sc); err != nil {
			return nil, err
		}
		if len(sc.Tables) > 0 {
			return nil, errors.New("tables: a memory sink keeps collections under their names")
		}
		return func(context.Context) (checkpoint.Sink, error) { return memory.New(sc.Name, memory.Options{}), nil }, nil
	},
}

// knownOptions refuses options a sink type does not take.
func knownOptions(sc sinkConfig, known ...string) error {
	for k := range sc.Options {
		ok := false
		for _, kn := range known {
			ok = ok || k == kn
		}
		if !ok {
			return fmt.Errorf("unknown option %q for a %s sink (known: %v)", k, sc.Type, known)
		}
	}
	return nil
}

// resetter is a sink whose checkpoint can be cleared (a backfill follows).
type resetter interface {
	Reset(ctx context.Context) error
}

// Sink states, as `tributary sinks` shows them.
const (
	sinkConnecting = "connecting" // the first attempt to open its target is under way
	sinkFailing    = "failing"    // the last attempt failed; retried with backoff
	sinkRefused    = "refused"    // another claim owns the target: not retried
	sinkRunning    = "running"
	sinkStopped    = "stopped" // the runner stopped for good (fenced out)
)

// Backoff between attempts to open a sink's target, and the bound of one
// attempt.
const (
	sinkRetryMin       = 500 * time.Millisecond
	sinkRetryMax       = 30 * time.Second
	sinkConnectTimeout = 30 * time.Second
)

// runningSink is one configured sink: connected in the background, then
// fed by its runner.
type runningSink struct {
	cfg     sinkConfig
	space   string
	sp      *node.Space
	claim   checkpoint.Claim
	connect func(ctx context.Context) (checkpoint.Sink, error)

	mu       sync.Mutex
	state    string
	err      string // why it is failing or refused
	attempts int
	retryAt  time.Time
	sink     checkpoint.Sink
	runner   *checkpoint.Runner
}

type sinkSet struct {
	ops    sync.Mutex // one reset or retry at a time
	mu     sync.Mutex // guards sinks
	sinks  map[string]*runningSink
	cancel context.CancelFunc
	wg     sync.WaitGroup // connecting goroutines
}

// startSinks checks every configured sink and starts connecting them in
// the background: a config error stops the node, a target that cannot be
// reached only its sink (see connectSink).
func (b *bridge) startSinks(ctx context.Context, cfgs []sinkConfig) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.sinks = &sinkSet{sinks: map[string]*runningSink{}, cancel: cancel}
	nodeKey := b.home.Key.Public().String()
	var all []*runningSink
	for _, sc := range cfgs {
		id, err := b.home.Resolve(sc.Space)
		if err != nil {
			return fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		sp, err := b.reg.Open(ctx, id)
		if err != nil {
			return fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		open, ok := sinkOpeners[sc.Type]
		if !ok {
			return fmt.Errorf("sink %s: type %q is not built into this binary", sc.Name, sc.Type)
		}
		claim := checkpoint.Claim{Space: id, Node: nodeKey, Sink: sc.Name}
		connect, err := open(sc, claim)
		if err != nil {
			return fmt.Errorf("sink %s (%s): %w", sc.Name, sc.Type, err)
		}
		all = append(all, &runningSink{cfg: sc, space: id, sp: sp, claim: claim, connect: connect, state: sinkConnecting})
	}
	b.sinks.mu.Lock()
	for _, rs := range all {
		b.sinks.sinks[rs.cfg.Name] = rs
		b.sinks.wg.Go(func() { b.connectSink(ctx, rs) })
	}
	b.sinks.mu.Unlock()
	return nil
}

// connectSink opens rs's target, retrying with backoff until it succeeds
// or ctx ends, and starts its runner. A target another claim owns is not
// retried: the sink stays refused until the config changes.
func (b *bridge) connectSink(ctx context.Context, rs *runningSink) {
	log := b.log.With("sink", rs.cfg.Name, "type", rs.cfg.Type)
	wait := sinkRetryMin
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, sinkConnectTimeout)
		sink, err := rs.connect(cctx)
		cancel()
		if err == nil {
			rs.mu.Lock()
			rs.sink = sink
			err = b.startRunner(ctx, rs)
			rs.mu.Unlock()
			if err != nil { // a bad batch size: the config check lets none through
				log.Error("sink not started", "err", err)
				return
			}
			log.Info("sink connected", "attempts", rs.attempts+1)
			return
		}
		if ctx.Err() != nil {
			return
		}
		rs.mu.Lock()
		rs.attempts++
		rs.err = err.Error()
		if errors.Is(err, checkpoint.ErrClaimed) {
			rs.state = sinkRefused
			rs.mu.Unlock()
			log.Error("sink refused: its target belongs to another claim", "err", err)
			return
		}
		rs.state = sinkFailing
		rs.retryAt = time.Now().Add(wait)
		attempts := rs.attempts
		rs.mu.Unlock()
		log.Warn("sink cannot open its target; retrying", "err", err, "attempt", attempts, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, sinkRetryMax)
	}
}

// startRunner starts a new runner over rs.sink; rs.mu is held.
func (b *bridge) startRunner(ctx context.Context, rs *runningSink) error {
	cfg := b.cfg.runnerConfig(rs.cfg.BatchSize)
	cfg.Logger = b.log // the runner adds the sink's name
	if b.metrics != nil {
		cfg.OnBatch = b.metrics.onBatch(rs.cfg.Name)
	}
	r, err := checkpoint.New(cfg, rs.sp.Effects, rs.sink, rs.sp, rs.sp.Parking())
	if err != nil {
		return fmt.Errorf("sink %s: %w", rs.cfg.Name, err)
	}
	rs.runner, rs.state, rs.err, rs.retryAt = r, sinkRunning, "", time.Time{}
	r.Start(context.WithoutCancel(ctx))
	return nil
}

func (b *bridge) stopSinks() {
	if b.sinks == nil {
		return
	}
	b.sinks.cancel()
	b.sinks.wg.Wait()
	b.sinks.mu.Lock()
	defer b.sinks.mu.Unlock()
	for name, rs := range b.sinks.sinks {
		rs.mu.Lock()
		if rs.runner != nil {
			rs.runner.Close()
		}
		if rs.sink != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			rs.sink.Close(ctx)
			cancel()
		}
		rs.mu.Unlock()
		delete(b.sinks.sinks, name)
	}
}

// status is the sink's line of `tributary sinks`.
func (rs *runningSink) status(ctx context.Context) service.SinkStatus {
	rs.mu.Lock()
	st := service.SinkStatus{Name: rs.cfg.Name, Type: rs.cfg.Type, Space: rs.space, State: rs.state, Error: rs.err, Attempts: rs.attempts, RetryAt: rs.retryAt}
	runner := rs.runner
	rs.mu.Unlock()
	if runner != nil {
		st.Status = runner.Status()
		if st.Fatal != "" {
			st.State, st.Error = sinkStopped, st.Fatal
		}
	} else {
		st.Status = checkpoint.Status{Sink: rs.cfg.Name, LastLSN: rs.sp.Effects.LastLSN()}
	}
	if parked, err := rs.sp.Parking().List(ctx, rs.cfg.Name); err == nil {
		st.Parked = len(parked)
	}
	return st
}

// Sinks implements service.Node: each sink's state, checkpoint, lag and
// parked effects.
func (b *bridge) Sinks(ctx context.Context) []service.SinkStatus {
	if b.sinks == nil {
		return nil
	}
	b.sinks.mu.Lock()
	all := make([]*runningSink, 0, len(b.sinks.sinks))
	for _, rs := range b.sinks.sinks {
		all = append(all, rs)
	}
	b.sinks.mu.Unlock()
	out := make([]service.SinkStatus, 0, len(all))
	for _, rs := range all {
		out = append(out, rs.status(ctx))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sink finds a sink by name.
func (b *bridge) sink(name string) (*runningSink, error) {
	if b.sinks == nil {
		return nil, fmt.Errorf("no sink %q: this node runs no sinks", name)
	}
	b.sinks.mu.Lock()
	rs, ok := b.sinks.sinks[name]
	b.sinks.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no sink %q", name)
	}
	return rs, nil
}

// running returns rs's sink and runner, or why it has none.
func (rs *runningSink) running() (checkpoint.Sink, *checkpoint.Runner, error) {
	if rs.runner == nil {
		msg := fmt.Sprintf("sink %s is %s", rs.cfg.Name, rs.state)
		if rs.err != "" {
			msg += ": " + rs.err
		}
		return nil, nil, errors.New(msg)
	}
	return rs.sink, rs.runner, nil
}

// ResetSink implements service.Node: it clears a sink's checkpoint and
// its parked effects and restarts its runner, which backfills from the
// (compacted) effect log while new changes flow.
func (b *bridge) ResetSink(ctx context.Context, name string) error {
	if b.sinks == nil {
		return fmt.Errorf("no sink %q: this node runs no sinks", name)
	}
	b.sinks.ops.Lock()
	defer b.sinks.ops.Unlock()
	rs, err := b.sink(name)
	if err != nil {
		return err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	sink, runner, err := rs.running()
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	res, ok := sink.(resetter)
	if !ok {
		return fmt.Errorf("sink %s (%s) cannot be reset", name, rs.cfg.Type)
	}
	runner.Close()
	resetErr := res.Reset(ctx)
	if resetErr == nil {
		// What was parked is replayed with everything else.
		resetErr = rs.sp.Parking().Clear(ctx, name)
	}
	// The runner restarts either way: a failed reset leaves the old
	// checkpoint, and the sink must keep running from it.
	if err := b.startRunner(ctx, rs); err != nil {
		return errors.Join(resetErr, err)
	}
	if resetErr != nil {
		return fmt.Errorf("reset sink %s: %w", name, resetErr)
	}
	b.log.Info("sink reset: backfilling", "sink", name)
	return nil
}

// ParkedEffects implements service.Node: the effects the sink refused,
// oldest first.
func (b *bridge) ParkedEffects(ctx context.Context, name string) ([]checkpoint.Parked, error) {
	if b.sinks == nil {
		return nil, fmt.Errorf("no sink %q: this node runs no sinks", name)
	}
	rs, err := b.sink(name)
	if err != nil {
		return nil, err
	}
	out, err := rs.sp.Parking().List(ctx, name)
	if out == nil && err == nil {
		out = []checkpoint.Parked{}
	}
	return out, err
}

// RetrySink implements service.Node: the sink's runner offers its parked
// effects again (checkpoint.Runner.Retry).
func (b *bridge) RetrySink(ctx context.Context, name string) ([]checkpoint.Retried, error) {
	if b.sinks == nil {
		return nil, fmt.Errorf("no sink %q: this node runs no sinks", name)
	}
	b.sinks.ops.Lock()
	defer b.sinks.ops.Unlock()
	rs, err := b.sink(name)
	if err != nil {
		return nil, err
	}
	rs.mu.Lock()
	_, runner, err := rs.running()
	rs.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("retry: %w", err)
	}
	out, err := runner.Retry(ctx)
	if out == nil && err == nil {
		out = []checkpoint.Retried{}
	}
	return out, err
}

// stateText is a sink's state in words.
func stateText(s service.SinkStatus, now time.Time) string {
	switch s.State {
	case sinkRunning:
		text := "running, caught up"
		if s.Lag > 0 {
			text = fmt.Sprintf("running, lag %d", s.Lag)
		}
		if s.Retrying {
			text += ", retrying: " + s.LastError
		}
		return text
	case sinkFailing:
		text := fmt.Sprintf("failing: %s (attempt %d", s.Error, s.Attempts)
		if d := s.RetryAt.Sub(now); d > 0 {
			text += fmt.Sprintf(", next in %s", d.Round(100*time.Millisecond))
		}
		return text + ")"
	case sinkRefused, sinkStopped:
		return s.State + ": " + s.Error
	}
	return s.State
}

func (c *cli) sinksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sinks",
		Short: "Show each sink's state, checkpoint, lag and parked effects (through the running node)",
		Long: `Show each sink of the running node: its state (connecting; failing, with the
last error, while its database cannot be reached, retried with backoff;
refused, when another space, node or sink owns its target; running, with its
lag; stopped, when a newer instance of the sink fenced it out), its
checkpoint against the effect log, and how many effects it parked.`,
		Args: cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			sts, err := svc.Sinks(cmd.Context())
			if err != nil {
				return err
			}
			if c.json {
				return c.print(sts)
			}
			now := time.Now()
			for _, s := range sts {
				progress := fmt.Sprintf("checkpoint %d of %d", s.Checkpoint, s.LastLSN)
				if s.State != sinkRunning && s.State != sinkStopped {
					progress = fmt.Sprintf("effect log at %d", s.LastLSN)
				}
				fmt.Fprintf(c.out, "%s\t%s\t%s\t%s\tparked %d\n", s.Name, s.Type, stateText(s, now), progress, s.Parked)
			}
			return nil
		}),
	}
	return cmd
}

func (c *cli) sinkCmd() *cobra.Command {
	reset := &cobra.Command{
		Use:   "reset NAME",
		Short: "Clear a sink's checkpoint and parked effects: it refills from the effect log while new changes keep flowing",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			if err := svc.ResetSink(cmd.Context(), args[0]); err != nil {
				return err
			}
			return c.say(map[string]string{"reset": args[0]}, "sink %s reset: backfilling (see `tributary sinks`)", args[0])
		}),
	}
	parked := &cobra.Command{
		Use:   "parked NAME",
		Short: "List the effects a sink refused: LSN, collection, document and reason",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			ps, err := svc.ParkedEffects(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json {
				return c.print(ps)
			}
			if len(ps) == 0 {
				fmt.Fprintf(c.out, "sink %s has no parked effects\n", args[0])
			}
			for _, p := range ps {
				fmt.Fprintf(c.out, "%d\t%s\t%s\t%s\t%s\n", p.Effect.LSN, p.Effect.Collection, p.Effect.DocID, p.ParkedAt.Format(time.RFC3339), oneLine(p.Reason))
			}
			return nil
		}),
	}
	retry := &cobra.Command{
		Use:   "retry NAME",
		Short: "Apply a sink's parked effects again (the documents' current state); those that apply leave the list",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			out, err := svc.RetrySink(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json {
				return c.print(out)
			}
			counts := map[string]int{}
			for _, r := range out {
				counts[r.Outcome]++
				line := fmt.Sprintf("%d\t%s\t%s\t%s", r.Effect.LSN, r.Effect.Collection, r.Effect.DocID, r.Outcome)
				switch r.Outcome {
				case checkpoint.RetrySuperseded:
					line += fmt.Sprintf(" by LSN %d", r.By)
				case checkpoint.RetryRefused:
					line += ": " + oneLine(r.Why)
				}
				fmt.Fprintln(c.out, line)
			}
			fmt.Fprintf(c.out, "sink %s: %d applied, %d superseded, %d still refused, %d not reached yet\n", args[0],
				counts[checkpoint.RetryApplied], counts[checkpoint.RetrySuperseded], counts[checkpoint.RetryRefused], counts[checkpoint.RetryWaiting])
			return nil
		}),
	}
	sink := &cobra.Command{Use: "sink", Short: "Manage one sink (through the running node)"}
	sink.AddCommand(reset, parked, retry)
	return sink
}

// oneLine keeps a reason on its line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
