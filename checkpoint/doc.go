// Package checkpoint runs sinks: it reads a space's effect log from the
// sink's own checkpoint, applies effects in batches and lets the sink save
// the new checkpoint with each batch, so a sink receives every effect once
// and resumes where it stopped whatever instant the process died.
//
//	r, _ := checkpoint.New(checkpoint.DefaultConfig(), space.Effects, sink, space, checkpoint.NewMemoryParking())
//	r.Start(ctx)        // runs until Close; or RunOnce / CatchUp to drive it by hand
//	defer r.Close()
//	st := r.Status()    // checkpoint, last LSN, lag, parked, last error, fatal
//	out, err := r.Retry(ctx) // offer the parked effects again (tributary sink retry)
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
// A target is claimed by exactly one Claim (space, node, sink): a sink
// stores its claim with its checkpoint, refuses a second claimant when it
// is opened (a *ClaimedError naming the owner, wrapping ErrClaimed), and
// takes a new fence each time it is opened; a stale instance (another
// process, or one a restart replaced) gets ErrFenced from Apply and
// Checkpoint. Both are fatal to the runner (see Fatal): it stops, sets
// Status.Fatal and never retries them. A sink that is also a Preparer lays
// its target out (tables, the name mapping) before the runner's first
// batch, so that a table another claim owns is refused at start.
//
// Retry re-applies parked effects, in step with the runner: each parked
// document's newest effect at or below the checkpoint is offered again in
// a Batch with Redo set (which the sink applies although its checkpoint
// covers it); the parked effects that apply now, or that a newer effect
// superseded, leave the Parking, the others stay with the sink's reason.
//
// Back-pressure: the runner reads the next batch while the sink applies
// the current one (reading and decoding overlap with the target's work),
// and holds at most those two batches in memory: it reads no further until
// the sink accepted the current one, so a slow sink slows only its own
// runner; the durable effect log absorbs the difference. The batch read
// ahead is only ever applied right after the checkpoint it follows: after
// a failed batch it is dropped and the log is read again from the sink's
// checkpoint. While the sink is far behind (a backfill, a catch-up)
// batches grow to Config.CatchUpBatch effects, bounded by
// Config.BatchBytes.
package checkpoint
