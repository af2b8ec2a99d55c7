package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// DefaultCheckpointTable holds one row per sink: (sink, lsn, updated_at,
// space, node, fence).
const DefaultCheckpointTable = "tributary_checkpoints"

// MaxIdentifier is PostgreSQL's identifier limit in bytes (NAMEDATALEN-1):
// the server cuts longer names, so the sink never sends one.
const MaxIdentifier = 63

// Config configures a sink.
type Config struct {
	// URL is a PostgreSQL connection string (postgres://user:pass@host:5432/db
	// or "host=... dbname=..."); pool settings such as pool_max_conns apply.
	URL string
	// Name identifies the sink; its checkpoint row is kept under this name.
	Name string
	// Space and Node (the space ID and the node's public key) complete
	// the sink's claim (checkpoint.Claim) with Name: the checkpoint row
	// and the tables the sink maps belong to that claim, and New refuses
	// a sink of another claim.
	Space, Node string
	// ReadOnly opens the sink only to read (Checkpoint, Rows, Row,
	// TableName): it claims nothing, takes no fence and creates nothing;
	// Apply, Prepare and Reset fail. With Space and Node empty it reads
	// the mapping of whichever claim holds Name.
	ReadOnly bool
	// Schema is the PostgreSQL schema (namespace) of the tables, created
	// if missing (default "public").
	Schema string
	// TablePrefix is put before every default table name.
	TablePrefix string
	// Tables overrides the table name of collections (collection -> table,
	// used as given, without the prefix). It applies when the sink maps a
	// collection for the first time: a collection mapped to another table
	// already makes New fail (the mapping never changes).
	Tables map[string]string
	// CheckpointTable is the checkpoint table's name in Schema (default
	// tributary_checkpoints). Sinks of different names may share it.
	CheckpointTable string
	// MaxConns bounds the connection pool (default 4). A sink applies one
	// batch at a time on one connection; the others serve Checkpoint and
	// reads.
	MaxConns int32
}

// Sink writes effects to PostgreSQL tables. It implements checkpoint.Sink
// and checkpoint.Preparer.
type Sink struct {
	cfg   Config
	pool  *pgxpool.Pool
	ckpt  string // qualified checkpoint table
	fence int64  // taken by New: the checkpoint row must hold it
	apply sync.Mutex

	layoutMu sync.Mutex
	layout   *layout // of the newest schema whose tables exist
}

var (
	_ checkpoint.Sink     = (*Sink)(nil)
	_ checkpoint.Preparer = (*Sink)(nil)
)

// ErrReadOnly refuses writes through a sink opened with Config.ReadOnly.
var ErrReadOnly = errors.New("the sink was opened read-only")

// New connects to the database, creates the schema, the checkpoint table
// and the mapping tables if they are missing, claims the sink's checkpoint
// row and takes a new fence, and returns the sink. A row another claim
// holds makes it fail with a *checkpoint.ClaimedError naming the owner, as
// does a table of Config.Tables another claim owns. Collection tables are
// created by Prepare or by the first batch that carries their schema.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres sink %s: URL: %w", cfg.Name, err)
	}
	switch {
	case cfg.MaxConns > 0:
		pc.MaxConns = cfg.MaxConns
	case !strings.Contains(cfg.URL, "pool_max_conns"):
		pc.MaxConns = 4
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres sink %s: %w", cfg.Name, err)
	}
	s := &Sink{cfg: cfg, pool: pool, ckpt: pgx.Identifier{cfg.Schema, cfg.CheckpointTable}.Sanitize()}
	if cfg.ReadOnly {
		return s, nil
	}
	if err := s.init(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres sink %s: %w", cfg.Name, err)
	}
	return s, nil
}

func (c Config) withDefaults() Config {
	if c.Schema == "" {
		c.Schema = "public"
	}
	if c.CheckpointTable == "" {
		c.CheckpointTable = DefaultCheckpointTable
	}
	return c
}

// Validate checks what can be checked without the database: a name, a
// URL pgx can parse, Tables (see Config.Tables). New calls it.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("postgres sink: a name is required")
	}
	c = c.withDefaults()
	if _, err := pgxpool.ParseConfig(c.URL); err != nil {
		return fmt.Errorf("postgres sink %s: URL: %w", c.Name, err)
	}
	if err := checkTables(c); err != nil {
		return fmt.Errorf("postgres sink %s: %w", c.Name, err)
	}
	return nil
}

