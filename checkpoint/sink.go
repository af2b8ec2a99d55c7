package checkpoint

import (
	"context"
	"errors"
	"fmt"

	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// Batch is a run of effects for a sink to apply in one go.
type Batch struct {
	// Effects in LSN order, at most one per document.
	Effects []eventstream.Effect
	// Schema in force for the newest effect. Upgrades only add and rename
	// fields, and the runner moves a renamed field's value of an older
	// effect to its new name, so it describes every effect in the batch.
	Schema *schema.Schema
	// Through is the checkpoint to record with the batch: every effect up to
	// it has been handled (some may have been collapsed away or parked).
	Through uint64
	// Redo marks parked effects offered again (Runner.Retry): their LSNs
	// are at or below the checkpoint, and each is the newest effect of its
	// document at or below it. The sink applies them although its
	// checkpoint covers them, and leaves its checkpoint where it is
	// (Through is the checkpoint).
	Redo bool
}

// Sink is a target store. Every adapter implements it.
type Sink interface {
	// Name identifies the sink; its checkpoint is kept under this name.
	Name() string
	// Checkpoint returns the last LSN the sink durably applied (0: none).
	// A sink fenced out by a newer instance returns an error wrapping
	// ErrFenced.
	Checkpoint(ctx context.Context) (uint64, error)
	// Apply applies the batch and records b.Through as the checkpoint,
	// atomically, or idempotently where the store has no transactions. On
	// error nothing may be recorded as applied beyond the old checkpoint.
	// Errors: a *RejectedError for effects the target refuses for good;
	// ErrFenced when a newer instance of the sink owns the target (nothing
	// of the batch is written); ErrClaimed when the batch needs a table,
	// label or collection another claim owns; anything else is retried.
	Apply(ctx context.Context, b Batch) error
	// Close releases the sink's resources.
	Close(ctx context.Context) error
}

// ErrRejected marks effects a sink can never apply.
var ErrRejected = errors.New("effect rejected by sink")

// RejectedError names the effect of a batch that the sink refuses. Index
// is its position in Batch.Effects, or -1 when the sink cannot tell which
// effect it was (the runner then bisects). Nothing of the batch may have
// been applied.
type RejectedError struct {
	Index  int
	Reason string
}

func (e *RejectedError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%v: %s", ErrRejected, e.Reason)
	}
	return fmt.Sprintf("%v: effect %d of the batch: %s", ErrRejected, e.Index, e.Reason)
}

func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Source is the effect log the runner reads (eventstream.Log).
type Source interface {
	Read(ctx context.Context, from uint64, max int) ([]eventstream.Effect, error)
	Wait(ctx context.Context, after uint64) error
	LastLSN() uint64
}

// SchemaSource gives the schema in force (node.Space, replica.Replica).
type SchemaSource interface {
	Schema() *schema.Schema
}
