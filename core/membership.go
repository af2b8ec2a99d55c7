package core

import (
	"fmt"
	"slices"
)

// MemberChange is a change that holds admin ops (grant, revoke, invite,
// schema), as membership evaluation sees it.
type MemberChange struct {
	ID      ID
	Height  uint64
	HLC     HLC
	Author  PublicKey
	Seq     uint64
	Parents []ID
	OpCount int  // ops in the whole change
	Ops     []Op // only the admin ops of the change
}

// MemberView is the admin part of a change.
func MemberView(c *Change, id ID) MemberChange {
	mc := MemberChange{ID: id, Height: c.Height, HLC: c.HLC, Author: c.Author, Seq: c.Seq, Parents: c.Parents, OpCount: len(c.Ops)}
	for _, op := range c.Ops {
		if op.Kind.IsMembership() || op.Kind == OpSchema {
			mc.Ops = append(mc.Ops, op)
		}
	}
	return mc
}

// IsAdminChange reports whether c holds admin ops, which membership
// evaluation decides.
func IsAdminChange(c *Change) bool {
	return slices.ContainsFunc(c.Ops, func(o Op) bool { return o.Kind.IsMembership() || o.Kind == OpSchema })
}

// Grant is an accepted grant.
type Grant struct {
	Change ID
	Height uint64
	Op     int // index among the change's admin ops
	By     PublicKey
	Member PublicKey
	Role   string
	Invite ID // the invite this grant used, zero for a grant by an admin
}

// Revocation is an accepted revocation.
type Revocation struct {
	Change ID
	Height uint64
	By     PublicKey
	Member PublicKey
}

// Membership is who may write, decided from every admin change known. It
// is a pure function of that set (and of ancestry, itself a function of
// the DAG): every replica that holds the same changes decides the same.
type Membership struct {
	Genesis  ID
	Founders []PublicKey
	Grants   map[PublicKey][]Grant      // accepted, by member
	Revokes  map[PublicKey][]Revocation // accepted, by member
	Schemas  []MemberChange             // accepted schema upgrades, in (height, ID) order
	Rejected map[ID]string              // admin changes refused, with the reason
	Invites  []Invite                   // every accepted invite, by (height, ID)

	accepted   map[ID]MemberChange
	all        map[ID]MemberChange
	invites    map[ID]InviteTerms // by the change that made the invite
	inviteKeys map[PublicKey]bool
	uses       map[ID][]ID // invite change -> its individually valid uses
	standing   map[PublicKey]string
	seniority  map[PublicKey]Seniority
}

// EvaluateMembership decides which admin changes are accepted.
//
// Changes are taken in (height, ID) order, a deterministic topological
// order. A change is accepted if its author is authorized at it (see
// Authorize) given what was accepted so far. Accepting a revocation of X
// withdraws every accepted change of X that is not in the revocation's
// causal past, and, in cascade, what depended on the grants withdrawn;
// withdrawn or refused changes stay refused in this evaluation, which
// settles mutual concurrent revocations in favour of the one first in the
// order.
//
// Uses of invites are first judged one by one (CheckInviteUse); single use
// is then settled over all of them (see decideInvites) and the evaluation
// runs again without the uses that lost. A use grants a role that cannot
// author admin changes and never outranks a grant made by an admin, so
// the second run accepts the same admin changes as the first.
func EvaluateMembership(genesis ID, founders []PublicKey, changes []MemberChange, anc Ancestry) *Membership {
	order := slices.Clone(changes)
	slices.SortFunc(order, func(a, b MemberChange) int {
		if a.Height != b.Height {
			if a.Height < b.Height {
				return -1
			}
			return 1
		}
		return a.ID.Compare(b.ID)
	})
	m := evaluate(genesis, founders, order, anc, nil)
	if losers := m.decideInvites(anc); len(losers) > 0 {
		invites := m.Invites
		m = evaluate(genesis, founders, order, anc, losers)
		m.Invites = invites
	}
	m.computeStanding(anc)
	m.computeSeniority()
	for _, c := range order {
		if _, ok := m.accepted[c.ID]; ok && slices.ContainsFunc(c.Ops, func(o Op) bool { return o.Kind == OpSchema }) {
			m.Schemas = append(m.Schemas, c)
		}
	}
	return m
}

