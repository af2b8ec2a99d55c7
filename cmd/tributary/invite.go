package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core"
)

func (c *cli) inviteCmd() *cobra.Command {
	var addrs []string
	var ttl time.Duration
	var role string
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Print a single-use invite code (admins only); `tributary join CODE` makes one new member",
		Long: `Print a single-use invite code. The code adds exactly one member, once,
before it expires (--ttl, default 7 days). Anyone holding the code can use it:
send it privately. The code carries the node's addresses (while it runs;
else those it had at its last run) and any --addr; a code that carries
none is warned about (on stderr, and as "warning" with --json).

  tributary invite list                      invites and what became of them
  tributary invite revoke INVITE             refuse every future use of an invite
  tributary invite settle INVITE --member K  admit K when two people used one code`,
		Args: cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			inv, err := svc.Invite(cmd.Context(), c.space, service.InviteRequest{TTL: ttl, Addrs: addrs, Role: role})
			if err != nil {
				return err
			}
			if inv.Warning != "" {
				c.warn("%s", inv.Warning)
			}
			return c.say(inv, "%s", inv.Code)
		}),
	}
	cmd.Flags().StringSliceVar(&addrs, "addr", nil, "an address to put in the code besides the node's, with /p2p/ (repeatable)")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Duration(core.DefaultInviteTTL)*time.Millisecond, "how long the code stays usable")
	cmd.Flags().StringVar(&role, "role", "", "role its use grants: writer (the default) or a role the schema declares, never admin")
	c.spaceFlag(cmd)
	list := &cobra.Command{
		Use:   "list",
		Short: "List invites: open, used (by whom), contested, revoked",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			invs, err := svc.Invites(cmd.Context(), c.space)
			if err != nil {
				return err
			}
			return c.print(invs)
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke INVITE",
		Short: "Revoke an invite (its change ID): uses not yet known are refused everywhere",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			w, err := svc.RevokeInvite(cmd.Context(), c.space, args[0])
			if err != nil {
				return err
			}
			return c.say(w, "revoked invite %s (change %s)", args[0], w.Change)
		}),
	}
	var member string
	settle := &cobra.Command{
		Use:   "settle INVITE --member KEY",
		Short: "Settle a contested invite: admit KEY, refuse the other uses",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			w, err := svc.SettleInvite(cmd.Context(), c.space, args[0], member)
			if err != nil {
				return err
			}
			return c.say(w, "invite %s settled for %s (change %s)", args[0], member, w.Change)
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
			// Check the code before touching the home: a damaged, forged,
			// old or expired code leaves nothing behind.
			_, terms, err := core.DecodeInviteCode(args[0])
			if err != nil {
				return err
			}
			if now := c.now(); now > terms.Expires {
				return fmt.Errorf("%w: it expired at %s", core.ErrCodeExpired, time.UnixMilli(int64(terms.Expires)).UTC().Format(time.RFC3339))
			}
			h, _, err := node.InitHome(c.home)
			if err != nil {
				return err
			}
			svc, done, err := c.serviceFor(cmd.Context(), h)
			if err != nil {
				return err
			}
			defer done()
			j, err := svc.Join(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return c.say(j, "joined space %s as %s\ngrant %s: %s (the code expires %s)",
				j.Space, j.Author, j.Grant, j.Checked, j.Expires.Format(time.RFC3339))
		},
	}
}

func (c *cli) memberCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Grant or revoke membership (admins only)"}
	var role string
	grant := &cobra.Command{
		Use:   "grant KEY",
		Short: "Grant KEY a role (admin, writer, reader or a role the schema declares); a later grant replaces it",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			w, err := svc.Grant(cmd.Context(), c.space, args[0], role)
			if err != nil {
				return err
			}
			return c.say(map[string]any{"change": w.Change, "member": w.ID}, "grant %s (change %s)", w.ID, w.Change)
		}),
	}
	grant.Flags().StringVar(&role, "role", core.RoleWriter, "admin, writer, reader or a role the schema declares (extend schema @roles)")
	revoke := &cobra.Command{
		Use:   "revoke KEY",
		Short: "Revoke every role of KEY; its changes concurrent with the revocation lose effect",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			w, err := svc.Revoke(cmd.Context(), c.space, args[0])
			if err != nil {
				return err
			}
			return c.say(map[string]any{"change": w.Change, "member": w.ID}, "revoke %s (change %s)", w.ID, w.Change)
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List members and their roles (invites, contested ones included: tributary invite list)",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			ms, err := svc.Members(cmd.Context(), c.space)
			if err != nil {
				return err
			}
			if invs, err := svc.Invites(cmd.Context(), c.space); err == nil {
				c.warnContested(invs)
			}
			return c.print(ms)
		}),
	}
	for _, sub := range []*cobra.Command{grant, revoke, list} {
		c.spaceFlag(sub)
	}
	cmd.AddCommand(grant, revoke, list)
	return cmd
}

// warnContested tells the admin about invites used by several people,
// none acknowledged: nobody is admitted through them until settled.
func (c *cli) warnContested(invs []core.Invite) {
	for _, inv := range invs {
		if inv.State != core.InviteContested {
			continue
		}
		var who []string
		for _, u := range inv.Uses {
			who = append(who, u.Member.String())
		}
		c.warn("invite %s is contested: used by %v, none admitted; settle with `tributary invite settle %s --member KEY`", inv.Change, who, inv.Change)
	}
}
