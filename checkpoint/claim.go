package checkpoint

import (
	"context"
	"errors"
	"fmt"

	"github.com/tributary-sync/tributary/core/schema"
)

// Claim is who writes a target: one sink of one node of one space. A
// target (a checkpoint row and the tables, labels or collections its
// mapping names) is claimed by exactly one Claim; the sink stores it with
// its checkpoint.
type Claim struct {
	Space string `json:"space"` // the space's ID
	Node  string `json:"node"`  // the node's public key
	Sink  string `json:"sink"`  // the sink's name
}

func (c Claim) String() string {
	show := func(s string) string {
		if s == "" {
			return `""`
		}
		return s
	}
	return fmt.Sprintf("(space %s, node %s, sink %s)", show(c.Space), show(c.Node), show(c.Sink))
}

// ErrClaimed marks a sink refused because another claim owns its target.
var ErrClaimed = errors.New("target claimed by another sink")

// ErrFenced marks a sink whose target was taken over by a newer instance
// of the same claim (a second process, or a restart): it must stop
// writing. The runner stops on it instead of retrying.
var ErrFenced = errors.New("sink fenced out: a newer instance of the same sink started and owns the target")

// ClaimedError names the owner of what a sink was refused.
type ClaimedError struct {
	What  string // what is owned: "checkpoint row x of public.tributary_checkpoints", "table public.book"
	Owner Claim  // who owns it
	By    Claim  // who asked
	Hint  string // what the user can do, if anything
}

func (e *ClaimedError) Error() string {
	msg := fmt.Sprintf("%v: %s belongs to %s, not to %s", ErrClaimed, e.What, e.Owner, e.By)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *ClaimedError) Is(target error) bool { return target == ErrClaimed }

// Fatal reports whether err means a sink must stop rather than retry: it
// was fenced out, or its target belongs to another claim.
func Fatal(err error) bool { return errors.Is(err, ErrFenced) || errors.Is(err, ErrClaimed) }

// Preparer is a Sink that lays its target out for a schema (tables,
// constraints, the name mapping) before its first batch, so that a
// conflict is reported when the runner starts rather than at the first
// write. The runner calls Prepare once, before its first batch; its errors
// are handled as Apply's (ErrClaimed stops the runner, others are retried).
type Preparer interface {
	Prepare(ctx context.Context, s *schema.Schema) error
}
