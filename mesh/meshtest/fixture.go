package meshtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh"
)

// Schema is the suite's space schema.
const Schema = "type Note @collection { text: String! n: Int tags: [String!] @set }"

// Network is n transports built by a Factory.
type Network interface {
	Transport(i int) mesh.Transport
	// Isolate cuts peer i off from every other peer until Heal.
	Isolate(i int)
	Heal()
	Close()
}

// Factory builds a network of len(keys) transports; transport i acts as
// the peer whose identity is keys[i].
type Factory func(t *testing.T, keys []core.PrivateKey) Network

// Key derives a test key from a byte.
func Key(t testing.TB, seed byte) core.PrivateKey {
	t.Helper()
	k, err := core.PrivateKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Space is a founded space: keys[0] is the admin, the others writers.
type Space struct {
	Keys      []core.PrivateKey
	ID        core.ID
	Bootstrap [][]byte // genesis and grants
	clock     uint64
}

// NewSpace founds a space with n keys, all members.
func NewSpace(t testing.TB, n int) *Space {
	t.Helper()
	s := &Space{clock: uint64(time.Now().UnixMilli())}
	for i := range n {
		s.Keys = append(s.Keys, Key(t, byte(10+i)))
	}
	r := OpenReplica(t)
	ctx := context.Background()
	id, err := r.Found(ctx, s.Keys[0], "meshtest", Schema, nil, s.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.ID = id
	for _, k := range s.Keys[1:] {
		if _, err := r.Write(ctx, s.Keys[0], []core.Op{{Kind: core.OpGrant, Member: k.Public(), Role: core.RoleWriter}}, s.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if s.Bootstrap, err = r.Export(nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// Now is a clock for writes that never goes backwards.
func (s *Space) Now() uint64 {
	s.clock = max(s.clock+1, uint64(time.Now().UnixMilli()))
	return s.clock
}

// OpenReplica opens an in-memory replica.
func OpenReplica(t testing.TB) *replica.Replica {
	t.Helper()
	r, err := replica.Open(replica.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Member opens a replica holding the bootstrap changes.
func (s *Space) Member(t testing.TB) *replica.Replica {
	t.Helper()
	r := OpenReplica(t)
	if _, err := r.Receive(context.Background(), s.Bootstrap); err != nil {
		t.Fatal(err)
	}
	return r
}

// Chain signs count changes by the admin on top of the bootstrap, one
// create each, without storing them: a fast way to make history.
func (s *Space) Chain(t testing.TB, count int) [][]byte {
	t.Helper()
	last, lastID, _, err := core.Open(s.Bootstrap[len(s.Bootstrap)-1])
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, 0, count)
	prev, h, seq, wall := lastID, last.Height, last.Seq, last.HLC.Wall
	for i := range count {
		c := &core.Change{Version: core.ChangeVersion, Space: s.ID, Author: s.Keys[0].Public(), Seq: seq + 1, Prev: prev,
			Parents: []core.ID{prev}, Height: h + 1, HLC: core.HLC{Wall: wall, Logical: uint32(i + 1)},
			Ops: []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: fmt.Sprintf("chain-%d", i), Fields: map[string]any{"text": "history", "n": int64(i)}}}}
		signed, id, err := core.Sign(c, s.Keys[0])
		if err != nil {
			t.Fatal(err)
		}
		b, err := signed.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		prev, h, seq = id, h+1, seq+1
	}
	return out
}

// State summarizes a replica for comparison: heads, change count and
// every note.
func State(t testing.TB, r *replica.Replica) string {
	t.Helper()
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s orphans=%d", StoredState(t, r), st.Orphans)
}

// StoredState is State without the changes held for missing parents:
// what a replica has accepted. Which held changes a replica was sent
// depends on who pushed what to whom (a revoked member's pushes reach some
// replicas and are never completed), and a held change has no effect.
func StoredState(t testing.TB, r *replica.Replica) string {
	t.Helper()
	heads := r.Heads()
	hs := make([]string, len(heads))
	for i, h := range heads {
		hs[i] = h.String()
	}
	slices.Sort(hs)
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := r.Query("Note", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(docs)
	return fmt.Sprintf("changes=%d heads=%s docs=%s", st.Changes, strings.Join(hs, ","), b)
}

// Eventually polls cond until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	EventuallyProgressing(t, timeout, nil, what, cond)
}

// EventuallyProgressing polls cond until it holds. With progress nil it
// fails once timeout passes; otherwise only when progress's value stays
// the same for timeout (the work is stuck, not slow).
func EventuallyProgressing(t testing.TB, timeout time.Duration, progress func() uint64, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	var seen uint64
	if progress != nil {
		seen = progress()
	}
	since := time.Now()
	for time.Since(since) < timeout {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(20 * time.Millisecond)
		if progress != nil {
			if p := progress(); p != seen {
				seen, since = p, time.Now()
			}
		}
	}
	if progress != nil {
		t.Fatalf("%s: no progress for %s: %s", what, timeout, last)
	}
	t.Fatalf("%s: not reached within %s: %s", what, timeout, last)
}
