// Package replica is one space on one node: the Badger op-log (a Merkle DAG
// of signed changes, indexed by ID, by author and sequence, and by height),
// the materialized documents, and the membership and schema derived from
// the DAG. Input from anywhere (local writes, peers, bundle files) goes
// through the same path: verify, hold until parents arrive, validate,
// store, merge; the new document states and their effects commit in one
// Badger transaction (Options.Effects receives them inside it).
//
//	r, _ := replica.Open(replica.Options{Dir: dir, SyncWrites: true, Effects: appendToEffectLog})
//	space, _ := r.Found(ctx, key, "library", schemaText, nil, nowMillis) // or receive a genesis
//	id, err := r.Write(ctx, key, []core.Op{{Kind: core.OpCreate, Coll: "Book", Doc: "b1",
//		Fields: map[string]any{"title": "Dune"}}}, nowMillis)          // refused if invalid
//	report, err := r.Receive(ctx, envelopesFromAPeer)                 // untrusted input
//	doc, ok, _ := r.Get("Book", "b1")
//	envs, _ := r.Export(peerHeads)                                    // what a peer lacks
//
// Validity. Changes that fail decoding, signature, structure, height,
// clock or sequence rules are refused and never stored. Changes that are
// well formed but break the schema, or whose author is not authorized
// (core.Membership), are stored as DAG nodes with no effect and their
// reason is kept (Verdict, log). When a revocation arrives that makes
// already applied changes invalid, their documents are rebuilt from the
// remaining valid changes and new effects are emitted.
//
// Rules and roles (docs/RULES.md). A data change's author must hold a
// role that may write each collection it writes. When the schema has
// rules, each guarded action is judged at the change's view (its causal
// past, conflicts inside it settled, plus its own earlier ops) through
// the value index, never a collection scan; a local write carries the
// facts its rules relied on (core.Op.Reads). Concurrent changes that
// cannot both stand are found on arrival and settled by seniority: the
// loser, and whatever relied on it, stays stored with no effect and its
// reason, its documents are rebuilt (effects emitted), and Rollbacks
// lists it:
//
//	rbs, _ := r.Rollbacks() // loser, winner, documents, reason
//
// Schema upgrades (docs/SCHEMA.md). A change is checked under the schema
// in force in its causal past. A renamed field's values are kept under
// every name it had (the state stores what each op wrote); the post-image
// under a schema gathers them (image), and a set remove reaches the names
// its change's schema lists. Violations lists the documents breaking a
// rule tightened with @existing(policy: flag):
//
//	vs, _ := r.Violations() // collection, id, field, reason
//
// Known approximations, the same on every replica: ancestry comes from
// per-author version vectors, so for an author who equivocated both forks
// at a sequence number count as seen once one is; a reference is satisfied
// by any schema-valid create of the target in the change's causal past.
package replica