// checkTables checks Config.Tables on its own: names PostgreSQL keeps as
// given, none reserved, no table for two collections.
func checkTables(cfg Config) error {
	seen := map[string]string{}
	for coll, t := range cfg.Tables {
		switch {
		case t == "":
			return fmt.Errorf("tables: empty table name for collection %s", coll)
		case len(t) > MaxIdentifier:
			return fmt.Errorf("tables: table %q for collection %s is %d bytes, over PostgreSQL's %d", t, coll, len(t), MaxIdentifier)
		case strings.ContainsRune(t, 0):
			return fmt.Errorf("tables: table name for collection %s holds a NUL character", coll)
		case t == cfg.CheckpointTable || t == TablesTable || t == ColumnsTable:
			return fmt.Errorf("tables: table %q for collection %s is the sink's own", t, coll)
		case seen[t] != "":
			return fmt.Errorf("tables: collections %s and %s both map to table %q", seen[t], coll, t)
		}
		seen[t] = coll
	}
	return nil
}

func (s *Sink) init(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockDDL(ctx, tx); err != nil {
			return err
		}
		var b pgx.Batch
		b.Queue("CREATE SCHEMA IF NOT EXISTS " + quote(s.cfg.Schema))
		b.Queue("CREATE TABLE IF NOT EXISTS " + s.ckpt + " (sink text PRIMARY KEY, lsn bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())")
		// Tables made before claims existed gain the claim and the fence.
		b.Queue("ALTER TABLE " + s.ckpt + " ADD COLUMN IF NOT EXISTS space text, ADD COLUMN IF NOT EXISTS node text, ADD COLUMN IF NOT EXISTS fence bigint NOT NULL DEFAULT 0")
		b.Queue("CREATE TABLE IF NOT EXISTS " + s.qualify(TablesTable) + ` (space text NOT NULL, node text NOT NULL, sink text NOT NULL,
			collection text NOT NULL, tbl text NOT NULL UNIQUE, PRIMARY KEY (space, node, sink, collection))`)
		b.Queue("CREATE TABLE IF NOT EXISTS " + s.qualify(ColumnsTable) + " (tbl text NOT NULL REFERENCES " + s.qualify(TablesTable) +
			` (tbl) ON UPDATE CASCADE ON DELETE CASCADE, field text NOT NULL, col text NOT NULL, PRIMARY KEY (tbl, field), UNIQUE (tbl, col))`)
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
		// The row exists from the start, so concurrent instances of the
		// sink serialise on it (Apply locks it). (Not in the batch above:
		// a batch prepares its statements before it runs the DDL.)
		if err := s.claim(ctx, tx); err != nil {
			return err
		}
		return s.checkOverrides(ctx, tx)
	})
}

// lockDDL serialises the sinks that lay out tables in one PostgreSQL
// schema.
func (s *Sink) lockDDL(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "tributary ddl "+s.cfg.Schema)
	return err
}

// Name implements checkpoint.Sink.
func (s *Sink) Name() string { return s.cfg.Name }

// Pool is the sink's connection pool.
func (s *Sink) Pool() *pgxpool.Pool { return s.pool }

// Checkpoint implements checkpoint.Sink: the sink's row of the checkpoint
// table (0 when a read-only sink finds none). A sink whose fence the row
// no longer holds gets checkpoint.ErrFenced.
func (s *Sink) Checkpoint(ctx context.Context) (uint64, error) {
	var lsn, fence int64
	if s.cfg.ReadOnly { // also a table from before claims (no fence column)
		err := s.pool.QueryRow(ctx, "SELECT lsn FROM "+s.ckpt+" WHERE sink = $1", s.cfg.Name).Scan(&lsn)
		if errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("postgres sink %s: read checkpoint: %w", s.cfg.Name, err)
		}
		return uint64(lsn), nil
	}
	err := s.pool.QueryRow(ctx, "SELECT lsn, fence FROM "+s.ckpt+" WHERE sink = $1", s.cfg.Name).Scan(&lsn, &fence)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, s.errFenced(nil)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres sink %s: read checkpoint: %w", s.cfg.Name, err)
	}
	if fence != s.fence {
		return 0, s.errFenced(&fence)
	}
	return uint64(lsn), nil
}

