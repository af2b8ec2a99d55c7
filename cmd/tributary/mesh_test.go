package main

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startNATS runs an embedded NATS server with JetStream for the test.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// eventually polls cond until it holds or 60 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestJoinAndRunOverNATS: a peer joins with an invite code, both run
// against one NATS server, and writes on either side reach the other
// (through the running nodes: the CLI commands are forwarded).
func TestJoinAndRunOverNATS(t *testing.T) {
	url := startNATS(t)
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	put(t, alice, space, "Author", `{"name":"Ursula"}`, "--id", "ul")
	var inv struct {
		Code string `json:"code"`
	}
	ok(t, alice, &inv, "invite", "--space", space)
	bob, _ := newHome(t, "bob")
	ok(t, bob, nil, "join", inv.Code)

	startNode(t, alice, "--nats", url, "--sync-interval", "200ms")
	startNode(t, bob, "--nats", url, "--sync-interval", "200ms")

	eventually(t, "bob receives the space's history", func() bool {
		r := run(t, bob, "get", "--space", space, "Author", "ul")
		return r.code == 0
	})
	put(t, bob, space, "Book", `{"title":"The Dispossessed","author":"ul"}`, "--id", "b1")
	eventually(t, "alice sees bob's write", func() bool {
		r := run(t, alice, "get", "--space", space, "Book", "b1")
		return r.code == 0
	})
	put(t, alice, space, "Book", `{"year":1974}`, "--id", "b1")
	eventually(t, "bob sees alice's update", func() bool {
		d := run(t, bob, "get", "--space", space, "Book", "b1")
		return d.code == 0 && contains(d.stdout, `"year":1974`)
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestJoinAndRunOverLibp2p: the invite code made through alice's running
// node carries her libp2p addresses; bob joins offline, then `run` alone
// reaches her (with the invite key, the only identity she admits before
// his grant arrives) and both sides sync.
func TestJoinAndRunOverLibp2p(t *testing.T) {
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	put(t, alice, space, "Author", `{"name":"Ursula"}`, "--id", "ul")
	p2p := []string{"--p2p", "/ip4/127.0.0.1/tcp/0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1", "--mdns=false", "--sync-interval", "300ms"}
	info := startNode(t, alice, p2p...)
	if info["libp2p"] == nil {
		t.Fatalf("run printed no libp2p addresses: %v", info)
	}
	var inv struct {
		Code string `json:"code"`
	}
	ok(t, alice, &inv, "invite", "--space", space)
	bob, bobKey := newHome(t, "bob")
	var joined struct {
		Bootstrap []string `json:"bootstrap"`
	}
	ok(t, bob, &joined, "join", inv.Code)
	if len(joined.Bootstrap) == 0 {
		t.Fatal("the invite code carried no addresses")
	}
	startNode(t, bob, p2p...)
	eventually(t, "bob receives the space's history", func() bool {
		return run(t, bob, "get", "--space", space, "Author", "ul").code == 0
	})
	eventually(t, "alice accepts bob's grant", func() bool {
		r := run(t, alice, "member", "list", "--space", space)
		return r.code == 0 && contains(r.stdout, bobKey)
	})
	put(t, bob, space, "Book", `{"title":"The Dispossessed","author":"ul"}`, "--id", "b1")
	eventually(t, "alice sees bob's write", func() bool {
		return run(t, alice, "get", "--space", space, "Book", "b1").code == 0
	})
	put(t, alice, space, "Book", `{"year":1974}`, "--id", "b1")
	eventually(t, "bob sees alice's update", func() bool {
		d := run(t, bob, "get", "--space", space, "Book", "b1")
		return d.code == 0 && contains(d.stdout, `"year":1974`)
	})
}
