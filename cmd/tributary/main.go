package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
)

// cli holds the global flags.
type cli struct {
	home    string
	json    bool
	space   string
	out     io.Writer
	nowFunc func() time.Time
	// reg is set when the command runs inside `tributary run`: spaces come
	// from the running node instead of being opened (Badger allows one
	// process per store).
	reg *node.Registry
	// bridge is the running node, for commands that need its sinks.
	bridge *bridge
	// args are the command line, forwarded as is to a running node.
	args []string
}

// local commands never go through a running node.
var local = map[string]bool{"run": true, "init": true, "demo": true, "help": true, "completion": true, "tributary": true}

// forwardIfRunning sends the command to the node running on the home, if
// any; errForwarded then means it ran there.
func (c *cli) forwardIfRunning(cmd *cobra.Command) error {
	if c.reg != nil || c.args == nil || local[cmd.Name()] {
		return nil
	}
	ri, ok := runningNode(c.home)
	if !ok {
		return nil
	}
	return forward(cmd.Context(), ri, absArgs(cmd.Name(), c.args), c.out)
}

// open opens a space of h, through the running node when there is one.
func (c *cli) open(ctx context.Context, h *node.Home, id string) (*node.Space, error) {
	if c.reg != nil {
		return c.reg.Open(ctx, id)
	}
	return h.OpenSpace(ctx, id)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(&cli{out: os.Stdout, nowFunc: time.Now, args: os.Args[1:]}).ExecuteContext(ctx)
	stop()
	if err != nil && !errors.Is(err, errForwarded) {
		fmt.Fprintln(os.Stderr, "tributary:", err)
		os.Exit(1)
	}
}

func defaultHome() string {
	if h := os.Getenv("TRIBUTARY_HOME"); h != "" {
		return h
	}
	if u, err := os.UserHomeDir(); err == nil {
		return filepath.Join(u, ".tributary")
	}
	return ".tributary"
}

func newRoot(c *cli) *cobra.Command {
	root := &cobra.Command{
		Use:           "tributary",
		Short:         "A shared, typed database of equal peers, streamed into the databases you run",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.forwardIfRunning(cmd)
		},
	}
	root.PersistentFlags().StringVar(&c.home, "home", defaultHome(), "node home directory (env TRIBUTARY_HOME)")
	root.PersistentFlags().BoolVar(&c.json, "json", false, "machine-readable JSON output")
	root.AddCommand(
		c.initCmd(), c.spaceCmd(), c.putCmd(), c.getCmd(), c.deleteCmd(), c.queryCmd(),
		c.logCmd(), c.conflictsCmd(), c.inviteCmd(), c.joinCmd(), c.memberCmd(),
		c.exportCmd(), c.importCmd(), c.statusCmd(), c.effectsCmd(), c.demoCmd(), c.runCmd(), c.sinksCmd(), c.sinkCmd(),
	)
	return root
}

func (c *cli) now() uint64 { return uint64(c.nowFunc().UnixMilli()) }

// spaceFlag adds --space to a command.
func (c *cli) spaceFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.space, "space", "", "space ID (a unique suffix or the name works; optional when the home holds one space)")
}

// openSpace opens the home and the space named by --space.
func (c *cli) openSpace(ctx context.Context) (*node.Home, *node.Space, error) {
	h, err := node.OpenHome(c.home)
	if err != nil {
		return nil, nil, err
	}
	id, err := h.Resolve(c.space)
	if err != nil {
		return nil, nil, err
	}
	sp, err := c.open(ctx, h, id)
	if err != nil {
		return nil, nil, err
	}
	return h, sp, nil
}

// openSynced is openSpace for commands that need the space's history (a
// joiner has none until its first sync).
func (c *cli) openSynced(ctx context.Context) (*node.Home, *node.Space, error) {
	h, sp, err := c.openSpace(ctx)
	if err != nil {
		return nil, nil, err
	}
	if !sp.Replica.HasGenesis() {
		id := sp.Replica.Space()
		sp.Close()
		return nil, nil, fmt.Errorf("space %s has no history here yet: sync first (tributary run, or import a bundle from a member)", id)
	}
	return h, sp, nil
}

// inSpace makes a command body that runs on the space named by --space
// (synced: one holding its history), closing the space after.
func (c *cli) inSpace(synced bool, fn func(cmd *cobra.Command, args []string, h *node.Home, sp *node.Space) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		open := c.openSpace
		if synced {
			open = c.openSynced
		}
		h, sp, err := open(cmd.Context())
		if err != nil {
			return err
		}
		defer sp.Close()
		return fn(cmd, args, h, sp)
	}
}

// print writes v as indented JSON (with --json, compact).
func (c *cli) print(v any) error {
	var b []byte
	var err error
	if c.json {
		b, err = json.Marshal(v)
	} else {
		b, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.out, string(b))
	return err
}

// say prints a human line, or v as JSON with --json.
func (c *cli) say(v any, format string, args ...any) error {
	if c.json {
		return c.print(v)
	}
	_, err := fmt.Fprintf(c.out, format+"\n", args...)
	return err
}
