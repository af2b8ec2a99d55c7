package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
)

func (c *cli) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create this node's home, Ed25519 key and API token (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, created, err := node.InitHome(c.home)
			if err != nil {
				return err
			}
			if _, err := h.EnsureToken(); err != nil {
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

func (c *cli) tokenCmd() *cobra.Command {
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the API token (the running node accepts only the new one from now on)",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			if err := svc.RotateToken(cmd.Context()); err != nil {
				return err
			}
			return c.say(map[string]any{"rotated": true}, "API token rotated; clients read it from %s/api-token", c.home)
		}),
	}
	cmd := &cobra.Command{Use: "token", Short: "Manage the HTTP API's bearer token"}
	cmd.AddCommand(rotate)
	return cmd
}

func (c *cli) spaceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "space", Short: "Create and list spaces"}
	var schemaFile, name string
	var admins []string
	create := &cobra.Command{
		Use:   "create --schema FILE",
		Short: "Found a new space with a GraphQL SDL schema; you are its first admin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if schemaFile == "" {
				return fmt.Errorf("--schema FILE is required")
			}
			text, err := os.ReadFile(schemaFile)
			if err != nil {
				return fmt.Errorf("read schema: %w", err)
			}
			return c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
				sc, err := svc.CreateSpace(cmd.Context(), service.CreateSpace{Name: name, Schema: string(text), Admins: admins})
				if err != nil {
					return fmt.Errorf("schema %s: %w", schemaFile, err)
				}
				return c.say(sc, "space %s", sc.Space)
			})(cmd, args)
		},
	}
	create.Flags().StringVar(&schemaFile, "schema", "", "GraphQL SDL schema file")
	create.Flags().StringVar(&name, "name", "", "human name of the space")
	create.Flags().StringSliceVar(&admins, "admin", nil, "further founding admin key (repeatable)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the spaces this home holds",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			spaces, err := svc.Spaces(cmd.Context())
			if err != nil {
				return err
			}
			if c.json {
				if spaces == nil {
					spaces = []node.SpaceInfo{}
				}
				return c.print(spaces)
			}
			for _, s := range spaces {
				fmt.Fprintf(c.out, "%s\t%s\n", s.Space, s.Name)
			}
			return nil
		}),
	}
	var upgradeFile string
	upgrade := &cobra.Command{
		Use:   "upgrade --schema FILE",
		Short: "Upgrade the space's schema (admins only): add fields, collections, types and enum values, rename a field (@renamed), change a default, tighten a rule (@existing); never remove or retype (docs/SCHEMA.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := os.ReadFile(upgradeFile)
			if err != nil {
				return fmt.Errorf("read schema: %w", err)
			}
			return c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
				w, err := svc.UpgradeSchema(cmd.Context(), c.space, string(text))
				if err != nil {
					return err
				}
				return c.say(map[string]any{"change": w.Change, "schema": w.ID}, "schema %s (change %s)", w.ID, w.Change)
			})(cmd, args)
		},
	}
	upgrade.Flags().StringVar(&upgradeFile, "schema", "", "new GraphQL SDL schema file")
	c.spaceFlag(upgrade)
	cmd.AddCommand(create, list, upgrade)
	return cmd
}