func evaluate(genesis ID, founders []PublicKey, order []MemberChange, anc Ancestry, excluded map[ID]string) *Membership {
	m := &Membership{
		Genesis:    genesis,
		Founders:   founders,
		Grants:     map[PublicKey][]Grant{},
		Revokes:    map[PublicKey][]Revocation{},
		Rejected:   map[ID]string{},
		accepted:   map[ID]MemberChange{},
		all:        map[ID]MemberChange{},
		invites:    map[ID]InviteTerms{},
		inviteKeys: map[PublicKey]bool{},
		uses:       map[ID][]ID{},
	}
	for _, c := range order {
		m.all[c.ID] = c
		if why, ok := excluded[c.ID]; ok {
			m.Rejected[c.ID] = why
			continue
		}
		role, err := m.Authorize(c.Author, c.ID, anc)
		var invite ID
		if err == nil {
			invite, err = m.checkRole(role, c)
		}
		if err != nil {
			m.Rejected[c.ID] = err.Error()
			continue
		}
		m.accept(c, invite)
		for _, op := range c.Ops {
			if op.Kind == OpRevoke {
				m.withdraw(op.Member, anc)
			}
		}
	}
	return m
}

// checkRole checks that role may make c's admin ops; for an invite key it
// returns the invite c uses.
func (m *Membership) checkRole(role string, c MemberChange) (ID, error) {
	switch role {
	case RoleAdmin:
		return ID{}, nil
	case RoleInvite:
		if len(c.Parents) == 1 {
			if t, ok := m.invites[c.Parents[0]]; ok && t.Key == c.Author {
				if err := CheckInviteUse(t, c); err != nil {
					return ID{}, err
				}
				m.uses[t.Change] = append(m.uses[t.Change], c.ID)
				return t.Change, nil
			}
		}
		return ID{}, fmt.Errorf("%w: an invite key signs one grant, directly on top of its invite", ErrUnauthorized)
	}
	return ID{}, fmt.Errorf("%w: role %q may not %s", ErrUnauthorized, role, c.Ops[0].Kind)
}

func (m *Membership) accept(c MemberChange, invite ID) {
	m.accepted[c.ID] = c
	for i, op := range c.Ops {
		switch op.Kind {
		case OpGrant, OpInvite:
			if t, ok := InviteIn(c, op.Member); ok {
				m.invites[c.ID] = t
				m.inviteKeys[op.Member] = true
				m.Grants[op.Member] = append(m.Grants[op.Member], Grant{Change: c.ID, Height: c.Height, Op: i, By: c.Author, Member: op.Member, Role: RoleInvite})
				continue
			}
			m.Grants[op.Member] = append(m.Grants[op.Member], Grant{Change: c.ID, Height: c.Height, Op: i, By: c.Author, Member: op.Member, Role: op.Role, Invite: invite})
		case OpRevoke:
			m.Revokes[op.Member] = append(m.Revokes[op.Member], Revocation{Change: c.ID, Height: c.Height, By: c.Author, Member: op.Member})
		}
	}
}

// withdraw re-checks the accepted changes of member (and, in cascade, of
// members whose grants are withdrawn) and refuses those no longer
// authorized.
func (m *Membership) withdraw(member PublicKey, anc Ancestry) {
	pending := []PublicKey{member}
	for len(pending) > 0 {
		who := pending[0]
		pending = pending[1:]
		for _, id := range m.sortedAccepted() {
			c := m.accepted[id]
			if c.Author != who {
				continue
			}
			if _, err := m.Authorize(c.Author, c.ID, anc); err == nil {
				continue
			} else {
				m.Rejected[c.ID] = err.Error()
			}
			delete(m.accepted, c.ID)
			delete(m.invites, c.ID)
			for _, op := range c.Ops {
				switch op.Kind {
				case OpGrant, OpInvite:
					m.Grants[op.Member] = slices.DeleteFunc(m.Grants[op.Member], func(g Grant) bool { return g.Change == c.ID })
					pending = append(pending, op.Member)
				case OpRevoke:
					m.Revokes[op.Member] = slices.DeleteFunc(m.Revokes[op.Member], func(r Revocation) bool { return r.Change == c.ID })
				}
			}
		}
	}
}

