package core

import (
	"fmt"
	"slices"
)

// MemberChange is a change that holds admin ops (grant, revoke, schema),
// as membership evaluation sees it.
type MemberChange struct {
	ID     ID
	Height uint64
	Author PublicKey
	Ops    []Op // only the admin ops of the change
}

// Grant is an accepted grant.
type Grant struct {
	Change ID
	Height uint64
	By     PublicKey
	Member PublicKey
	Role   string
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
	accepted map[ID]MemberChange
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
func EvaluateMembership(genesis ID, founders []PublicKey, changes []MemberChange, anc Ancestry) *Membership {
	m := &Membership{
		Genesis:  genesis,
		Founders: founders,
		Grants:   map[PublicKey][]Grant{},
		Revokes:  map[PublicKey][]Revocation{},
		Rejected: map[ID]string{},
		accepted: map[ID]MemberChange{},
	}
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
	invitesUsed := map[PublicKey]bool{}
	for _, c := range order {
		role, err := m.Authorize(c.Author, c.ID, anc)
		if err == nil {
			err = checkRole(role, c.Ops)
		}
		if err == nil && role == RoleInvite {
			if invitesUsed[c.Author] {
				err = fmt.Errorf("%w: invite key %s was already used", ErrUnauthorized, c.Author)
			}
			invitesUsed[c.Author] = true
		}
		if err != nil {
			m.Rejected[c.ID] = err.Error()
			continue
		}
		m.accept(c)
		for _, op := range c.Ops {
			if op.Kind == OpRevoke {
				m.withdraw(op.Member, anc)
			}
		}
	}
	m.Schemas = m.Schemas[:0]
	for _, c := range order {
		if _, ok := m.accepted[c.ID]; ok && slices.ContainsFunc(c.Ops, func(o Op) bool { return o.Kind == OpSchema }) {
			m.Schemas = append(m.Schemas, c)
		}
	}
	return m
}

func checkRole(role string, ops []Op) error {
	if role == RoleAdmin {
		return nil
	}
	if role == RoleInvite && len(ops) == 1 && ops[0].Kind == OpGrant && ops[0].Role == RoleWriter {
		return nil
	}
	return fmt.Errorf("%w: role %q may not %s", ErrUnauthorized, role, ops[0].Kind)
}

func (m *Membership) accept(c MemberChange) {
	m.accepted[c.ID] = c
	for _, op := range c.Ops {
		switch op.Kind {
		case OpGrant:
			m.Grants[op.Member] = append(m.Grants[op.Member], Grant{Change: c.ID, Height: c.Height, By: c.Author, Member: op.Member, Role: op.Role})
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
			for _, op := range c.Ops {
				switch op.Kind {
				case OpGrant:
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
		if best == nil || g.Height > best.Height || (g.Height == best.Height && g.Change.Compare(best.Change) > 0) {
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

// Member is one key's standing, for status output.
type Member struct {
	Key     PublicKey `json:"key"`
	Role    string    `json:"role"`
	Revoked bool      `json:"revoked"`
}

// Members lists founders and granted keys with their newest role.
func (m *Membership) Members() []Member {
	seen := map[PublicKey]*Member{}
	for _, f := range m.Founders {
		seen[f] = &Member{Key: f, Role: RoleAdmin}
	}
	for k, gs := range m.Grants {
		if len(gs) == 0 {
			continue
		}
		last := slices.MaxFunc(gs, func(a, b Grant) int {
			if a.Height != b.Height {
				if a.Height < b.Height {
					return -1
				}
				return 1
			}
			return a.Change.Compare(b.Change)
		})
		if seen[k] == nil || seen[k].Role != RoleAdmin {
			seen[k] = &Member{Key: k, Role: last.Role}
		}
	}
	for k, rs := range m.Revokes {
		if len(rs) == 0 {
			continue
		}
		if seen[k] == nil {
			seen[k] = &Member{Key: k}
		}
		revokedAfterLastGrant := true
		for _, g := range m.Grants[k] {
			for _, r := range rs {
				if g.Height > r.Height {
					revokedAfterLastGrant = false
				}
			}
		}
		seen[k].Revoked = revokedAfterLastGrant
	}
	out := make([]Member, 0, len(seen))
	for _, v := range seen {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b Member) int { return slices.Compare(a.Key[:], b.Key[:]) })
	return out
}
