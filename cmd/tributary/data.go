package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core/replica"
)

// parseObject decodes a JSON object, keeping numbers exact. Text that is
// not valid UTF-8 is refused (a JSON decoder would quietly replace it).
func parseObject(text string) (map[string]any, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("document JSON: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("document JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("document JSON: trailing data after the object")
	}
	if obj == nil {
		return nil, fmt.Errorf("document JSON: want an object")
	}
	return obj, nil
}

func (c *cli) putCmd() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "put COLLECTION JSON",
		Short: "Create a document, or merge fields into an existing one (--id)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			input, err := parseObject(args[1])
			if err != nil {
				return err
			}
			if !utf8.ValidString(id) {
				return fmt.Errorf("--id: not valid UTF-8")
			}
			return c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
				w, err := svc.Put(cmd.Context(), c.space, args[0], id, input)
				if err != nil {
					return err
				}
				verb := map[bool]string{false: "updated", true: "created"}[w.Created]
				return c.say(w, "%s %s/%s (change %s)", verb, args[0], w.ID, w.Change)
			})(cmd, args)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "document id (default: a new time-ordered id)")
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) getCmd() *cobra.Command {
	var at string
	cmd := &cobra.Command{
		Use:   "get COLLECTION ID",
		Short: "Print a document as JSON (--at CHANGE: as it was at that change)",
		Args:  cobra.ExactArgs(2),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			d, err := svc.Get(cmd.Context(), c.space, args[0], args[1], at)
			if err != nil {
				return err
			}
			return c.print(d)
		}),
	}
	cmd.Flags().StringVar(&at, "at", "", "read the document as of this change ID")
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) deleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete COLLECTION ID",
		Short: "Delete a document",
		Args:  cobra.ExactArgs(2),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			w, err := svc.Delete(cmd.Context(), c.space, args[0], args[1])
			if err != nil {
				return err
			}
			return c.say(w, "deleted %s/%s (change %s)", args[0], args[1], w.Change)
		}),
	}
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) queryCmd() *cobra.Command {
	var where []string
	cmd := &cobra.Command{
		Use:   "query COLLECTION [--where field=value]...",
		Short: "List documents of a collection, filtered by field equality",
		Args:  cobra.ExactArgs(1),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			filter := map[string]string{}
			for _, w := range where {
				name, raw, ok := strings.Cut(w, "=")
				if !ok {
					return fmt.Errorf("--where %q: want field=value", w)
				}
				filter[name] = raw
			}
			docs, err := svc.Query(cmd.Context(), c.space, args[0], filter)
			if err != nil {
				return err
			}
			if docs == nil {
				docs = []service.Doc{}
			}
			return c.print(docs)
		}),
	}
	cmd.Flags().StringArrayVar(&where, "where", nil, "field=value equality filter (repeatable)")
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) logCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "log [COLLECTION ID]",
		Short: "Show the space's changes (--limit N: the newest N), or one document's history",
		Args:  cobra.RangeArgs(0, 2),
		RunE: c.withService(func(cmd *cobra.Command, args []string, svc service.Service) error {
			if len(args) == 1 {
				return fmt.Errorf("log takes no argument or COLLECTION ID")
			}
			if limit < 0 {
				return fmt.Errorf("--limit %d: want 0 (all) or more", limit)
			}
			var entries []replicaEntry
			var err error
			if len(args) == 2 {
				entries, err = svc.History(cmd.Context(), c.space, args[0], args[1])
				if limit > 0 && len(entries) > limit {
					entries = entries[len(entries)-limit:]
				}
			} else {
				entries, err = svc.Log(cmd.Context(), c.space, limit)
			}
			if err != nil {
				return err
			}
			if c.json {
				if entries == nil {
					entries = []replicaEntry{}
				}
				return c.print(entries)
			}
			for _, e := range entries {
				verdict := ""
				if !e.Valid {
					verdict = "  INVALID: " + e.Reason
				}
				fmt.Fprintf(c.out, "%s h=%d %s seq=%d by %s%s\n", e.Change, e.Height, e.HLC, e.Seq, e.Author[:12], verdict)
				for _, op := range e.Ops {
					b, _ := json.Marshal(op)
					fmt.Fprintf(c.out, "    %s\n", b)
				}
			}
			return nil
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "show only the newest N changes")
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) conflictsCmd() *cobra.Command {
	var rollbacks bool
	cmd := &cobra.Command{
		Use:   "conflicts",
		Short: "List open conflicts: concurrent writes to one field (resolve with an ordinary put); --rollbacks: changes the rules rolled back",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			if rollbacks {
				rbs, err := svc.Rollbacks(cmd.Context(), c.space)
				if err != nil {
					return err
				}
				return c.print(rbs)
			}
			cs, err := svc.Conflicts(cmd.Context(), c.space)
			if err != nil {
				return err
			}
			return c.print(cs)
		}),
	}
	cmd.Flags().BoolVar(&rollbacks, "rollbacks", false, "list the changes that passed their rules but lost to a concurrent change (or relied on one that did), with the reason")
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) violationsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "violations",
		Short: "List documents breaking a rule an upgrade tightened with @existing(policy: flag) (fix them with an ordinary put)",
		Args:  cobra.NoArgs,
		RunE: c.withService(func(cmd *cobra.Command, _ []string, svc service.Service) error {
			vs, err := svc.Violations(cmd.Context(), c.space)
			if err != nil {
				return err
			}
			return c.print(vs)
		}),
	}
	c.spaceFlag(cmd)
	return cmd
}

type replicaEntry = replica.Entry
