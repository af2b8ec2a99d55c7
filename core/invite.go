package core

import (
	"fmt"
	"slices"
)

// Invite lifetimes, in milliseconds.
const (
	DefaultInviteTTL = uint64(7 * 24 * 60 * 60 * 1000)
	// LegacyInviteTTL is how long a legacy invite (a grant of RoleInvite)
	// stays usable after the granting change's clock.
	LegacyInviteTTL = DefaultInviteTTL
)

// InviteTerms is what an invite offers: its key may sign one grant of Role
// to one new member, dated no later than Expires, directly on top of the
// change that made the invite.
type InviteTerms struct {
	Change  ID        `json:"change"`  // the change holding the invite
	Height  uint64    `json:"height"`  // its height
	By      PublicKey `json:"by"`      // the admin who made it
	Key     PublicKey `json:"key"`     // the invite's throwaway key
	Role    string    `json:"role"`    // role its use grants
	Expires uint64    `json:"expires"` // wall-clock ms
}

// InviteIn returns the invite a change makes for key: an OpInvite naming
// key, or the legacy grant of RoleInvite to key.
func InviteIn(c MemberChange, key PublicKey) (InviteTerms, bool) {
	for _, op := range c.Ops {
		switch {
		case op.Kind == OpInvite && op.Member == key:
			return InviteTerms{Change: c.ID, Height: c.Height, By: c.Author, Key: key, Role: op.Role, Expires: op.Expires}, true
		case op.Kind == OpGrant && op.Role == RoleInvite && op.Member == key:
			return InviteTerms{Change: c.ID, Height: c.Height, By: c.Author, Key: key, Role: RoleWriter, Expires: c.HLC.Wall + LegacyInviteTTL}, true
		}
	}
	return InviteTerms{}, false
}

// UseMember returns the member a use of an invite grants, if u has the
// shape of a use (one grant op).
func UseMember(u MemberChange) (PublicKey, bool) {
	if u.OpCount != 1 || len(u.Ops) != 1 || u.Ops[0].Kind != OpGrant {
		return PublicKey{}, false
	}
	return u.Ops[0].Member, true
}

// CheckInviteUse decides whether u is a well-formed, timely use of the
// invite t: signed by the invite key as its first and only change,
// directly on top of the invite, holding exactly one grant of the
// invite's role to another key, dated no later than the expiry. It is a
// pure function of the two changes; single use is decided over all uses
// by EvaluateMembership.
func CheckInviteUse(t InviteTerms, u MemberChange) error {
	switch {
	case u.Author != t.Key:
		return fmt.Errorf("%w: %s is not the key of invite %s", ErrUnauthorized, u.Author, t.Change.Short())
	case u.Seq != 1 || len(u.Parents) != 1 || u.Parents[0] != t.Change:
		return fmt.Errorf("%w: an invite key signs one change, directly on top of its invite %s", ErrUnauthorized, t.Change.Short())
	}
	member, ok := UseMember(u)
	switch {
	case !ok:
		return fmt.Errorf("%w: an invite key signs one grant and nothing else", ErrUnauthorized)
	case u.Ops[0].Role != t.Role:
		return fmt.Errorf("%w: invite %s grants role %q, not %q", ErrUnauthorized, t.Change.Short(), t.Role, u.Ops[0].Role)
	case member == t.Key:
		return fmt.Errorf("%w: an invite key cannot grant itself", ErrUnauthorized)
	case u.HLC.Wall > t.Expires:
		return fmt.Errorf("%w: invite %s expired at %d, the grant is dated %d", ErrUnauthorized, t.Change.Short(), t.Expires, u.HLC.Wall)
	}
	return nil
}

// UseClockBound is how far (ms) a use of t may date itself past its parent
// (the invite, whose clock is parentWall): up to the expiry, so a joiner
// signing offline days later records its real clock, and never less than
// the space's bound.
func (t InviteTerms) UseClockBound(parentWall, spaceMax uint64) uint64 {
	if t.Expires > parentWall {
		return max(spaceMax, t.Expires-parentWall)
	}
	return spaceMax
}

