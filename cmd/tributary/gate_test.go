package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startP2PNode runs `tributary run` with libp2p on loopback (port 0) and
// returns its libp2p addresses.
func startP2PNode(t *testing.T, home string, extra ...string) []string {
	t.Helper()
	info := startNode(t, home, append([]string{"--p2p", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--sync-interval", "300ms"}, extra...)...)
	return p2pAddrs(t, info)
}

// p2pAddrs are the libp2p addresses a starting node printed.
func p2pAddrs(t *testing.T, info map[string]any) []string {
	t.Helper()
	lp, _ := info["libp2p"].(map[string]any)
	raw, _ := lp["addrs"].([]any)
	var addrs []string
	for _, a := range raw {
		addrs = append(addrs, a.(string))
	}
	if len(addrs) == 0 {
		t.Fatalf("run printed no libp2p address: %v", info)
	}
	return addrs
}

func has(t *testing.T, home, space, coll, id string) bool {
	t.Helper()
	r := run(t, home, "get", "--space", space, coll, id)
	return r.code == 0
}

// TestGateThroughTheBinary replays the gate attacks as users meet them:
// bob joins online (a peer admits his proof at once) and syncs over
// libp2p with only the code's addresses; mallory, holding the same code,
// is told at join time that it was used and keeps nothing; once revoked,
// bob receives nothing written after the revocation.
func TestGateThroughTheBinary(t *testing.T) {
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	addrs := startP2PNode(t, alice)
	inv := invite(t, alice, space)
	if len(inv.Addrs) == 0 || inv.Addrs[0] != addrs[0] {
		t.Fatalf("an invite made with the node running carries %v, want its addresses %v", inv.Addrs, addrs)
	}

	bob := filepath.Join(t.TempDir(), "bob")
	var joined struct {
		Author  string `json:"author"`
		Checked string `json:"checked"`
	}
	ok(t, bob, &joined, "join", inv.Code)
	if !strings.Contains(joined.Checked, "admitted") {
		t.Fatalf("bob's join: %+v", joined)
	}

	mallory := filepath.Join(t.TempDir(), "mallory")
	fails(t, mallory, []string{"join refused", "used"}, "join", inv.Code)
	if entries, _ := os.ReadDir(filepath.Join(mallory, "spaces")); len(entries) != 0 {
		t.Fatalf("a refused join left %d spaces in mallory's home", len(entries))
	}

	put(t, alice, space, "Author", `{"name":"Before"}`, "--id", "before")
	startP2PNode(t, bob)
	eventually(t, "bob never received alice's space", func() bool { return has(t, bob, space, "Author", "before") })
	put(t, bob, space, "Author", `{"name":"From bob"}`, "--id", "bob1")
	eventually(t, "alice never received bob's write", func() bool { return has(t, alice, space, "Author", "bob1") })

	ok(t, alice, nil, "member", "revoke", "--space", space, joined.Author)
	put(t, alice, space, "Author", `{"name":"After"}`, "--id", "after")
	time.Sleep(3 * time.Second) // many sync rounds at 300 ms
	if has(t, bob, space, "Author", "after") {
		t.Fatal("a revoked member received a write made after the revocation")
	}
}
