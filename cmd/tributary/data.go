package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/core/schema"
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

// putDocument creates a document (a new id when id is empty) or merges
// input into it, as one signed change: planned and written by the replica
// under its writer's lock.
func putDocument(ctx context.Context, r *replica.Replica, key core.PrivateKey, coll, id string, input map[string]any, now time.Time) (string, core.ID, bool, error) {
	res, change, err := r.Mutate(ctx, key, []replica.Mutation{{Op: replica.MutPut, Collection: coll, ID: id, Fields: input}}, uint64(now.UnixMilli()))
	if err != nil {
		var me *replica.MutationError
		if errors.As(err, &me) {
			err = me.Err
		}
		return "", core.ID{}, false, err
	}
	return res[0].ID, change, res[0].Created, nil
}

// deleteDocument deletes an existing document.
func deleteDocument(ctx context.Context, r *replica.Replica, key core.PrivateKey, coll, id string, now time.Time) (core.ID, error) {
	_, change, err := r.Mutate(ctx, key, []replica.Mutation{{Op: replica.MutDelete, Collection: coll, ID: id}}, uint64(now.UnixMilli()))
	var me *replica.MutationError
	if errors.As(err, &me) {
		err = me.Err
	}
	return change, err
}

// docJSON renders a document as a JSON object with "id".
func docJSON(d replica.Document) map[string]any {
	out := map[string]any{"id": d.ID}
	for k, v := range d.Fields {
		out[k] = jsonValue(v)
	}
	return out
}

// jsonValue renders a canonical value for JSON: bytes as base64 (the
// encoder's default), JSON fields as embedded JSON.
func jsonValue(v any) any {
	if l, ok := v.([]any); ok {
		out := make([]any, len(l))
		for i, e := range l {
			out[i] = jsonValue(e)
		}
		return out
	}
	return v
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
			h, sp, err := c.openSynced(cmd.Context())
			if err != nil {
				return err
			}
			defer sp.Close()
			docID, change, created, err := putDocument(cmd.Context(), sp.Replica, h.Key, args[0], id, input, c.nowFunc())
			if err != nil {
				return err
			}
			return c.say(map[string]any{"id": docID, "change": change.String()}, "%s %s/%s (change %s)", map[bool]string{false: "updated", true: "created"}[created], args[0], docID, change)
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
		RunE: c.inSpace(true, func(cmd *cobra.Command, args []string, _ *node.Home, sp *node.Space) error {
			if _, ok := sp.Replica.Schema().Collection(args[0]); !ok {
				return fmt.Errorf("unknown collection %q", args[0])
			}
			var d replica.Document
			var ok bool
			var err error
			if at != "" {
				cid, err := core.ParseID(at)
				if err != nil {
					return err
				}
				if d, err = sp.Replica.At(args[0], args[1], cid); err != nil {
					return err
				}
				ok = !d.Deleted && d.Fields != nil
			} else if d, ok, err = sp.Replica.Get(args[0], args[1]); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s/%s: %w", args[0], args[1], replica.ErrNotFound)
			}
			return c.print(docJSON(d))
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
		RunE: c.inSpace(true, func(cmd *cobra.Command, args []string, h *node.Home, sp *node.Space) error {
			change, err := deleteDocument(cmd.Context(), sp.Replica, h.Key, args[0], args[1], c.nowFunc())
			if err != nil {
				return err
			}
			return c.say(map[string]any{"id": args[1], "change": change.String()}, "deleted %s/%s (change %s)", args[0], args[1], change)
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
		RunE: c.inSpace(true, func(cmd *cobra.Command, args []string, _ *node.Home, sp *node.Space) error {
			coll, ok := sp.Replica.Schema().Collection(args[0])
			if !ok {
				return fmt.Errorf("unknown collection %q", args[0])
			}
			filter := map[string]any{}
			for _, w := range where {
				name, raw, ok := strings.Cut(w, "=")
				if !ok {
					return fmt.Errorf("--where %q: want field=value", w)
				}
				nv, err := whereValue(coll, name, raw)
				if err != nil {
					return fmt.Errorf("--where: %w", err)
				}
				filter[name] = nv
			}
			docs, err := sp.Replica.Query(args[0], filter)
			if err != nil {
				return err
			}
			out := make([]map[string]any, len(docs))
			for i, d := range docs {
				out[i] = docJSON(d)
			}
			return c.print(out)
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
		Short: "Show the space's changes, or one document's history",
		Args:  cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return fmt.Errorf("log takes no argument or COLLECTION ID")
			}
			_, sp, err := c.openSynced(cmd.Context())
			if err != nil {
				return err
			}
			defer sp.Close()
			var entries []replica.Entry
			if len(args) == 2 {
				entries, err = sp.Replica.History(args[0], args[1])
			} else {
				entries, err = sp.Replica.Log(limit)
			}
			if err != nil {
				return err
			}
			if c.json {
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
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "show only the newest N changes")
	c.spaceFlag(cmd)
	return cmd
}

func (c *cli) conflictsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conflicts",
		Short: "List open conflicts: concurrent writes to one field (resolve with an ordinary put)",
		Args:  cobra.NoArgs,
		RunE: c.inSpace(true, func(cmd *cobra.Command, _ []string, _ *node.Home, sp *node.Space) error {
			cs, err := sp.Replica.Conflicts()
			if err != nil {
				return err
			}
			if cs == nil {
				cs = []replica.ConflictView{}
			}
			return c.print(cs)
		}),
	}
	c.spaceFlag(cmd)
	return cmd
}

// whereValue turns the text of an equality filter into the field's
// canonical value: JSON when it parses as JSON (so 1974 is a number and
// "1974" a string), else the text itself.
func whereValue(coll *schema.Collection, name, raw string) (any, error) {
	f, ok := coll.Field(name)
	if !ok {
		return nil, fmt.Errorf("unknown field %s.%s", coll.Name, name)
	}
	var v any = raw
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var parsed any
	if dec.Decode(&parsed) == nil && !dec.More() {
		if _, isStr := parsed.(string); isStr || f.Kind != schema.String {
			v = parsed
		}
	}
	nv, err := f.Normalize(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return nv, nil
}
