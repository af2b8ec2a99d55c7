package replica

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

// TestInvitesConvergeUnderRandomInterleavings is the property behind single
// use: random invites, uses (several of one code among them), admin
// acknowledgements and settlements, revocations of invites and members,
// joiners' writes, and partial deliveries in random order across three
// replicas. After full exchange every replica, and a fresh one fed every
// change in a shuffled order, is byte-identical (documents, verdicts,
// membership), and every member whose use ends acknowledged keeps every
// write (unless an admin revoked that member or its invite).
func TestInvitesConvergeUnderRandomInterleavings(t *testing.T) {
	kept := 0
	base := testSeed(t)
	for round := 0; round < 6; round++ {
		seed := base + uint64(round)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { kept += inviteRound(t, seed) })
	}
	if kept == 0 {
		t.Fatal("no round had an acknowledged member with writes: the property was not exercised")
	}
}

type joiner struct {
	key    core.PrivateKey
	home   int
	invite core.ID
	writes []core.ID
}

func inviteRound(t *testing.T, seed uint64) int {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	clk := &clock{}
	adminA, adminB := key(t, 1), key(t, 2)
	r0 := found(t, adminA)
	mustWrite(t, r0, adminA, clk, core.Op{Kind: core.OpGrant, Member: adminB.Public(), Role: core.RoleAdmin})
	reps := []*Replica{r0, clone(t, r0), clone(t, r0)}
	admins := map[int]core.PrivateKey{0: adminA, 1: adminB} // each admin writes on its own replica only
	var codes []invitation
	var joiners []*joiner
	revoked := map[core.PublicKey]bool{}
	next := byte(10)
	newKey := func() core.PrivateKey {
		next++
		if next == 0 {
			t.Fatal("out of keys")
		}
		return key(t, next)
	}
	sync := func(dst, src *Replica, fraction float64) {
		envs := mustExport(t, src)
		rng.Shuffle(len(envs), func(i, j int) { envs[i], envs[j] = envs[j], envs[i] })
		envs = envs[:int(float64(len(envs))*fraction)]
		for len(envs) > 0 {
			n := min(len(envs), 1+rng.IntN(5))
			receive(t, dst, envs[:n]...)
			envs = envs[n:]
		}
	}
	for step := 0; step < 80; step++ {
		switch a := rng.IntN(100); {
		case a < 12: // an admin makes an invite
			i := rng.IntN(2)
			codes = append(codes, mustInvite(t, reps[i], admins[i], clk, core.DefaultInviteTTL))
		case a < 32 && len(codes) > 0: // someone uses a code (mostly a fresh one), delivered to some replica
			inv := codes[len(codes)-1]
			if rng.IntN(3) == 0 {
				inv = codes[rng.IntN(len(codes))]
			}
			j := &joiner{key: newKey(), home: rng.IntN(len(reps)), invite: inv.terms.Change}
			env, _ := inv.use(t, j.key.Public(), clk.now())
			receive(t, reps[j.home], env)
			joiners = append(joiners, j)
		case a < 55 && len(joiners) > 0: // a joiner writes where it is a member
			j := joiners[rng.IntN(len(joiners))]
			r := reps[j.home]
			if r.IsMember(j.key.Public()) {
				doc := fmt.Sprintf("j%x", j.key.Public().String()[:6])
				j.writes = append(j.writes, mustWrite(t, r, j.key, clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: doc, Fields: map[string]any{"name": fmt.Sprintf("w%d", step)}}))
			}
		case a < 63: // an admin's node acknowledges what it holds
			i := rng.IntN(2)
			if _, err := reps[i].Acknowledge(ctx, admins[i], clk.now()); err != nil {
				t.Fatal(err)
			}
		case a < 66: // an admin settles a contest it sees
			i := rng.IntN(2)
			for _, inv := range reps[i].Invites() {
				if inv.State == core.InviteContested {
					u := inv.Uses[rng.IntN(len(inv.Uses))]
					if _, err := reps[i].SettleInvite(ctx, admins[i], inv.Change, u.Member, clk.now()); err != nil {
						t.Fatal(err)
					}
					break
				}
			}
		case a < 68 && len(codes) > 0: // an admin revokes an invite it holds
			i := rng.IntN(2)
			inv := codes[rng.IntN(len(codes))]
			if reps[i].Has(inv.terms.Change) {
				if _, err := reps[i].RevokeInvite(ctx, admins[i], inv.terms.Change, clk.now()); err == nil {
					revoked[inv.terms.Key] = true
				}
			}
		case a < 70 && len(joiners) > 0: // an admin revokes a joiner
			i := rng.IntN(2)
			j := joiners[rng.IntN(len(joiners))]
			if _, err := reps[i].Write(ctx, admins[i], []core.Op{{Kind: core.OpRevoke, Member: j.key.Public()}}, clk.now()); err == nil {
				revoked[j.key.Public()] = true
			}
		case a < 75: // an admin writes data
			i := rng.IntN(2)
			mustWrite(t, reps[i], admins[i], clk, core.Op{Kind: core.OpCreate, Coll: "Author", Doc: fmt.Sprintf("a%d", rng.IntN(4)), Fields: map[string]any{"name": fmt.Sprintf("s%d", step)}})
		default: // partial delivery between two replicas
			src, dst := rng.IntN(len(reps)), rng.IntN(len(reps))
			if src != dst {
				sync(reps[dst], reps[src], rng.Float64())
			}
		}
	}
	for round := 0; round < 2; round++ {
		for i := range reps {
			for j := range reps {
				if i != j {
					sync(reps[i], reps[j], 1)
				}
			}
		}
	}
	want := fingerprint(t, reps[0])
	for i, r := range reps[1:] {
		if got := fingerprint(t, r); got != want {
			t.Fatalf("replica %d differs from replica 0:\n%s", i+1, printDiff(want, got))
		}
	}
	fresh := openMem(t)
	all := mustExport(t, reps[0])
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	receive(t, fresh, all...)
	if got := fingerprint(t, fresh); got != want {
		t.Fatalf("a fresh replica fed in a shuffled order differs:\n%s", printDiff(want, got))
	}
	contested, used, kept := 0, 0, 0
	for _, inv := range reps[0].Invites() {
		switch inv.State {
		case core.InviteContested:
			contested++
		case core.InviteUsed:
			used++
		}
		for _, u := range inv.Uses {
			if !u.Accepted || !u.Acknowledged || revoked[u.Member] || revoked[inv.Key] {
				continue
			}
			for _, j := range joiners {
				if j.key.Public() != u.Member {
					continue
				}
				for _, w := range j.writes {
					if valid, why, _ := reps[0].Verdict(w); !valid {
						t.Fatalf("acknowledged member %s lost write %s: %s", u.Member, w.Short(), why)
					}
					kept++
				}
			}
		}
	}
	t.Logf("%d invites (%d used, %d contested), %d uses, %d revocations, %d writes of acknowledged members kept", len(codes), used, contested, len(joiners), len(revoked), kept)
	return kept
}
