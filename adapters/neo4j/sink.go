package neo4j

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// CheckpointLabel labels the checkpoint nodes: (:_TributaryCheckpoint
// {sink: name, lsn: LSN, updated: datetime, space, node, fence}).
const CheckpointLabel = "_TributaryCheckpoint"

// Provenance properties of every document node, besides id.
const (
	PropID     = "id"      // the document ID, unique per label
	PropLSN    = "_lsn"    // LSN of the effect that wrote the node
	PropChange = "_change" // CID of the change holding the newest write
	PropAuthor = "_author" // author of the newest write
	PropHLC    = "_hlc"    // its hybrid logical clock
)

// PropIndex is the property of a relationship made by a list or set of
// references holding the element's position (0, 1, ...).
const PropIndex = "index"

// DefaultBatchSize is the default Config.BatchSize.
const DefaultBatchSize = 1000

// MaxBatchSize bounds Config.BatchSize.
const MaxBatchSize = 100_000

// Config configures a sink.
type Config struct {
	// URL is the server's Bolt URL: bolt://host:7687, or neo4j://host:7687
	// for a cluster (routing); the +s and +ssc schemes turn on TLS.
	URL string
	// Username and Password authenticate (basic authentication); an empty
	// Username connects without authentication.
	Username, Password string
	// Database is the database written; empty means the server's default
	// database.
	Database string
	// Name identifies the sink; its checkpoint node is kept under this
	// name.
	Name string
	// Space and Node (the space ID and the node's public key) complete
	// the sink's claim (checkpoint.Claim) with Name: the checkpoint node
	// and the labels the sink maps belong to that claim, and New refuses
	// a sink of another claim.
	Space, Node string
	// ReadOnly opens the sink only to read (Checkpoint, Documents,
	// Label): it claims nothing and takes no fence; Apply, Prepare and
	// Reset fail. With Space and Node empty it reads the mapping of
	// whichever claim holds Name.
	ReadOnly bool
	// LabelPrefix is put before the default label of every collection
	// mapped from now on (several spaces in one database).
	LabelPrefix string
	// Labels overrides the label of collections (collection -> label,
	// used as given), when the sink maps them for the first time: a
	// collection mapped to another label already makes New fail (the
	// mapping never changes).
	Labels map[string]string
	// BatchSize is the most rows one UNWIND statement carries (default
	// 1000); a batch is written with as many statements as it needs, all
	// in one transaction.
	BatchSize int
}

// Sink writes effects to a Neo4j database as a graph. It implements
// checkpoint.Sink.
type Sink struct {
	cfg    Config
	driver neo4j.DriverWithContext
	fence  int64 // taken by New: the checkpoint node must hold it

	mu      sync.Mutex      // one Apply at a time; guards what follows
	ensured map[string]bool // labels whose id constraint exists
	layout  *layout         // of the newest schema mapped

	closeOnce sync.Once
	closeErr  error
}

var (
	_ checkpoint.Sink     = (*Sink)(nil)
	_ checkpoint.Preparer = (*Sink)(nil)
)

// ErrReadOnly refuses writes through a sink opened with Config.ReadOnly.
var ErrReadOnly = errors.New("the sink was opened read-only")

// New connects to the server of cfg.URL, checks that it answers, makes
// sure the checkpoint and mapping labels have their uniqueness
// constraints, claims the sink's checkpoint node and takes a new fence.
// A node another claim holds makes it fail with a
// *checkpoint.ClaimedError naming the owner, as does a label of
// Config.Labels another claim maps.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	auth := neo4j.NoAuth()
	if cfg.Username != "" {
		auth = neo4j.BasicAuth(cfg.Username, cfg.Password, "")
	}
	driver, err := neo4j.NewDriverWithContext(cfg.URL, auth, func(c *config.Config) {
		c.UserAgent = "tributary"
	})
	if err != nil {
		return nil, fmt.Errorf("neo4j sink %s: %w", cfg.Name, err)
	}
	s := &Sink{cfg: cfg, driver: driver, ensured: map[string]bool{}}
	if err := driver.VerifyConnectivity(ctx); err != nil {
		_ = driver.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("neo4j sink %s: connect to %s: %w", cfg.Name, cfg.URL, err)
	}
	if cfg.ReadOnly {
		return s, nil
	}
	err = s.constrain(ctx, CheckpointLabel, "sink")
	if err == nil {
		err = s.constrain(ctx, MappingLabel, "label")
	}
	if err == nil {
		err = s.claim(ctx)
	}
	if err == nil {
		err = s.checkOverrides(ctx)
	}
	if err != nil {
		_ = driver.Close(context.WithoutCancel(ctx))
		if checkpoint.Fatal(err) {
			return nil, err
		}
		return nil, fmt.Errorf("neo4j sink %s: %w", cfg.Name, err)
	}
	return s, nil
}

