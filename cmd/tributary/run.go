package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/api"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

// runOptions are the flags of `tributary run`.
type runOptions struct {
	P2P          []string
	Peers        []string
	NATS         string
	HTTP         string
	HTTPNames    []string
	TLSCert      string
	TLSKey       string
	MDNS         bool
	SyncInterval time.Duration
	Config       string
	Retention    uint64
	DiskReserve  string
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
// transport, the sinks, and the HTTP API. It is the service.Node of the
// service the API serves.
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
	token      atomic.Pointer[string]

	mu    sync.Mutex
	nodes map[string][]*meshNode // by space

	bgCtx  context.Context // the node's background work (acknowledgers)
	bgStop context.CancelFunc
	bg     sync.WaitGroup
}

var _ service.Node = (*bridge)(nil)

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
through it (its HTTP API, authenticated with the token in the home).

  --p2p MULTIADDR    listen for libp2p peers (repeatable), e.g. /ip4/0.0.0.0/tcp/4001
  --peer MULTIADDR   bootstrap peer (repeatable), e.g. /ip4/10.0.0.5/tcp/4001/p2p/12D3...
  --nats URL         also replicate through a NATS server (JetStream for store-and-forward)
  --http ADDR        HTTP API (default 127.0.0.1:7465; :0 picks a free port)
  --http-name NAME   a further host name clients use to reach the API (repeatable)
  --tls-cert/--tls-key  serve the API over HTTPS

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
	f.StringArrayVar(&o.HTTPNames, "http-name", nil, "further host name (or host:port) the API answers to (repeatable)")
	f.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate file for the HTTP API")
	f.StringVar(&o.TLSKey, "tls-key", "", "TLS key file for the HTTP API")
	f.BoolVar(&o.MDNS, "mdns", true, "discover peers on the local network with mDNS")
	f.DurationVar(&o.SyncInterval, "sync-interval", 5*time.Second, "anti-entropy reconciliation period")
	f.StringVar(&o.Config, "config", "", "YAML config file (sinks and the flags above)")
	f.Uint64Var(&o.Retention, "retention", 100000, "effects kept whole before compaction keeps only the newest per document")
	f.StringVar(&o.DiskReserve, "disk-reserve", "", "free space writes keep on the home's filesystem, e.g. 512MiB (default 128MiB, env TRIBUTARY_DISK_RESERVE; 0 turns the check off)")
	return cmd
}

