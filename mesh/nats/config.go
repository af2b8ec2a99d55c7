package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tributary-sync/tributary/core"
)

// Config configures a Transport. Zero values take the defaults that
// DefaultConfig shows; Validate says what is wrong with the rest.
type Config struct {
	// URL of the NATS server(s), comma-separated; used when Conn is nil.
	URL string
	// Conn is an existing connection to use instead of URL; the
	// Transport does not close it. Credentials and TLS are then Conn's
	// business: the fields below must be empty.
	Conn *natsgo.Conn
	// Options are extra options for the connection made from URL; they
	// apply after the ones the fields below make.
	Options []natsgo.Option
	// Key is our identity; our PeerID is Key.Public().String().
	Key core.PrivateKey

	// Credentials of the connection made from URL: at most one of
	// CredsFile, NKeySeedFile, User (with Password) and Token. NATS
	// accounts and permissions are how an operator keeps non-members
	// off a space's subjects (see the package doc).
	CredsFile    string // user JWT and nkey seed, as `nsc generate creds` writes them
	NKeySeedFile string // seed ("SU...") of a user the server lists by its public nkey
	User         string
	Password     string
	Token        string

	// TLS of the connection made from URL. With CAFile the server's
	// certificate is checked against it (else against the system roots,
	// for tls:// URLs); CertFile and KeyFile are our client certificate,
	// for servers that verify clients.
	CAFile   string
	CertFile string
	KeyFile  string

	// Connection made from URL.
	ConnectTimeout time.Duration // dialing one server (default 5s)
	ReconnectWait  time.Duration // between reconnection attempts, which never stop (default 2s)
	PingInterval   time.Duration // a server silent for 2 pings is dropped and another tried (default 20s)

	// The space's stream, made by the first peer that joins. A stream
	// that exists keeps the limits it was made with (an operator may
	// change them); only what correctness needs is corrected.
	Replicas         int           // JetStream replicas of each space's stream (default 1; 3 on a cluster of 3 or more servers)
	StreamMaxAge     time.Duration // a change older than this leaves the stream (default 0: kept)
	StreamMaxBytes   int64         // size limit of a space's stream; when full, new changes are refused, never old ones dropped (default 0: none)
	ConsumerInactive time.Duration // a peer's durable consumer unused this long is removed (default 30 days)

	// Delivery from a peer's durable consumer.
	AckWait          time.Duration // a message delivered and not acknowledged is delivered again after this (default 30s)
	MaxAckPending    int           // messages delivered and not yet acknowledged (default 4096)
	ApplyBatch       int           // messages handed to the node in one Apply (default 256)
	ConsumerMaxBytes int           // bytes buffered from the consumer (default 16 MiB, at least 2 max_payload)
	PullExpiry       time.Duration // one pull request's life at the server; a lost one (its server gone) is noticed within it (default 30s)
	RetryDelay       time.Duration // first delay before a message the node could not take comes again (default 500ms); doubles while it stays busy
	RetryMaxDelay    time.Duration // (default 10s)

	// Publishing into the stream.
	PublishTimeout     time.Duration // JetStream's acknowledgement of one message (default 10s)
	MaxPublishPending  int           // messages published and not yet acknowledged (default 1024)
	StreamSyncInterval time.Duration // how often the node's changes are checked against the stream, besides every time we reach the server and after a failed publish (default 10m)

	HeartbeatInterval time.Duration // presence period; peers silent for 3 periods are gone (default 1s)

	// Requests and replies (reconciliation).
	MaxMessageBytes    int           // request or reply, reassembled (default 32 MiB)
	MaxReassemblyBytes int64         // incoming requests being reassembled, all together (default 128 MiB)
	ReassemblyTimeout  time.Duration // an incomplete request is dropped after this (default 30s)
	MaxServing         int           // requests served at once; more are answered ErrBusy (default 64)
	ServeTimeout       time.Duration // one Handler.Serve call (default 2m)
	RequestTimeout     time.Duration // a Request whose ctx has no deadline (default 2m)

	OperationTimeout time.Duration // JetStream management calls, flushes, draining a consumer (default 10s)

	Logger *slog.Logger
}

// DefaultConfig returns the defaults; set URL (or Conn) and Key.
func DefaultConfig() Config {
	var c Config
	c.defaults()
	return c
}

