// Package mongodb is a sink that keeps a space's documents in a MongoDB
// database (or in a server speaking MongoDB's protocol, such as FerretDB),
// one MongoDB collection per space collection, exactly once, with or
// without transactions.
//
//	s, err := mongodb.New(ctx, mongodb.Config{
//		URL:   "mongodb://db.example:27017/library?w=majority", // the path names the database
//		Name:  "library-mongo",                                 // checkpoint key
//		Space: spaceID, Node: nodeKey,                          // with Name, the sink's claim
//	})                                                          // errors.Is(err, checkpoint.ErrClaimed): another claim owns it
//	defer s.Close(ctx)
//	r, _ := checkpoint.New(checkpoint.DefaultConfig(), space.Effects, s, space, parking)
//	r.Start(ctx); defer r.Close()
//
//	s.Reset(ctx) // tributary sink reset: checkpoint back to 0, replay the log
//
// # Documents
//
// A document's id is its _id; its fields are typed BSON:
//
//	String, reference      string (a reference holds the target's id)
//	Int, counter           int64
//	Float                  double (also when the value is whole)
//	Boolean                bool
//	DateTime               BSON datetime (UTC milliseconds, rounded down);
//	                       the nanoseconds below the millisecond, when
//	                       there are any, go to _ns (see below)
//	Bytes                  binary, subtype 0
//	JSON                   the value the text describes: an object is an
//	                       embedded document (keys sorted), an array an
//	                       array, an integer that fits int64 an int64,
//	                       another number a double; a value not every
//	                       server can store (an object key that is empty,
//	                       starts with "$" or holds "." or NUL; an array
//	                       directly inside an array, which FerretDB
//	                       refuses, also as an element of a list of JSON)
//	                       is stored as its text, as binary of subtype
//	                       0x80 (JSONTextSubtype)
//	enum                   string holding the value's name ("OPEN")
//	named scalar           as its base (scalar Email: string)
//	list, set              array of the above (a set in canonical order)
//	absent or cleared      no field
//
// Without a schema in the batch, values are stored by their Go type, so
// DateTime and JSON fields stay text. DecodeDoc maps a stored document
// back to canonical values (JSON back to compact text with sorted keys).
//
// Every document also holds the provenance of the effect that wrote it:
// _lsn (int64), _change (CID of the change with the newest write),
// _author and _hlc. Schema field names never start with "_", so these
// cannot collide with them. A BSON datetime counts milliseconds, so a
// document whose DateTime values are finer also holds _ns: {field:
// nanoseconds below the millisecond} (int32; for a list or set, an array
// of them, one per element). Queries use the datetime fields; DecodeDoc
// adds _ns back, so no digit of a DateTime is lost.
//
// A deleted document is kept as a tombstone {_id, _deleted: true, _lsn,
// _change, _author, _hlc}. Readers must leave tombstones out: add
// NotDeleted ({_deleted: {$ne: true}}) to their filters.
//
// The checkpoint lives in the collection _tributary_checkpoints as
// {_id: sink name, lsn: int64, space, node, fence, updated}.
//
// # Claim and fence
//
// A target is claimed by exactly one (space, node, sink). New claims the
// sink's checkpoint document (one written before claims existed is
// adopted) and refuses a sink of the same name from another space or
// node with a *checkpoint.ClaimedError naming the owner. It also takes a
// new fence, with a write guarded by the fence it read (two instances
// starting at once cannot take the same one). Without transactions
// every Apply checks the fence before its first write and raises the
// checkpoint with an update guarded by it, {_id: name, fence: mine}: a
// stale instance (a second process, or one a restart replaced) gets
// checkpoint.ErrFenced and the runner stops it. An instance fenced out
// while a batch is being written may still write that batch's documents;
// their LSN guards make that harmless (the newer instance applies the
// same effect log), and its checkpoint write matches nothing. With
// transactions the fence is read in the batch's transaction. Reset sets
// the checkpoint to 0, keeping the claim. Config.ReadOnly opens a sink
// that only reads.
//
// # The name mapping
//
// The collection _tributary_names holds one document per mapped
// collection, {_id: the MongoDB collection, space, node, sink,
// collection, fields: [{field, name}]}: the _id makes a MongoDB
// collection belong to one claim, and a sink that wants one another
// claim maps is refused at start (Prepare) with a *checkpoint.
// ClaimedError (give it a database of its own, or Config.Collections).
// A collection is mapped once, the first time a schema shows it, and
// looked up by name ever after. Its MongoDB collection is
// Config.Collections[collection] (checked at New: MongoDB's rules, not
// reserved, not another claim's, and the collection's own if it has one:
// a mapping never changes), else its own name: MongoDB and FerretDB
// tell collection names apart by case (BookReview beside bookreview is
// fine), so only a name longer than the database takes (MaxCollectionName,
// 235 bytes on FerretDB; 255 for database, dot and collection on MongoDB)
// is cut and given "_" and 8 hex digits of a hash of the full name, and a
// name taken or reserved (system., _tributary_, _ferretdb_) is suffixed
// so. Field names are the schema's: GraphQL names never hold "$" or ".",
// and never start with "_", so they are valid field names that never meet
// the sink's own; the mapping lists each field anyway, appended as
// upgrades add fields, so that an upgrade that renames a field
// (@renamed(from: ...)) keeps its stored name: the entry's field becomes
// the new name, its name stays, and the sink writes the field, and
// DecodeDoc reads it back, under that name. A MongoDB collection that exists without a mapping
// document (written before the mapping existed) is adopted.
//
// Sinks of different claims may share a database as long as their
// collections are named apart. On MongoDB the guards keep even shared
// documents correct; on FerretDB give each sink its own database.
//
// # Exactly once
//
// On MongoDB every write is a replace-with-upsert of one document guarded
// by the effect's LSN:
//
//	filter {_id: id, $or: [{_lsn: {$lte: lsn}}, {_lsn: {$exists: false}}]}
//
// MongoDB applies a single-document write atomically, so a document is
// replaced only by an effect at least as new as the one it holds. When it
// holds a newer one the filter matches nothing, the upsert tries to insert
// the id again and the server answers with a duplicate-key error; the sink
// reads the document, sees the newer _lsn and skips the write. A delete is
// the same guarded write of a tombstone, so a replayed older upsert cannot
// bring a deleted document back. Whatever set of effects is written, in
// whatever order and however often, each document ends as the newest of
// them: replaying is harmless.
//
// Apply writes the batch first and then raises the checkpoint to
// Batch.Through with $max (never lowering it). If the process or the
// server dies in between, the checkpoint still names the previous batch,
// and the runner offers the batch again: its writes find their documents
// already at their LSN ($lte matches) and rewrite the same content. The
// checkpoint therefore never runs ahead of the documents, and every
// effect is reflected exactly once. After Apply returns nil, Checkpoint
// reports Through (or a higher checkpoint recorded earlier). What
// durability means is up to the write concern of the URL: use w=majority
// on a replica set, so that a failover cannot roll back writes under a
// checkpoint.
//
// Apply finishes a batch it started writing even when its context ends
// (bounded by Config.WriteTimeout), so cancelling a runner never leaves
// documents ahead of the checkpoint; a context that has already ended
// stops it before the first write. Without transactions a reader may
// still see a batch half applied while it is written, or after the
// process died in the middle of one (until the batch is applied again);
// each document is always one of its states from the effect log.
//
// FerretDB (detected by buildInfo) gets another scheme. Its SQLite
// backend finds even a document by _id by scanning the table, so one
// guarded write per document costs a scan of the collection each, and it
// runs an update as a query followed by a write, so a guard in the filter
// is not atomic there anyway. The sink therefore rewrites a batch: it
// reads the _lsn of every document of the collection in one scan, drops
// the writes whose documents hold a newer effect, inserts the documents
// that are new (inserts use the _id index) and replaces the ones that
// hold older effects by deleting them in one query and inserting them
// again (putting the old document back if the server refuses the new
// one). The guard is the LSN read at the start, so this path assumes one
// writer per database, which the runner gives (one batch of a sink at a
// time; do not run two processes for one sink). A reader may miss a
// replaced document for a moment; if the process dies between the delete
// and the insert, the checkpoint has not moved and the batch, applied
// again, inserts the documents.
//
// Transactions: when the server reports a replica set or a sharded
// cluster with sessions (hello), MongoDB 4.4 or later, the batch and its
// checkpoint are written in one transaction instead. A write error aborts
// a transaction, so there the sink first reads the LSNs the batch's
// documents hold and leaves out the writes that are older; the guards
// stay. Config.NoTransactions turns this off. FerretDB has no
// transactions, so the tests run the paths without them: the conformance
// suite the FerretDB path, and the replay and rejection tests both it and
// the guarded path (the suite over the guarded path takes minutes on
// FerretDB: TRIBUTARY_MONGO_GUARDED=1 runs it). The transactional path
// has no test here (it needs a MongoDB replica set).
//
// # Writes and errors
//
// Writes go per collection in ordered bulk writes (inserts on FerretDB)
// of Config.ChunkSize (default 50; FerretDB's bulk writes stall beyond
// about 100 writes that match existing documents). When a bulk write
// fails for another reason than the connection, its chunk is redone one
// write at a time (redoing the ones already done is harmless): servers
// differ in what a failed bulk write did and which write they blame
// (FerretDB stops a bulk update at its first error whatever "ordered"
// says, and reports index 0).
//
// Effects the target can never store come back as *checkpoint.RejectedError
// with their index in the batch, so the runner parks them: before anything
// is written, a value that does not fit its field's kind, a field name
// BSON cannot hold (NUL), a document over the server's maxBsonObjectSize
// (16 MiB), a collection name MongoDB refuses or a collection the batch's
// schema lacks; when written, a document
// the server refuses for its content (BadValue, such as FerretDB's
// refusal of infinite doubles; $-prefixed, dotted or empty field names;
// document too large; validation failure; a duplicate key on a unique
// index of the user's). Connection errors, timeouts and other server
// errors are returned as they are, and the runner retries the batch.
//
// # Tests
//
// The tests embed FerretDB with its SQLite backend in the test process
// (package mongotest), so they need no server. FerretDB scans a
// collection for every query, so its benchmark figures say little about
// MongoDB, where every write finds its document through the _id index.
package mongodb
