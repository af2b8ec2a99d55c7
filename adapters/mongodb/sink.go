package mongodb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// CheckpointCollection holds one document per sink: {_id: sink name, lsn,
// space, node, fence, updated}.
const CheckpointCollection = "_tributary_checkpoints"

// DefaultChunkSize is the default number of writes per bulk write.
const DefaultChunkSize = 50

// MaxChunkSize bounds Config.ChunkSize.
const MaxChunkSize = 1000

// DefaultWriteTimeout is the default Config.WriteTimeout.
const DefaultWriteTimeout = time.Minute

// Config configures a sink.
type Config struct {
	// URL is a MongoDB connection string naming the database in its path:
	// mongodb://host:port/DBNAME (options such as ?w=majority apply).
	URL string
	// Name identifies the sink; its checkpoint is kept under this name.
	Name string
	// Space and Node (the space ID and the node's public key) complete
	// the sink's claim (checkpoint.Claim) with Name: the checkpoint and
	// the collections the sink maps belong to that claim, and New refuses
	// a sink of another claim.
	Space, Node string
	// ReadOnly opens the sink only to read (Checkpoint, CollectionName):
	// it claims nothing and takes no fence; Apply, Prepare and Reset
	// fail. With Space and Node empty it reads the mapping of whichever
	// claim holds Name.
	ReadOnly bool
	// Collections overrides the MongoDB collection of space collections
	// (collection -> MongoDB collection), when the sink maps them for the
	// first time: a collection mapped to another one already makes New
	// fail (the mapping never changes).
	Collections map[string]string
	// ChunkSize is the most writes sent in one bulk write (default 50).
	// FerretDB's bulk writes stall beyond about 100 writes that match
	// existing documents: keep it at 50 or below there.
	ChunkSize int
	// WriteTimeout bounds how long Apply may take to finish a batch it
	// started writing without transactions (default 1 minute). Apply
	// completes a started batch and its checkpoint even when its context
	// ends, so that cancelling a run never leaves documents ahead of the
	// checkpoint; a context already ended stops it before any write.
	WriteTimeout time.Duration
	// NoTransactions turns off the transactional path on servers that
	// support transactions; the guarded writes are exactly-once without
	// it (see the package documentation).
	NoTransactions bool
}

// Sink writes effects to a MongoDB database (or a server that speaks its
// protocol, such as FerretDB). It implements checkpoint.Sink.
type Sink struct {
	cfg     Config
	client  *mongo.Client
	db      *mongo.Database
	ckpts   *mongo.Collection
	fence   int64 // taken by New: the checkpoint must hold it
	txn     bool  // apply batches in transactions
	rewrite bool  // write by insert and delete (FerretDB), see rewriteGroup
	maxDoc  int   // the server's largest document, bytes
	closeMu sync.Mutex
	closed  bool

	mu sync.Mutex // one Apply at a time

	layoutMu sync.Mutex
	layout   *layout // of the newest schema mapped
}

var (
	_ checkpoint.Sink     = (*Sink)(nil)
	_ checkpoint.Preparer = (*Sink)(nil)
)

// ErrReadOnly refuses writes through a sink opened with Config.ReadOnly.
var ErrReadOnly = errors.New("the sink was opened read-only")

// New connects to the database of cfg.URL, checks that it answers,
// claims the sink's checkpoint and takes a new fence. A checkpoint
// another claim holds makes it fail with a *checkpoint.ClaimedError
// naming the owner, as does a collection of Config.Collections another
// claim maps.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	cs, err := connstring.ParseAndValidate(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("mongodb sink %s: URL: %w", cfg.Name, err)
	}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(cfg.URL))
	if err != nil {
		return nil, fmt.Errorf("mongodb sink %s: connect: %w", cfg.Name, err)
	}
	s := &Sink{cfg: cfg, client: client, db: client.Database(cs.Database)}
	s.ckpts = s.db.Collection(CheckpointCollection)
	err = s.hello(ctx)
	if err == nil && !cfg.ReadOnly {
		if err = s.claim(ctx); err == nil {
			err = s.checkOverrides(ctx)
		}
	}
	if err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		if checkpoint.Fatal(err) {
			return nil, err
		}
		return nil, fmt.Errorf("mongodb sink %s: %w", cfg.Name, err)
	}
	return s, nil
}