func (c *Config) defaults() {
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	num := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&c.ConnectTimeout, 5*time.Second)
	dur(&c.ReconnectWait, 2*time.Second)
	dur(&c.PingInterval, 20*time.Second)
	dur(&c.ConsumerInactive, 30*24*time.Hour)
	dur(&c.AckWait, 30*time.Second)
	dur(&c.PullExpiry, 30*time.Second)
	dur(&c.RetryDelay, 500*time.Millisecond)
	dur(&c.RetryMaxDelay, 10*time.Second)
	dur(&c.PublishTimeout, 10*time.Second)
	dur(&c.StreamSyncInterval, 10*time.Minute)
	dur(&c.HeartbeatInterval, time.Second)
	dur(&c.ReassemblyTimeout, 30*time.Second)
	dur(&c.ServeTimeout, 2*time.Minute)
	dur(&c.RequestTimeout, 2*time.Minute)
	dur(&c.OperationTimeout, 10*time.Second)
	num(&c.Replicas, 1)
	num(&c.MaxAckPending, 4096)
	num(&c.ApplyBatch, 256)
	num(&c.ConsumerMaxBytes, 16<<20)
	num(&c.MaxPublishPending, 1024)
	num(&c.MaxMessageBytes, 32<<20)
	num(&c.MaxServing, 64)
	if c.MaxReassemblyBytes <= 0 {
		c.MaxReassemblyBytes = 128 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports what is wrong with c, every problem at once. Zero
// values are fine (they take the defaults).
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Key) == 0 {
		bad("Key is required: the node's Ed25519 key (its PeerID names its consumer and its messages)")
	}
	if c.Conn == nil && strings.TrimSpace(c.URL) == "" {
		bad("URL (or Conn) is required, e.g. nats://127.0.0.1:4222")
	}
	if c.Conn != nil {
		if c.URL != "" || c.CredsFile != "" || c.NKeySeedFile != "" || c.User != "" || c.Password != "" || c.Token != "" ||
			c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || len(c.Options) > 0 {
			bad("Conn is set: URL, Options, credentials and TLS belong to the connection the transport makes; set them on Conn instead, or leave Conn nil")
		}
	}
	creds := 0
	for _, set := range []bool{c.CredsFile != "", c.NKeySeedFile != "", c.User != "", c.Token != ""} {
		if set {
			creds++
		}
	}
	if creds > 1 {
		bad("set at most one of CredsFile, NKeySeedFile, User/Password and Token (the server authenticates a connection one way)")
	}
	if c.Password != "" && c.User == "" {
		bad("Password is set without User")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("CertFile and KeyFile go together (the client certificate and its private key)")
	}
	for _, f := range []struct{ name, path string }{
		{"CredsFile", c.CredsFile}, {"NKeySeedFile", c.NKeySeedFile},
		{"CAFile", c.CAFile}, {"CertFile", c.CertFile}, {"KeyFile", c.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if fh, err := os.Open(f.path); err != nil {
			bad("%s: %v", f.name, err)
		} else {
			fh.Close()
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		bad("Replicas is %d: JetStream keeps 1 to 5 copies of a stream (3 on a cluster of 3 or more servers)", c.Replicas)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ConnectTimeout", c.ConnectTimeout}, {"ReconnectWait", c.ReconnectWait}, {"PingInterval", c.PingInterval},
		{"StreamMaxAge", c.StreamMaxAge}, {"ConsumerInactive", c.ConsumerInactive}, {"AckWait", c.AckWait},
		{"PullExpiry", c.PullExpiry}, {"RetryDelay", c.RetryDelay}, {"RetryMaxDelay", c.RetryMaxDelay}, {"PublishTimeout", c.PublishTimeout},
		{"StreamSyncInterval", c.StreamSyncInterval}, {"HeartbeatInterval", c.HeartbeatInterval},
		{"ReassemblyTimeout", c.ReassemblyTimeout}, {"ServeTimeout", c.ServeTimeout},
		{"RequestTimeout", c.RequestTimeout}, {"OperationTimeout", c.OperationTimeout},
	} {
		if d.v < 0 {
			bad("%s is %s: durations must be positive (0 takes the default)", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"StreamMaxBytes", c.StreamMaxBytes}, {"MaxAckPending", int64(c.MaxAckPending)}, {"ApplyBatch", int64(c.ApplyBatch)},
		{"ConsumerMaxBytes", int64(c.ConsumerMaxBytes)}, {"MaxPublishPending", int64(c.MaxPublishPending)},
		{"MaxMessageBytes", int64(c.MaxMessageBytes)}, {"MaxReassemblyBytes", c.MaxReassemblyBytes}, {"MaxServing", int64(c.MaxServing)},
	} {
		if n.v < 0 {
			bad("%s is %d: limits must be positive (0 takes the default)", n.name, n.v)
		}
	}
	if c.StreamMaxAge > 0 && c.StreamMaxAge < time.Minute {
		bad("StreamMaxAge is %s: changes would leave the stream before an offline peer could fetch them; use hours or days, or 0 to keep them", c.StreamMaxAge)
	}
	if c.MaxAckPending > 0 && c.ApplyBatch > c.MaxAckPending {
		bad("ApplyBatch (%d) is larger than MaxAckPending (%d): a batch could never fill", c.ApplyBatch, c.MaxAckPending)
	}
	if c.AckWait > 0 && c.AckWait < time.Second {
		bad("AckWait is %s: messages would be delivered again while the node is still storing them; use at least 1s", c.AckWait)
	}
	if c.PullExpiry > 0 && c.PullExpiry < time.Second {
		bad("PullExpiry is %s: JetStream needs at least 1s", c.PullExpiry)
	}
	if c.RetryDelay > 0 && c.RetryMaxDelay > 0 && c.RetryDelay > c.RetryMaxDelay {
		bad("RetryDelay (%s) is longer than RetryMaxDelay (%s)", c.RetryDelay, c.RetryMaxDelay)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("nats transport: invalid config: %w", errors.Join(errs...))
}

// connectOptions are the options of the connection made from URL.
func (c *Config) connectOptions() ([]natsgo.Option, error) {
	var opts []natsgo.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, natsgo.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		o, err := natsgo.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NKeySeedFile %s: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, natsgo.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, natsgo.Token(c.Token))
	}
	if c.CAFile != "" {
		opts = append(opts, natsgo.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, natsgo.ClientCert(c.CertFile, c.KeyFile))
	}
	return append(opts,
		natsgo.Timeout(c.ConnectTimeout),
		natsgo.ReconnectWait(c.ReconnectWait),
		natsgo.PingInterval(c.PingInterval),
		natsgo.MaxReconnects(-1),
	), nil
}

// redactURLs hides the passwords and tokens of a comma-separated URL list.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // a token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// connectError explains why the connection failed, naming what to check.
func connectError(c *Config, err error) error {
	where := redactURLs(c.URL)
	msg := err.Error()
	switch {
	case errors.Is(err, natsgo.ErrAuthorization), errors.Is(err, natsgo.ErrAuthExpired), errors.Is(err, natsgo.ErrAuthRevoked),
		strings.Contains(strings.ToLower(msg), "authorization violation"), strings.Contains(strings.ToLower(msg), "authentication"):
		how := "no credentials were given"
		switch {
		case c.CredsFile != "":
			how = "CredsFile " + c.CredsFile + " was refused"
		case c.NKeySeedFile != "":
			how = "the nkey of NKeySeedFile " + c.NKeySeedFile + " was refused"
		case c.User != "":
			how = "user " + c.User + " was refused"
		case c.Token != "":
			how = "Token was refused"
		}
		return fmt.Errorf("nats transport: connect to %s: the server requires credentials and %s (%w); set CredsFile, NKeySeedFile, User/Password or Token to ones the server's operator issued", where, how, err)
	case strings.Contains(msg, "x509") || strings.Contains(strings.ToLower(msg), "tls") || errors.Is(err, natsgo.ErrSecureConnRequired) || errors.Is(err, natsgo.ErrSecureConnWanted):
		return fmt.Errorf("nats transport: connect to %s: TLS failed (%w); check the URL scheme (tls://), CAFile, and CertFile/KeyFile if the server verifies clients", where, err)
	}
	return fmt.Errorf("nats transport: connect to %s: %w", where, err)
}
