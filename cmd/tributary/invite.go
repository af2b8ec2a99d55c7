package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
)

// makeInvite creates an invite in sp by h's key and returns its code.
func makeInvite(ctx context.Context, h *node.Home, sp *node.Space, ttl time.Duration, addrs []string, now time.Time) (string, core.ID, core.InviteTerms, error) {
	nowMs := uint64(now.UnixMilli())
	key, env, err := sp.Replica.CreateInvite(ctx, h.Key, nowMs+uint64(ttl.Milliseconds()), nowMs)
	if err != nil {
		return "", core.ID{}, core.InviteTerms{}, err
	}
	info, _ := h.Info(sp.Replica.Space().String())
	ic := core.InviteCode{Space: sp.Replica.Space(), Name: info.Name, Seed: key.Seed(), Invite: env, Bootstrap: addrs}
	code, err := ic.Encode()
	if err != nil {
		return "", core.ID{}, core.InviteTerms{}, err
	}
	_, terms, err := core.DecodeInviteCode(code)
	return code, terms.Change, terms, err
}

func (c *cli) inviteCmd() *cobra.Command {
	var addrs []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Print a single-use invite code (admins only); `tributary join CODE` makes one new member",
		Long: `Print a single-use invite code. The code adds exactly one member, once,
before it expires (--ttl, default 7 days). Anyone holding the code can use it:
send it privately. Codes made while the node runs carry its addresses;
otherwise name reachable peers with --addr.

  tributary invite list                      invites and what became of them
  tributary invite revoke INVITE             refuse every future use of an invite
  tributary invite settle INVITE --member K  admit K when two people used one code`,
		Args: cobra.NoArgs,
		RunE: c.inSpace(true, func(cmd *cobra.Command, _ []string, h *node.Home, sp *node.Space) error {
			if ttl <= 0 {
				return fmt.Errorf("--ttl %s: want a positive duration", ttl)
			}
			if len(addrs) == 0 {
				addrs = advertisedAddrs(c)
			}
			if len(addrs) == 0 {
				info, _ := h.Info(sp.Replica.Space().String())
				addrs = info.Bootstrap
			}
			code, id, terms, err := makeInvite(cmd.Context(), h, sp, ttl, addrs, c.nowFunc())
			if err != nil {
				return err
			}
			if len(addrs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: this code carries no peer address; the joiner must be given one (--peer) or exchange bundles. Run the node, or pass --addr.")
			}
			return c.say(map[string]any{"code": code, "invite": id.String(), "change": id.String(), "expires": time.UnixMilli(int64(terms.Expires)).UTC().Format(time.RFC3339), "addrs": addrs}, "%s", code)
		}),
	}
	cmd.Flags().StringSliceVar(&addrs, "addr", nil, "address of a peer to bootstrap from (repeatable)")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Duration(core.DefaultInviteTTL)*time.Millisecond, "how long the code stays usable")
	c.spaceFlag(cmd)
	list := &cobra.Command{
		Use:   "list",
		Short: "List invites: open, used (by whom), contested, revoked",
		Args:  cobra.NoArgs,
		RunE: c.inSpace(true, func(cmd *cobra.Command, _ []string, _ *node.Home, sp *node.Space) error {
			invs := sp.Replica.Invites()
			if invs == nil {
				invs = []core.Invite{}
			}
			return c.print(invs)
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke INVITE",
		Short: "Revoke an invite (its change ID): uses not yet known are refused everywhere",
		Args:  cobra.ExactArgs(1),
		RunE: c.inSpace(true, func(cmd *cobra.Command, args []string, h *node.Home, sp *node.Space) error {
			inv, err := core.ParseID(args[0])
			if err != nil {
				return err
			}
			id, err := sp.Replica.RevokeInvite(cmd.Context(), h.Key, inv, c.now())
			if err != nil {
				return err
			}
			return c.say(map[string]any{"invite": inv.String(), "change": id.String()}, "revoked invite %s (change %s)", inv, id)
		}),
	}
	var member string
	settle := &cobra.Command{
		Use:   "settle INVITE --member KEY",
		Short: "Settle a contested invite: admit KEY, refuse the other uses",
		Args:  cobra.ExactArgs(1),
		RunE: c.inSpace(true, func(cmd *cobra.Command, args []string, h *node.Home, sp *node.Space) error {
			inv, err := core.ParseID(args[0])
			if err != nil {
				return err
			}
			k, err := core.ParsePublicKey(member)
			if err != nil {
				return fmt.Errorf("--member: %w", err)
			}
			id, err := sp.Replica.SettleInvite(cmd.Context(), h.Key, inv, k, c.now())
			if err != nil {
				return err
			}
			return c.say(map[string]any{"invite": inv.String(), "member": k.String(), "change": id.String()}, "invite %s settled for %s (change %s)", inv, k, id)
		}),
	}
	settle.Flags().StringVar(&member, "member", "", "the key to admit")
	for _, sub := range []*cobra.Command{list, revoke, settle} {
		c.spaceFlag(sub)
	}
	cmd.AddCommand(list, revoke, settle)
	return cmd
}

func (c *cli) joinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "join CODE",
		Short: "Become a member of a space with an invite code (works offline: your grant travels with your first sync)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ic, terms, err := core.DecodeInviteCode(args[0])
			if err != nil {
				return err
			}
			h, _, err := node.InitHome(c.home)
			if err != nil {
				return err
			}
			if _, err := h.Info(ic.Space.String()); err == nil {
				return fmt.Errorf("this home already holds space %s", ic.Space)
			}
			use, id, err := ic.InviteUseChange(terms, h.Key.Public(), c.now())
			if err != nil {
				return err
			}
			env, err := use.Encode()
			if err != nil {
				return err
			}
			if err := h.WriteInfo(node.SpaceInfo{Space: ic.Space.String(), Name: ic.Name, Bootstrap: ic.Bootstrap, Proof: env}); err != nil {
				return err
			}
			sp, err := c.open(cmd.Context(), h, ic.Space.String())
			if err != nil {
				return err
			}
			defer sp.Close()
			rep, err := sp.Replica.Receive(cmd.Context(), [][]byte{env})
			if err != nil {
				return err
			}
			if len(rep.Rejected) > 0 {
				return fmt.Errorf("join: %s", rep.Rejected[0].Msg)
			}
			return c.say(map[string]any{"space": ic.Space.String(), "author": h.Key.Public().String(), "grant": id.String(), "bootstrap": ic.Bootstrap},
				"joined space %s as %s\nyour grant %s travels with your next sync (tributary run, or export/import a bundle)", ic.Space, h.Key.Public(), id)
		},
	}
}

