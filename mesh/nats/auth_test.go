package nats

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// runServer starts an embedded JetStream server with o's auth settings.
func runServer(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	o.Host, o.Port, o.JetStream, o.StoreDir, o.NoLog, o.NoSigs = "127.0.0.1", -1, true, t.TempDir(), true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// nkeyUser makes a user nkey, writes its seed to a file and returns the
// file and the public key.
func nkeyUser(t *testing.T) (seedFile, public string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	public, err = kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return seedFile, public
}

func permissionsOf(s Subjects) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: s.Publish},
		Subscribe: &server.SubjectPermission{Allow: s.Subscribe},
	}
}

// replicates checks that a write on A reaches B through the peers'
// transports (two nodes of one space).
func replicates(t *testing.T, space *meshtest.Space, a, b *peer) {
	t.Helper()
	id, err := a.r.Write(context.Background(), a.key, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("auth-%d", space.Now()), Fields: map[string]any{"text": "through an authenticated server"}}}, space.Now())
	if err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 20*time.Second, "B receives A's write", func() (bool, string) {
		return b.r.Has(id), fmt.Sprintf("B's transport %+v", b.tr.Stats())
	})
}

// TestNKeyAuth: against a server that admits listed nkeys only, a
// transport without credentials or with an unknown nkey is refused with
// an error saying so; members' nkeys, even locked down to exactly the
// subjects Permissions lists, replicate; a user denied the space's
// subjects fails Join with an error naming the refused subject.
func TestNKeyAuth(t *testing.T) {
	space := meshtest.NewSpace(t, 3)
	peerA, peerB := mesh.PeerOf(space.Keys[0].Public()), mesh.PeerOf(space.Keys[1].Public())
	seedA, pubA := nkeyUser(t)
	seedB, pubB := nkeyUser(t)
	seedC, pubC := nkeyUser(t)
	seedX, _ := nkeyUser(t) // unknown to the server
	s := runServer(t, &server.Options{Nkeys: []*server.NkeyUser{
		{Nkey: pubA, Permissions: permissionsOf(Permissions(space.ID, peerA, true))},
		{Nkey: pubB, Permissions: permissionsOf(Permissions(space.ID, peerB, false))},
		// C may use everything but this space.
		{Nkey: pubC, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"tributary." + space.ID.String() + ".>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"tributary." + space.ID.String() + ".>"}},
		}},
	}})

	_, err := New(Config{URL: s.ClientURL(), Key: space.Keys[0]})
	if err == nil || !strings.Contains(err.Error(), "requires credentials") || !strings.Contains(err.Error(), "no credentials were given") {
		t.Fatalf("no credentials: %v, want a refusal that says so", err)
	}
	t.Logf("no credentials: %v", err)
	_, err = New(Config{URL: s.ClientURL(), Key: space.Keys[0], NKeySeedFile: seedX})
	if err == nil || !strings.Contains(err.Error(), "was refused") {
		t.Fatalf("unknown nkey: %v, want a refusal", err)
	}

	// A may make the stream; B, locked to exactly its subjects, joins
	// after.
	a := startPeer(t, s.ClientURL(), space.Member(t), space.Keys[0], func(c *Config) { c.NKeySeedFile = seedA }, mesh.Config{})
	b := startPeer(t, s.ClientURL(), space.Member(t), space.Keys[1], func(c *Config) { c.NKeySeedFile = seedB }, mesh.Config{})
	replicates(t, space, a, b)
	replicates(t, space, b, a)

	// C's user is denied the space's subjects: Join fails at once and
	// says which subject.
	tc, err := New(Config{URL: s.ClientURL(), Key: space.Keys[2], NKeySeedFile: seedC, HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	node := mesh.NewNode(space.Member(t), tc, mesh.Config{})
	start := time.Now()
	err = node.Start(context.Background())
	if err == nil {
		node.Close()
		t.Fatal("a user denied the space's subjects joined it")
	}
	if !strings.Contains(err.Error(), "may not use a subject") || !strings.Contains(err.Error(), "tributary."+space.ID.String()) {
		t.Fatalf("denied user: %v, want an error naming the refused subject", err)
	}
	t.Logf("denied user (after %s): %v", time.Since(start).Round(time.Millisecond), err)
}

// TestCredsFileAuth: decentralized auth (operator, account and user
// JWTs): the transport connects with a .creds file and replicates; a
// user whose JWT denies the stream's API fails Join naming the subject.
func TestCredsFileAuth(t *testing.T) {
	space := meshtest.NewSpace(t, 3)
	op, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opPub, _ := op.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	opClaims, err = jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	account := func(jetstream bool) nkeys.KeyPair {
		kp, _ := nkeys.CreateAccount()
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		if jetstream {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		tok, err := ac.Encode(op)
		if err != nil {
			t.Fatal(err)
		}
		if err := resolver.Store(pub, tok); err != nil {
			t.Fatal(err)
		}
		return kp
	}
	sys, acc := account(false), account(true)
	sysPub, _ := sys.PublicKey()
	creds := func(name string, perms *Subjects) string {
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		uc := jwt.NewUserClaims(pub)
		if perms != nil {
			uc.Pub.Allow.Add(perms.Publish...)
			uc.Sub.Allow.Add(perms.Subscribe...)
		}
		tok, err := uc.Encode(acc)
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		b, err := jwt.FormatUserConfig(tok, seed)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), name+".creds")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	s := runServer(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{opClaims}, AccountResolver: resolver, SystemAccount: sysPub})

	if _, err := New(Config{URL: s.ClientURL(), Key: space.Keys[0]}); err == nil || !strings.Contains(err.Error(), "requires credentials") {
		t.Fatalf("no credentials: %v, want a refusal that says so", err)
	}
	pa := Permissions(space.ID, mesh.PeerOf(space.Keys[0].Public()), true)
	pb := Permissions(space.ID, mesh.PeerOf(space.Keys[1].Public()), false)
	a := startPeer(t, s.ClientURL(), space.Member(t), space.Keys[0], func(c *Config) { c.CredsFile = creds("a", &pa) }, mesh.Config{})
	b := startPeer(t, s.ClientURL(), space.Member(t), space.Keys[1], func(c *Config) { c.CredsFile = creds("b", &pb) }, mesh.Config{})
	replicates(t, space, a, b)

	// C's JWT allows its space subjects but not the stream's API.
	pc := Permissions(space.ID, mesh.PeerOf(space.Keys[2].Public()), false)
	pc.Publish = pc.Publish[:4]
	tc, err := New(Config{URL: s.ClientURL(), Key: space.Keys[2], CredsFile: creds("c", &pc)})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	err = tc.Join(space.ID, &recorder{})
	if err == nil || !strings.Contains(err.Error(), "may not use a subject") || !strings.Contains(err.Error(), "$JS.API.STREAM.INFO."+StreamName(space.ID)) {
		t.Fatalf("user denied the stream API: %v, want an error naming the subject", err)
	}
	t.Logf("denied the stream API: %v", err)
}