// Validate checks what can be checked without the server: a name, a URL
// naming a database, the chunk size and write timeout, Collections
// (MongoDB's rules for names, none reserved, one collection per MongoDB
// collection). New calls it.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("mongodb sink: a name is required")
	}
	if c.ChunkSize < 0 || c.ChunkSize > MaxChunkSize {
		return fmt.Errorf("mongodb sink %s: chunk size %d: want 1 to %d", c.Name, c.ChunkSize, MaxChunkSize)
	}
	if c.WriteTimeout < 0 {
		return fmt.Errorf("mongodb sink %s: write timeout %s: want a positive duration", c.Name, c.WriteTimeout)
	}
	cs, err := connstring.ParseAndValidate(c.URL)
	if err != nil {
		return fmt.Errorf("mongodb sink %s: URL: %w", c.Name, err)
	}
	if cs.Database == "" {
		return fmt.Errorf("mongodb sink %s: the URL names no database: want mongodb://host:port/DBNAME", c.Name)
	}
	seen := map[string]string{}
	for coll, target := range c.Collections {
		if err := targetNameError(cs.Database, target); err != nil {
			return fmt.Errorf("mongodb sink %s: tables: collection %s: %w", c.Name, coll, err)
		}
		if other := seen[target]; other != "" {
			return fmt.Errorf("mongodb sink %s: tables: collections %s and %s both map to %s", c.Name, other, coll, target)
		}
		seen[target] = coll
	}
	return nil
}

// hello asks the server what it is: transactions need a replica set or a
// sharded cluster with sessions, and MongoDB 4.4 or later (wire version 9,
// which creates collections inside transactions). FerretDB reports
// neither.
func (s *Sink) hello(ctx context.Context) error {
	var h struct {
		SetName        string `bson:"setName"`
		Msg            string `bson:"msg"`
		Sessions       *int64 `bson:"logicalSessionTimeoutMinutes"`
		MaxWireVersion int64  `bson:"maxWireVersion"`
		MaxBSONSize    int64  `bson:"maxBsonObjectSize"`
	}
	admin := s.client.Database("admin")
	err := admin.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h)
	if err != nil && !isConnectionError(err) { // servers before 4.4.2 know only isMaster
		err = admin.RunCommand(ctx, bson.D{{Key: "isMaster", Value: 1}}).Decode(&h)
	}
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	s.maxDoc = 16 << 20
	if h.MaxBSONSize > 0 && h.MaxBSONSize < math.MaxInt32 {
		s.maxDoc = int(h.MaxBSONSize)
	}
	s.txn = !s.cfg.NoTransactions && (h.SetName != "" || h.Msg == "isdbgrid") &&
		h.Sessions != nil && h.MaxWireVersion >= 9
	// FerretDB answers every query, even on _id, by scanning the
	// collection, and runs an update as a query followed by a write (so
	// a guard in the filter is not atomic there anyway): the sink writes
	// by whole batches instead (rewriteGroup).
	var info bson.Raw
	if err := admin.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return fmt.Errorf("buildInfo: %w", err)
	}
	_, isFerret := info.Lookup("ferretdbVersion").StringValueOK()
	s.rewrite = isFerret && !s.txn
	return nil
}

// Name implements checkpoint.Sink.
func (s *Sink) Name() string { return s.cfg.Name }

// Transactions reports whether batches are applied in transactions.
func (s *Sink) Transactions() bool { return s.txn }

// Database returns the target database, for readers sharing the client.
func (s *Sink) Database() *mongo.Database { return s.db }

// Checkpoint implements checkpoint.Sink. A sink whose fence the
// checkpoint no longer holds gets checkpoint.ErrFenced.
func (s *Sink) Checkpoint(ctx context.Context) (uint64, error) {
	if !s.cfg.ReadOnly {
		return s.checkFence(ctx)
	}
	d, err := s.readCheckpoint(ctx)
	if err != nil {
		return 0, fmt.Errorf("mongodb sink %s: read checkpoint: %w", s.cfg.Name, err)
	}
	if d == nil {
		return 0, nil
	}
	return uint64(d.LSN), nil
}

