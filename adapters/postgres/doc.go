// Package postgres is the PostgreSQL sink: it keeps a table per collection
// up to date with a space's effect log, exactly once, with its checkpoint
// stored in the same database and written in the same transaction as the
// rows.
//
//	sink, err := postgres.New(ctx, postgres.Config{
//		URL:    "postgres://app@db:5432/library",
//		Name:   "library-pg",  // the checkpoint row's key
//		Schema: "tributary",   // PostgreSQL schema of the tables (default public)
//	})
//	runner, _ := checkpoint.New(checkpoint.DefaultConfig(), space.Effects, sink, space, parking)
//	runner.Start(ctx)
//	defer runner.Close()
//	defer sink.Close(ctx)
//
// # Tables
//
// Each collection gets a table named after it in lower case (with
// Config.TablePrefix before it, or the name Config.Tables gives), created
// by the first batch that carries the collection's schema. Each field is a
// column named after it in lower case; a field or collection whose
// lower-cased name is already taken (Title after title) keeps its exact
// spelling. Names longer than PostgreSQL's 63 bytes are truncated by the
// server, so keep them shorter. Every table has
//
//	id        text PRIMARY KEY   the document id
//	...       one column per field, NULL when the field is absent
//	_lsn      bigint NOT NULL    LSN of the effect that wrote the row
//	_change   text               CID of the change holding the newest write
//	_author   text               its author
//	_hlc      text               its hybrid logical clock
//
// A schema upgrade (which only adds fields and collections) creates the
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
// Lists and sets are typed arrays rather than jsonb so that they keep their
// element types and can be queried and indexed as PostgreSQL arrays
// ('x' = ANY(tags), GIN indexes, unnest).
//
// # Applying a batch
//
// Apply runs one transaction: it locks the sink's row of the checkpoint
// table (tributary_checkpoints: sink text PRIMARY KEY, lsn bigint,
// updated_at timestamptz; created by New in Config.Schema), skips what
// that checkpoint already covers, copies the batch's upserts of each table
// with COPY (binary) into a session-local temporary staging table and
// merges them with one INSERT ... SELECT ... ON CONFLICT (id) DO UPDATE
// that replaces every field column (the effect carries the document's full
// post-image), deletes with one DELETE ... WHERE id = ANY($1) per table, and
// writes the new checkpoint. It commits all of it or none. A batch whose
// Through is at or below the stored checkpoint changes nothing, so a batch
// replayed after a crash, or by a second instance of the same sink (which
// waits on the row lock), is harmless.
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
// Reset deletes the sink's checkpoint row (tributary sink reset): the
// runner then replays the effect log from the start over the existing
// tables. Row and Rows read documents back as canonical values (for tests
// and tools); TableName tells which table holds a collection.
//
// The pgtest subpackage runs a throwaway PostgreSQL server for tests.
package postgres
