package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/mesh"
)

// runOptions are the flags of `tributary run`.
type runOptions struct {
	P2P          []string
	Peers        []string
	NATS         string
	HTTP         string
	MDNS         bool
	SyncInterval time.Duration
	Config       string
	Retention    uint64
	httpSet      bool
}

// applyEnv lets TRIBUTARY_P2P, TRIBUTARY_PEERS (comma-separated),
// TRIBUTARY_NATS and TRIBUTARY_HTTP stand in for flags not given; the
// config file comes last.
func applyEnv(cmd *cobra.Command, o *runOptions) {
	list := func(v string) []string {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	f := cmd.Flags()
	if v := os.Getenv("TRIBUTARY_P2P"); v != "" && !f.Changed("p2p") {
		o.P2P = list(v)
	}
	if v := os.Getenv("TRIBUTARY_PEERS"); v != "" && !f.Changed("peer") {
		o.Peers = list(v)
	}
	if v := os.Getenv("TRIBUTARY_NATS"); v != "" && !f.Changed("nats") {
		o.NATS = v
	}
	if v := os.Getenv("TRIBUTARY_HTTP"); v != "" && !f.Changed("http") {
		o.HTTP = v
	}
}

func orDefault(flag, file []string) []string {
	if len(flag) > 0 {
		return flag
	}
	return file
}

// compactLoop compacts each space's effect log every few minutes, keeping
// the last Retention effects whole and the newest effect of every
// document before them.
func (b *bridge) compactLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.reg.Each(func(id string, sp *node.Space) {
			last := sp.Effects.LastLSN()
			if last <= b.opts.Retention {
				return
			}
			n, err := sp.Effects.Compact(ctx, last-b.opts.Retention)
			if err != nil {
				b.log.Warn("compact effect log", "space", id, "err", err)
			} else if n > 0 {
				b.log.Info("compacted effect log", "space", id, "removed", n)
			}
		})
	}
}

// transport is a mesh transport the running node owns.
type transport struct {
	name string
	tr   mesh.Transport
	stop func() error
	info map[string]any
}

// bridge is a running node: the home's spaces, a mesh node per space and
// transport, and the HTTP API.
type bridge struct {
	c    *cli
	home *node.Home
	reg  *node.Registry
	opts runOptions
	log  *slog.Logger

	transports []transport
	sinks      *sinkSet
	advertised []string // libp2p addresses, for invite codes
	ready      atomic.Bool

	mu    sync.Mutex
	nodes map[string][]*meshNode // by space
	exec  sync.Mutex             // one forwarded command at a time
}

type meshNode struct {
	transport string
	node      *mesh.Node
}