// Validate checks what can be checked without the server: a name, a Bolt
// URL, the batch size, Labels (1 to MaxName characters, not the sink's own
// labels, one collection per label). New calls it.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("neo4j sink: a name is required")
	}
	if c.BatchSize < 0 || c.BatchSize > MaxBatchSize {
		return fmt.Errorf("neo4j sink %s: batch size %d: want 1 to %d", c.Name, c.BatchSize, MaxBatchSize)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("neo4j sink %s: URL: %w", c.Name, err)
	}
	switch u.Scheme {
	case "bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc":
	default:
		return fmt.Errorf("neo4j sink %s: URL %q: want bolt://host:port or neo4j://host:port", c.Name, c.URL)
	}
	seen := map[string]string{}
	for coll, l := range c.Labels {
		if l == "" || len([]rune(l)) > MaxName || reservedLabel(l) {
			return fmt.Errorf("neo4j sink %s: tables: label %q for collection %s: want 1 to %d characters, not the sink's own labels", c.Name, l, coll, MaxName)
		}
		if other := seen[l]; other != "" {
			return fmt.Errorf("neo4j sink %s: tables: collections %s and %s both map to label %s", c.Name, other, coll, l)
		}
		seen[l] = coll
	}
	return nil
}

// Name implements checkpoint.Sink.
func (s *Sink) Name() string { return s.cfg.Name }

// Driver returns the sink's driver, for readers sharing it.
func (s *Sink) Driver() neo4j.DriverWithContext { return s.driver }

func (s *Sink) session(ctx context.Context, mode neo4j.AccessMode) neo4j.SessionWithContext {
	return s.driver.NewSession(ctx, neo4j.SessionConfig{AccessMode: mode, DatabaseName: s.cfg.Database})
}

// constrain creates the uniqueness constraint of label on prop unless it
// exists. Schema changes cannot share a transaction with data changes, so
// each runs on its own. A constraint whose creation was cut short (the
// process killed meanwhile) can leave its backing index behind, named as
// the constraint would be and owned by no constraint; creating the
// constraint then fails on that name forever. Such an index is dropped
// and the constraint created again.
func (s *Sink) constrain(ctx context.Context, label, prop string) error {
	q := fmt.Sprintf("CREATE CONSTRAINT IF NOT EXISTS FOR (n:%s) REQUIRE n.%s IS UNIQUE", quote(label), quote(prop))
	err := s.schemaWrite(ctx, q)
	if ne := (*neo4j.Neo4jError)(nil); errors.As(err, &ne) && strings.HasPrefix(ne.Code, "Neo.ClientError.Schema.") {
		dropped, derr := s.dropOrphanIndexes(ctx, label, prop)
		if derr != nil {
			return fmt.Errorf("create the uniqueness constraint on :%s(%s): %w (and looking for an index left by an interrupted creation: %v)", label, prop, err, derr)
		}
		if dropped > 0 {
			err = s.schemaWrite(ctx, q)
		}
	}
	if err != nil {
		return fmt.Errorf("create the uniqueness constraint on :%s(%s): %w", label, prop, err)
	}
	return nil
}

// dropOrphanIndexes drops the indexes on label(prop) that no constraint
// owns and that are named as Neo4j names a constraint's backing index:
// what an interrupted CREATE CONSTRAINT leaves.
func (s *Sink) dropOrphanIndexes(ctx context.Context, label, prop string) (int, error) {
	sess := s.session(ctx, neo4j.AccessModeRead)
	v, err := sess.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		res, err := tx.Run(ctx, `SHOW INDEXES YIELD name, labelsOrTypes, properties, owningConstraint
WHERE owningConstraint IS NULL AND labelsOrTypes = [$label] AND properties = [$prop] AND name STARTS WITH 'constraint_'
RETURN name`, map[string]any{"label": label, "prop": prop})
		if err != nil {
			return nil, err
		}
		return res.Collect(ctx)
	})
	sess.Close(context.WithoutCancel(ctx))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range v.([]*neo4j.Record) {
		name, _ := rec.Values[0].(string)
		if err := s.schemaWrite(ctx, "DROP INDEX "+quote(name)+" IF EXISTS"); err != nil {
			return n, fmt.Errorf("drop index %s: %w", name, err)
		}
		n++
	}
	return n, nil
}

// schemaWrite runs one schema command in a transaction of its own.
func (s *Sink) schemaWrite(ctx context.Context, q string) error {
	sess := s.session(ctx, neo4j.AccessModeWrite)
	defer sess.Close(context.WithoutCancel(ctx))
	_, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		res, err := tx.Run(ctx, q, nil)
		if err != nil {
			return nil, err
		}
		return res.Consume(ctx)
	})
	return err
}

