package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
)

// Errors of invites, as a joiner or an admitting node meets them.
var (
	ErrInviteUnknown   = errors.New("invite not known here")
	ErrInviteUsed      = errors.New("invite already used")
	ErrInviteExpired   = errors.New("invite expired")
	ErrInviteRevoked   = errors.New("invite revoked")
	ErrInviteContested = errors.New("invite contested")
	ErrNotInviteUse    = errors.New("not a use of an invite")
)

// CreateInvite makes an invite by key's owner (an admin): a fresh
// throwaway key whose one use grants a new member role writer until
// expires (wall-clock ms). It returns the throwaway key and the envelope
// of the change holding the invite; both go into the invite code.
func (r *Replica) CreateInvite(ctx context.Context, key core.PrivateKey, expires, nowMillis uint64) (core.PrivateKey, []byte, error) {
	return r.CreateRoleInvite(ctx, key, core.RoleWriter, expires, nowMillis)
}

// CreateRoleInvite is CreateInvite for another role: any role the schema
// declares but admin (a reader, a member, a librarian...).
func (r *Replica) CreateRoleInvite(ctx context.Context, key core.PrivateKey, role string, expires, nowMillis uint64) (core.PrivateKey, []byte, error) {
	if expires <= nowMillis {
		return nil, nil, fmt.Errorf("invite: expiry %d is not after now (%d)", expires, nowMillis)
	}
	throwaway, err := core.GenerateKey(nil)
	if err != nil {
		return nil, nil, err
	}
	id, err := r.Write(ctx, key, []core.Op{{Kind: core.OpInvite, Member: throwaway.Public(), Role: role, Expires: expires}}, nowMillis)
	if err != nil {
		return nil, nil, fmt.Errorf("invite: %w", err)
	}
	env, err := r.Envelope(id)
	if err != nil {
		return nil, nil, err
	}
	return throwaway, env, nil
}

// RevokeInvite revokes the key of the invite made by change invite: uses
// not already in the revocation's causal past are refused everywhere.
func (r *Replica) RevokeInvite(ctx context.Context, key core.PrivateKey, invite core.ID, nowMillis uint64) (core.ID, error) {
	inv, ok := r.invite(invite)
	if !ok {
		return core.ID{}, fmt.Errorf("invite %s: %w", invite, ErrInviteUnknown)
	}
	return r.Write(ctx, key, []core.Op{{Kind: core.OpRevoke, Member: inv.Key}}, nowMillis)
}

// SettleInvite resolves a contested invite in favour of member: an admin
// grant naming member, written with every use in its causal past, which
// acknowledges member's use and no other.
func (r *Replica) SettleInvite(ctx context.Context, key core.PrivateKey, invite core.ID, member core.PublicKey, nowMillis uint64) (core.ID, error) {
	inv, ok := r.invite(invite)
	if !ok {
		return core.ID{}, fmt.Errorf("invite %s: %w", invite, ErrInviteUnknown)
	}
	if !slices.ContainsFunc(inv.Uses, func(u core.InviteUse) bool { return u.Member == member }) {
		return core.ID{}, fmt.Errorf("invite %s: %s did not use it", invite.Short(), member)
	}
	return r.Write(ctx, key, []core.Op{{Kind: core.OpGrant, Member: member, Role: inv.Role}}, nowMillis)
}

func (r *Replica) invite(id core.ID) (core.Invite, bool) {
	m := r.view.Load().members
	if m == nil {
		return core.Invite{}, false
	}
	return m.InviteOf(id)
}

// Acknowledge is what an admin's node does on its own: every use of an
// invite that stands uncontested but unacknowledged gets an admin grant
// of the same role naming its member, so a later use of the same code
// can never displace it. It writes nothing (zero ID) when key is not an
// admin or nothing waits.
func (r *Replica) Acknowledge(ctx context.Context, key core.PrivateKey, nowMillis uint64) (core.ID, error) {
	m := r.view.Load().members
	if m == nil || m.Role(key.Public()) != core.RoleAdmin {
		return core.ID{}, nil
	}
	var ops []core.Op
	for _, u := range m.Unacknowledged() {
		role := core.RoleWriter
		for _, inv := range m.Invites {
			if slices.ContainsFunc(inv.Uses, func(x core.InviteUse) bool { return x.Change == u.Change }) {
				role = inv.Role
			}
		}
		ops = append(ops, core.Op{Kind: core.OpGrant, Member: u.Member, Role: role})
	}
	if len(ops) == 0 {
		return core.ID{}, nil
	}
	return r.Write(ctx, key, ops, nowMillis)
}

