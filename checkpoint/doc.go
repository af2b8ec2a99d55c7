// Package checkpoint runs sinks: it reads a space's effect log from the
// sink's own checkpoint, applies effects in batches and lets the sink save
// the new checkpoint with each batch, so a sink receives every effect once
// and resumes where it stopped whatever instant the process died.
//
//	r, _ := checkpoint.New(checkpoint.DefaultConfig(), space.Effects, sink, space, checkpoint.NewMemoryParking())
//	r.Start(ctx)        // runs until Close; or RunOnce / CatchUp to drive it by hand
//	defer r.Close()
//	st := r.Status()    // checkpoint, last LSN, lag, parked, last error
//
// The contract with a sink (see Sink): Checkpoint reports the last LSN the
// sink durably applied; Apply applies a batch and records Batch.Through as
// the new checkpoint atomically with it (or, for stores without
// transactions, guarded so that replaying a batch is harmless). The runner
// never advances a checkpoint itself: a failed batch pins it, and the same
// effects are offered again after a backoff.
//
// A batch keeps only the newest effect of each document (effects carry
// full post-images, so the older ones add nothing). A sink that finds an
// effect it can never apply (a value its store refuses) returns a
// *RejectedError naming it; the runner applies the rest, parks the
// rejected effect with its reason in Parking and moves on, so one bad
// document never stalls the others. Errors that are not rejections
// (connection lost, disk full) are retried with exponential backoff.
//
// Back-pressure: the runner holds at most one batch in memory and reads
// the next only after the sink accepted the previous one, so a slow sink
// slows only its own runner; the durable effect log absorbs the difference.
package checkpoint