// TestPasswordAndTokenAuth: user/password and token credentials.
func TestPasswordAndTokenAuth(t *testing.T) {
	space := meshtest.NewSpace(t, 2)
	s := runServer(t, &server.Options{Users: []*server.User{{Username: "member", Password: "s3cret"}}})
	if _, err := New(Config{URL: s.ClientURL(), Key: space.Keys[0], User: "member", Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "user member was refused") {
		t.Fatalf("wrong password: %v", err)
	}
	a := startPeer(t, s.ClientURL(), space.Member(t), space.Keys[0], func(c *Config) { c.User, c.Password = "member", "s3cret" }, mesh.Config{})
	b := startPeer(t, s.ClientURL(), space.Member(t), space.Keys[1], func(c *Config) { c.User, c.Password = "member", "s3cret" }, mesh.Config{})
	replicates(t, space, a, b)

	ts := runServer(t, &server.Options{Authorization: "t0ken"})
	if _, err := New(Config{URL: ts.ClientURL(), Key: space.Keys[0], Token: "nope"}); err == nil || !strings.Contains(err.Error(), "Token was refused") {
		t.Fatalf("wrong token: %v", err)
	}
	tr, err := New(Config{URL: ts.ClientURL(), Key: space.Keys[0], Token: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Join(space.ID, &recorder{}); err != nil {
		t.Fatal(err)
	}
}

// TestValidate: a bad config is refused with every problem named.
func TestValidate(t *testing.T) {
	key := meshtest.Key(t, 1)
	if err := (&Config{URL: "nats://x", Key: key}).Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	def := DefaultConfig()
	def.URL, def.Key = "nats://x", key
	if err := def.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty", Config{}, []string{"Key is required", "URL (or Conn) is required"}},
		{"conn and credentials", Config{Conn: &natsgo.Conn{}, Key: key, CredsFile: "x"}, []string{"Conn is set"}},
		{"two credentials", Config{URL: "nats://x", Key: key, User: "u", Password: "p", Token: "t"}, []string{"at most one of"}},
		{"password alone", Config{URL: "nats://x", Key: key, Password: "p"}, []string{"Password is set without User"}},
		{"cert without key", Config{URL: "nats://x", Key: key, CertFile: "/nonexistent/cert.pem"}, []string{"CertFile and KeyFile go together", "CertFile: open /nonexistent/cert.pem"}},
		{"missing creds file", Config{URL: "nats://x", Key: key, CredsFile: "/nonexistent/u.creds"}, []string{"CredsFile: open /nonexistent/u.creds"}},
		{"replicas", Config{URL: "nats://x", Key: key, Replicas: 7}, []string{"Replicas is 7"}},
		{"negative", Config{URL: "nats://x", Key: key, AckWait: -time.Second, MaxAckPending: -1}, []string{"AckWait is -1s", "MaxAckPending is -1"}},
		{"short ack wait", Config{URL: "nats://x", Key: key, AckWait: 10 * time.Millisecond}, []string{"AckWait is 10ms"}},
		{"short max age", Config{URL: "nats://x", Key: key, StreamMaxAge: time.Second}, []string{"StreamMaxAge is 1s"}},
		{"batch over pending", Config{URL: "nats://x", Key: key, ApplyBatch: 500, MaxAckPending: 100}, []string{"ApplyBatch (500) is larger than MaxAckPending (100)"}},
		{"pull expiry", Config{URL: "nats://x", Key: key, PullExpiry: 100 * time.Millisecond}, []string{"PullExpiry is 100ms"}},
		{"retry", Config{URL: "nats://x", Key: key, RetryDelay: time.Minute, RetryMaxDelay: time.Second}, []string{"RetryDelay (1m0s) is longer than RetryMaxDelay (1s)"}},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil {
			t.Errorf("%s: valid", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v\nwant it to say %q", c.name, err, w)
			}
		}
		if _, nerr := New(c.cfg); nerr == nil || nerr.Error() != err.Error() {
			t.Errorf("%s: New returned %v, want the Validate error", c.name, nerr)
		}
	}
	if _, err := New(Config{URL: "nats://u:pw@127.0.0.1:1", Key: key, ConnectTimeout: 200 * time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "connect to nats://u:xxxxx@127.0.0.1:1") || !errors.Is(err, natsgo.ErrNoServers) {
		t.Fatalf("unreachable server: %v, want the URL without its password and ErrNoServers", err)
	}
}