// Reset sets the sink's checkpoint back to 0, keeping its claim: the
// runner then replays the effect log from the start, rewriting every
// document (the tables and the mapping are kept; rows of documents
// deleted meanwhile are removed by the replayed deletes).
func (s *Sink) Reset(ctx context.Context) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("postgres sink %s: reset: %w", s.cfg.Name, ErrReadOnly)
	}
	s.apply.Lock()
	defer s.apply.Unlock()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE "+s.ckpt+" SET lsn = 0, updated_at = now() WHERE sink = $1", s.cfg.Name)
		return err
	})
	if errors.Is(err, checkpoint.ErrFenced) {
		return err
	}
	if err != nil {
		return fmt.Errorf("postgres sink %s: reset: %w", s.cfg.Name, err)
	}
	return nil
}

// Prepare implements checkpoint.Preparer: it maps the collections and
// fields of sch to tables and columns and creates them (see Apply).
func (s *Sink) Prepare(ctx context.Context, sch *schema.Schema) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("postgres sink %s: prepare: %w", s.cfg.Name, ErrReadOnly)
	}
	s.apply.Lock()
	defer s.apply.Unlock()
	if _, err := s.ensure(ctx, sch); err != nil {
		if checkpoint.Fatal(err) {
			return err
		}
		return fmt.Errorf("postgres sink %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Close implements checkpoint.Sink: it closes the pool.
func (s *Sink) Close(context.Context) error {
	s.pool.Close()
	return nil
}

// work is a batch prepared for one table.
type work struct {
	t       *table
	rows    [][]any  // upserts: id, fields, provenance
	rowIdx  []int    // their index in the batch
	rowLSN  []uint64 // their LSN
	deletes []string
	delLSN  []uint64
}

// Apply implements checkpoint.Sink. In one transaction it locks the sink's
// checkpoint row, copies the upserts of each table into a staging table
// and merges them with one INSERT ... ON CONFLICT DO UPDATE, deletes with
// one DELETE ... WHERE id = ANY($1), and writes the new checkpoint.
// Effects at or below the stored checkpoint are skipped and a batch whose
// Through is not above it changes nothing, so replays are harmless.
//
// Values PostgreSQL refuses (SQLSTATE classes 22 and 23, and 54000: a
// NUL character in text, invalid JSON, a violated constraint the user
// added) make it return a *checkpoint.RejectedError, with the effect's
// index when it is known; any other error (the connection, DDL) is
// returned as it is, for the runner to retry. Either way nothing of the
// batch is committed.
func (s *Sink) Apply(ctx context.Context, b checkpoint.Batch) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("postgres sink %s: apply: %w", s.cfg.Name, ErrReadOnly)
	}
	s.apply.Lock()
	defer s.apply.Unlock()
	var l *layout
	var works []*work
	if len(b.Effects) > 0 {
		if b.Schema == nil {
			return fmt.Errorf("postgres sink %s: a batch of %d effects without a schema", s.cfg.Name, len(b.Effects))
		}
		var err error
		if l, err = s.ensure(ctx, b.Schema); err != nil {
			if checkpoint.Fatal(err) {
				return err
			}
			return fmt.Errorf("postgres sink %s: %w", s.cfg.Name, err)
		}
		if works, err = prepare(l, b.Effects); err != nil {
			return err // a *checkpoint.RejectedError
		}
	}
	if err := s.write(ctx, works, b.Through, b.Redo); err != nil {
		var rej *checkpoint.RejectedError
		if errors.As(err, &rej) || errors.Is(err, checkpoint.ErrFenced) {
			return err
		}
		// Check the tables again on the next attempt, in case they
		// changed under the sink (dropped or altered by hand).
		s.layoutMu.Lock()
		s.layout = nil
		s.layoutMu.Unlock()
		return fmt.Errorf("postgres sink %s: %w", s.cfg.Name, err)
	}
	return nil
}

// prepare groups the newest effect of each document by table and converts
// its values.
func prepare(l *layout, effects []eventstream.Effect) ([]*work, error) {
	type docKey struct{ coll, id string }
	newest := make(map[docKey]int, len(effects))
	for i := range effects {
		newest[docKey{effects[i].Collection, effects[i].DocID}] = i
	}
	byTable := map[string]*work{}
	var works []*work
	for i := range effects {
		e := &effects[i]
		if newest[docKey{e.Collection, e.DocID}] != i {
			continue // a batch holds one effect per document; be safe anyway
		}
		t, ok := l.tables[e.Collection]
		if !ok {
			if e.Kind == eventstream.Delete {
				continue // nothing can exist in a collection the schema lacks
			}
			return nil, &checkpoint.RejectedError{Index: i, Reason: fmt.Sprintf("collection %s is not in the schema", e.Collection)}
		}
		w := byTable[t.name]
		if w == nil {
			w = &work{t: t}
			byTable[t.name] = w
			works = append(works, w)
		}
		switch e.Kind {
		case eventstream.Delete:
			w.deletes = append(w.deletes, e.DocID)
			w.delLSN = append(w.delLSN, e.LSN)
		case eventstream.Upsert:
			row, err := t.row(e)
			if err != nil {
				return nil, &checkpoint.RejectedError{Index: i, Reason: err.Error()}
			}
			w.rows = append(w.rows, row)
			w.rowIdx = append(w.rowIdx, i)
			w.rowLSN = append(w.rowLSN, e.LSN)
		default:
			return nil, &checkpoint.RejectedError{Index: i, Reason: fmt.Sprintf("effect kind %s", e.Kind)}
		}
	}
	return works, nil
}