// Checkpoint implements checkpoint.Sink. A sink whose fence the
// checkpoint node no longer holds gets checkpoint.ErrFenced.
func (s *Sink) Checkpoint(ctx context.Context) (uint64, error) {
	sess := s.session(ctx, neo4j.AccessModeRead)
	defer sess.Close(context.WithoutCancel(ctx))
	v, err := sess.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		res, err := tx.Run(ctx, "MATCH (c:"+quote(CheckpointLabel)+" {sink: $sink}) RETURN c.lsn AS lsn, c.fence AS fence", map[string]any{"sink": s.cfg.Name})
		if err != nil {
			return nil, err
		}
		recs, err := res.Collect(ctx)
		if err != nil || len(recs) == 0 {
			return nil, err
		}
		return recs[0].Values, nil
	})
	if err != nil {
		return 0, fmt.Errorf("neo4j sink %s: read checkpoint: %w", s.cfg.Name, err)
	}
	if v == nil {
		if s.cfg.ReadOnly {
			return 0, nil
		}
		return 0, s.errFenced(nil)
	}
	vals := v.([]any)
	if f, ok := vals[1].(int64); !s.cfg.ReadOnly && (!ok || f != s.fence) {
		return 0, s.errFenced(vals[1])
	}
	v = vals[0]
	n, ok := v.(int64)
	if !ok || n < 0 {
		return 0, fmt.Errorf("neo4j sink %s: checkpoint node holds lsn %v (%T)", s.cfg.Name, v, v)
	}
	return uint64(n), nil
}

// Reset sets the sink's checkpoint back to 0, keeping its claim and
// mapping, so that a runner replays the whole effect log into the graph
// (tributary sink reset). The documents stay; the replay rewrites them,
// and the deletes it carries remove the documents deleted since.
func (s *Sink) Reset(ctx context.Context) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("neo4j sink %s: reset: %w", s.cfg.Name, ErrReadOnly)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.session(ctx, neo4j.AccessModeWrite)
	defer sess.Close(context.WithoutCancel(ctx))
	_, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		if _, err := s.lockCheckpoint(ctx, tx); err != nil {
			return nil, err
		}
		res, err := tx.Run(ctx, "MATCH (c:"+quote(CheckpointLabel)+" {sink: $sink}) SET c.lsn = 0, c.updated = datetime()", map[string]any{"sink": s.cfg.Name})
		if err != nil {
			return nil, err
		}
		return res.Consume(ctx)
	})
	if errors.Is(err, checkpoint.ErrFenced) {
		return err
	}
	if err != nil {
		return fmt.Errorf("neo4j sink %s: reset checkpoint: %w", s.cfg.Name, err)
	}
	return nil
}

// Prepare implements checkpoint.Preparer: it maps the collections and
// fields of sch to labels, properties and relationship types (see
// ensure), refusing labels another claim maps, and creates the labels'
// constraints.
func (s *Sink) Prepare(ctx context.Context, sch *schema.Schema) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("neo4j sink %s: prepare: %w", s.cfg.Name, ErrReadOnly)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.ensure(ctx, sch); err != nil {
		if checkpoint.Fatal(err) {
			return err
		}
		return fmt.Errorf("neo4j sink %s: map the schema: %w", s.cfg.Name, err)
	}
	return nil
}

// Close implements checkpoint.Sink. Closing twice is harmless.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.driver.Close(ctx); err != nil {
			s.closeErr = fmt.Errorf("neo4j sink %s: close: %w", s.cfg.Name, err)
		}
	})
	return s.closeErr
}

// prepared is an effect converted for writing.
type prepared struct {
	props map[string]any // node properties of an upsert
	links []link         // its references
	err   error          // why the effect cannot be stored
}

// link is one reference of a document: field's relationship to the
// document to of collection target; index is the element's position in a
// list or set, nil for a single reference.
type link struct {
	field  *schema.Field
	to     string
	index  any
	target string // the referenced collection
	typ    string // the relationship type
}

