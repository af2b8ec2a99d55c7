package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
)

func (c *cli) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create this node's home and Ed25519 key (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, created, err := node.InitHome(c.home)
			if err != nil {
				return err
			}
			verb := "created"
			if !created {
				verb = "exists"
			}
			return c.say(map[string]any{"author": h.Key.Public().String(), "home": h.Dir, "created": created},
				"home %s %s\nauthor %s", h.Dir, verb, h.Key.Public())
		},
	}
}

func (c *cli) spaceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "space", Short: "Create and list spaces"}
	var schemaFile, name string
	var admins []string
	create := &cobra.Command{
		Use:   "create --schema FILE",
		Short: "Found a new space with a GraphQL SDL schema; you are its first admin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if schemaFile == "" {
				return fmt.Errorf("--schema FILE is required")
			}
			text, err := os.ReadFile(schemaFile)
			if err != nil {
				return fmt.Errorf("read schema: %w", err)
			}
			h, err := node.OpenHome(c.home)
			if err != nil {
				return err
			}
			var extra []core.PublicKey
			for _, a := range admins {
				k, err := core.ParsePublicKey(a)
				if err != nil {
					return err
				}
				extra = append(extra, k)
			}
			staging, sp, err := h.CreateSpaceDir()
			if err != nil {
				return err
			}
			id, err := sp.Replica.Found(cmd.Context(), h.Key, name, string(text), extra, c.now())
			sp.Close()
			if err != nil {
				os.RemoveAll(staging)
				return fmt.Errorf("schema %s: %w", schemaFile, err)
			}
			if err := h.CommitSpace(staging, node.SpaceInfo{Space: id.String(), Name: name}); err != nil {
				return err
			}
			return c.say(map[string]any{"space": id.String()}, "space %s", id)
		},
	}
	create.Flags().StringVar(&schemaFile, "schema", "", "GraphQL SDL schema file")
	create.Flags().StringVar(&name, "name", "", "human name of the space")
	create.Flags().StringSliceVar(&admins, "admin", nil, "further founding admin key (repeatable)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the spaces this home holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := node.OpenHome(c.home)
			if err != nil {
				return err
			}
			spaces, err := h.Spaces()
			if err != nil {
				return err
			}
			if c.json {
				return c.print(spaces)
			}
			for _, s := range spaces {
				fmt.Fprintf(c.out, "%s\t%s\n", s.Space, s.Name)
			}
			return nil
		},
	}
	var upgradeFile string
	upgrade := &cobra.Command{
		Use:   "upgrade --schema FILE",
		Short: "Upgrade the space's schema (admins only; fields may be added, never removed or retyped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := os.ReadFile(upgradeFile)
			if err != nil {
				return fmt.Errorf("read schema: %w", err)
			}
			h, sp, err := c.openSpace(cmd.Context())
			if err != nil {
				return err
			}
			defer sp.Close()
			id, err := sp.Replica.Write(cmd.Context(), h.Key, []core.Op{{Kind: core.OpSchema, Schema: string(text)}}, c.now())
			if err != nil {
				return err
			}
			return c.say(map[string]any{"change": id.String(), "schema": sp.Replica.Schema().ID}, "schema %s (change %s)", sp.Replica.Schema().ID, id)
		},
	}
	upgrade.Flags().StringVar(&upgradeFile, "schema", "", "new GraphQL SDL schema file")
	c.spaceFlag(upgrade)
	cmd.AddCommand(create, list, upgrade)
	return cmd
}
