// Package adaptertest is the conformance suite every sink (adapter) must
// pass, and the benchmark every sink is measured with.
//
// An adapter's test file implements Harness over its target and calls Run
// (and Bench from a benchmark):
//
//	func TestConformance(t *testing.T) { adaptertest.Run(t, newHarness(t)) }
//	func BenchmarkSink(b *testing.B)   { adaptertest.Bench(b, newHarness(b)) }
//
// The suite feeds a real eventstream.Log (in-memory Badger) with effects
// built by hand and drives the sink through the real checkpoint.Runner, or
// through Sink.Apply directly where a scenario needs exact batches. After
// every step it reads the target back through Harness.Read and compares it,
// field by field, with the state the effect log defines at the sink's
// checkpoint. The scenarios (one t.Run each):
//
//	apply_all        the target equals the final state; checkpoint == last LSN
//	replay           a batch applied twice, a stale batch (Through below the
//	                 checkpoint), an overlapping batch and an empty batch
//	                 change nothing they must not
//	ordering         many versions of one document within and across batches,
//	                 delete then re-create: the newest state wins, and the
//	                 target matches the log at every checkpoint
//	deletes          deletes of existing, missing and re-created documents
//	schema_upgrade   a second schema adds a field and a collection; the same
//	                 sink (and a new instance) carries on without a rebuild
//	crash_resume     a sink closed mid-stream is reopened under its name and
//	                 resumes from its checkpoint; runs interrupted by context
//	                 deadlines leave the checkpoint consistent with the data
//	poison           effects the target refuses (Harness.Poison) are parked
//	                 with a reason and the rest is applied
//	back_pressure    a runner with BatchSize 50 over 2000 effects: no Apply
//	                 sees more than 50 effects, never two at once, and all land
//	values           every field kind and list/set element kind round-trips
//	names            names targets find hard (NamesSchema: 72-byte collection,
//	                 fields alike in their first 63 bytes, BookReview beside
//	                 bookreview, ID, a collection named tributary_checkpoints)
//	                 through an additive upgrade that adds title beside Title
//	                 and reorders pageCount/PageCount: each value comes back
//	                 under its own name, also through a new instance
//	retry            parked effects retried (Runner.Retry): the sink applies
//	                 a Batch.Redo below its checkpoint, a superseded one is
//	                 dropped, a still refused one stays parked
//	types            fields of an enum and of named scalars (TypesSchema),
//	                 alone, in lists and in sets, stored as their base
//	                 values; an upgrade adding an enum value and an enum
//	                 field, carried on by the same and by a new instance
//
// A target that other sinks and processes reach too (a database server)
// also implements SharedHarness and runs RunShared:
//
//	func TestShared(t *testing.T) { adaptertest.RunShared(t, newHarness(t)) }
//
//	claims           a second claimant of a sink name (another space, another
//	                 node) is refused by New, naming the owner; a sink of
//	                 another name that would write the owner's tables is
//	                 refused at start (checkpoint.Preparer), before any Apply
//	fencing          a sink opened again under its claim fences the older
//	                 instance out: its Apply and Checkpoint fail with
//	                 checkpoint.ErrFenced, nothing of its batch lands, its
//	                 runner stops instead of retrying
//
// What a harness must provide:
//
//   - Open(t, name) returns a sink named name over the target kept for
//     name: opening the same name again (in the same test) gives a new
//     instance over the same data and checkpoint; different names must not
//     see each other's documents (a database schema, database or key prefix
//     per name). Names are short ASCII identifiers ([a-z0-9_], at most 32
//     bytes). The suite closes the sinks it opens.
//   - Read(t, name, collection) returns the documents the target holds for
//     that sink and collection, read through the target's own client, as
//     id -> fields in canonical values (core/codec.go): string, int64,
//     float64, bool, []byte and []any (sets in canonical order); absent and
//     null fields are omitted; a collection never written reads as empty.
//     Field names are lower case in the suite's schemas, so a target that
//     folds names to lower case may return its column names. DateTime is
//     compared as an instant and JSON as a value, so a target need not
//     reproduce their exact text; the suite's DateTimes have microsecond
//     precision.
//   - OpenAs(t, target, claim) (SharedHarness) opens a sink for claim over
//     the target kept for target and returns New's error; Open(t, name)
//     must open with ClaimFor(name). Read(t, target, ...) reads what that
//     target holds (use a reader that takes no fence).
//   - Poison optionally returns an upsert of a Book (Schema) that the target
//     can never store; the suite sets its DocID, LSN and provenance. Return
//     false to skip the poison scenario.
//
// Bench measures effects per second applied through the runner, in rounds
// of BenchBatch effects (the first round inserts, later rounds half update
// existing documents and half insert new ones); BenchEffects gives the same
// rows to a baseline that writes them without Tributary.
package adaptertest
