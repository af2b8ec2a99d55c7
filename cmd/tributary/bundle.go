package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh/bundle"
)

func (c *cli) exportCmd() *cobra.Command {
	var out, since string
	cmd := &cobra.Command{
		Use:   "export -o FILE [--since HEADS]",
		Short: "Write the changes a peer lacks (all, or those not in the past of --since heads) to a bundle file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("-o FILE is required")
			}
			var heads []core.ID
			for _, s := range strings.FieldsFunc(since, func(r rune) bool { return r == ',' || r == ' ' }) {
				id, err := core.ParseID(s)
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				heads = append(heads, id)
			}
			h, sp, err := c.openSpace(cmd.Context())
			if err != nil {
				return err
			}
			defer sp.Close()
			space := sp.Replica.Space()
			if space.IsZero() {
				// A joiner holds no genesis before its first sync (only its
				// own grant, waiting for parents): name the space it joined.
				id, err := h.Resolve(c.space)
				if err != nil {
					return err
				}
				if space, err = core.ParseID(id); err != nil {
					return err
				}
			}
			envs, err := sp.Replica.Export(heads)
			if err != nil {
				return err
			}
			if err := bundle.WriteFile(out, bundle.Bundle{Space: space, Since: heads, Changes: envs}); err != nil {
				return err
			}
			return c.say(map[string]any{"file": out, "changes": len(envs), "heads": sp.Replica.Heads()}, "wrote %d changes to %s", len(envs), out)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "bundle file to write")
	cmd.Flags().StringVar(&since, "since", "", "comma-separated heads the receiver already has")
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) importCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Verify a bundle file and apply its changes (idempotent; nothing is applied from a file that fails verification)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := bundle.ReadFile(args[0])
			if err != nil {
				return err
			}
			h, err := node.OpenHome(c.home)
			if err != nil {
				return err
			}
			if _, err := h.Info(b.Space.String()); err != nil {
				return fmt.Errorf("bundle is for space %s, which this home does not hold (join it first): %w", b.Space, node.ErrUnknownSpace)
			}
			sp, err := c.open(cmd.Context(), h, b.Space.String())
			if err != nil {
				return err
			}
			defer sp.Close()
			rep, err := receiveWithProgress(cmd, sp, b.Changes, !c.json)
			if err != nil {
				return err
			}
			if !c.json {
				fmt.Fprintf(c.out, "%d changes: %d applied (%d without effect), %d already held, %d waiting for parents, %d refused\n",
					len(b.Changes), rep.Applied, rep.Invalid, rep.Duplicates, rep.Held, len(rep.Rejected))
				for _, r := range rep.Rejected {
					fmt.Fprintf(c.out, "refused %s: %s\n", r.ID, r.Msg)
				}
				return nil
			}
			return c.print(rep)
		},
	}
}

func (c *cli) statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the space: changes, heads, members, equivocating authors, effect log",
		Args:  cobra.NoArgs,
		RunE: c.inSpace(false, func(cmd *cobra.Command, _ []string, h *node.Home, sp *node.Space) error {
			st, err := sp.Replica.Status()
			if err != nil {
				return err
			}
			es, err := sp.Effects.Stats()
			if err != nil {
				return err
			}
			out := map[string]any{"author": h.Key.Public().String(), "space": st, "effects": es}
			return c.print(out)
		}),
	}
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) effectsCmd() *cobra.Command {
	var from uint64
	var limit int
	cmd := &cobra.Command{
		Use:   "effects [--from LSN]",
		Short: "Print the effect stream (what sinks apply) from an LSN",
		Args:  cobra.NoArgs,
		RunE: c.inSpace(false, func(cmd *cobra.Command, _ []string, _ *node.Home, sp *node.Space) error {
			effs, err := sp.Effects.Read(cmd.Context(), from, limit)
			if err != nil {
				return err
			}
			return c.print(effs)
		}),
	}
	cmd.Flags().Uint64Var(&from, "from", 1, "first LSN")
	cmd.Flags().IntVar(&limit, "limit", 1000, "at most this many effects")
	c.spaceFlag(cmd)
	return cmd
}

// receiveWithProgress applies changes in chunks, printing progress on
// stderr for large imports, and sums the reports.
func receiveWithProgress(cmd *cobra.Command, sp *node.Space, envs [][]byte, show bool) (replica.Report, error) {
	const chunk = 5000
	var total replica.Report
	for i := 0; i < len(envs); i += chunk {
		rep, err := sp.Replica.Receive(cmd.Context(), envs[i:min(i+chunk, len(envs))])
		if err != nil {
			return total, err
		}
		total.Applied += rep.Applied
		total.Invalid += rep.Invalid
		total.Duplicates += rep.Duplicates
		total.Held = rep.Held
		total.Rejected = append(total.Rejected, rep.Rejected...)
		total.IDs = append(total.IDs, rep.IDs...)
		if show && len(envs) > chunk {
			fmt.Fprintf(cmd.ErrOrStderr(), "import: %d/%d changes\n", min(i+chunk, len(envs)), len(envs))
		}
	}
	return total, nil
}