// AdmitUse is a transport's door for a joiner: peer presents env, the use
// of an invite granting peer itself. The use is checked against the
// invite this replica holds (known, accepted, not revoked, not expired,
// not used by anyone else) and stored; on success peer is a member. The
// errors say why not (ErrInviteUnknown, ErrInviteUsed, ...). Nothing is
// stored unless the use is admitted.
func (r *Replica) AdmitUse(ctx context.Context, env []byte, peer core.PublicKey) error {
	c, id, _, err := core.Open(env)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotInviteUse, err)
	}
	use := core.MemberView(c, id)
	member, ok := core.UseMember(use)
	if !ok || len(c.Parents) != 1 {
		return fmt.Errorf("%w: change %s holds no single grant on top of an invite", ErrNotInviteUse, id.Short())
	}
	if member != peer {
		return fmt.Errorf("%w: the grant names %s, not the connecting peer %s", ErrNotInviteUse, member, peer)
	}
	if err := r.judgeUse(c, id, use); err != nil {
		return err
	}
	if r.Has(id) {
		return r.admitted(peer, id)
	}
	rep, err := r.Receive(ctx, [][]byte{env})
	if err != nil {
		return err
	}
	if len(rep.Rejected) > 0 {
		return rep.Rejected[0].Err
	}
	return r.admitted(peer, id)
}

// judgeUse checks a use against the invite held here, before storing it.
func (r *Replica) judgeUse(c *core.Change, id core.ID, use core.MemberChange) error {
	members := r.view.Load().members
	if members == nil {
		return fmt.Errorf("%w: this node holds no history of the space yet", ErrInviteUnknown)
	}
	parent := c.Parents[0]
	var terms core.InviteTerms
	var found bool
	err := r.db.View(func(txn *badger.Txn) error {
		pc, err := r.loadChange(txn, parent)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		terms, found = core.InviteIn(core.MemberView(pc, parent), c.Author)
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: change %s (the use's parent) is not an invite held here", ErrInviteUnknown, parent.Short())
	}
	if err := core.CheckInviteUse(terms, use); err != nil {
		if c.HLC.Wall > terms.Expires {
			return fmt.Errorf("%w: %v", ErrInviteExpired, err)
		}
		return fmt.Errorf("%w: %v", ErrNotInviteUse, err)
	}
	// A joiner dates its own use; at the door, the door's clock decides,
	// so a code found after it expired cannot be backdated in.
	if r.opts.Now != nil {
		if now := r.opts.Now(); now > terms.Expires {
			return fmt.Errorf("%w: invite %s expired at %d ms, it is now %d ms; a use made in time reaches the space through a member (a bundle)", ErrInviteExpired, parent.Short(), terms.Expires, now)
		}
	}
	inv, ok := members.InviteOf(parent)
	if !ok {
		if len(members.Revokes[terms.Key]) > 0 {
			return fmt.Errorf("%w: invite %s", ErrInviteRevoked, parent.Short())
		}
		return fmt.Errorf("%w: invite %s was not accepted: %s", ErrInviteUnknown, parent.Short(), members.Rejected[parent])
	}
	for _, u := range inv.Uses {
		if u.Change == id {
			if u.Accepted {
				return nil
			}
			return fmt.Errorf("%w: %s", ErrInviteUsed, u.Reason)
		}
	}
	switch {
	case inv.State == core.InviteRevoked:
		return fmt.Errorf("%w: invite %s", ErrInviteRevoked, parent.Short())
	case inv.State == core.InviteContested:
		return fmt.Errorf("%w: invite %s has several uses; an admin must settle it", ErrInviteContested, parent.Short())
	case len(inv.Uses) > 0:
		return fmt.Errorf("%w: invite %s admitted %s", ErrInviteUsed, parent.Short(), inv.Uses[0].Member)
	}
	return nil
}

func (r *Replica) admitted(peer core.PublicKey, use core.ID) error {
	if r.IsMember(peer) {
		return nil
	}
	valid, reason, err := r.Verdict(use)
	if err != nil {
		return err
	}
	if !valid {
		return fmt.Errorf("%w: %s", ErrInviteUsed, reason)
	}
	return fmt.Errorf("%w: %s is not a member after its use %s", ErrInviteRevoked, peer, use.Short())
}
