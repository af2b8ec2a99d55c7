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
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/api"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	meshlibp2p "github.com/tributary-sync/tributary/mesh/libp2p"
)

// cli holds the global flags.
type cli struct {
	home    string
	json    bool
	space   string
	out     io.Writer
	errOut  io.Writer
	nowFunc func() time.Time
	// wait bounds how long a command waits for a home another process
	// holds (a node starting, another command).
	wait time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(&cli{out: os.Stdout, errOut: os.Stderr, nowFunc: time.Now, wait: 2 * time.Minute}).ExecuteContext(ctx)
	stop()
	if err != nil {
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
	}
	root.PersistentFlags().StringVar(&c.home, "home", defaultHome(), "node home directory (env TRIBUTARY_HOME)")
	root.PersistentFlags().BoolVar(&c.json, "json", false, "machine-readable JSON output")
	root.AddCommand(
		c.initCmd(), c.spaceCmd(), c.putCmd(), c.getCmd(), c.deleteCmd(), c.queryCmd(),
		c.logCmd(), c.conflictsCmd(), c.violationsCmd(), c.inviteCmd(), c.joinCmd(), c.memberCmd(),
		c.exportCmd(), c.importCmd(), c.statusCmd(), c.effectsCmd(), c.demoCmd(), c.runCmd(), c.sinksCmd(), c.sinkCmd(),
		c.tokenCmd(), c.configCmd(), c.loadCmd(), c.benchCmd(), c.versionCmd(),
	)
	return root
}

func (c *cli) now() uint64 { return uint64(c.nowFunc().UnixMilli()) }

// spaceFlag adds --space to a command.
func (c *cli) spaceFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.space, "space", "", "space ID (a unique suffix or the name works; optional when the home holds one space)")
}

// service returns what a command talks to: the node running on the home
// (through its API), or, when none runs, the home itself, locked for the
// command's duration so a node cannot start under it. A command that
// meets a starting node (or another command) waits for it. done releases
// what was taken.
func (c *cli) service(ctx context.Context) (svc service.Service, done func(), err error) {
	h, err := node.OpenHome(c.home)
	if err != nil {
		return nil, nil, err
	}
	return c.serviceFor(ctx, h)
}

func (c *cli) serviceFor(ctx context.Context, h *node.Home) (service.Service, func(), error) {
	deadline := time.Now().Add(c.wait)
	told := false
	for {
		lock, err := node.TryLock(h.Dir)
		if err == nil {
			node.RemoveRunInfo(h.Dir) // whoever wrote it is gone
			return &service.Local{Home: h, Open: h.OpenSpace, Now: c.nowFunc, PresentProof: presentProof, LastAddrs: lastAddrs(h)}, func() { lock.Unlock() }, nil
		}
		if !errors.Is(err, node.ErrHomeBusy) {
			return nil, nil, err
		}
		if ri, ok := node.ReadRunInfo(h.Dir); ok {
			cl, err := api.ClientFor(h, ri)
			if err != nil {
				return nil, nil, err
			}
			return cl, func() {}, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%w: %s (a node is starting, or another command runs) for %s", node.ErrHomeBusy, h.Dir, c.wait)
		}
		if !told && c.errOut != nil {
			fmt.Fprintln(c.errOut, "waiting: another process holds this home (a node starting, or another command)")
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// withService runs fn with the command's service.
func (c *cli) withService(fn func(cmd *cobra.Command, args []string, svc service.Service) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		svc, done, err := c.service(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		return fn(cmd, args, svc)
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

// warn prints a warning on stderr.
func (c *cli) warn(format string, args ...any) {
	if c.errOut != nil {
		fmt.Fprintf(c.errOut, "warning: "+format+"\n", args...)
	}
}

// presentProof shows a joiner's use of its invite to the code's peers over
// libp2p, for at most a few seconds: join then says at once when the code
// is used, expired or revoked.
func presentProof(ctx context.Context, key core.PrivateKey, space core.ID, proof []byte, addrs []string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return meshlibp2p.PresentProof(ctx, key, space, proof, addrs)
}

// lastAddrs gives the node's own addresses as its last run saved them
// (its signed record among the members' addresses), with /p2p/.
func lastAddrs(h *node.Home) func(space core.ID) []string {
	return func(space core.ID) []string {
		recs, err := (&mesh.AddrFile{Path: h.AddrsFile(space.String())}).Load()
		if err != nil {
			return nil
		}
		for _, r := range recs {
			if r.Peer == h.Key.Public() && r.Verify(space) == nil {
				return meshlibp2p.WithPeer(r.Peer, r.Addrs)
			}
		}
		return nil
	}
}

// version is set at build time (-ldflags "-X main.version=v1.2.3");
// otherwise the module version and VCS revision of the build are shown.
var version = ""

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{"version": version, "go": runtime.Version()}
			if bi, ok := debug.ReadBuildInfo(); ok {
				if v["version"] == "" {
					v["version"] = bi.Main.Version
				}
				for _, s := range bi.Settings {
					switch s.Key {
					case "vcs.revision":
						v["commit"] = s.Value
					case "vcs.time":
						v["commit_time"] = s.Value
					case "vcs.modified":
						v["modified"] = s.Value
					}
				}
			}
			if v["commit"] == "" {
				return c.say(v, "tributary %s (%s)", v["version"], v["go"])
			}
			return c.say(v, "tributary %s (commit %s, %s)", v["version"], v["commit"], v["go"])
		},
	}
}
