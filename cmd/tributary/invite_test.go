package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type inviteOut struct {
	Code    string   `json:"code"`
	Invite  string   `json:"invite"`
	Expires string   `json:"expires"`
	Addrs   []string `json:"addrs"`
}

type inviteView struct {
	Change string `json:"change"`
	State  string `json:"state"`
	Uses   []struct {
		Member       string `json:"member"`
		Accepted     bool   `json:"accepted"`
		Acknowledged bool   `json:"acknowledged"`
		Reason       string `json:"reason"`
	} `json:"uses"`
}

type memberView struct {
	Key     string `json:"key"`
	Role    string `json:"role"`
	Revoked bool   `json:"revoked"`
}

func invite(t *testing.T, home, space string, extra ...string) inviteOut {
	t.Helper()
	var inv inviteOut
	ok(t, home, &inv, append([]string{"invite", "--space", space}, extra...)...)
	if inv.Code == "" || inv.Invite == "" {
		t.Fatalf("invite printed %+v", inv)
	}
	return inv
}

// join makes a fresh home join with code (offline: exit 0) and returns
// the home and its author key.
func join(t *testing.T, name, code string) (string, string) {
	t.Helper()
	home := filepath.Join(t.TempDir(), name)
	var j struct {
		Author string `json:"author"`
	}
	ok(t, home, &j, "join", code)
	return home, j.Author
}

func members(t *testing.T, home, space string) map[string]memberView {
	t.Helper()
	var ms []memberView
	ok(t, home, &ms, "member", "list", "--space", space)
	out := map[string]memberView{}
	for _, m := range ms {
		out[m.Key] = m
	}
	return out
}

func isMember(ms map[string]memberView, key string) bool {
	m, ok := ms[key]
	return ok && !m.Revoked && m.Role != ""
}

// carry exports everything from one home and imports it into another;
// the import must not fail.
func carry(t *testing.T, from, to, space string) importOut {
	t.Helper()
	file := filepath.Join(t.TempDir(), "carry.trb")
	ok(t, from, nil, "export", "--space", space, "-o", file)
	var im importOut
	ok(t, to, &im, "import", file)
	return im
}

// TestReusedCodeRefusedAfterAcknowledgement replays attack 1 through the
// CLI: bob uses the code and reaches alice (an admin: her node
// acknowledges him); mallory, holding the same code, joins offline and
// her use reaches alice too. Mallory is refused and never a member;
// bob and every write of his stand, on alice and on bob.
func TestReusedCodeRefusedAfterAcknowledgement(t *testing.T) {
	t.Parallel()
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	inv := invite(t, alice, space)
	bob, bobKey := join(t, "bob", inv.Code)
	carry(t, bob, alice, space)
	carry(t, alice, bob, space)
	book := put(t, bob, space, "Book", `{"title":"Bob's book"}`)
	carry(t, bob, alice, space)

	mallory, malloryKey := join(t, "mallory", inv.Code) // offline, nothing can tell yet
	im := carry(t, mallory, alice, space)
	if im.Invalid != 1 {
		t.Fatalf("alice imports mallory's reuse: %+v, want it stored without effect", im)
	}
	ms := members(t, alice, space)
	if isMember(ms, malloryKey) || !isMember(ms, bobKey) {
		t.Fatalf("after the reuse: bob %v, mallory %v", ms[bobKey], ms[malloryKey])
	}
	var invs []inviteView
	ok(t, alice, &invs, "invite", "list", "--space", space)
	if len(invs) != 1 || invs[0].State != "used" || len(invs[0].Uses) != 2 {
		t.Fatalf("invite list: %+v", invs)
	}
	for _, u := range invs[0].Uses {
		if (u.Member == bobKey) != u.Accepted || (u.Member == malloryKey && !strings.Contains(u.Reason, "already used")) {
			t.Fatalf("use by %s: %+v", u.Member, u)
		}
	}
	if d := get(t, alice, space, "Book", book.ID); d["title"] != "Bob's book" {
		t.Fatalf("bob's book at alice: %v", d)
	}
	// Mallory gets the history: her own node refuses her writes.
	carry(t, alice, mallory, space)
	fails(t, mallory, []string{"not authorized"}, "put", "--space", space, "Book", `{"title":"Mallory's"}`, "--id", "m1")
	carry(t, alice, bob, space)
	if d := get(t, bob, space, "Book", book.ID); d["title"] != "Bob's book" {
		t.Fatalf("bob's book at bob: %v", d)
	}
}

