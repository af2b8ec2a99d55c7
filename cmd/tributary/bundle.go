package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/service"
)

func (c *cli) exportCmd() *cobra.Command {
	var out, since string
	cmd := &cobra.Command{
		Use:   "export -o FILE [--since HEADS]",
		Short: "Write the changes a peer lacks (all, or those not in the past of --since heads) to a bundle file",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			if out == "" {
				return fmt.Errorf("-o FILE is required")
			}
			heads := strings.FieldsFunc(since, func(r rune) bool { return r == ',' || r == ' ' })
			tmp, err := os.CreateTemp(filepath.Dir(out), ".export-*")
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			defer os.Remove(tmp.Name())
			ex, err := svc.Export(cmd.Context(), c.space, heads, tmp)
			if cerr := tmp.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("export: %w", cerr)
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			return c.say(map[string]any{"file": out, "changes": ex.Changes, "heads": ex.Heads}, "wrote %d changes to %s", ex.Changes, out)
		}),
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
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			defer f.Close()
			im, err := svc.Import(cmd.Context(), f)
			if err != nil {
				return fmt.Errorf("import %s: %w", args[0], err)
			}
			rep := im.Report
			if im.Refused > 0 { // a failed command prints nothing on stdout
				return fmt.Errorf("import %s: %d of %d changes refused (%d applied, %d already held, %d waiting for parents), first: %s",
					args[0], im.Refused, im.Total, rep.Applied, rep.Duplicates, rep.Held, rep.Rejected[0].Msg)
			}
			if c.json {
				return c.print(rep)
			}
			_, err = fmt.Fprintf(c.out, "%d changes: %d applied (%d without effect), %d already held, %d waiting for parents\n",
				im.Total, rep.Applied, rep.Invalid, rep.Duplicates, rep.Held)
			return err
		}),
	}
}

func (c *cli) statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the space: changes, heads, members, invites, equivocating authors, effect log, mesh",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			st, err := svc.Status(cmd.Context(), c.space)
			if err != nil {
				return err
			}
			c.warnContested(st.Space.Invites)
			return c.print(st)
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
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			effs, err := svc.Effects(cmd.Context(), c.space, from, limit)
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
