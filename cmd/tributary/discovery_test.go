package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// launchP2PNode is startP2PNode with a stop function; listen is the
// libp2p listen address.
func launchP2PNode(t *testing.T, home, listen string) ([]string, func()) {
	t.Helper()
	info, stop := launchNode(t, home, "--p2p", listen, "--mdns=false", "--sync-interval", "300ms")
	return p2pAddrs(t, info), stop
}

// listenOf turns a node's address /ip4/127.0.0.1/tcp/PORT/p2p/ID into the
// listen address it was bound to, to restart the node where its peers
// last saw it.
func listenOf(t *testing.T, addrs []string) string {
	t.Helper()
	for _, a := range addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			return a[:strings.Index(a, "/p2p/")]
		}
	}
	t.Fatalf("no loopback TCP address among %v", addrs)
	return ""
}

// knowsAddr reports whether home saved an address record of key.
func knowsAddr(t *testing.T, home, space, key string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "spaces", space, "addrs.json"))
	return err == nil && strings.Contains(string(b), key)
}

// TestInviterNotNeeded: alice invites bob and carol, whose codes carry
// only her addresses (mDNS off). Through the space bob and carol learn
// where the other is, so once alice stops they keep syncing, and again
// after both restart.
func TestInviterNotNeeded(t *testing.T) {
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	_, stopAlice := launchP2PNode(t, alice, "/ip4/127.0.0.1/tcp/0")
	put(t, alice, space, "Author", `{"name":"Before"}`, "--id", "before")

	homes := map[string]string{}
	keys := map[string]string{}
	addrs := map[string][]string{}
	stops := map[string]func(){}
	for _, name := range []string{"bob", "carol"} {
		inv := invite(t, alice, space)
		homes[name], keys[name] = join(t, name, inv.Code)
		addrs[name], stops[name] = launchP2PNode(t, homes[name], "/ip4/127.0.0.1/tcp/0")
	}
	bob, carol := homes["bob"], homes["carol"]
	eventually(t, "bob and carol never received alice's space", func() bool {
		return has(t, bob, space, "Author", "before") && has(t, carol, space, "Author", "before")
	})
	eventually(t, "bob and carol never learned each other's addresses", func() bool {
		return knowsAddr(t, bob, space, keys["carol"]) && knowsAddr(t, carol, space, keys["bob"])
	})

	stopAlice()
	exchange := func(round string) {
		t.Helper()
		put(t, bob, space, "Author", `{"name":"From bob"}`, "--id", "bob-"+round)
		eventually(t, "carol never received bob's write "+round, func() bool { return has(t, carol, space, "Author", "bob-"+round) })
		put(t, carol, space, "Author", `{"name":"From carol"}`, "--id", "carol-"+round)
		eventually(t, "bob never received carol's write "+round, func() bool { return has(t, bob, space, "Author", "carol-"+round) })
	}
	exchange("alice-gone")

	for _, name := range []string{"bob", "carol"} {
		stops[name]()
	}
	for _, name := range []string{"bob", "carol"} {
		launchP2PNode(t, homes[name], listenOf(t, addrs[name]))
	}
	exchange("restarted")
}

// TestInviteAddresses: a code made while no node ever ran carries no
// address and says so (stderr, and "warning" in JSON); --addr adds to
// the node's addresses.
func TestInviteAddresses(t *testing.T) {
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	r := run(t, alice, "invite", "--space", space)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: this code carries no peer address") || !strings.Contains(r.stdout, `"warning":`) {
		t.Fatalf("invite without any address: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	addrs, stop := launchP2PNode(t, alice, "/ip4/127.0.0.1/tcp/0")
	extra := strings.Replace(addrs[0], "127.0.0.1", "192.0.2.1", 1)
	inv := invite(t, alice, space, "--addr", extra)
	if len(inv.Addrs) != len(addrs)+1 || inv.Addrs[0] != addrs[0] || inv.Addrs[len(inv.Addrs)-1] != extra {
		t.Fatalf("invite with the node running and --addr carries %v, want %v and %s", inv.Addrs, addrs, extra)
	}
	stop()
	// Stopped, the node's addresses of its last run (saved in the home)
	// are what a code carries.
	if inv := invite(t, alice, space); len(inv.Addrs) != len(addrs) || inv.Addrs[0] != addrs[0] {
		t.Fatalf("invite with the node stopped carries %v, want its last addresses %v", inv.Addrs, addrs)
	}
}
