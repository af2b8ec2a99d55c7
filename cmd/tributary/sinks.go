package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/adapters/memory"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
)

// sinkOpeners build a sink of each type from its config; the database
// adapters register themselves in sinks_*.go.
var sinkOpeners = map[string]func(ctx context.Context, sc sinkConfig) (checkpoint.Sink, error){
	"memory": func(_ context.Context, sc sinkConfig) (checkpoint.Sink, error) {
		return memory.New(sc.Name, memory.Options{}), nil
	},
}

// resetter is a sink whose checkpoint can be cleared (a backfill follows).
type resetter interface {
	Reset(ctx context.Context) error
}

// runningSink is one configured sink fed by its runner.
type runningSink struct {
	cfg    sinkConfig
	space  string
	sp     *node.Space
	sink   checkpoint.Sink
	runner *checkpoint.Runner
}

type sinkSet struct {
	mu    sync.Mutex
	sinks map[string]*runningSink
}

// startSinks opens and starts every configured sink.
func (b *bridge) startSinks(ctx context.Context, cfgs []sinkConfig) error {
	b.sinks = &sinkSet{sinks: map[string]*runningSink{}}
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
		sink, err := open(ctx, sc)
		if err != nil {
			return fmt.Errorf("sink %s (%s): %w", sc.Name, sc.Type, err)
		}
		rs := &runningSink{cfg: sc, space: id, sp: sp, sink: sink}
		if err := b.startRunner(ctx, rs); err != nil {
			sink.Close(ctx)
			return err
		}
		b.sinks.mu.Lock()
		b.sinks.sinks[sc.Name] = rs
		b.sinks.mu.Unlock()
	}
	return nil
}

func (b *bridge) startRunner(ctx context.Context, rs *runningSink) error {
	cfg := checkpoint.DefaultConfig()
	if rs.cfg.BatchSize > 0 {
		cfg.BatchSize = rs.cfg.BatchSize
	}
	cfg.Logger = b.log.With("sink", rs.cfg.Name)
	r, err := checkpoint.New(cfg, rs.sp.Effects, rs.sink, rs.sp, rs.sp.Parking())
	if err != nil {
		return fmt.Errorf("sink %s: %w", rs.cfg.Name, err)
	}
	rs.runner = r
	r.Start(context.WithoutCancel(ctx))
	return nil
}

func (b *bridge) stopSinks() {
	if b.sinks == nil {
		return
	}
	b.sinks.mu.Lock()
	defer b.sinks.mu.Unlock()
	for name, rs := range b.sinks.sinks {
		rs.runner.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs.sink.Close(ctx)
		cancel()
		delete(b.sinks.sinks, name)
	}
}

// Sinks implements service.Node: each sink's checkpoint, lag and parked
// effects.
func (b *bridge) Sinks(ctx context.Context) []service.SinkStatus {
	if b.sinks == nil {
		return nil
	}
	b.sinks.mu.Lock()
	defer b.sinks.mu.Unlock()
	var out []service.SinkStatus
	for _, rs := range b.sinks.sinks {
		st := service.SinkStatus{Name: rs.cfg.Name, Type: rs.cfg.Type, Space: rs.space, Status: rs.runner.Status()}
		if parked, err := rs.sp.Parking().List(ctx, rs.cfg.Name); err == nil {
			st.Parked = len(parked)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ResetSink implements service.Node: it clears a sink's checkpoint and
// restarts its runner, which backfills from the (compacted) effect log
// while new changes flow.
func (b *bridge) ResetSink(ctx context.Context, name string) error {
	if b.sinks == nil {
		return fmt.Errorf("no sink %q: this node runs no sinks", name)
	}
	b.sinks.mu.Lock()
	defer b.sinks.mu.Unlock()
	rs, ok := b.sinks.sinks[name]
	if !ok {
		return fmt.Errorf("no sink %q", name)
	}
	res, ok := rs.sink.(resetter)
	if !ok {
		return fmt.Errorf("sink %s (%s) cannot be reset", name, rs.cfg.Type)
	}
	rs.runner.Close()
	resetErr := res.Reset(ctx)
	// The runner restarts either way: a failed reset leaves the old
	// checkpoint, and the sink must keep running from it.
	if err := b.startRunner(ctx, rs); err != nil {
		return errors.Join(resetErr, err)
	}
	if resetErr != nil {
		return fmt.Errorf("reset sink %s: %w", name, resetErr)
	}
	return nil
}

func (c *cli) sinksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sinks",
		Short: "Show each sink's checkpoint, lag and parked effects (through the running node)",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			sts, err := svc.Sinks(cmd.Context())
			if err != nil {
				return err
			}
			if c.json {
				return c.print(sts)
			}
			for _, s := range sts {
				state := "caught up"
				if s.Lag > 0 {
					state = fmt.Sprintf("lag %d", s.Lag)
				}
				if s.Retrying {
					state += ", retrying: " + s.LastError
				}
				fmt.Fprintf(c.out, "%s\t%s\tcheckpoint %d of %d\t%s\tparked %d\n", s.Name, s.Type, s.Checkpoint, s.LastLSN, state, s.Parked)
			}
			return nil
		}),
	}
	return cmd
}

func (c *cli) sinkCmd() *cobra.Command {
	reset := &cobra.Command{
		Use:   "reset NAME",
		Short: "Clear a sink's checkpoint: it refills from the effect log while new changes keep flowing",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			if err := svc.ResetSink(cmd.Context(), args[0]); err != nil {
				return err
			}
			return c.say(map[string]string{"reset": args[0]}, "sink %s reset: backfilling (see `tributary sinks`)", args[0])
		}),
	}
	sink := &cobra.Command{Use: "sink", Short: "Manage one sink (through the running node)"}
	sink.AddCommand(reset)
	return sink
}