// write runs the batch's transaction. A redo batch (parked effects
// offered again) is written although the checkpoint covers it.
func (s *Sink) write(ctx context.Context, works []*work, through uint64, redo bool) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())

	var first pgx.Batch
	first.Queue("SELECT lsn, fence FROM "+s.ckpt+" WHERE sink = $1 FOR UPDATE", s.cfg.Name)
	for _, w := range works {
		if len(w.rows) > 0 {
			first.Queue(w.t.stageDDL)
		}
	}
	res := tx.SendBatch(ctx, &first)
	var stored, fence int64
	if err := res.QueryRow().Scan(&stored, &fence); err != nil {
		res.Close()
		if errors.Is(err, pgx.ErrNoRows) {
			return s.errFenced(nil)
		}
		return fmt.Errorf("lock checkpoint: %w", err)
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("prepare staging tables: %w", err)
	}
	if fence != s.fence {
		return s.errFenced(&fence)
	}
	ckpt := uint64(stored)
	if through <= ckpt && !redo {
		return nil // applied already
	}
	if redo {
		ckpt = 0 // skip nothing
	}

	var second pgx.Batch
	type stmt struct {
		w    *work
		data bool
	}
	var stmts []stmt
	for _, w := range works {
		rows, idx := w.rows, w.rowIdx
		if ckpt > 0 { // skip what the checkpoint already covers
			rows, idx = nil, nil
			for k, lsn := range w.rowLSN {
				if lsn > ckpt {
					rows, idx = append(rows, w.rows[k]), append(idx, w.rowIdx[k])
				}
			}
		}
		if len(rows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{w.t.stage}, w.t.copyCol, pgx.CopyFromRows(rows)); err != nil {
				return classify(err, func(line int) int {
					if line >= 1 && line <= len(idx) {
						return idx[line-1]
					}
					return -1
				})
			}
			second.Queue(w.t.upsert)
			stmts = append(stmts, stmt{w, true})
		}
		var dels []string
		for k, lsn := range w.delLSN {
			if lsn > ckpt {
				dels = append(dels, w.deletes[k])
			}
		}
		if len(dels) > 0 {
			second.Queue(w.t.delete, dels)
			stmts = append(stmts, stmt{w, true})
		}
	}
	second.Queue("UPDATE "+s.ckpt+" SET lsn = GREATEST(lsn, $2), updated_at = now() WHERE sink = $1", s.cfg.Name, int64(through))
	stmts = append(stmts, stmt{nil, false})
	res = tx.SendBatch(ctx, &second)
	for _, st := range stmts {
		if _, err := res.Exec(); err != nil {
			res.Close()
			if st.data {
				return classify(err, nil)
			}
			return fmt.Errorf("save checkpoint %d: %w", through, err)
		}
	}
	if err := res.Close(); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit through %d: %w", through, err)
	}
	return nil
}

var copyLine = regexp.MustCompile(`COPY [^,]+, line (\d+)`)

// classify turns an error PostgreSQL raised for the data into a
// rejection; index maps a COPY line to the effect's index.
func classify(err error, index func(line int) int) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	class := pe.Code[:2]
	if class != "22" && class != "23" && pe.Code != "54000" {
		return err
	}
	reason := fmt.Sprintf("postgres refused the value: %s (SQLSTATE %s)", pe.Message, pe.Code)
	if pe.Detail != "" {
		reason += ": " + pe.Detail
	}
	if pe.ColumnName != "" {
		reason += " [column " + pe.ColumnName + "]"
	}
	i := -1
	if m := copyLine.FindStringSubmatch(pe.Where); m != nil && index != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			i = index(n)
		}
	}
	if pe.Where != "" {
		reason += " [" + pe.Where + "]"
	}
	return &checkpoint.RejectedError{Index: i, Reason: reason}
}
