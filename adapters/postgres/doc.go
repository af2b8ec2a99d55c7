// Package postgres is the PostgreSQL sink: it keeps a table per collection
// up to date with a space's effect log, exactly once, with its checkpoint
// stored in the same database and written in the same transaction as the
// rows.
//
//	sink, err := postgres.New(ctx, postgres.Config{
//		URL:    "postgres://app@db:5432/library",
//		Name:   "library-pg",  // the checkpoint row's key
//		Space:  spaceID,       // with Node and Name, the sink's claim
//		Node:   nodeKey,
//		Schema: "tributary",   // PostgreSQL schema of the tables (default public)
//	})                         // errors.Is(err, checkpoint.ErrClaimed): another claim owns it
//	runner, _ := checkpoint.New(checkpoint.DefaultConfig(), space.Effects, sink, space, parking)
//	runner.Start(ctx)
//	defer runner.Close()
//	defer sink.Close(ctx)
//
// # Claim and fence
//
// A target is claimed by exactly one (space, node, sink): the checkpoint
// table (tributary_checkpoints: sink text PRIMARY KEY, lsn, updated_at,
// space, node, fence) holds one row per sink name, with the claim that
// owns it. New claims the row (a row written before claims existed is
// adopted) and refuses a sink of the same name from another space or
// node with a *checkpoint.ClaimedError naming the owner, instead of
// letting it skip the rows the owner's checkpoint covers. New also takes
// a new fence (fence = fence + 1, kept by the instance): every Apply,
// Prepare and Reset locks the row and checks, in the transaction of its
// rows, that the row still holds the instance's fence; a stale instance
// (a second process, or one a restart replaced) gets checkpoint.ErrFenced
// and writes nothing, and the runner stops it. To hand a target to
// another claim, delete the owner's row from the checkpoint table and its
// rows from tributary_tables (the columns' rows go with them). Config.
// ReadOnly opens a sink that only reads and fences nobody out.
//
// # Tables and the name mapping
//
// The names are decided once and stored in the target, in Config.Schema:
//
//	tributary_tables   (space, node, sink, collection) -> tbl   tbl UNIQUE
//	tributary_columns  (tbl, field) -> col                      (tbl, col) UNIQUE
//
// Prepare (at start) and the first batch under a new schema map the
// collections and fields that have no row yet and store the rows in the
// transaction that creates their tables and columns; the sinks sharing a
// PostgreSQL schema serialise on an advisory lock. A mapped name is never
// derived again: it is looked up by collection and field name, so an
// upgrade that reorders fields changes nothing, and an upgrade that
// renames a field (@renamed(from: ...), docs/SCHEMA.md) moves the field's
// row to its new name and keeps its column: rows written before read
// under the new name. A table belongs to the claim whose row names it: a sink that
// wants a table another claim owns is refused with a *checkpoint.
// ClaimedError (give it its own Config.Schema, a TablePrefix, or
// Config.Tables).
//
// A new collection's table is Config.Tables[collection] if given (checked
// at New: at most 63 bytes, not the sink's own tables, one collection per
// table, not another claim's, and the collection's table if it has one
// already: a mapping never changes), else TablePrefix + its name in lower
// case. A new field's column is its name in lower case. A name longer than
// PostgreSQL's 63 bytes (which the server would cut) is cut to 54 bytes and
// given "_" and 8 hex digits of a hash of the exact name; so is a name
// another collection or field of the sink already has (BookReview beside
// bookreview, title added beside Title, two long names alike in their first
// 63 bytes), or that is reserved: the checkpoint and mapping tables, and
// the columns id, _lsn, _change, _author and _hlc (a field ID). A table
// laid out before the mapping existed is adopted as it is: a field whose
// lower-cased or exact name is one of its columns keeps that column.
// Every table has
//
//	id        text PRIMARY KEY   the document id
//	...       one column per field, NULL when the field is absent
//	_lsn      bigint NOT NULL    LSN of the effect that wrote the row
//	_change   text               CID of the change holding the newest write
//	_author   text               its author
//	_hlc      text               its hybrid logical clock
//
// A schema upgrade (which adds fields and collections, and renames fields
// in the mapping only) creates the
// new tables and runs ALTER TABLE ... ADD COLUMN IF NOT EXISTS for the new
// fields when the first batch under it arrives: no table is rebuilt and
// existing rows keep their values (NULL in the new columns until their
// documents change). A column that exists with another type than the one
// below stops the sink with an error naming it. Columns and tables the sink
// does not know are left alone, so views, indexes, extra columns and
// triggers may be added freely.
//
// # Types
//
//	schema kind        column type          canonical value -> stored as
//	String             text                 string
//	Ref                text                 the referenced document's id
//	Int, counter       bigint               int64
//	Float              double precision     float64
//	Boolean            boolean              bool
//	DateTime           timestamptz          RFC 3339 text -> instant (microseconds:
//	                                        finer digits are dropped)
//	Bytes              bytea                []byte
//	JSON               jsonb                JSON text (key order and spacing
//	                                        are jsonb's on the way out)
//	[T] list, [T] @set T[] (text[], bigint[], double precision[], boolean[],
//	                   timestamptz[], bytea[], jsonb[]), elements in order;
//	                   sets in their canonical (sorted) order
//
// Operator-defined types are stored as their base kind: a named scalar
// (scalar Email @pattern(...)) in the column of its base (text, bigint,
// ...), with no constraint (its rules are RE2 patterns and bounds the
// replica checks before anything reaches the effect log; PostgreSQL's
// regular expressions are another dialect); an enum in a text column (a
// list or set of one in text[]) with a CHECK constraint admitting its
// values, named <column>_enum:
//
//	status text CONSTRAINT status_enum CHECK (status = ANY (ARRAY['OPEN', 'RETURNED']::text[]))
//	history text[] CONSTRAINT history_enum CHECK (history <@ ARRAY['OPEN', 'RETURNED']::text[])
//
// Text with a CHECK rather than a native CREATE TYPE ... AS ENUM because
// the column's type then never changes (a mapping never changes for an
// existing field, and the sink stops on a column of another type), an
// upgrade that adds a value is a DROP and ADD of the constraint in the DDL
// transaction instead of ALTER TYPE ... ADD VALUE (which cannot be used in
// the transaction that adds it and cannot be undone), a value can never
// be removed from a native enum while documents kept by an @existing
// policy may still hold it, no type name has to be mapped collision-free
// beside the tables, and the binary COPY into the staging table needs no
// enum type registered with the driver. Queries compare with plain text
// ('LOST' = status); what is lost is only the declaration order as sort
// order. The constraint is widened when an upgrade adds values and never
// narrowed (it admits every value any schema the sink saw declared; its
// comment, "tributary enum LoanStatus: OPEN RETURNED LOST", is what the
// sink reads back), and it is added NOT VALID: every row the sink writes
// is checked, the rows already there (admitted by the narrower one) are
// not scanned again under the table's exclusive lock. A CHECK of that name
// the sink did not make stops it with an error naming it.
//
// Lists and sets are typed arrays rather than jsonb so that they keep their
// element types and can be queried and indexed as PostgreSQL arrays
// ('x' = ANY(tags), GIN indexes, unnest).
//
// # Applying a batch
//
// Apply runs one transaction: it locks the sink's row of the checkpoint
// table and checks its fence, skips what that checkpoint already covers, copies the batch's upserts of each table
// with COPY (binary) into a session-local temporary staging table and
// merges them with one INSERT ... SELECT ... ON CONFLICT (id) DO UPDATE
// that replaces every field column (the effect carries the document's full
// post-image) of the rows that differ from the staged values in any
// column (a row that already holds them is left as it is, so a backfill
// over intact tables or a replayed batch writes no new row versions, while
// a row edited by hand is written again; an UPDATE trigger fires only for
// the rows whose values change), deletes with one DELETE ... WHERE id = ANY($1) per table, and
// writes the new checkpoint. It commits all of it or none. A batch whose
// Through is at or below the stored checkpoint changes nothing, so a batch
// replayed after a crash is harmless. A Redo batch (parked effects
// offered again by tributary sink retry) is written although the
// checkpoint covers it, and leaves the checkpoint as it is.
//
// Errors: a value PostgreSQL refuses for good (SQLSTATE class 22 data
// exception or 23 integrity violation, or 54000 such as an index row too
// large) is returned as a *checkpoint.RejectedError, so that the runner
// parks that effect and applies the rest. The sink checks what it can
// before sending (NUL characters, which PostgreSQL text cannot hold, and
// invalid UTF-8; values of the wrong type; fields or collections not in the
// schema) and reports the effect's index; for a COPY error it takes the
// index from the failing line; otherwise the index is -1 and the runner
// bisects. Any other error (connection lost, permission, DDL, a trigger on
// the checkpoint table) is returned as it is and the runner retries the
// batch with backoff.
//
// Reset sets the sink's checkpoint to 0, keeping its claim and mapping
// (tributary sink reset): the runner then replays the effect log from the
// start over the existing tables. Row and Rows read documents back as
// canonical values keyed by field name (for tests and tools; open a
// Config.ReadOnly sink for that beside a running one); TableName tells
// which table holds a collection.
//
// The pgtest subpackage runs a throwaway PostgreSQL server for tests.
package postgres