// InviteState says where an invite stands.
type InviteState string

// Invite states.
const (
	InviteOpen      InviteState = "open"      // no use known
	InviteUsed      InviteState = "used"      // one member admitted through it
	InviteContested InviteState = "contested" // several uses, none acknowledged: nobody admitted until an admin settles
	InviteRevoked   InviteState = "revoked"   // an admin revoked the invite key
)

// Invite is an invite and what became of it.
type Invite struct {
	InviteTerms
	State InviteState `json:"state"`
	Uses  []InviteUse `json:"uses,omitempty"`
}

// InviteUse is one use of an invite.
type InviteUse struct {
	Change       ID        `json:"change"`
	Member       PublicKey `json:"member"`
	HLC          HLC       `json:"hlc"`
	Acknowledged bool      `json:"acknowledged"`
	Accepted     bool      `json:"accepted"`
	Reason       string    `json:"reason,omitempty"`
}

// decideInvites settles single use. For each invite, among its uses that
// are individually valid (accepted so far): a use is acknowledged when an
// accepted admin change by an admin has it in its causal past and either
// holds no other use of the same invite in its past or grants the use's
// member by name (how an admin settles a contest). If any use is
// acknowledged, the acknowledged ones stand; else a lone use stands; else
// the invite is contested and no use stands until an admin settles it.
// Nothing in the rule favours a key, a clock or a change ID, so a second
// use cannot be ground to displace the first.
func (m *Membership) decideInvites(anc Ancestry) map[ID]string {
	losers := map[ID]string{}
	m.Invites = m.Invites[:0]
	for _, t := range m.sortedInvites() {
		inv := Invite{InviteTerms: t, State: InviteOpen}
		var uses []MemberChange
		for _, id := range m.uses[t.Change] {
			if _, ok := m.accepted[id]; ok {
				uses = append(uses, m.all[id])
			}
		}
		acked := make([]bool, len(uses))
		ackedAny := false
		for i, u := range uses {
			member, _ := UseMember(u)
			for _, x := range m.sortedAccepted() {
				c := m.accepted[x]
				if m.inviteKeys[c.Author] {
					continue // uses do not acknowledge
				}
				if !anc.IsAncestor(u.ID, x) {
					continue
				}
				names := slices.ContainsFunc(c.Ops, func(o Op) bool { return o.Kind == OpGrant && o.Member == member })
				other := slices.ContainsFunc(uses, func(o MemberChange) bool { return o.ID != u.ID && anc.IsAncestor(o.ID, x) })
				if names || !other {
					acked[i], ackedAny = true, true
					break
				}
			}
		}
		for i, u := range uses {
			member, _ := UseMember(u)
			iu := InviteUse{Change: u.ID, Member: member, HLC: u.HLC, Acknowledged: acked[i]}
			switch {
			case ackedAny && !acked[i]:
				iu.Reason = fmt.Sprintf("%v: invite %s was already used by an acknowledged grant", ErrUnauthorized, t.Change.Short())
			case !ackedAny && len(uses) > 1:
				iu.Reason = fmt.Sprintf("%v: invite %s is contested (%d uses, none acknowledged): an admin settles it with `tributary invite settle`", ErrUnauthorized, t.Change.Short(), len(uses))
			default:
				iu.Accepted = true
			}
			if !iu.Accepted {
				losers[u.ID] = iu.Reason
			}
			inv.Uses = append(inv.Uses, iu)
		}
		switch {
		case len(uses) > 1 && !ackedAny:
			inv.State = InviteContested
		case len(uses) > 0:
			inv.State = InviteUsed
		case len(m.Revokes[t.Key]) > 0:
			inv.State = InviteRevoked
		}
		m.Invites = append(m.Invites, inv)
	}
	return losers
}

func (m *Membership) sortedInvites() []InviteTerms {
	out := make([]InviteTerms, 0, len(m.invites))
	for _, t := range m.invites {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b InviteTerms) int {
		if a.Height != b.Height {
			if a.Height < b.Height {
				return -1
			}
			return 1
		}
		return a.Change.Compare(b.Change)
	})
	return out
}
