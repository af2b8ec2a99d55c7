package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	meshlibp2p "github.com/tributary-sync/tributary/mesh/libp2p"
	meshnats "github.com/tributary-sync/tributary/mesh/nats"
)

// Config is everything `tributary run` takes, in one place. It is built
// in layers: DefaultConfig, then the YAML file (--config), then the
// environment (TRIBUTARY_<SECTION>_<KEY>, e.g. TRIBUTARY_NATS_REPLICAS=3,
// lists comma-separated), then flags; Validate checks the result. Every
// key is documented in docs/CONFIG.md, and `tributary config check FILE`
// validates a file without starting anything.
type Config struct {
	HTTP   HTTPConfig   `yaml:"http"`
	Log    LogConfig    `yaml:"log"`
	Store  StoreConfig  `yaml:"store"`
	Libp2p Libp2pConfig `yaml:"libp2p"`
	NATS   NATSConfig   `yaml:"nats"`
	Mesh   MeshConfig   `yaml:"mesh"`
	Runner RunnerConfig `yaml:"runner"`
	Sinks  []sinkConfig `yaml:"sinks"`
}

// HTTPConfig is the node's API.
type HTTPConfig struct {
	Listen      string   `yaml:"listen"`       // host:port; :0 picks a free port
	Names       []string `yaml:"names"`        // further host names clients use (DNS-rebinding guard)
	TLSCert     string   `yaml:"tls_cert"`     // serve HTTPS with this certificate...
	TLSKey      string   `yaml:"tls_key"`      // ...and key
	MaxBody     Size     `yaml:"max_body"`     // one document request
	MaxBatch    Size     `yaml:"max_batch"`    // one batch request
	MaxInflight Size     `yaml:"max_inflight"` // request bytes being handled at once
}

// LogConfig is the node's log.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// StoreConfig is the home's stores.
type StoreConfig struct {
	DiskReserve Size   `yaml:"disk_reserve"` // free space writes keep; 0 turns the check off
	Retention   uint64 `yaml:"retention"`    // effects kept whole before compaction keeps the newest per document
}