func (c *cli) runCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node: replicate the home's spaces over libp2p and/or NATS and serve the HTTP API",
		Long: `Run the node. It joins the mesh of every space in the home and keeps them in
sync with their peers; while it runs, the other commands on this home go
through it (its HTTP API).

  --p2p MULTIADDR    listen for libp2p peers (repeatable), e.g. /ip4/0.0.0.0/tcp/4001
  --peer MULTIADDR   bootstrap peer (repeatable), e.g. /ip4/10.0.0.5/tcp/4001/p2p/12D3...
  --nats URL         also replicate through a NATS server (JetStream for store-and-forward)
  --http ADDR        HTTP API (default 127.0.0.1:7465; :0 picks a free port)

With no --p2p, --peer or --nats, libp2p listens on /ip4/0.0.0.0/tcp/4001 and
/ip4/0.0.0.0/udp/4001/quic-v1 and dials the addresses from invites.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			applyEnv(cmd, &o)
			o.httpSet = cmd.Flags().Changed("http") || os.Getenv("TRIBUTARY_HTTP") != ""
			return c.run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.P2P, "p2p", nil, "libp2p listen multiaddr (repeatable)")
	f.StringArrayVar(&o.Peers, "peer", nil, "libp2p bootstrap peer multiaddr (repeatable)")
	f.StringVar(&o.NATS, "nats", "", "NATS server URL")
	f.StringVar(&o.HTTP, "http", "127.0.0.1:7465", "HTTP API listen address")
	f.BoolVar(&o.MDNS, "mdns", true, "discover peers on the local network with mDNS")
	f.DurationVar(&o.SyncInterval, "sync-interval", 5*time.Second, "anti-entropy reconciliation period")
	f.StringVar(&o.Config, "config", "", "YAML config file (sinks and the flags above)")
	f.Uint64Var(&o.Retention, "retention", 100000, "effects kept whole before compaction keeps only the newest per document")
	return cmd
}

func (c *cli) run(ctx context.Context, o runOptions) error {
	h, err := node.OpenHome(c.home)
	if err != nil {
		return err
	}
	if ri, ok := runningNode(c.home); ok {
		return fmt.Errorf("a node already runs on this home (pid %d, http %s)", ri.PID, ri.HTTP)
	}
	spaces, err := h.Spaces()
	if err != nil {
		return err
	}
	var sinkCfgs []sinkConfig
	if o.Config != "" {
		cfg, err := loadRunConfig(o.Config)
		if err != nil {
			return err
		}
		o.P2P = orDefault(o.P2P, cfg.P2P)
		o.Peers = orDefault(o.Peers, cfg.Peers)
		if o.NATS == "" {
			o.NATS = cfg.NATS
		}
		if cfg.HTTP != "" && !o.httpSet {
			o.HTTP = cfg.HTTP
		}
		sinkCfgs = cfg.Sinks
	}
	b := &bridge{c: c, home: h, opts: o, nodes: map[string][]*meshNode{},
		log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	b.reg = node.NewRegistry(h)
	b.reg.OnOpen = b.startSpace
	defer b.reg.Close()

	var bootstrap []string
	for _, s := range spaces {
		bootstrap = append(bootstrap, s.Bootstrap...)
	}
	if err := b.startTransports(ctx, bootstrap); err != nil {
		return err
	}
	defer b.stopTransports()
	for _, s := range spaces {
		if _, err := b.reg.Open(ctx, s.Space); err != nil {
			return err
		}
	}
	defer b.stopNodes()
	if err := b.startSinks(ctx, sinkCfgs); err != nil {
		b.stopSinks()
		return err
	}
	defer b.stopSinks()
	go b.compactLoop(ctx)

	ln, err := net.Listen("tcp", o.HTTP)
	if err != nil {
		return fmt.Errorf("http %s: %w", o.HTTP, err)
	}
	srv := &http.Server{Handler: b.routes(), ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-srvDone
	}()

	info, _ := json.Marshal(runInfo{PID: os.Getpid(), HTTP: ln.Addr().String()})
	runPath := filepath.Join(c.home, runFile)
	if err := os.WriteFile(runPath, info, 0o600); err != nil {
		return err
	}
	defer os.Remove(runPath)

	out := map[string]any{"http": ln.Addr().String(), "spaces": len(spaces), "author": h.Key.Public().String()}
	for _, t := range b.transports {
		out[t.name] = t.info
	}
	b.ready.Store(true)
	if err := c.say(out, "running: http %s, %d spaces, author %s", ln.Addr(), len(spaces), h.Key.Public()); err != nil {
		return err
	}
	for _, t := range b.transports {
		if !c.json {
			fmt.Fprintf(c.out, "  %s: %v\n", t.name, t.info)
		}
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-srvDone:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http: %w", err)
	}
}

// startSpace runs a mesh node per transport for a newly opened space.
func (b *bridge) startSpace(ctx context.Context, sp *node.Space) error {
	var started []*meshNode
	for _, t := range b.transports {
		n := mesh.NewNode(sp.Replica, t.tr, mesh.Config{SyncInterval: b.opts.SyncInterval, Logger: b.log.With("transport", t.name)})
		if err := n.Start(context.WithoutCancel(ctx)); err != nil {
			for _, s := range started {
				s.node.Close()
			}
			return err
		}
		started = append(started, &meshNode{transport: t.name, node: n})
	}
	b.mu.Lock()
	b.nodes[sp.Replica.Space().String()] = started
	b.mu.Unlock()
	return nil
}

func (b *bridge) stopNodes() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, ns := range b.nodes {
		for _, n := range ns {
			n.node.Close()
		}
		delete(b.nodes, id)
	}
}

func (b *bridge) stopTransports() {
	for _, t := range b.transports {
		if err := t.stop(); err != nil {
			b.log.Warn("stop transport", "transport", t.name, "err", err)
		}
	}
}

// execCLI runs a forwarded command against the open spaces.
func (b *bridge) execCLI(ctx context.Context, args []string) (string, error) {
	b.exec.Lock()
	defer b.exec.Unlock()
	var buf bytes.Buffer
	c := &cli{out: &buf, nowFunc: time.Now, reg: b.reg, bridge: b}
	root := newRoot(c)
	root.SetArgs(append(append([]string{}, args...), "--home", b.c.home))
	root.SetOut(&buf)
	root.SetErr(&buf)
	err := root.ExecuteContext(ctx)
	return buf.String(), err
}