// Apply implements checkpoint.Sink. It writes the batch and the checkpoint
// node in one transaction (session.ExecuteWrite): first it reads and locks
// the checkpoint; effects at or below it are skipped and a batch whose
// Through is not above it changes nothing, so replays are harmless. The
// upserts and deletes of each collection go in UNWIND statements of at
// most BatchSize rows.
//
// An effect whose values do not fit its schema, or a collection the schema
// lacks, makes Apply return a *checkpoint.RejectedError with its index;
// values or documents Neo4j itself refuses (Neo.ClientError.Statement.TypeError,
// ArgumentError, ArithmeticError, a violated constraint the user added:
// Neo.ClientError.Schema.ConstraintValidationFailed) a
// *checkpoint.RejectedError with index -1 (the runner then finds the
// effect). Any other error (the connection, a transient error the driver
// gave up retrying, the context) is returned as it is, for the runner to
// retry. Either way nothing of the batch is committed.
func (s *Sink) Apply(ctx context.Context, b checkpoint.Batch) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("neo4j sink %s: apply: %w", s.cfg.Name, ErrReadOnly)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Through > math.MaxInt64 {
		return fmt.Errorf("neo4j sink %s: checkpoint %d does not fit an INTEGER", s.cfg.Name, b.Through)
	}
	var preps []prepared
	var l *layout
	if len(b.Effects) > 0 {
		if b.Schema == nil {
			return fmt.Errorf("neo4j sink %s: a batch of %d effects without a schema", s.cfg.Name, len(b.Effects))
		}
		var err error
		if l, err = s.ensure(ctx, b.Schema); err != nil {
			if checkpoint.Fatal(err) {
				return err
			}
			return fmt.Errorf("neo4j sink %s: map the schema: %w", s.cfg.Name, err)
		}
		preps = prepare(b.Schema, l, b.Effects)
	}
	sess := s.session(ctx, neo4j.AccessModeWrite)
	defer sess.Close(context.WithoutCancel(ctx))
	_, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		return nil, s.write(ctx, tx, b, l, preps)
	})
	if err == nil {
		return nil
	}
	var rej *checkpoint.RejectedError
	if errors.As(err, &rej) {
		return rej
	}
	if errors.Is(err, checkpoint.ErrFenced) {
		return err
	}
	if ctx.Err() == nil {
		var ne *neo4j.Neo4jError
		if errors.As(err, &ne) && dataError(ne.Code) {
			return &checkpoint.RejectedError{Index: -1, Reason: fmt.Sprintf("%s: %s", ne.Code, ne.Msg)}
		}
	}
	return fmt.Errorf("neo4j sink %s: apply %d effects through LSN %d: %w", s.cfg.Name, len(b.Effects), b.Through, err)
}

// dataError tells whether a Neo4j error code means the data is refused:
// applying it again can never succeed.
func dataError(code string) bool {
	switch code {
	case "Neo.ClientError.Statement.TypeError",
		"Neo.ClientError.Statement.ArgumentError",
		"Neo.ClientError.Statement.ArithmeticError",
		"Neo.ClientError.Statement.ConstraintVerificationFailed",
		"Neo.ClientError.Schema.ConstraintValidationFailed":
		return true
	}
	return false
}

// prepare converts the upserts' documents, under the property names of
// l; an effect that cannot be stored gets its reason.
func prepare(sch *schema.Schema, l *layout, effects []eventstream.Effect) []prepared {
	out := make([]prepared, len(effects))
	for i := range effects {
		e := &effects[i]
		p := &out[i]
		if e.LSN > math.MaxInt64 {
			p.err = fmt.Errorf("LSN %d does not fit an INTEGER", e.LSN)
			continue
		}
		switch e.Kind {
		case eventstream.Delete:
			continue
		case eventstream.Upsert:
		default:
			p.err = fmt.Errorf("effect kind %s", e.Kind)
			continue
		}
		c, ok := sch.Collection(e.Collection)
		if !ok {
			p.err = fmt.Errorf("collection %s is not in the schema", e.Collection)
			continue
		}
		m := l.colls[e.Collection]
		props := make(map[string]any, len(e.Doc)+5)
		for name, v := range e.Doc {
			if v == nil {
				continue
			}
			f, ok := c.Field(name)
			if !ok {
				p.err = fmt.Errorf("%s/%s: field %s is not in the schema", e.Collection, e.DocID, name)
				break
			}
			x, err := property(f, v)
			if err != nil {
				p.err = fmt.Errorf("%s/%s: %v", e.Collection, e.DocID, err)
				break
			}
			props[m.props[name]] = x
			if isRef(f) {
				if id, ok := v.(string); ok {
					p.links = append(p.links, link{field: f, to: id, target: f.Ref, typ: m.types[name]})
				} else {
					for j, id := range v.([]any) {
						p.links = append(p.links, link{field: f, to: id.(string), index: int64(j), target: f.Ref, typ: m.types[name]})
					}
				}
			}
		}
		if p.err != nil {
			continue
		}
		props[PropID] = e.DocID
		props[PropLSN] = int64(e.LSN)
		props[PropChange] = e.LastChange
		props[PropAuthor] = e.Author
		props[PropHLC] = e.HLC
		p.props = props
	}
	return out
}