func (m *Membership) sortedAccepted() []ID {
	ids := make([]ID, 0, len(m.accepted))
	for id := range m.accepted {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ID) int {
		ha, hb := m.accepted[a].Height, m.accepted[b].Height
		if ha != hb {
			if ha < hb {
				return -1
			}
			return 1
		}
		return a.Compare(b)
	})
	return ids
}

// Authorize returns the role author holds at change at, or an error
// wrapping ErrUnauthorized. The rule (DESIGN.md): the author's grant chain
// is in at's causal past, and for every accepted revocation R of the
// author, at is in R's causal past, unless a later grant (after R, before
// at) restored the author.
func (m *Membership) Authorize(author PublicKey, at ID, anc Ancestry) (string, error) {
	role := ""
	if slices.Contains(m.Founders, author) {
		role = RoleAdmin
	}
	var best *Grant
	for i, g := range m.Grants[author] {
		if g.Change == at || !anc.IsAncestor(g.Change, at) {
			continue
		}
		if best == nil || outranks(g, *best) {
			best = &m.Grants[author][i]
		}
	}
	if best != nil && role == "" {
		role = best.Role
	}
	if role == "" {
		return "", fmt.Errorf("%w: %s holds no grant in the causal past of %s", ErrUnauthorized, author, at.Short())
	}
	for _, r := range m.Revokes[author] {
		if r.Change == at || anc.IsAncestor(at, r.Change) {
			continue
		}
		restored := false
		for _, g := range m.Grants[author] {
			if anc.IsAncestor(r.Change, g.Change) && anc.IsAncestor(g.Change, at) {
				restored = true
				role = g.Role
				break
			}
		}
		if !restored {
			return "", fmt.Errorf("%w: %s was revoked by %s, which does not precede %s", ErrUnauthorized, author, r.Change.Short(), at.Short())
		}
	}
	return role, nil
}

// Accepted reports whether an admin change was accepted.
func (m *Membership) Accepted(id ID) bool { _, ok := m.accepted[id]; return ok }

// outranks orders a member's grants: a grant by an admin over one that
// used an invite, then the newer (height, ID).
func outranks(a, b Grant) bool {
	if ai, bi := a.Invite.IsZero(), b.Invite.IsZero(); ai != bi {
		return ai
	}
	if a.Height != b.Height {
		return a.Height > b.Height
	}
	return a.Change.Compare(b.Change) > 0
}

// computeStanding decides each key's role at the frontier: as a change
// written on top of everything known would find it.
func (m *Membership) computeStanding(anc Ancestry) {
	m.standing = map[PublicKey]string{}
	for _, f := range m.Founders {
		m.standing[f] = RoleAdmin
	}
	for k, gs := range m.Grants {
		if len(gs) == 0 {
			continue
		}
		best := gs[0]
		for _, g := range gs[1:] {
			if outranks(g, best) {
				best = g
			}
		}
		if m.standing[k] == "" {
			m.standing[k] = best.Role
		}
	}
	for k, rs := range m.Revokes {
		for _, r := range rs {
			var restore *Grant
			for i, g := range m.Grants[k] {
				if anc.IsAncestor(r.Change, g.Change) && (restore == nil || outranks(g, *restore)) {
					restore = &m.Grants[k][i]
				}
			}
			if restore == nil {
				m.standing[k] = ""
				break
			}
			m.standing[k] = restore.Role
		}
	}
}

// Role returns the role key holds now (at the frontier of what is known):
// "" for a stranger or a revoked member, RoleInvite for an invite key.
func (m *Membership) Role(key PublicKey) string { return m.standing[key] }

// IsMember reports whether key is a current member: it holds a role other
// than an invite's and is not revoked. Transports admit exactly these.
func (m *Membership) IsMember(key PublicKey) bool {
	r := m.standing[key]
	return r != "" && r != RoleInvite
}

// Member is one key's standing, for status output.
type Member struct {
	Key     PublicKey `json:"key"`
	Role    string    `json:"role"`
	Revoked bool      `json:"revoked"`
	Invite  *ID       `json:"invite,omitempty"` // the invite it joined through
}

