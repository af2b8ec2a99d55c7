package mesh

import (
	"bytes"
	"context"
	"testing"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// testKey and memReplica are meshtest.Key and meshtest.OpenReplica, which
// this package's own tests cannot import (meshtest imports mesh).
func testKey(t *testing.T, seed byte) core.PrivateKey {
	t.Helper()
	k, err := core.PrivateKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func memReplica(t *testing.T) *replica.Replica {
	t.Helper()
	r, err := replica.Open(replica.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Pushes that queued up are applied together: changes pushed before
// their parents are stored, not held; a change pushed by two peers is
// applied once; a refused change bans its author, a member, and not the
// peer that relayed it.
func TestQueuedPushesAppliedTogether(t *testing.T) {
	ctx := context.Background()
	admin, writer := testKey(t, 1), testKey(t, 2)
	author := memReplica(t)
	clock := uint64(1_700_000_000_000)
	now := func() uint64 { clock++; return clock }
	if _, err := author.Found(ctx, admin, "apply", "type Note @collection { text: String! }", nil, now()); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Write(ctx, admin, []core.Op{{Kind: core.OpGrant, Member: writer.Public(), Role: core.RoleWriter}}, now()); err != nil {
		t.Fatal(err)
	}
	bootstrap, err := author.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	envelope := func(key core.PrivateKey, doc string) []byte {
		t.Helper()
		id, err := author.Write(ctx, key, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: doc, Fields: map[string]any{"text": doc}}}, now())
		if err != nil {
			t.Fatal(err)
		}
		env, err := author.Envelope(id)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	c1, c2, c3 := envelope(admin, "c1"), envelope(admin, "c2"), envelope(admin, "c3")
	w1, w2 := envelope(writer, "w1"), envelope(writer, "w2")
	// The writer's second change skipping a sequence number (its prev is
	// the writer's change 1, its sequence 3): signed, but against the
	// structural rules.
	c, _, _, err := core.Open(w2)
	if err != nil {
		t.Fatal(err)
	}
	c.Seq++
	signed, badID, err := core.Sign(c, writer)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := signed.Encode()
	if err != nil {
		t.Fatal(err)
	}

	b := memReplica(t)
	if _, err := b.Receive(ctx, bootstrap); err != nil {
		t.Fatal(err)
	}
	n := NewNode(b, nil, Config{})
	push := func(from PeerID, envs ...[]byte) pushed {
		t.Helper()
		vs, errs := core.OpenBatch(envs)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return pushed{from: from, envs: envs, verified: vs}
	}
	group := []pushed{
		push("p1", c2, c3), // before their parent
		push("p1", c1),
		push("p2", c1), // the same change again, from another peer
		push("p3", w1, bad),
	}
	n.applyPushes(ctx, group)

	for i, env := range [][]byte{c1, c2, c3, w1} {
		_, id, _, err := core.Open(env)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Has(id) {
			t.Errorf("change %d not stored", i)
		}
	}
	if b.Has(badID) {
		t.Error("the refused change was stored")
	}
	if held := len(b.Orphans()); held != 0 {
		t.Errorf("%d changes held for parents pushed with them", held)
	}
	m := n.Metrics().Snapshot()
	if m["changes_applied"] != 4 || m["changes_rejected"] != 1 || m["orphans_held"] != 0 || m["pushes_grouped"] != 4 {
		t.Errorf("metrics %v", m)
	}
	signer := PeerOf(writer.Public())
	banned := n.Banned()
	if _, ok := banned[signer]; !ok || len(banned) != 1 {
		t.Fatalf("banned %v, want the refused change's author %s only", banned, signer)
	}

	// A banned peer's pushes are dropped from the next group.
	n.applyPushes(ctx, []pushed{push(signer, w2), push("p1", c1)})
	_, w2ID, _, _ := core.Open(w2)
	if b.Has(w2ID) {
		t.Error("a banned peer's push was applied")
	}
}

// A peer that pushes a refused change it signed itself is banned.
func TestRefusedPushBansItsSender(t *testing.T) {
	ctx := context.Background()
	admin := testKey(t, 1)
	author := memReplica(t)
	if _, err := author.Found(ctx, admin, "apply", "type Note @collection { text: String! }", nil, 1_700_000_000_000); err != nil {
		t.Fatal(err)
	}
	bootstrap, err := author.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := author.Write(ctx, admin, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: "a", Fields: map[string]any{"text": "a"}}}, 1_700_000_000_001)
	if err != nil {
		t.Fatal(err)
	}
	env, err := author.Envelope(id)
	if err != nil {
		t.Fatal(err)
	}
	c, _, _, err := core.Open(env)
	if err != nil {
		t.Fatal(err)
	}
	c.Seq++ // its prev is the admin's change 1: against the structural rules
	signed, _, err := core.Sign(c, admin)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := signed.Encode()
	if err != nil {
		t.Fatal(err)
	}
	vs, errs := core.OpenBatch([][]byte{bad})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	b := memReplica(t)
	if _, err := b.Receive(ctx, bootstrap); err != nil {
		t.Fatal(err)
	}
	n := NewNode(b, nil, Config{})
	sender := PeerOf(admin.Public())
	n.applyPushes(ctx, []pushed{{from: sender, envs: [][]byte{bad}, verified: vs}})
	if _, ok := n.Banned()[sender]; !ok || len(n.Banned()) != 1 {
		t.Fatalf("banned %v, want the author that pushed it", n.Banned())
	}
}