// lockForRun takes the home's lock, waiting while another command holds
// it, and refusing when a node already runs there.
func (c *cli) lockForRun(ctx context.Context, h *node.Home) (*node.Lock, error) {
	deadline := time.Now().Add(c.wait)
	for {
		lock, err := node.TryLock(h.Dir)
		if err == nil {
			node.RemoveRunInfo(h.Dir)
			return lock, nil
		}
		if !errors.Is(err, node.ErrHomeBusy) {
			return nil, err
		}
		if ri, ok := node.ReadRunInfo(h.Dir); ok {
			return nil, fmt.Errorf("a node already runs on this home (pid %d, http %s)", ri.PID, ri.HTTP)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %s", node.ErrHomeBusy, h.Dir)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *cli) run(ctx context.Context, o runOptions) error {
	h, err := node.OpenHome(c.home)
	if err != nil {
		return err
	}
	if o.DiskReserve != "" {
		if h.DiskReserve, err = node.ParseSize(o.DiskReserve); err != nil {
			return fmt.Errorf("--disk-reserve: %w", err)
		}
	}
	lock, err := c.lockForRun(ctx, h)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	token, err := h.EnsureToken()
	if err != nil {
		return err
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
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	b := &bridge{c: c, home: h, opts: o, nodes: map[string][]*meshNode{},
		log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	b.token.Store(&token)
	b.bgCtx, b.bgStop = context.WithCancel(context.WithoutCancel(ctx))
	defer func() { b.bgStop(); b.bg.Wait() }()
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
	addr := ln.Addr().String()
	if host, _, _ := net.SplitHostPort(addr); !isLoopback(host) && o.TLSCert == "" {
		b.log.Warn("the HTTP API listens on a non-loopback address without TLS: its token and data cross the network in clear; pass --tls-cert/--tls-key or keep it on 127.0.0.1", "http", addr)
	}
	svc := &service.Local{Home: h, Open: b.reg.Open, Node: b, Now: time.Now}
	handler := api.NewHandler(svc, api.Config{
		Token:  func() string { return *b.token.Load() },
		Addr:   addr,
		Names:  o.HTTPNames,
		Logger: b.log.With("component", "api"),
		Extra: []api.Route{
			{Pattern: "GET /readyz", Handler: http.HandlerFunc(b.handleReady), Public: true},
			{Pattern: "GET /metrics", Handler: http.HandlerFunc(b.handleMetrics)},
			{Pattern: "GET /v1/status", Handler: http.HandlerFunc(b.handleStatus)},
		},
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan error, 1)
	go func() {
		if o.TLSCert != "" {
			srvDone <- srv.ServeTLS(ln, o.TLSCert, o.TLSKey)
		} else {
			srvDone <- srv.Serve(ln)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-srvDone
	}()

	if err := node.WriteRunInfo(h.Dir, node.RunInfo{PID: os.Getpid(), HTTP: addr, TLS: o.TLSCert != "", Cert: absPath(o.TLSCert)}); err != nil {
		return err
	}
	defer node.RemoveRunInfo(h.Dir)

	out := map[string]any{"http": addr, "spaces": len(spaces), "author": h.Key.Public().String()}
	for _, t := range b.transports {
		out[t.name] = t.info
	}
	b.ready.Store(true)
	if err := c.say(out, "running: http %s, %d spaces, author %s", addr, len(spaces), h.Key.Public()); err != nil {
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

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
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
	b.startAcknowledger(sp)
	return nil
}

// startAcknowledger makes this node, when its key is an admin's,
// acknowledge every use of an invite it receives that stands uncontested
// (replica.Acknowledge): from then on a second use of the same code can
// never displace that member.
func (b *bridge) startAcknowledger(sp *node.Space) {
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	cancel := sp.Replica.Watch(func(local bool, _ []core.ID) {
		if !local {
			signal()
		}
	})
	signal() // uses that arrived while the node was down
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		defer cancel()
		for {
			select {
			case <-b.bgCtx.Done():
				return
			case <-wake:
			}
			id, err := sp.Replica.Acknowledge(b.bgCtx, b.home.Key, uint64(time.Now().UnixMilli()))
			switch {
			case err != nil && b.bgCtx.Err() == nil:
				b.log.Warn("acknowledge invite uses", "space", sp.Replica.Space().String(), "err", err)
			case !id.IsZero():
				b.log.Info("acknowledged new members who used invites", "space", sp.Replica.Space().String(), "change", id.String())
			}
		}
	}()
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

// Mesh implements service.Node.
func (b *bridge) Mesh(space string) []service.MeshStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []service.MeshStatus
	id, err := core.ParseID(space)
	if err != nil {
		return nil
	}
	for _, n := range b.nodes[space] {
		ms := service.MeshStatus{Transport: n.transport, Metrics: n.node.Metrics().Snapshot(), Banned: map[string]string{}, Peers: []string{}}
		for _, t := range b.transports {
			if t.name == n.transport {
				for _, p := range t.tr.Peers(id) {
					ms.Peers = append(ms.Peers, string(p))
				}
			}
		}
		for p, why := range n.node.Banned() {
			ms.Banned[string(p)] = why
		}
		out = append(out, ms)
	}
	return out
}

// Addrs implements service.Node.
func (b *bridge) Addrs() []string { return b.advertised }

// RotateToken implements service.Node.
func (b *bridge) RotateToken(token string) { b.token.Store(&token) }

func (b *bridge) handleReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", api.TypeJSON)
	if !b.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"status":"starting"}`)
		return
	}
	fmt.Fprintln(w, `{"status":"ready"}`)
}

// handleStatus is the node's status: every space, its mesh and sinks.
func (b *bridge) handleStatus(w http.ResponseWriter, r *http.Request) {
	type spaceStatus struct {
		Space string               `json:"space"`
		Mesh  []service.MeshStatus `json:"mesh"`
	}
	var spaces []spaceStatus
	b.reg.Each(func(id string, _ *node.Space) {
		spaces = append(spaces, spaceStatus{Space: id, Mesh: b.Mesh(id)})
	})
	sort.Slice(spaces, func(i, j int) bool { return spaces[i].Space < spaces[j].Space })
	writeJSONTo(w, map[string]any{"author": b.home.Key.Public().String(), "spaces": spaces, "sinks": b.Sinks(r.Context())})
}

func (b *bridge) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	var ids []string
	b.reg.Each(func(id string, _ *node.Space) { ids = append(ids, id) })
	sort.Strings(ids)
	for _, id := range ids {
		for _, m := range b.Mesh(id) {
			names := make([]string, 0, len(m.Metrics))
			for k := range m.Metrics {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				fmt.Fprintf(w, "tributary_mesh_%s{space=%q,transport=%q} %d\n", k, id, m.Transport, m.Metrics[k])
			}
			fmt.Fprintf(w, "tributary_mesh_peers{space=%q,transport=%q} %d\n", id, m.Transport, len(m.Peers))
		}
	}
}

func writeJSONTo(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", api.TypeJSON)
	json.NewEncoder(w).Encode(v)
}