// Members lists founders and granted keys (not invite keys) with their
// current role; revoked members are listed with Revoked set.
func (m *Membership) Members() []Member {
	out := []Member{}
	for k, role := range m.standing {
		if m.inviteKeys[k] && (role == RoleInvite || role == "") {
			continue
		}
		mem := Member{Key: k, Role: role, Revoked: role == ""}
		for _, g := range m.Grants[k] {
			if !g.Invite.IsZero() {
				id := g.Invite
				mem.Invite = &id
			}
		}
		if mem.Revoked {
			for _, g := range m.Grants[k] {
				mem.Role = g.Role
			}
		}
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b Member) int { return slices.Compare(a.Key[:], b.Key[:]) })
	return out
}

// Unacknowledged lists the uses that stand only because nobody contested
// them yet: no admin change has them in its past. An admin node
// acknowledges them (a grant of the same role to the same member) so a
// later use of the same code can never displace them.
func (m *Membership) Unacknowledged() []InviteUse {
	var out []InviteUse
	for _, inv := range m.Invites {
		for _, u := range inv.Uses {
			if u.Accepted && !u.Acknowledged {
				out = append(out, u)
			}
		}
	}
	return out
}

// InviteOf returns the invite made by change id.
func (m *Membership) InviteOf(id ID) (Invite, bool) {
	for _, inv := range m.Invites {
		if inv.Change == id {
			return inv, true
		}
	}
	return Invite{}, false
}

// TermsFor returns the terms of the invite made by change id, accepted
// or not yet judged (for the placement check of a use).
func (m *Membership) TermsFor(id ID) (InviteTerms, bool) {
	t, ok := m.invites[id]
	return t, ok
}

// Seniority is an author's place in the order rules settle conflicts by
// (docs/RULES.md, "The winner rule"): founders first, in genesis order,
// then members by the place of their earliest accepted grant among admin
// changes, (height, change ID, op index); a grant that used an invite
// counts at the invite's place. Every part of it is chosen by an admin
// (who placed the grant or the invite), never by the member it ranks, so
// no member can improve its own seniority by choosing keys, clocks or
// parents.
type Seniority struct {
	Founder bool
	Index   int // among the founders
	Height  uint64
	Change  ID
	Op      int
}

// Compare orders seniorities, more senior first.
func (s Seniority) Compare(o Seniority) int {
	switch {
	case s.Founder != o.Founder:
		if s.Founder {
			return -1
		}
		return 1
	case s.Founder:
		return cmpInt(s.Index, o.Index)
	case s.Height != o.Height:
		if s.Height < o.Height {
			return -1
		}
		return 1
	}
	if c := s.Change.Compare(o.Change); c != 0 {
		return c
	}
	return cmpInt(s.Op, o.Op)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SeniorityOf returns key's seniority; ok is false for a key that holds
// no accepted grant and is no founder.
func (m *Membership) SeniorityOf(key PublicKey) (Seniority, bool) {
	s, ok := m.seniority[key]
	return s, ok
}

func (m *Membership) computeSeniority() {
	m.seniority = map[PublicKey]Seniority{}
	for i, f := range m.Founders {
		if _, ok := m.seniority[f]; !ok {
			m.seniority[f] = Seniority{Founder: true, Index: i}
		}
	}
	for k, gs := range m.Grants {
		if _, founder := m.seniority[k]; founder {
			continue
		}
		for _, g := range gs {
			place := Seniority{Height: g.Height, Change: g.Change, Op: g.Op}
			if !g.Invite.IsZero() {
				if t, ok := m.invites[g.Invite]; ok {
					place = Seniority{Height: t.Height, Change: t.Change, Op: m.inviteOp(t)}
				}
			}
			if have, ok := m.seniority[k]; !ok || place.Compare(have) < 0 {
				m.seniority[k] = place
			}
		}
	}
}

// inviteOp is the index of the invite's op among its change's admin ops.
func (m *Membership) inviteOp(t InviteTerms) int {
	for i, op := range m.all[t.Change].Ops {
		if (op.Kind == OpInvite || op.Kind == OpGrant) && op.Member == t.Key {
			return i
		}
	}
	return 0
}
