package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/api"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
)

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
			if last <= b.cfg.Store.Retention {
				return
			}
			n, err := sp.Effects.Compact(ctx, last-b.cfg.Store.Retention)
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
	cfg  Config
	log  *slog.Logger

	transports  []transport
	natsPending error // why NATS is not connected yet, while it is retried
	stopping    bool  // transports are being stopped: add none
	metrics     *metrics
	bg          sync.WaitGroup // background work (reaching NATS)
	sinks       *sinkSet
	advertised  []string // libp2p addresses, for invite codes
	ready       atomic.Bool
	token       atomic.Pointer[string]

	mu    sync.Mutex
	nodes map[string][]*meshNode // by space
}

var _ service.Node = (*bridge)(nil)

type meshNode struct {
	transport string
	node      *mesh.Node
}

// runFlags are the flags of `tributary run`: each, when given, overrides
// the config file and the environment.
type runFlags struct {
	config, http, nats, tlsCert, tlsKey, logLevel, logFormat, diskReserve string
	httpNames, p2p, peers                                                 []string
	mdns, init                                                            bool
	syncInterval                                                          time.Duration
	retention                                                             uint64
}

func (c *cli) runCmd() *cobra.Command {
	var fl runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node: replicate the home's spaces over libp2p and/or NATS, feed the sinks, serve the HTTP API",
		Long: `Run the node. It joins the mesh of every space in the home and keeps them in
sync with their peers, feeds the configured sinks, and serves the HTTP API;
while it runs, the other commands on this home go through it (authenticated
with the token in the home).

Settings come from defaults, then the config file (--config, env
TRIBUTARY_CONFIG), then the environment (TRIBUTARY_<SECTION>_<KEY>, e.g.
TRIBUTARY_NATS_URLS, TRIBUTARY_LOG_LEVEL), then these flags. Every key is
described in docs/CONFIG.md; tributary config check FILE validates a file.

With --nats and no --p2p or --peer, only NATS carries changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.runConfigFrom(cmd, &fl)
			if err != nil {
				return err
			}
			return c.run(cmd.Context(), cfg, fl.init)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.config, "config", "", "YAML config file (env TRIBUTARY_CONFIG)")
	f.StringArrayVar(&fl.p2p, "p2p", nil, "libp2p listen multiaddr (repeatable; libp2p.listen; default /ip4/0.0.0.0/tcp/7466 and /ip4/0.0.0.0/udp/7466/quic-v1)")
	f.StringArrayVar(&fl.peers, "peer", nil, "libp2p bootstrap peer multiaddr (repeatable; libp2p.peers)")
	f.StringVar(&fl.nats, "nats", "", "NATS server URL(s), comma-separated (nats.urls)")
	f.StringVar(&fl.http, "http", "", "HTTP API listen address (http.listen; default 127.0.0.1:7465, :0 picks a free port)")
	f.StringArrayVar(&fl.httpNames, "http-name", nil, "further host name (or host:port) the API answers to (repeatable; http.names)")
	f.StringVar(&fl.tlsCert, "tls-cert", "", "TLS certificate file for the HTTP API (http.tls_cert)")
	f.StringVar(&fl.tlsKey, "tls-key", "", "TLS key file for the HTTP API (http.tls_key)")
	f.BoolVar(&fl.mdns, "mdns", true, "discover peers on the local network with mDNS (libp2p.mdns)")
	f.DurationVar(&fl.syncInterval, "sync-interval", 0, "anti-entropy reconciliation period (mesh.sync_interval; default 5s)")
	f.Uint64Var(&fl.retention, "retention", 0, "effects kept whole before compaction keeps only the newest per document (store.retention; default 100000)")
	f.StringVar(&fl.diskReserve, "disk-reserve", "", "free space writes keep, e.g. 512MiB (store.disk_reserve; default 128MiB; 0 turns the check off)")
	f.StringVar(&fl.logLevel, "log-level", "", "debug, info, warn or error (log.level)")
	f.StringVar(&fl.logFormat, "log-format", "", "text or json (log.format)")
	f.BoolVar(&fl.init, "init", false, "create the home (key and API token) if it does not exist yet: for a container's empty volume")
	return cmd
}

// runConfigFrom builds run's config: defaults, file, environment, flags.
func (c *cli) runConfigFrom(cmd *cobra.Command, fl *runFlags) (Config, error) {
	cfg := DefaultConfig()
	path := fl.config
	if path == "" {
		path = os.Getenv("TRIBUTARY_CONFIG")
	}
	if path != "" {
		if err := LoadConfigFile(&cfg, path); err != nil {
			return cfg, err
		}
	}
	if err := ApplyEnv(&cfg, os.LookupEnv); err != nil {
		return cfg, err
	}
	f := cmd.Flags()
	if f.Changed("p2p") {
		cfg.Libp2p.Listen = fl.p2p
	}
	if f.Changed("peer") {
		cfg.Libp2p.Peers = fl.peers
	}
	if f.Changed("nats") {
		cfg.NATS.URLs = strings.Split(fl.nats, ",")
		if !f.Changed("p2p") && !f.Changed("peer") {
			cfg.Libp2p.Enabled = false
		}
	}
	if f.Changed("http") {
		cfg.HTTP.Listen = fl.http
	}
	if f.Changed("http-name") {
		cfg.HTTP.Names = fl.httpNames
	}
	if f.Changed("tls-cert") {
		cfg.HTTP.TLSCert = fl.tlsCert
	}
	if f.Changed("tls-key") {
		cfg.HTTP.TLSKey = fl.tlsKey
	}
	if f.Changed("mdns") {
		cfg.Libp2p.MDNS = fl.mdns
	}
	if f.Changed("sync-interval") {
		cfg.Mesh.SyncInterval = fl.syncInterval
	}
	if f.Changed("retention") {
		cfg.Store.Retention = fl.retention
	}
	if f.Changed("disk-reserve") {
		n, err := node.ParseSize(fl.diskReserve)
		if err != nil {
			return cfg, fmt.Errorf("--disk-reserve: %w", err)
		}
		cfg.Store.DiskReserve = Size(n)
	}
	if f.Changed("log-level") {
		cfg.Log.Level = fl.logLevel
	}
	if f.Changed("log-format") {
		cfg.Log.Format = fl.logFormat
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
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

func (c *cli) run(ctx context.Context, cfg Config, initHome bool) error {
	ctx, cancel := context.WithCancel(ctx)
	var bg *sync.WaitGroup
	defer func() {
		cancel()
		if bg != nil {
			bg.Wait() // background work (reaching NATS) ends before the stores close
		}
	}()
	var h *node.Home
	var err error
	if initHome {
		h, _, err = node.InitHome(c.home)
	} else {
		h, err = node.OpenHome(c.home)
	}
	if err != nil {
		return err
	}
	h.DiskReserve = uint64(cfg.Store.DiskReserve)
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
	b := &bridge{c: c, home: h, cfg: cfg, nodes: map[string][]*meshNode{}, log: cfg.logger()}
	b.metrics = newMetrics(b)
	bg = &b.bg
	b.token.Store(&token)
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
	if err := b.startSinks(ctx, cfg.Sinks); err != nil {
		b.stopSinks()
		return err
	}
	defer b.stopSinks()
	go b.compactLoop(ctx)

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http %s: %w", cfg.HTTP.Listen, err)
	}
	addr := ln.Addr().String()
	if host, _, _ := net.SplitHostPort(addr); !isLoopback(host) && cfg.HTTP.TLSCert == "" {
		b.log.Warn("the HTTP API listens on a non-loopback address without TLS: its token and data cross the network in clear; pass --tls-cert/--tls-key or keep it on 127.0.0.1", "http", addr)
	}
	svc := &service.Local{Home: h, Open: b.reg.Open, Node: b, Now: time.Now}
	handler := api.NewHandler(svc, api.Config{
		Token:            func() string { return *b.token.Load() },
		Addr:             addr,
		Names:            cfg.HTTP.Names,
		MaxBodyBytes:     int64(cfg.HTTP.MaxBody),
		MaxBatchBytes:    int64(cfg.HTTP.MaxBatch),
		MaxInflightBytes: int64(cfg.HTTP.MaxInflight),
		Logger:           b.log.With("component", "api"),
		Observe:          b.metrics.observeRequest,
		Extra:            b.extraRoutes(),
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan error, 1)
	go func() {
		if cfg.HTTP.TLSCert != "" {
			srvDone <- srv.ServeTLS(ln, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
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

	if err := node.WriteRunInfo(h.Dir, node.RunInfo{PID: os.Getpid(), HTTP: addr, TLS: cfg.HTTP.TLSCert != "", Cert: absPath(cfg.HTTP.TLSCert)}); err != nil {
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
	if !c.json {
		for _, t := range b.transports {
			fmt.Fprintf(c.out, "  %s:", t.name)
			for _, k := range slices.Sorted(maps.Keys(t.info)) {
				switch v := t.info[k].(type) {
				case []string:
					fmt.Fprintf(c.out, " %s %s", k, strings.Join(v, " "))
				default:
					fmt.Fprintf(c.out, " %s %v", k, v)
				}
			}
			fmt.Fprintln(c.out)
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

// startSpace runs a mesh node per transport for a newly opened space. A
// joiner's node presents its proof (the signed use of its invite) until
// its grant is known; an admin's node acknowledges the uses it admits or
// receives, so a later use of the same code can never displace them.
func (b *bridge) startSpace(ctx context.Context, sp *node.Space) error {
	b.mu.Lock()
	ts := slices.Clone(b.transports)
	b.mu.Unlock()
	var started []*meshNode
	for _, t := range ts {
		n, err := b.startMeshNode(ctx, sp, t)
		if err != nil {
			for _, s := range started {
				s.node.Close()
			}
			return err
		}
		started = append(started, n)
	}
	b.mu.Lock()
	b.nodes[sp.Replica.Space().String()] = append(b.nodes[sp.Replica.Space().String()], started...)
	b.mu.Unlock()
	return nil
}

// startMeshNode replicates one space over one transport.
func (b *bridge) startMeshNode(ctx context.Context, sp *node.Space, t transport) (*meshNode, error) {
	info, _ := b.home.Info(sp.Replica.Space().String())
	mc := b.cfg.meshConfig(b.log.With("transport", t.name))
	mc.Key = b.home.Key
	mc.AddrStore = &mesh.AddrFile{Path: b.home.AddrsFile(sp.Replica.Space().String())}
	if !sp.Replica.IsMember(b.home.Key.Public()) {
		mc.Proof = info.Proof
	}
	mc.Acknowledge = func(ctx context.Context) error {
		id, err := sp.Replica.Acknowledge(ctx, b.home.Key, uint64(time.Now().UnixMilli()))
		if err == nil && !id.IsZero() {
			b.log.Info("acknowledged new members who used invites", "space", sp.Replica.Space().String(), "change", id.String())
		}
		return err
	}
	n := mesh.NewNode(sp.Replica, t.tr, mc)
	if err := n.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	return &meshNode{transport: t.name, node: n}, nil
}

// addTransport starts replicating every open space over a transport that
// came up after the node started (NATS reached late).
func (b *bridge) addTransport(ctx context.Context, t transport) {
	b.mu.Lock()
	if b.stopping || ctx.Err() != nil {
		b.mu.Unlock()
		t.stop()
		return
	}
	b.transports = append(b.transports, t)
	b.natsPending = nil
	b.mu.Unlock()
	b.reg.Each(func(id string, sp *node.Space) {
		n, err := b.startMeshNode(ctx, sp, t)
		if err != nil {
			b.log.Error("start replication", "space", id, "transport", t.name, "err", err)
			return
		}
		b.mu.Lock()
		b.nodes[id] = append(b.nodes[id], n)
		b.mu.Unlock()
	})
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
	b.mu.Lock()
	b.stopping = true
	ts := b.transports
	b.mu.Unlock()
	for _, t := range ts {
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

// handleReady is /readyz: ready when the node has started, every
// transport carries changes and every sink runs within runner.ready_max_lag
// effects of the log; otherwise 503 naming what is not ready.
func (b *bridge) handleReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", api.TypeJSON)
	problems := b.readinessProblems(r.Context())
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"status": "not ready", "problems": problems})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"status": "ready"})
}

// readinessProblems lists what keeps the node from being ready.
func (b *bridge) readinessProblems(ctx context.Context) []string {
	if !b.ready.Load() {
		return []string{"starting"}
	}
	var out []string
	for _, t := range b.transportHealth() {
		if t.err != nil {
			out = append(out, fmt.Sprintf("transport %s: %v", t.name, t.err))
		}
	}
	for _, s := range b.Sinks(ctx) {
		switch {
		case s.State != sinkRunning:
			msg := fmt.Sprintf("sink %s: %s", s.Name, s.State)
			if s.Error != "" {
				msg += ": " + s.Error
			}
			out = append(out, msg)
		case s.Fatal != "":
			out = append(out, fmt.Sprintf("sink %s: stopped: %s", s.Name, s.Fatal))
		case s.Retrying:
			out = append(out, fmt.Sprintf("sink %s: retrying: %s", s.Name, s.LastError))
		case s.Lag > b.cfg.Runner.ReadyMaxLag:
			out = append(out, fmt.Sprintf("sink %s: %d effects behind (runner.ready_max_lag is %d)", s.Name, s.Lag, b.cfg.Runner.ReadyMaxLag))
		}
	}
	return out
}

type transportState struct {
	name string
	err  error
}

// transportHealth says whether each configured transport carries changes:
// NATS while connected (and while it is still being reached, with the
// last error), libp2p once up.
func (b *bridge) transportHealth() []transportState {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []transportState
	for _, t := range b.transports {
		st := transportState{name: t.name}
		if h, ok := t.tr.(interface{ Conn() *natsgo.Conn }); ok {
			if c := h.Conn(); c == nil || !c.IsConnected() {
				st.err = fmt.Errorf("not connected to NATS (%s)", strings.Join(b.cfg.NATS.URLs, ","))
			}
		}
		out = append(out, st)
	}
	if b.natsPending != nil {
		out = append(out, transportState{name: "nats", err: b.natsPending})
	}
	return out
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

func writeJSONTo(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", api.TypeJSON)
	json.NewEncoder(w).Encode(v)
}