// Reset sets the sink's checkpoint back to 0, keeping its claim and
// mapping, so that a runner replays the whole effect log into the target
// (tributary sink reset). The documents stay; the replay rewrites them.
func (s *Sink) Reset(ctx context.Context) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("mongodb sink %s: reset: %w", s.cfg.Name, ErrReadOnly)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.ckpts.UpdateOne(ctx, bson.D{{Key: FieldID, Value: s.cfg.Name}, {Key: "fence", Value: s.fence}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lsn", Value: int64(0)}, {Key: "updated", Value: time.Now()}}}})
	if err != nil {
		return fmt.Errorf("mongodb sink %s: reset checkpoint: %w", s.cfg.Name, err)
	}
	if res.MatchedCount == 0 {
		_, err := s.checkFence(ctx)
		return err
	}
	return nil
}

// Prepare implements checkpoint.Preparer: it maps the collections of sch
// (see ensure), refusing those another claim maps.
func (s *Sink) Prepare(ctx context.Context, sch *schema.Schema) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("mongodb sink %s: prepare: %w", s.cfg.Name, ErrReadOnly)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.ensure(ctx, sch)
	return err
}

// Close implements checkpoint.Sink. Closing twice is harmless.
func (s *Sink) Close(ctx context.Context) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("mongodb sink %s: close: %w", s.cfg.Name, err)
	}
	return nil
}

// write is one effect's guarded replace.
type write struct {
	index int // position in Batch.Effects
	coll  string
	id    string
	lsn   int64
	doc   bson.Raw
}

func (w *write) model() mongo.WriteModel {
	return mongo.NewReplaceOneModel().SetFilter(guard(w.id, w.lsn)).SetReplacement(w.doc).SetUpsert(true)
}

// guard matches the document id unless it holds a newer effect: a write
// never moves a document backwards. A document without _lsn (not written
// by a sink) is overwritten.
func guard(id string, lsn int64) bson.D {
	return bson.D{
		{Key: FieldID, Value: id},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: FieldLSN, Value: bson.D{{Key: "$lte", Value: lsn}}}},
			bson.D{{Key: FieldLSN, Value: bson.D{{Key: "$exists", Value: false}}}},
		}},
	}
}

// Apply implements checkpoint.Sink: it checks the fence, writes every
// effect guarded by its LSN, then raises the checkpoint to b.Through with
// a write guarded by the fence. On a server with transactions all of it
// happens in one transaction. A Redo batch (parked effects offered again)
// needs nothing special: the guards let an effect at least as new as the
// document it replaces through, whatever the checkpoint.
func (s *Sink) Apply(ctx context.Context, b checkpoint.Batch) error {
	if s.cfg.ReadOnly {
		return fmt.Errorf("mongodb sink %s: apply: %w", s.cfg.Name, ErrReadOnly)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Through > math.MaxInt64 {
		return fmt.Errorf("mongodb sink %s: checkpoint %d does not fit a BSON int64", s.cfg.Name, b.Through)
	}
	var l *layout
	if b.Schema != nil && len(b.Effects) > 0 {
		var err error
		if l, err = s.ensure(ctx, b.Schema); err != nil {
			return err
		}
	}
	writes, err := s.prepare(b, l)
	if err != nil {
		return err
	}
	if s.txn {
		return s.applyTxn(ctx, writes, int64(b.Through))
	}
	if err := ctx.Err(); err != nil {
		return s.failed(err)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.WriteTimeout)
	defer cancel()
	// Without transactions the fence is checked before the first write
	// and guards the checkpoint's: a newer instance that starts in
	// between lets this batch's documents through, which their LSN
	// guards make harmless (both instances apply the same effect log).
	if _, err := s.checkFence(wctx); err != nil {
		return err
	}
	if err := s.applyWrites(wctx, writes); err != nil {
		return err
	}
	return s.saveCheckpoint(wctx, int64(b.Through))
}

// prepare encodes every effect, refusing those no server could store
// before anything is written. l maps collections (nil: a batch without
// a schema, written under the collections' own names).
func (s *Sink) prepare(b checkpoint.Batch, l *layout) ([]write, error) {
	writes := make([]write, 0, len(b.Effects))
	for i := range b.Effects {
		e := &b.Effects[i]
		reject := func(format string, args ...any) error {
			return &checkpoint.RejectedError{Index: i, Reason: fmt.Sprintf("%s/%s: ", e.Collection, e.DocID) + fmt.Sprintf(format, args...)}
		}
		target := e.Collection
		if err := checkCollectionName(e.Collection); err != nil {
			return nil, reject("%v", err)
		}
		var coll *schema.Collection
		var stored map[string]string
		if l != nil {
			stored = l.stored[e.Collection]
			coll, _ = b.Schema.Collection(e.Collection)
			t, ok := l.colls[e.Collection]
			if !ok {
				if e.Kind == eventstream.Delete {
					continue // nothing can exist in a collection the schema lacks
				}
				return nil, reject("collection %s is not in the schema", e.Collection)
			}
			target = t
		} else if err := s.checkTargetName(target); err != nil {
			return nil, reject("%v", err)
		}
		d, err := encodeEffect(e, coll, stored)
		if err != nil {
			return nil, reject("%v", err)
		}
		raw, err := bson.Marshal(d)
		if err != nil {
			return nil, reject("encode BSON: %v", err)
		}
		if len(raw) > s.maxDoc {
			return nil, reject("the document is %d bytes of BSON, over the server's limit of %d", len(raw), s.maxDoc)
		}
		writes = append(writes, write{index: i, coll: target, id: e.DocID, lsn: int64(e.LSN), doc: raw})
	}
	return writes, nil
}

// checkCollectionName refuses what no space collection can be called.
func checkCollectionName(name string) error {
	switch {
	case name == "":
		return errors.New("empty collection name")
	case strings.ContainsAny(name, "$\x00"):
		return fmt.Errorf("collection name %q: MongoDB refuses '$' and NUL in collection names", name)
	}
	return nil
}

// byCollection groups writes per collection, keeping their order.
func byCollection(writes []write) [][]write {
	var groups [][]write
	at := map[string]int{}
	for _, w := range writes {
		i, ok := at[w.coll]
		if !ok {
			i = len(groups)
			at[w.coll] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], w)
	}
	return groups
}

