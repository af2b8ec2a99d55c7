package main

import (
	"strings"
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
		return d.code == 0 && strings.Contains(d.stdout, `"year":1974`)
	})
}
