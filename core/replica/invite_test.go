package replica

import (
	"context"
	"errors"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

// invitation is an invite as its code carries it.
type invitation struct {
	code  core.InviteCode
	terms core.InviteTerms
}

func mustInvite(t testing.TB, r *Replica, admin core.PrivateKey, clk *clock, ttl uint64) invitation {
	t.Helper()
	now := clk.now()
	k, env, err := r.CreateInvite(context.Background(), admin, now+ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	code := core.InviteCode{Space: r.Space(), Seed: k.Seed(), Invite: env}
	text, err := code.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, terms, err := core.DecodeInviteCode(text)
	if err != nil {
		t.Fatal(err)
	}
	return invitation{got, terms}
}

// use signs the use of inv by member, dated now.
func (inv invitation) use(t testing.TB, member core.PublicKey, now uint64) ([]byte, core.ID) {
	t.Helper()
	s, id, err := inv.code.InviteUseChange(inv.terms, member, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b, id
}

func receive(t testing.TB, r *Replica, envs ...[]byte) Report {
	t.Helper()
	rep, err := r.Receive(context.Background(), envs)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// clone makes a fresh replica holding everything r holds.
func clone(t testing.TB, r *Replica) *Replica {
	t.Helper()
	c := openMem(t)
	syncInto(t, c, r)
	return c
}

// TestInviteReuseAfterAcknowledgementRefused replays attack 1: a used
// code is used again, by the joiner's key-grinding rival, after an admin
// acknowledged the first use. The second use is refused at the door and,
// relayed into the DAG anyway, has no effect; the first member and every
// write of theirs stand, on every replica in any order.
func TestInviteReuseAfterAcknowledgementRefused(t *testing.T) {
	ctx := context.Background()
	admin, alice := key(t, 1), key(t, 2)
	clk := &clock{}
	r := found(t, admin)
	inv := mustInvite(t, r, admin, clk, core.DefaultInviteTTL)
	use1, _ := inv.use(t, alice.Public(), clk.now())
	if err := r.AdmitUse(ctx, use1, alice.Public()); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if !r.IsMember(alice.Public()) {
		t.Fatal("alice is not a member after using the code")
	}
	w1 := mustWrite(t, r, alice, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a1", Fields: map[string]any{"name": "Alice"}})
	ack, err := r.Acknowledge(ctx, admin, clk.now())
	if err != nil || ack.IsZero() {
		t.Fatalf("acknowledge: %v %v", ack, err)
	}
	if again, _ := r.Acknowledge(ctx, admin, clk.now()); !again.IsZero() {
		t.Fatal("a second acknowledgement was written for the same use")
	}
	// The attacker grinds keys: whatever the ID of its use, it must lose.
	var reuses [][]byte
	for i := 0; i < 16; i++ {
		mallory := key(t, byte(100+i))
		env, _ := inv.use(t, mallory.Public(), clk.now())
		if err := r.AdmitUse(ctx, env, mallory.Public()); !errors.Is(err, ErrInviteUsed) {
			t.Fatalf("reuse %d admitted at the door: %v", i, err)
		}
		reuses = append(reuses, env)
	}
	if r.IsMember(key(t, 100).Public()) {
		t.Fatal("a refused reuse made a member")
	}
	// Relayed by someone into the DAG: stored without effect.
	receive(t, r, reuses...)
	for i := range reuses {
		if r.IsMember(key(t, byte(100+i)).Public()) {
			t.Fatalf("relayed reuse %d made a member", i)
		}
	}
	if valid, why, _ := r.Verdict(w1); !valid {
		t.Fatalf("alice's write lost effect: %s", why)
	}
	if !r.IsMember(alice.Public()) {
		t.Fatal("alice lost her membership to a reuse")
	}
	envs, err := r.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	if valid, why := everyReplicaAgrees(t, envs, w1); !valid {
		t.Fatalf("alice's write invalid on a fresh replica: %s", why)
	}
	st, _ := r.Status()
	if len(st.Equivocated) != 0 {
		t.Fatalf("uses of one code reported as equivocation: %v", st.Equivocated)
	}
}

// TestConcurrentReuseNeverDisplacesAcknowledgedMember: the first use is
// acknowledged on one replica while, offline elsewhere, rivals grind keys
// and use the same code. After every exchange, in both directions, the
// acknowledged member stands and every rival is refused.
func TestConcurrentReuseNeverDisplacesAcknowledgedMember(t *testing.T) {
	const rivals = 32
	ctx := context.Background()
	admin, alice := key(t, 1), key(t, 2)
	var rA, rB *Replica
	var w1 core.ID
	// The invite key is random, so alice's use's ID is too: set up again
	// until some rival's use sorts before hers (1 in 33 setups has none).
	for attempt := 0; ; attempt++ {
		if attempt == 20 {
			t.Fatal("test setup: in 20 setups no rival use sorted before alice's")
		}
		clk := &clock{}
		rA = found(t, admin)
		inv := mustInvite(t, rA, admin, clk, core.DefaultInviteTTL)
		rB = clone(t, rA) // knows the invite, not alice's use
		use1, id1 := inv.use(t, alice.Public(), clk.now())
		receive(t, rA, use1)
		w1 = mustWrite(t, rA, alice, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "a1", Fields: map[string]any{"name": "Alice"}})
		if ack, err := rA.Acknowledge(ctx, admin, clk.now()); err != nil || ack.IsZero() {
			t.Fatalf("acknowledge: %v", err)
		}
		lower := 0
		for i := 0; i < rivals; i++ {
			env, id := inv.use(t, key(t, byte(100+i)).Public(), clk.now())
			if id.Compare(id1) < 0 {
				lower++
			}
			receive(t, rB, env)
		}
		if lower > 0 {
			break
		}
	}
	syncInto(t, rA, rB)
	syncInto(t, rB, rA)
	for _, r := range []*Replica{rA, rB} {
		if !r.IsMember(alice.Public()) {
			t.Fatal("acknowledged member displaced by a concurrent reuse")
		}
		if valid, why, _ := r.Verdict(w1); !valid {
			t.Fatalf("acknowledged member's write lost: %s", why)
		}
		for i := 0; i < rivals; i++ {
			if r.IsMember(key(t, byte(100+i)).Public()) {
				t.Fatalf("rival %d admitted", i)
			}
		}
	}
	if a, b := fingerprint(t, rA), fingerprint(t, rB); a != b {
		t.Fatalf("replicas differ:\n%s", printDiff(a, b))
	}
}

// TestContestedInviteWaitsForAnAdmin: two uses, neither acknowledged
// (both joiners offline): nobody is admitted, whatever the keys or
// arrival order; the contest is listed; one admin command settles it.
func TestContestedInviteWaitsForAnAdmin(t *testing.T) {
	ctx := context.Background()
	admin, alice, bob := key(t, 1), key(t, 2), key(t, 3)
	clk := &clock{}
	r := found(t, admin)
	inv := mustInvite(t, r, admin, clk, core.DefaultInviteTTL)
	ua, _ := inv.use(t, alice.Public(), clk.now())
	ub, _ := inv.use(t, bob.Public(), clk.now())
	receive(t, r, ub, ua)
	if r.IsMember(alice.Public()) || r.IsMember(bob.Public()) {
		t.Fatal("a contested invite admitted someone before an admin settled it")
	}
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Contested != 1 || len(st.Invites) != 1 || st.Invites[0].State != core.InviteContested || len(st.Invites[0].Uses) != 2 {
		t.Fatalf("status does not show the contest: %+v", st.Invites)
	}
	// An unrelated admin change does not pick a side.
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpGrant, Member: key(t, 9).Public(), Role: core.RoleWriter})
	if r.IsMember(alice.Public()) || r.IsMember(bob.Public()) {
		t.Fatal("an unrelated admin change settled the contest")
	}
	if _, err := r.SettleInvite(ctx, admin, inv.terms.Change, bob.Public(), clk.now()); err != nil {
		t.Fatal(err)
	}
	if !r.IsMember(bob.Public()) || r.IsMember(alice.Public()) {
		t.Fatalf("settle: bob %v alice %v", r.IsMember(bob.Public()), r.IsMember(alice.Public()))
	}
	if got := r.Invites()[0].State; got != core.InviteUsed {
		t.Fatalf("settled invite state %s", got)
	}
	other := clone(t, r)
	if a, b := fingerprint(t, r), fingerprint(t, other); a != b {
		t.Fatalf("replicas differ:\n%s", printDiff(a, b))
	}
}

func TestInviteExpires(t *testing.T) {
	ctx := context.Background()
	admin, alice := key(t, 1), key(t, 2)
	clk := &clock{}
	r := found(t, admin)
	inv := mustInvite(t, r, admin, clk, 60_000)
	if _, _, err := inv.code.InviteUseChange(inv.terms, alice.Public(), inv.terms.Expires+1); !errors.Is(err, core.ErrCodeExpired) {
		t.Fatalf("join after expiry: %v", err)
	}
	// A hand-made use dated after the expiry is refused outright.
	late := &core.Change{Version: core.ChangeVersion, Space: r.Space(), Author: inv.terms.Key, Seq: 1,
		Parents: []core.ID{inv.terms.Change}, Height: inv.terms.Height + 1, HLC: core.HLC{Wall: inv.terms.Expires + 10},
		Ops: []core.Op{{Kind: core.OpGrant, Member: alice.Public(), Role: core.RoleWriter}}}
	ik, _ := core.PrivateKeyFromSeed(inv.code.Seed)
	env, id := signRaw(t, late, ik)
	if err := r.AdmitUse(ctx, env, alice.Public()); !errors.Is(err, ErrInviteExpired) {
		t.Fatalf("late use at the door: %v", err)
	}
	rep := receive(t, r, env)
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, core.ErrInvalidChange) || r.Has(id) {
		t.Fatalf("late use: %+v", rep)
	}
	// Presented at the door after the expiry, a use dated before it is
	// refused: the door's clock decides there.
	late2, _ := inv.use(t, key(t, 3).Public(), inv.terms.Expires-10)
	r.opts.Now = func() uint64 { return inv.terms.Expires + 1 }
	if err := r.AdmitUse(ctx, late2, key(t, 3).Public()); !errors.Is(err, ErrInviteExpired) {
		t.Fatalf("backdated use at the door after expiry: %v", err)
	}
	r.opts.Now = nil
	// A use dated days after the invite, but before its expiry, is fine:
	// the joiner's clock is not held to the space's one-hour bound.
	long := mustInvite(t, r, admin, clk, core.DefaultInviteTTL)
	env, _ = long.use(t, alice.Public(), long.terms.Expires-1000)
	if err := r.AdmitUse(ctx, env, alice.Public()); err != nil {
		t.Fatalf("use six days later: %v", err)
	}
}

func TestRevokedInviteRefusesLaterUses(t *testing.T) {
	ctx := context.Background()
	admin, alice, bob := key(t, 1), key(t, 2), key(t, 3)
	clk := &clock{}
	r := found(t, admin)
	inv := mustInvite(t, r, admin, clk, core.DefaultInviteTTL)
	if _, err := r.RevokeInvite(ctx, admin, inv.terms.Change, clk.now()); err != nil {
		t.Fatal(err)
	}
	if got := r.Invites()[0].State; got != core.InviteRevoked {
		t.Fatalf("state %s", got)
	}
	env, id := inv.use(t, alice.Public(), clk.now())
	if err := r.AdmitUse(ctx, env, alice.Public()); !errors.Is(err, ErrInviteRevoked) {
		t.Fatalf("use of a revoked invite at the door: %v", err)
	}
	receive(t, r, env)
	if r.IsMember(alice.Public()) {
		t.Fatal("a revoked invite admitted a member")
	}
	if valid, _ := everyReplicaAgrees(t, mustExport(t, r), id); valid {
		t.Fatal("use of a revoked invite valid on a fresh replica")
	}
	// A use known before the revocation keeps its member.
	inv2 := mustInvite(t, r, admin, clk, core.DefaultInviteTTL)
	env, _ = inv2.use(t, bob.Public(), clk.now())
	if err := r.AdmitUse(ctx, env, bob.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RevokeInvite(ctx, admin, inv2.terms.Change, clk.now()); err != nil {
		t.Fatal(err)
	}
	if !r.IsMember(bob.Public()) {
		t.Fatal("revoking a used invite removed its member")
	}
}

func mustExport(t testing.TB, r *Replica) [][]byte {
	t.Helper()
	envs, err := r.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

// TestInviteKeySignsOneGrantOnly: the throwaway key is not a member, may
// not write data, sign a second change, grant itself or another role,
// or build anywhere but directly on its invite.
func TestInviteKeySignsOneGrantOnly(t *testing.T) {
	ctx := context.Background()
	admin, alice := key(t, 1), key(t, 2)
	clk := &clock{}
	r := found(t, admin)
	inv := mustInvite(t, r, admin, clk, core.DefaultInviteTTL)
	ik, _ := core.PrivateKeyFromSeed(inv.code.Seed)
	if r.IsMember(ik.Public()) {
		t.Fatal("the invite key is a member")
	}
	if _, err := r.Write(ctx, ik, []core.Op{{Kind: core.OpCreate, Coll: "Author", Doc: "x", Fields: map[string]any{"name": "X"}}}, clk.now()); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("invite key wrote data: %v", err)
	}
	base := func() *core.Change {
		return &core.Change{Version: core.ChangeVersion, Space: r.Space(), Author: ik.Public(), Seq: 1,
			Parents: []core.ID{inv.terms.Change}, Height: inv.terms.Height + 1, HLC: core.HLC{Wall: clk.now()},
			Ops: []core.Op{{Kind: core.OpGrant, Member: alice.Public(), Role: core.RoleWriter}}}
	}
	for name, mutate := range map[string]func(*core.Change){
		"admin role":  func(c *core.Change) { c.Ops[0].Role = core.RoleAdmin },
		"grants self": func(c *core.Change) { c.Ops[0].Member = ik.Public() },
		"two grants": func(c *core.Change) {
			c.Ops = append(c.Ops, core.Op{Kind: core.OpGrant, Member: key(t, 7).Public(), Role: core.RoleWriter})
		},
		"grant + data": func(c *core.Change) {
			c.Ops = append(c.Ops, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "y", Fields: map[string]any{"name": "Y"}})
		},
		"revoke": func(c *core.Change) { c.Ops[0] = core.Op{Kind: core.OpRevoke, Member: admin.Public()} },
	} {
		t.Run(name, func(t *testing.T) {
			c := base()
			mutate(c)
			env, id := signRaw(t, c, ik)
			if valid, _ := everyReplicaAgrees(t, append(mustExport(t, r), env), id); valid {
				t.Fatal("accepted")
			}
		})
	}
	// Not directly on the invite: on later heads instead.
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "z", Fields: map[string]any{"name": "Z"}})
	c := nextChange(t, r, ik, clk.now(), core.Op{Kind: core.OpGrant, Member: alice.Public(), Role: core.RoleWriter})
	env, id := signRaw(t, c, ik)
	if valid, _ := everyReplicaAgrees(t, append(mustExport(t, r), env), id); valid {
		t.Fatal("a use not on top of its invite was accepted")
	}
	// A second change after a valid use.
	use, _ := inv.use(t, alice.Public(), clk.now())
	receive(t, r, use)
	second := nextChange(t, r, ik, clk.now(), core.Op{Kind: core.OpGrant, Member: key(t, 8).Public(), Role: core.RoleWriter})
	env, id = signRaw(t, second, ik)
	if valid, _ := everyReplicaAgrees(t, append(mustExport(t, r), env), id); valid {
		t.Fatal("the invite key's second change was accepted")
	}
}

func TestInviteCodeForgeries(t *testing.T) {
	admin := key(t, 1)
	clk := &clock{}
	r := found(t, admin)
	inv := mustInvite(t, r, admin, clk, core.DefaultInviteTTL)
	good, _ := inv.code.Encode()
	if _, _, err := core.DecodeInviteCode(good); err != nil {
		t.Fatal(err)
	}
	other := inv.code
	other.Space[0] ^= 1
	for name, tc := range map[string]struct {
		code string
		want error
	}{
		"truncated":   {good[:len(good)-9], core.ErrCodeDamaged},
		"not a code":  {"hello", core.ErrCodeDamaged},
		"old format":  {"trib1AAAA", core.ErrCodeOld},
		"other space": {must(other.Encode()), core.ErrCodeForged},
		"other key":   {must(invitation{code: withSeed(inv.code, key(t, 5).Seed())}.code.Encode()), core.ErrCodeForged},
	} {
		if _, _, err := core.DecodeInviteCode(tc.code); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func withSeed(c core.InviteCode, seed []byte) core.InviteCode { c.Seed = seed; return c }

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