// TestJoinRefusesBadCodes: a damaged, forged, old-format or expired code,
// or a second join of one space, fails with a clear error and leaves no
// trace of the space in the home.
func TestJoinRefusesBadCodes(t *testing.T) {
	t.Parallel()
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	good := invite(t, alice, space).Code
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(good, "trib2"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-10] ^= 0x01 // inside the invite's signature
	expired := invite(t, alice, space, "--ttl", "1ms").Code
	time.Sleep(20 * time.Millisecond)
	for name, tc := range map[string]struct {
		code string
		want string
	}{
		"damaged":    {good[:len(good)/2], "damaged"},
		"forged":     {"trib2" + base64.RawURLEncoding.EncodeToString(flipped), "forged"},
		"old format": {"trib1" + strings.TrimPrefix(good, "trib2"), "older format"},
		"expired":    {expired, "expired"},
	} {
		t.Run(name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "joiner")
			fails(t, home, []string{tc.want}, "join", tc.code)
			if entries, _ := os.ReadDir(filepath.Join(home, "spaces")); len(entries) != 0 {
				t.Fatalf("a refused join left %d spaces behind", len(entries))
			}
		})
	}
	bob, _ := join(t, "bob", good)
	fails(t, bob, []string{"already holds space"}, "join", good)
}

// TestRevokedInviteAdmitsNobody: an admin revokes an invite before it is
// used; a use made offline afterwards has no effect anywhere.
func TestRevokedInviteAdmitsNobody(t *testing.T) {
	t.Parallel()
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	inv := invite(t, alice, space)
	ok(t, alice, nil, "invite", "revoke", "--space", space, inv.Invite)
	carol, carolKey := join(t, "carol", inv.Code)
	if im := carry(t, carol, alice, space); im.Invalid != 1 {
		t.Fatalf("alice imports carol's use of a revoked invite: %+v", im)
	}
	if isMember(members(t, alice, space), carolKey) {
		t.Fatal("a revoked invite admitted carol")
	}
	var invs []inviteView
	ok(t, alice, &invs, "invite", "list", "--space", space)
	if len(invs) != 1 || invs[0].State != "revoked" {
		t.Fatalf("invite list: %+v", invs)
	}
}

// TestContestedInviteSettledByAdmin: two people use one code while the
// admin is away; a writer gathers both uses before any admin saw either.
// Nobody is admitted, the admin is told, and one command settles it.
func TestContestedInviteSettledByAdmin(t *testing.T) {
	t.Parallel()
	alice, _ := newHome(t, "alice")
	space := newSpace(t, alice, "library")
	wendy, wendyKey := join(t, "wendy", invite(t, alice, space).Code)
	carry(t, wendy, alice, space)
	inv := invite(t, alice, space)
	carry(t, alice, wendy, space)
	if !isMember(members(t, wendy, space), wendyKey) {
		t.Fatal("wendy is not a member")
	}
	bob, bobKey := join(t, "bob", inv.Code)
	carol, carolKey := join(t, "carol", inv.Code)
	carry(t, bob, wendy, space)
	carry(t, carol, wendy, space)
	carry(t, wendy, alice, space)
	ms := members(t, alice, space)
	if isMember(ms, bobKey) || isMember(ms, carolKey) {
		t.Fatalf("a contested invite admitted someone: %v", ms)
	}
	r := run(t, alice, "member", "list", "--space", space)
	if r.code != 0 || !strings.Contains(r.stderr, "contested") || !strings.Contains(r.stderr, bobKey) || !strings.Contains(r.stderr, carolKey) {
		t.Fatalf("member list does not show the contest: %+v", r)
	}
	ok(t, alice, nil, "invite", "settle", "--space", space, inv.Invite, "--member", carolKey)
	ms = members(t, alice, space)
	if isMember(ms, bobKey) || !isMember(ms, carolKey) {
		t.Fatalf("after settling for carol: bob %v, carol %v", ms[bobKey], ms[carolKey])
	}
	carry(t, alice, bob, space)
	if isMember(members(t, bob, space), bobKey) {
		t.Fatal("bob believes he is a member after the settlement")
	}
}
