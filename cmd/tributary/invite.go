package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
)

// invite is what an invite code carries: the space, where to find peers,
// and a throwaway key an admin granted RoleInvite, placed in the DAG by
// the change that granted it so the joiner can sign its own grant offline.
type invite struct {
	_         struct{} `cbor:",toarray"`
	Space     core.ID
	Name      string
	Seed      []byte   // the throwaway key's seed
	Grant     core.ID  // change that granted the throwaway key
	Height    uint64   // its height
	HLC       core.HLC // its clock
	Bootstrap []string // peer addresses
}

const invitePrefix = "trib1"

func (iv invite) encode() (string, error) {
	b, err := core.Marshal(iv)
	if err != nil {
		return "", err
	}
	return invitePrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func decodeInvite(code string) (invite, error) {
	var iv invite
	code = strings.TrimSpace(code)
	if !strings.HasPrefix(code, invitePrefix) {
		return iv, fmt.Errorf("invite code: does not start with %q", invitePrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(code[len(invitePrefix):])
	if err != nil {
		return iv, fmt.Errorf("invite code: damaged (%v)", err)
	}
	if err := core.Unmarshal(b, &iv); err != nil {
		return iv, fmt.Errorf("invite code: damaged (%v)", err)
	}
	if _, err := core.PrivateKeyFromSeed(iv.Seed); err != nil || iv.Space.IsZero() || iv.Grant.IsZero() {
		return iv, fmt.Errorf("invite code: incomplete")
	}
	return iv, nil
}

func (c *cli) inviteCmd() *cobra.Command {
	var addrs []string
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Print a single-use invite code (admins only); `tributary join CODE` makes a new member",
		Args:  cobra.NoArgs,
		RunE: c.inSpace(true, func(cmd *cobra.Command, _ []string, h *node.Home, sp *node.Space) error {
			throwaway, err := core.GenerateKey(nil)
			if err != nil {
				return err
			}
			id, err := sp.Replica.Write(cmd.Context(), h.Key, []core.Op{{Kind: core.OpGrant, Member: throwaway.Public(), Role: core.RoleInvite}}, c.now())
			if err != nil {
				return err
			}
			entry, err := sp.Replica.Change(id)
			if err != nil {
				return err
			}
			hlc, err := core.ParseHLC(entry.HLC)
			if err != nil {
				return err
			}
			height := entry.Height
			info, _ := h.Info(sp.Replica.Space().String())
			if len(addrs) == 0 {
				addrs = advertisedAddrs(c)
			}
			if len(addrs) == 0 {
				addrs = info.Bootstrap
			}
			code, err := invite{Space: sp.Replica.Space(), Name: info.Name, Seed: throwaway.Seed(), Grant: id, Height: height, HLC: hlc, Bootstrap: addrs}.encode()
			if err != nil {
				return err
			}
			return c.say(map[string]any{"code": code, "change": id.String()}, "%s", code)
		}),
	}
	cmd.Flags().StringSliceVar(&addrs, "addr", nil, "address of a peer to bootstrap from (repeatable)")
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) joinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "join CODE",
		Short: "Become a member of a space with an invite code (works offline: your grant travels with your first sync)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			iv, err := decodeInvite(args[0])
			if err != nil {
				return err
			}
			h, _, err := node.InitHome(c.home)
			if err != nil {
				return err
			}
			if _, err := h.Info(iv.Space.String()); err == nil {
				return fmt.Errorf("this home already holds space %s", iv.Space)
			}
			key, _ := core.PrivateKeyFromSeed(iv.Seed)
			grant := &core.Change{
				Version: core.ChangeVersion, Space: iv.Space, Author: key.Public(), Seq: 1,
				Parents: []core.ID{iv.Grant}, Height: iv.Height + 1,
				HLC: core.HLC{Wall: iv.HLC.Wall, Logical: iv.HLC.Logical + 1},
				Ops: []core.Op{{Kind: core.OpGrant, Member: h.Key.Public(), Role: core.RoleWriter}},
			}
			s, id, err := core.Sign(grant, key)
			if err != nil {
				return err
			}
			env, err := s.Encode()
			if err != nil {
				return err
			}
			if err := h.WriteInfo(node.SpaceInfo{Space: iv.Space.String(), Name: iv.Name, Bootstrap: iv.Bootstrap, InviteSeed: hex.EncodeToString(iv.Seed)}); err != nil {
				return err
			}
			sp, err := c.open(cmd.Context(), h, iv.Space.String())
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
			return c.say(map[string]any{"space": iv.Space.String(), "author": h.Key.Public().String(), "grant": id.String(), "bootstrap": iv.Bootstrap},
				"joined space %s as %s\nyour grant %s travels with your next sync (tributary run, or export/import a bundle)", iv.Space, h.Key.Public(), id)
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