// Libp2pConfig is the libp2p transport.
type Libp2pConfig struct {
	Enabled           bool          `yaml:"enabled"`
	Listen            []string      `yaml:"listen"` // multiaddrs
	Peers             []string      `yaml:"peers"`  // bootstrap multiaddrs with /p2p/
	MDNS              bool          `yaml:"mdns"`
	NATPortMap        bool          `yaml:"nat_port_map"` // ask the router (UPnP/NAT-PMP) for a port
	RedialInterval    time.Duration `yaml:"redial_interval"`
	AdmissionInterval time.Duration `yaml:"admission_interval"`
	RequestTimeout    time.Duration `yaml:"request_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	MaxFrame          Size          `yaml:"max_frame"`
	MaxPushBytes      Size          `yaml:"max_push_bytes"`
	// A newcomer presenting proof of its invite is let in on probation.
	ProbationTimeout time.Duration `yaml:"probation_timeout"`
	MaxProbation     int           `yaml:"max_probation"`
	ProbationCooloff time.Duration `yaml:"probation_cooloff"`
}

// NATSConfig is the NATS transport (off unless URLs are set).
type NATSConfig struct {
	URLs               []string      `yaml:"urls"`
	CredsFile          string        `yaml:"creds_file"`
	NKeySeedFile       string        `yaml:"nkey_seed_file"`
	User               string        `yaml:"user"`
	Password           string        `yaml:"password"`
	Token              string        `yaml:"token"`
	CAFile             string        `yaml:"ca_file"`
	CertFile           string        `yaml:"cert_file"`
	KeyFile            string        `yaml:"key_file"`
	Replicas           int           `yaml:"replicas"`
	StreamMaxAge       time.Duration `yaml:"stream_max_age"`
	StreamMaxBytes     Size          `yaml:"stream_max_bytes"`
	ConsumerInactive   time.Duration `yaml:"consumer_inactive"`
	ConnectTimeout     time.Duration `yaml:"connect_timeout"`
	ReconnectWait      time.Duration `yaml:"reconnect_wait"`
	PingInterval       time.Duration `yaml:"ping_interval"`
	AckWait            time.Duration `yaml:"ack_wait"`
	MaxAckPending      int           `yaml:"max_ack_pending"`
	ApplyBatch         int           `yaml:"apply_batch"`
	PullExpiry         time.Duration `yaml:"pull_expiry"`
	RetryDelay         time.Duration `yaml:"retry_delay"`
	RetryMaxDelay      time.Duration `yaml:"retry_max_delay"`
	PublishTimeout     time.Duration `yaml:"publish_timeout"`
	MaxPublishPending  int           `yaml:"max_publish_pending"`
	StreamSyncInterval time.Duration `yaml:"stream_sync_interval"`
	HeartbeatInterval  time.Duration `yaml:"heartbeat_interval"`
	MaxMessageBytes    Size          `yaml:"max_message_bytes"`
	RequestTimeout     time.Duration `yaml:"request_timeout"`
	OperationTimeout   time.Duration `yaml:"operation_timeout"`
}

// MeshConfig tunes replication, whatever the transport.
type MeshConfig struct {
	SyncInterval     time.Duration `yaml:"sync_interval"`
	SyncTimeout      time.Duration `yaml:"sync_timeout"`
	MaxMessageBytes  Size          `yaml:"max_message_bytes"`
	FetchBatch       int           `yaml:"fetch_batch"`
	PushBatch        int           `yaml:"push_batch"`
	MaxSyncsInFlight int           `yaml:"max_syncs_in_flight"`
	MaxRounds        int           `yaml:"max_rounds"`
	PushRate         float64       `yaml:"push_rate"`
	PushBurst        int           `yaml:"push_burst"`
	InboundQueue     int           `yaml:"inbound_queue"`
	PushHaveMax      int           `yaml:"push_have_max"`
	JoinCooloff      time.Duration `yaml:"join_cooloff"`  // a refused joiner gets the same answer this long
	AddrInterval     time.Duration `yaml:"addr_interval"` // members' address records go to a peer when ours changed, and at least this often
}

// RunnerConfig tunes every sink's runner (a sink's batch_size overrides
// BatchSize), and the readiness bound.
type RunnerConfig struct {
	BatchSize int `yaml:"batch_size"`
	// CatchUpBatch is the most effects per batch while a sink is at least
	// BatchSize behind (backfill, catch-up); a sink's batch_size caps it.
	CatchUpBatch int           `yaml:"catch_up_batch"`
	BatchBytes   Size          `yaml:"batch_bytes"` // stored size of one batch's effects, at most
	Linger       time.Duration `yaml:"linger"`
	RetryMin     time.Duration `yaml:"retry_min"`
	RetryMax     time.Duration `yaml:"retry_max"`
	// ReadyMaxLag is how many effects behind a sink may be while the
	// node reports ready (/readyz).
	ReadyMaxLag uint64 `yaml:"ready_max_lag"`
}

// DefaultConfig returns the defaults every layer starts from.
func DefaultConfig() Config {
	nc := meshnats.DefaultConfig()
	rc := checkpoint.DefaultConfig()
	return Config{
		HTTP:  HTTPConfig{Listen: "127.0.0.1:7465", MaxBody: 8 << 20, MaxBatch: 8 << 20, MaxInflight: 32 << 20},
		Log:   LogConfig{Level: "info", Format: "text"},
		Store: StoreConfig{DiskReserve: node.DefaultDiskReserve, Retention: 100000},
		Libp2p: Libp2pConfig{Enabled: true, Listen: meshlibp2p.DefaultListen, MDNS: true, NATPortMap: true,
			RedialInterval: 10 * time.Second, AdmissionInterval: 5 * time.Second, RequestTimeout: 2 * time.Minute,
			ReadTimeout: 30 * time.Second, MaxFrame: 48 << 20, MaxPushBytes: 1 << 20,
			ProbationTimeout: 5 * time.Second, MaxProbation: 4, ProbationCooloff: time.Minute},
		NATS: NATSConfig{Replicas: nc.Replicas, StreamMaxAge: nc.StreamMaxAge, StreamMaxBytes: Size(nc.StreamMaxBytes),
			ConsumerInactive: nc.ConsumerInactive, ConnectTimeout: nc.ConnectTimeout, ReconnectWait: nc.ReconnectWait,
			PingInterval: nc.PingInterval, AckWait: nc.AckWait, MaxAckPending: nc.MaxAckPending, ApplyBatch: nc.ApplyBatch,
			PullExpiry: nc.PullExpiry, RetryDelay: nc.RetryDelay, RetryMaxDelay: nc.RetryMaxDelay,
			PublishTimeout: nc.PublishTimeout, MaxPublishPending: nc.MaxPublishPending, StreamSyncInterval: nc.StreamSyncInterval,
			HeartbeatInterval: nc.HeartbeatInterval, MaxMessageBytes: Size(nc.MaxMessageBytes), RequestTimeout: nc.RequestTimeout,
			OperationTimeout: nc.OperationTimeout},
		Mesh: MeshConfig{SyncInterval: 5 * time.Second, SyncTimeout: 2 * time.Minute, MaxMessageBytes: 32 << 20,
			FetchBatch: 4096, PushBatch: 256, MaxSyncsInFlight: 8, MaxRounds: 32, PushRate: 50000, PushBurst: 200000,
			InboundQueue: 1024, PushHaveMax: 1024, JoinCooloff: time.Minute, AddrInterval: time.Minute},
		Runner: RunnerConfig{BatchSize: rc.BatchSize, CatchUpBatch: 3000, BatchBytes: Size(rc.BatchBytes), Linger: rc.Linger, RetryMin: rc.RetryMin, RetryMax: rc.RetryMax, ReadyMaxLag: 10000},
	}
}

// legacyKeys are top-level keys of the config format before sections.
var legacyKeys = map[string]string{
	"p2p": "libp2p.listen", "peers": "libp2p.peers", "nats": "nats.urls (a list)", "http": "http.listen",
}

// LoadConfigFile reads a YAML file over cfg: keys it sets replace the
// defaults, unknown keys are errors naming the key.
func LoadConfigFile(cfg *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for k := range top {
		if to, ok := legacyKeys[k]; ok {
			if _, isMap := top[k].(map[string]any); !isMap {
				return fmt.Errorf("config %s: key %q moved to %s", path, k, to)
			}
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// EnvPrefix starts every environment variable of the config.
const EnvPrefix = "TRIBUTARY_"

// legacyEnv are the environment variables of earlier versions, still
// honoured when the new name is not set.
var legacyEnv = map[string]string{
	"TRIBUTARY_HTTP": "TRIBUTARY_HTTP_LISTEN", "TRIBUTARY_NATS": "TRIBUTARY_NATS_URLS",
	"TRIBUTARY_P2P": "TRIBUTARY_LIBP2P_LISTEN", "TRIBUTARY_PEERS": "TRIBUTARY_LIBP2P_PEERS",
	node.DiskReserveEnv: "TRIBUTARY_STORE_DISK_RESERVE",
}

// ApplyEnv sets every config key whose variable is in the environment
// (lookup is os.LookupEnv in production).
func ApplyEnv(cfg *Config, lookup func(string) (string, bool)) error {
	get := func(name string) (string, bool) {
		if v, ok := lookup(name); ok {
			return v, true
		}
		for old, now := range legacyEnv {
			if now == name {
				return lookup(old)
			}
		}
		return "", false
	}
	return walkConfig(reflect.ValueOf(cfg).Elem(), EnvPrefix, func(name string, v reflect.Value) error {
		raw, ok := get(name)
		if !ok {
			return nil
		}
		if err := setFromText(v, raw); err != nil {
			return fmt.Errorf("environment %s=%q: %w", name, raw, err)
		}
		return nil
	})
}

// walkConfig visits every settable scalar or list field of a config
// section under its variable name (sinks are the file's business).
func walkConfig(v reflect.Value, prefix string, fn func(name string, v reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || tag == "sinks" {
			continue
		}
		name := prefix + strings.ToUpper(tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := walkConfig(fv, name+"_", fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(name, fv); err != nil {
			return err
		}
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// setFromText parses text into a config field of any of the kinds a
// Config holds.
func setFromText(v reflect.Value, text string) error {
	text = strings.TrimSpace(text)
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("want a duration such as 30s or 5m")
		}
		v.SetInt(int64(d))
	case v.Type() == reflect.TypeOf(Size(0)):
		n, err := node.ParseSize(text)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.String:
		v.SetString(text)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		v.SetInt(n)
	case v.Kind() == reflect.Uint64:
		n, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return fmt.Errorf("want a non-negative integer")
		}
		v.SetUint(n)
	case v.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return fmt.Errorf("want a number")
		}
		v.SetFloat(x)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var out []string
		for _, s := range strings.Split(text, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		v.Set(reflect.ValueOf(out))
	default:
		return fmt.Errorf("cannot set a %s from text", v.Type())
	}
	return nil
}

// The bounds of runner.batch_bytes.
const (
	minBatchBytes Size = 64 << 10
	maxBatchBytes Size = 1 << 30
)

// Size is a byte count, written with a unit in files and the environment
// (512MiB, 2GiB, or plain bytes).
type Size int64

// UnmarshalYAML reads a size with or without a unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := node.ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// MarshalYAML writes the size in bytes.
func (s Size) MarshalYAML() (any, error) { return int64(s), nil }

var sinkName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)

// sinkTypes are the sink types run knows.
var sinkTypes = map[string]bool{"postgres": true, "memory": true, "mongodb": true, "neo4j": true}

// sinkConfig is one entry of sinks:
//
//	sinks:
//	  - name: reports
//	    type: postgres          # postgres | mongodb | neo4j | memory
//	    url: postgres://tributary@127.0.0.1:5432/reports
//	    space: library          # ID, suffix or name; optional with one space
//	    options: {schema: public}
//	    tables: {BookReview: reviews}  # collection -> table (postgres), collection
//	                            # (mongodb) or label (neo4j), for collections the
//	                            # sink has not mapped yet: a mapping never changes
//	    batch_size: 1000
//
// A sink that cannot reach its database when the node starts is retried in
// the background (see `tributary sinks`); a config error stops the node.
type sinkConfig struct {
	Name      string            `yaml:"name"`
	Type      string            `yaml:"type"`
	URL       string            `yaml:"url"`
	Space     string            `yaml:"space"`
	Options   map[string]string `yaml:"options"`
	Tables    map[string]string `yaml:"tables"`
	BatchSize int               `yaml:"batch_size"`
}

// Validate reports every problem of the config at once, each naming its
// key and what would be accepted.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen %q: want host:port, e.g. 127.0.0.1:7465", c.HTTP.Listen)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tls_cert and http.tls_key go together")
	}
	for _, f := range []struct{ key, path string }{{"http.tls_cert", c.HTTP.TLSCert}, {"http.tls_key", c.HTTP.TLSKey}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad("%s: %v", f.key, err)
			}
		}
	}
	if c.HTTP.MaxBody <= 0 || c.HTTP.MaxBatch <= 0 || c.HTTP.MaxInflight <= 0 {
		bad("http.max_body, http.max_batch and http.max_inflight must be positive sizes")
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level: %v", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format %q: want text or json", c.Log.Format)
	}
	if c.Store.DiskReserve < 0 {
		bad("store.disk_reserve: want 0 or more")
	}
	if !c.Libp2p.Enabled && len(c.NATS.URLs) == 0 {
		bad("no transport: libp2p.enabled is false and nats.urls is empty; the node would never sync")
	}
	if c.Libp2p.Enabled && len(c.Libp2p.Listen) == 0 {
		bad("libp2p.listen is empty: give at least one multiaddr, e.g. /ip4/0.0.0.0/tcp/7466")
	}
	if len(c.NATS.URLs) > 0 {
		placeholder, _ := core.PrivateKeyFromSeed(make([]byte, 32)) // the node's key is checked elsewhere
		nc := c.natsConfig(placeholder, nil)
		if err := nc.Validate(); err != nil {
			bad("nats: %v", err)
		}
	}
	if c.Mesh.SyncInterval <= 0 || c.Mesh.SyncTimeout <= 0 {
		bad("mesh.sync_interval and mesh.sync_timeout must be positive durations")
	}
	if c.Mesh.PushRate < 0 || c.Mesh.MaxRounds < 0 || c.Mesh.FetchBatch < 0 || c.Mesh.PushBatch < 0 || c.Mesh.MaxSyncsInFlight < 0 || c.Mesh.InboundQueue < 0 {
		bad("mesh: counts and rates must not be negative")
	}
	if err := c.runnerConfig(0).Validate(); err != nil {
		bad("runner: %v", err)
	}
	// A sink's batch is read into memory whole: a node runs with a bound.
	if b := c.Runner.BatchBytes; b < minBatchBytes || b > maxBatchBytes {
		bad("runner.batch_bytes %d: want 64KiB to 1GiB (a batch is held in memory whole)", b)
	}
	seen := map[string]bool{}
	for i, s := range c.Sinks {
		if err := s.check(); err != nil {
			bad("sinks[%d] (%s): %v", i, s.Name, err)
			continue
		}
		if seen[s.Name] {
			bad("sinks: name %q used twice", s.Name)
		}
		seen[s.Name] = true
	}
	return errors.Join(errs...)
}

// check validates one sink entry, as far as can be done without its
// database: the type's own option and table checks run too.
func (s sinkConfig) check() error {
	switch {
	case !sinkName.MatchString(s.Name):
		return fmt.Errorf("name %q: want 1 to 63 letters, digits, '_' or '-'", s.Name)
	case !sinkTypes[s.Type]:
		return fmt.Errorf("unknown type %q (postgres, mongodb, neo4j, memory)", s.Type)
	case s.URL == "" && s.Type != "memory":
		return errors.New("url is required")
	case s.BatchSize < 0 || s.BatchSize > 100000:
		return fmt.Errorf("batch_size %d: want 1 to 100000", s.BatchSize)
	}
	for coll, t := range s.Tables {
		if coll == "" || t == "" {
			return fmt.Errorf("tables: %q: %q: want a collection and a name", coll, t)
		}
	}
	open, ok := sinkOpeners[s.Type]
	if !ok {
		return fmt.Errorf("type %q is not built into this binary", s.Type)
	}
	if _, err := open(s, checkpoint.Claim{Sink: s.Name}); err != nil {
		return err
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// logger builds the node's logger from the log section.
func (c *Config) logger() *slog.Logger {
	level, _ := parseLevel(c.Log.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// natsConfig is the NATS transport's config for key.
func (c *Config) natsConfig(key []byte, log *slog.Logger) meshnats.Config {
	n := c.NATS
	return meshnats.Config{
		URL: strings.Join(n.URLs, ","), Key: key, Logger: log,
		CredsFile: n.CredsFile, NKeySeedFile: n.NKeySeedFile, User: n.User, Password: n.Password, Token: n.Token,
		CAFile: n.CAFile, CertFile: n.CertFile, KeyFile: n.KeyFile,
		Replicas: n.Replicas, StreamMaxAge: n.StreamMaxAge, StreamMaxBytes: int64(n.StreamMaxBytes), ConsumerInactive: n.ConsumerInactive,
		ConnectTimeout: n.ConnectTimeout, ReconnectWait: n.ReconnectWait, PingInterval: n.PingInterval,
		AckWait: n.AckWait, MaxAckPending: n.MaxAckPending, ApplyBatch: n.ApplyBatch,
		PullExpiry: n.PullExpiry, RetryDelay: n.RetryDelay, RetryMaxDelay: n.RetryMaxDelay,
		PublishTimeout: n.PublishTimeout, MaxPublishPending: n.MaxPublishPending, StreamSyncInterval: n.StreamSyncInterval,
		HeartbeatInterval: n.HeartbeatInterval, MaxMessageBytes: int(n.MaxMessageBytes), RequestTimeout: n.RequestTimeout,
		OperationTimeout: n.OperationTimeout,
	}
}

// meshConfig is a mesh node's config.
func (c *Config) meshConfig(log *slog.Logger) mesh.Config {
	m := c.Mesh
	return mesh.Config{SyncInterval: m.SyncInterval, SyncTimeout: m.SyncTimeout, MaxMessageBytes: int(m.MaxMessageBytes),
		FetchBatch: m.FetchBatch, PushBatch: m.PushBatch, MaxSyncsInFlight: m.MaxSyncsInFlight, MaxRounds: m.MaxRounds,
		PushRate: m.PushRate, PushBurst: m.PushBurst, InboundQueue: m.InboundQueue, PushHaveMax: m.PushHaveMax,
		JoinCooloff: m.JoinCooloff, AddrInterval: m.AddrInterval, Logger: log}
}

// runnerConfig is a sink runner's config (batch overrides the default
// batch size when positive).
func (c *Config) runnerConfig(batch int) checkpoint.Config {
	rc := checkpoint.Config{BatchSize: c.Runner.BatchSize, CatchUpBatch: c.Runner.CatchUpBatch, BatchBytes: int(c.Runner.BatchBytes),
		Linger: c.Runner.Linger, RetryMin: c.Runner.RetryMin, RetryMax: c.Runner.RetryMax}
	if batch > 0 { // the sink's own batch size holds while it catches up too
		rc.BatchSize, rc.CatchUpBatch = batch, batch
	}
	return rc
}

// loadRunConfig reads and validates a config file over the defaults (the
// environment and flags are layered by run).
func loadRunConfig(path string) (*Config, error) {
	cfg := DefaultConfig()
	if err := LoadConfigFile(&cfg, path); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &cfg, nil
}

func (c *cli) configCmd() *cobra.Command {
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a run config file (over the defaults) without starting anything; --json prints the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadRunConfig(args[0])
			if err != nil {
				return err
			}
			cfg.maskSecrets()
			if c.json {
				return c.print(cfg)
			}
			out, err := yaml.Marshal(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.out, "# %s: ok (%d sinks); the config it gives, defaults filled in:\n%s", args[0], len(cfg.Sinks), out)
			return nil
		},
	}
	cmd := &cobra.Command{Use: "config", Short: "Check run config files"}
	cmd.AddCommand(check)
	return cmd
}

// maskSecrets hides passwords and tokens before a config is shown.
func (c *Config) maskSecrets() {
	mask := func(s *string) {
		if *s != "" {
			*s = "(set)"
		}
	}
	mask(&c.NATS.Password)
	mask(&c.NATS.Token)
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if u, err := url.Parse(s.URL); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
				s.URL = u.String()
			}
		}
		for k := range s.Options {
			if strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "token") {
				s.Options[k] = "(set)"
			}
		}
	}
}
