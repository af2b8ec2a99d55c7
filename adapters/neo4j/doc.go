// Package neo4j is the Neo4j sink: it keeps a Neo4j database (5.x) in step
// with a space's effect log, as a graph. It implements checkpoint.Sink with
// the official driver (github.com/neo4j/neo4j-go-driver/v5).
//
// # Driving it
//
//	s, err := neo4j.New(ctx, neo4j.Config{
//		URL:      "neo4j://graph.example:7687", // or bolt://host:7687; +s / +ssc for TLS
//		Username: "neo4j", Password: secret,      // empty Username: no authentication
//		Database: "library",                      // empty: the server's default database
//		Name:     "graph",                        // the checkpoint is kept under this name
//		Space:    spaceID, Node: nodeKey,         // with Name, the sink's claim
//	})                                            // errors.Is(err, checkpoint.ErrClaimed): another claim owns it
//	r, err := checkpoint.New(checkpoint.DefaultConfig(), space.Log(), s, space, parking)
//	r.Start(ctx) // or r.CatchUp(ctx)
//	...
//	r.Close()
//	s.Close(ctx)
//
// New checks that the server answers, creates the uniqueness constraints
// of the checkpoint and mapping labels, claims the checkpoint node and
// takes a new fence (see below). Reset sets the checkpoint back to 0,
// keeping the claim and mapping, so that the runner replays the effect
// log from the start (the documents stay and are rewritten; the deletes in
// the log remove what was deleted since). Documents reads a collection
// back as canonical values; Label tells a collection's label.
//
// # Claim and fence
//
// A target is claimed by exactly one (space, node, sink): the checkpoint
// node (:_TributaryCheckpoint {sink, lsn, updated, space, node, fence})
// carries the claim, and New refuses a sink of the same name from another
// space or node with a *checkpoint.ClaimedError naming the owner (a node
// written before claims existed is adopted). New also takes a new fence
// (fence + 1, in one transaction); every Apply, Prepare and Reset locks
// the node in its transaction and checks that it still holds the
// instance's fence: a stale instance (a second process, or one a restart
// replaced) gets checkpoint.ErrFenced and writes nothing, and the runner
// stops it. Config.ReadOnly opens a sink that only reads.
//
// # The name mapping
//
// Each collection of a claim has a mapping node, (:_TributaryMapping
// {label, space, node, sink, collection, fields, properties, types}),
// label unique: a label belongs to one claim, and a sink that wants one
// another claim maps is refused at start (Prepare) with a
// *checkpoint.ClaimedError (give it a database of its own, a
// Config.LabelPrefix, or Config.Labels). fields[i] is stored as the
// property properties[i] and, for a reference field, as relationships
// of type types[i]. A collection and its fields are mapped the first time
// a schema shows them and looked up by name ever after, so an upgrade
// that reorders fields changes nothing, and an upgrade that renames a
// field (@renamed(from: ...)) renames fields[i] and keeps its property and
// relationship type. Labels, properties
// and relationship types tell case apart, so a collection's label is its
// name (after LabelPrefix, or as Config.Labels gives it, checked at New:
// not another claim's, not the sink's own labels, and the collection's own
// if it has one: a mapping never changes) and a field's property is its
// name (field names never start with "_" and are never id, so they never
// meet the sink's own properties); only what is taken or longer than
// Neo4j's 16383-character names (MaxName) gets "_" and 8 hex digits of a
// hash of the exact name. A reference field's relationship type is its
// name in upper case, which two fields of a collection can share (writer,
// and Writer added by an upgrade): the second gets the hash suffix
// (WRITER_1a2b3c4d). Labels that exist without a mapping node (a graph
// written before the mapping existed) are adopted.
//
// # The graph
//
// Each document is a node labelled with its collection's name and holding
// its ID in the property id; each label gets a uniqueness constraint
// (CREATE CONSTRAINT IF NOT EXISTS FOR (n:Book) REQUIRE n.id IS UNIQUE)
// when a batch's schema first shows it, so collections added by a schema
// upgrade get theirs as they appear. Fields are properties named as the
// fields, of these Neo4j types:
//
//	String                 STRING
//	Int, counter           INTEGER
//	Float                  FLOAT
//	Boolean                BOOLEAN
//	DateTime               ZONED DATETIME with offset Z (a Neo4j datetime,
//	                       not text: a.born.year, a.born < datetime() work)
//	Bytes                  byte array
//	JSON                   STRING holding the compact JSON text
//	reference              STRING holding the referenced ID, and a relationship
//	list, set              LIST of the element type (sets in canonical
//	                       order); a list of Bytes is a LIST<STRING> of
//	                       base64 (standard, padded), since Neo4j cannot store
//	                       a list of byte arrays
//	enum                   STRING holding the value's name ("OPEN")
//	named scalar           the type of its base (scalar Email: STRING)
//
// An absent or null field is no property: an update replaces all the
// node's properties (SET n = $props), so cleared fields disappear. Every
// document node also holds its provenance: _lsn (the LSN of the effect that
// wrote it), _change (the CID of the change holding the newest write),
// _author and _hlc.
//
// Every reference field is also a relationship from the document to the
// referenced node, of the type the mapping gives it (the field's name in
// upper case):
// Book.author = "a1" is (:Book {id: "b1"})-[:AUTHOR]->(:Author {id: "a1"}).
// A list or set of references makes one relationship per element, each
// with the element's position in the property index (0, 1, ...; a list may
// hold the same ID twice, which makes two relationships). Reference fields
// are stored as properties as well (the ID, or the list of IDs), so that a
// node holds the whole document and a reference to a document that does
// not exist keeps its ID; the relationships are the graph to traverse:
//
//	MATCH (b:Book)-[:AUTHOR]->(a:Author) WHERE a.name STARTS WITH 'U' RETURN b.title
//
// An update moves the relationships: the document's outgoing relationships
// are deleted and those of its new references created. A referenced
// document that does not exist yet is MERGEd by id as a stub, a node with
// its id alone; it becomes the document when its own upsert arrives (the
// relationships pointing to it stay). A delete DETACH DELETEs the node,
// with its outgoing relationships, unless other documents still reference
// it: then it goes back to being a stub (its properties but id removed,
// its outgoing relationships deleted, the incoming ones kept), so that the
// references that still name it keep their relationships and find the
// document again if it is re-created. A stub that loses its last reference
// is deleted. The graph is thus always the function of the documents that
// exist, whatever order their effects came in. Stubs have no _lsn: to see
// documents only, match on it (Documents does):
//
//	MATCH (a:Author) WHERE a._lsn IS NOT NULL RETURN a
//
// Two reference fields of one collection whose names differ only in case
// (author, Author) get distinct relationship types from the mapping
// (AUTHOR, AUTHOR_<hash>).
//
// # Batches and the checkpoint
//
// Apply writes a batch in one transaction (session.ExecuteWrite, which
// retries transient errors such as deadlocks): it reads and locks the
// checkpoint node and checks its fence, skips the effects at or below its
// LSN (a batch whose Through is not above it changes nothing, so replays
// are harmless; a Redo batch of parked effects offered again is written
// anyway and leaves the checkpoint as it is), writes the upserts
// and deletes of each collection with UNWIND statements of at most
// Config.BatchSize rows (default 1000), and sets the checkpoint to
// Through, in the same transaction: the graph and the checkpoint move
// together or not at all.
//
// # Errors
//
// An effect whose values do not have its schema's types, or whose
// collection the schema lacks, makes Apply return a
// *checkpoint.RejectedError with its index, before anything is sent. Data
// Neo4j itself refuses (Neo.ClientError.Statement.TypeError, ArgumentError,
// ArithmeticError, ConstraintVerificationFailed, and
// Neo.ClientError.Schema.ConstraintValidationFailed, e.g. a uniqueness or
// property constraint the user added) is a *checkpoint.RejectedError with
// index -1: the runner applies the batch's effects one by one to find it,
// and parks it. Everything else (connection errors, transient errors the
// driver gave up retrying, authentication, the context) is returned as it
// is, for the runner to retry. Nothing of a failed batch is committed.
//
// # Sharing a database
//
// Labels are the collection names, so two sinks with the same collections
// in one database would write the same nodes: the second is refused at
// start. Give each space its own database (Neo4j Enterprise), or, on
// Community, which has one database, a Config.LabelPrefix (option
// label_prefix) per sink. Their checkpoints are kept apart by name.
package neo4j
