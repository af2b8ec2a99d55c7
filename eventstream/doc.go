// Package eventstream is the durable effect log of a space: every document
// state change the materializer produces, in commit order, numbered by a
// dense local LSN (log sequence number) starting at 1.
//
// The log lives in the space's Badger database under a key prefix, and
// effects are appended in the same transaction as the changes that caused
// them (the Log is the replica's EffectLog: AppendTx runs inside the
// replica's transaction, Committed after it), so the op-log and
// the effect log can never disagree, whatever instant the process dies:
// either the transaction committed with all its LSNs or none of it exists.
//
//	log, _ := eventstream.Open(db, []byte("e/"))
//	effects, _ := log.Read(ctx, checkpoint+1, 500) // post-images from any LSN
//	more, _ := log.ReadSized(ctx, checkpoint+1, 5000, 8<<20) // also at most 8 MiB stored
//	_ = log.Wait(ctx, log.LastLSN())               // block until something new commits
//	log.Compact(ctx, log.LastLSN()-retention)      // keep the newest effect per document
//
// Each effect carries the document's full post-image (or a delete), so a
// sink never needs older effects of a document to apply a newer one. That
// is what makes compaction safe: below the retention point only the newest
// effect of each document is kept, and a new sink backfills from what
// remains. LSNs are never reused or renumbered; after compaction a read
// skips the removed ones.
//
// Effects are stored as core.Marshal encodes them and read with
// core.Unmarshal, which encodes and decodes an Effect by hand (core's
// cborappend.go and effectdecode.go).
package eventstream
