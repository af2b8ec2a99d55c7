package meshtest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// Invite makes an invite on r, a replica of the space, by the space's
// admin (Keys[0]), open until expires (wall-clock ms). It returns the
// invite code and its terms, as `tributary join` decodes them.
func (s *Space) Invite(t testing.TB, r *replica.Replica, expires uint64) (core.InviteCode, core.InviteTerms) {
	t.Helper()
	key, env, err := r.CreateInvite(context.Background(), s.Keys[0], expires, s.Now())
	if err != nil {
		t.Fatal(err)
	}
	seed := key.Seed()
	code, err := core.InviteCode{Space: s.ID, Name: "meshtest", Seed: seed, Invite: env}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ic, terms, err := core.DecodeInviteCode(code)
	if err != nil {
		t.Fatal(err)
	}
	return ic, terms
}

// Use signs the use of the invite of code granting member, dated
// nowMillis: the proof a joiner presents. A date past the invite's expiry
// makes a late use (which `join` would not sign).
func Use(t testing.TB, code core.InviteCode, terms core.InviteTerms, member core.PublicKey, nowMillis uint64) []byte {
	t.Helper()
	if nowMillis > terms.Expires {
		terms.Expires = math.MaxUint64 // sign anyway; the space judges it late
	}
	s, _, err := code.InviteUseChange(terms, member, nowMillis)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Newcomer opens the replica of a newcomer to the space as `tributary
// join` leaves it: holding nothing but proof, its use of an invite,
// waiting for the space's history.
func (s *Space) Newcomer(t testing.TB, proof []byte) *replica.Replica {
	t.Helper()
	r, err := replica.Open(replica.Options{InMemory: true, Space: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rep, err := r.Receive(context.Background(), [][]byte{proof})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Held != 1 {
		t.Fatalf("the joiner's use is not held for the space's history: %+v", rep)
	}
	return r
}

// Millis is a wall clock in ms, d from now.
func Millis(d time.Duration) uint64 { return uint64(time.Now().Add(d).UnixMilli()) }