func (c *cli) memberCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Grant or revoke membership (admins only)"}
	var role string
	grant := &cobra.Command{
		Use:   "grant KEY",
		Short: "Grant KEY a role (writer or admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.memberOp(cmd, args[0], core.OpGrant, role)
		},
	}
	grant.Flags().StringVar(&role, "role", core.RoleWriter, "writer or admin")
	revoke := &cobra.Command{
		Use:   "revoke KEY",
		Short: "Revoke every role of KEY; its changes concurrent with the revocation lose effect",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.memberOp(cmd, args[0], core.OpRevoke, "")
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List members and their roles",
		Args:  cobra.NoArgs,
		RunE: c.inSpace(true, func(cmd *cobra.Command, _ []string, _ *node.Home, sp *node.Space) error {
			st, err := sp.Replica.Status()
			if err != nil {
				return err
			}
			return c.print(st.Members)
		}),
	}
	for _, sub := range []*cobra.Command{grant, revoke, list} {
		c.spaceFlag(sub)
	}
	cmd.AddCommand(grant, revoke, list)
	return cmd
}

func (c *cli) memberOp(cmd *cobra.Command, keyArg string, kind core.OpKind, role string) error {
	member, err := core.ParsePublicKey(keyArg)
	if err != nil {
		return err
	}
	if kind == core.OpGrant && role != core.RoleWriter && role != core.RoleAdmin {
		return fmt.Errorf("--role %q: want writer or admin", role)
	}
	h, sp, err := c.openSynced(cmd.Context())
	if err != nil {
		return err
	}
	defer sp.Close()
	id, err := sp.Replica.Write(cmd.Context(), h.Key, []core.Op{{Kind: kind, Member: member, Role: role}}, c.now())
	if err != nil {
		return err
	}
	return c.say(map[string]any{"change": id.String(), "member": member.String()}, "%s %s (change %s)", kind, member, id)
}