// applyWrites sends writes in ordered bulk writes of at most ChunkSize.
// A chunk that fails is redone one write at a time: servers differ in
// what a failed bulk write leaves done (FerretDB stops at the first
// error whatever "ordered" says, and reports its index as 0), and every
// write is guarded, so redoing one is harmless.
func (s *Sink) applyWrites(ctx context.Context, writes []write) error {
	for _, group := range byCollection(writes) {
		coll := s.db.Collection(group[0].coll)
		if s.rewrite {
			if err := s.rewriteGroup(ctx, coll, group); err != nil {
				return err
			}
			continue
		}
		for start := 0; start < len(group); start += s.cfg.ChunkSize {
			chunk := group[start:min(start+s.cfg.ChunkSize, len(group))]
			models := make([]mongo.WriteModel, len(chunk))
			for i := range chunk {
				models[i] = chunk[i].model()
			}
			_, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true))
			if err == nil {
				continue
			}
			if isConnectionError(err) {
				return s.failed(err)
			}
			for i := range chunk {
				if err := s.applyOne(ctx, coll, &chunk[i]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// applyOne writes one effect on its own. With the guard in the filter, a
// duplicate-key error means the guard did not match an existing document
// and the upsert tried to insert its id again: the document holds a newer
// effect, and the write is skipped once a read confirms it. Any other
// duplicate key is a unique index of the user's refusing the document.
func (s *Sink) applyOne(ctx context.Context, coll *mongo.Collection, w *write) error {
	_, err := coll.ReplaceOne(ctx, guard(w.id, w.lsn), w.doc, options.Replace().SetUpsert(true))
	if err == nil {
		return nil
	}
	if mongo.IsDuplicateKeyError(err) {
		newer, rerr := s.holdsNewer(ctx, coll, w)
		if rerr != nil {
			return s.failed(rerr)
		}
		if newer {
			return nil
		}
	}
	if isRejection(err) {
		return &checkpoint.RejectedError{Index: w.index, Reason: fmt.Sprintf("%s/%s: %v", w.coll, w.id, err)}
	}
	return s.failed(err)
}

// holdsNewer reports whether the target document holds an effect newer
// than w.
func (s *Sink) holdsNewer(ctx context.Context, coll *mongo.Collection, w *write) (bool, error) {
	n, found, err := heldLSN(ctx, coll, w.id)
	return found && n > w.lsn, err
}

// noLSN stands for the LSN of a document without _lsn: any effect is
// newer.
const noLSN = math.MinInt64

// heldLSN reads the _lsn of document id.
func heldLSN(ctx context.Context, coll *mongo.Collection, id string) (lsn int64, found bool, err error) {
	raw, err := coll.FindOne(ctx, bson.D{{Key: FieldID, Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: FieldLSN, Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return lsnOf(raw), true, nil
}

func lsnOf(raw bson.Raw) int64 {
	if n, ok := raw.Lookup(FieldLSN).AsInt64OK(); ok {
		return n
	}
	return noLSN
}

// applyTxn applies writes and the checkpoint in one transaction. A
// duplicate-key error would abort the transaction, so the writes whose
// documents already hold newer effects are dropped first; the guards
// still hold, and a write conflict makes the driver retry the whole
// transaction.
func (s *Sink) applyTxn(ctx context.Context, writes []write, through int64) error {
	sess, err := s.client.StartSession()
	if err != nil {
		return s.failed(err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	var (
		rejected *checkpoint.RejectedError
		dup      *write
		dupColl  *mongo.Collection
	)
	_, err = sess.WithTransaction(ctx, func(sc mongo.SessionContext) (any, error) {
		rejected, dup = nil, nil
		if _, err := s.checkFence(sc); err != nil {
			return nil, err
		}
		for _, group := range byCollection(writes) {
			coll := s.db.Collection(group[0].coll)
			live, err := s.dropStale(sc, coll, group)
			if err != nil {
				return nil, err
			}
			for start := 0; start < len(live); start += s.cfg.ChunkSize {
				chunk := live[start:min(start+s.cfg.ChunkSize, len(live))]
				models := make([]mongo.WriteModel, len(chunk))
				for i := range chunk {
					models[i] = chunk[i].model()
				}
				if _, err := coll.BulkWrite(sc, models, options.BulkWrite().SetOrdered(true)); err != nil {
					var bwe mongo.BulkWriteException
					if errors.As(err, &bwe) && len(bwe.WriteErrors) > 0 && isRejection(err) {
						we := bwe.WriteErrors[0]
						if we.Index >= 0 && we.Index < len(chunk) {
							w := chunk[we.Index]
							rejected = &checkpoint.RejectedError{Index: w.index, Reason: fmt.Sprintf("%s/%s: %v", w.coll, w.id, we.Message)}
							if mongo.IsDuplicateKeyError(we) {
								dup, dupColl = &w, coll
							}
						}
					}
					return nil, err
				}
			}
		}
		return nil, s.saveCheckpoint(sc, through)
	})
	if err == nil {
		return nil
	}
	if errors.Is(err, checkpoint.ErrFenced) {
		return err
	}
	if dup != nil {
		// A racing writer stored a newer effect after dropStale read
		// (retry: the next read sees it), or a unique index of the
		// user's refuses the document.
		newer, rerr := s.holdsNewer(ctx, dupColl, dup)
		if rerr != nil || newer {
			return s.failed(errors.Join(err, rerr))
		}
	}
	if rejected != nil { // the transaction aborted: nothing was applied
		return rejected
	}
	if isRejection(err) {
		return &checkpoint.RejectedError{Index: -1, Reason: err.Error()}
	}
	return s.failed(err)
}

// dropStale reads the LSNs the group's documents hold and leaves out the
// writes they are newer than.
func (s *Sink) dropStale(ctx context.Context, coll *mongo.Collection, group []write) ([]write, error) {
	ids := make(bson.A, len(group))
	for i, w := range group {
		ids[i] = w.id
	}
	cur, err := coll.Find(ctx, bson.D{{Key: FieldID, Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: FieldLSN, Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	held := make(map[string]int64, len(group))
	for cur.Next(ctx) {
		if id, ok := cur.Current.Lookup(FieldID).StringValueOK(); ok {
			held[id] = lsnOf(cur.Current)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	live := group[:0:0]
	for _, w := range group {
		if n, ok := held[w.id]; !ok || n <= w.lsn {
			live = append(live, w)
		}
	}
	return live, nil
}

func (s *Sink) failed(err error) error {
	return fmt.Errorf("mongodb sink %s: %w", s.cfg.Name, err)
}
