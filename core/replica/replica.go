package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// Errors of the replica.
var (
	ErrNotFound    = errors.New("not found")
	ErrWrongSpace  = errors.New("change belongs to another space")
	ErrOrphanLimit = errors.New("too many changes waiting for missing parents")
	ErrClosed      = errors.New("replica closed")
	ErrNoGenesis   = errors.New("replica holds no genesis change")
)

// EffectLog receives the effects of each transaction inside it, so a
// change and the document states it caused commit together (the space's
// eventstream.Log implements it). AppendTx's error aborts the
// transaction; Committed runs after each transaction that wrote effects
// has committed.
type EffectLog interface {
	AppendTx(tx Tx, effects []core.Effect) error
	Committed()
}

// Tx is the replica's open transaction as an EffectLog writes into it.
// Get returns ErrNotFound for a missing key.
type Tx interface {
	Get(key []byte) ([]byte, error)
	Set(key, value []byte) error
}

// Options configure a replica.
type Options struct {
	Dir        string // badger directory; empty with InMemory
	InMemory   bool
	SyncWrites bool // fsync every commit (default for real use)
	// Effects, when set, gets every transaction's effects (see EffectLog).
	Effects    EffectLog
	Logger     *slog.Logger
	MaxOrphans int // changes held waiting for parents; default 100000
	// Space, when set, is the only genesis this replica accepts (a joiner
	// knows the space ID from its invite before it has the genesis).
	Space core.ID
	// BadgerOptions may adjust the badger options before open.
	BadgerOptions func(badger.Options) badger.Options
	// Now, when set, is the wall clock in milliseconds, used by AdmitUse
	// only: a use of an invite presented at a transport's door after the
	// invite expired is refused, however the joiner dated it (validity
	// itself never reads a clock).
	Now func() uint64
	// WriteGuard, when set, is asked before every write (local or
	// received); its error refuses the write and nothing is stored. The
	// node uses it to keep a free-disk reserve: Badger writes through
	// memory-mapped files, and a full disk would kill the process.
	WriteGuard func() error
}

// meta is what the replica keeps about each stored change. A change is
// ok when its schema, authorization and rules verdicts are clear, and
// valid when it is ok and did not lose a conflict (Lost).
type meta struct {
	_         struct{} `cbor:",toarray"`
	Height    uint64
	HLC       core.HLC
	Author    core.PublicKey
	Seq       uint64
	Admin     bool   // holds admin ops
	Valid     bool   // has effect on state
	Reason    string // why not valid
	SchemaErr string // schema/reference verdict, fixed at arrival
	// Added with rules; a meta stored before them decodes with these
	// empty (see UnmarshalCBOR), which is what it would hold.
	AuthErr string // membership and role verdict (re-judged when membership changes)
	Ruled   bool   // holds an action a rule guards
	RuleErr string // a rule is false at the change's view
	Lost    string // rolled back: lost a conflict with a concurrent change
	Undone  string // rolled back: its rules are false once the changes rolled back in its past are undone

	fresh bool // judged for the first time (not yet in Replica.counts); never stored
}

// metaV1 is meta as stored before rules.
type metaV1 struct {
	_         struct{} `cbor:",toarray"`
	Height    uint64
	HLC       core.HLC
	Author    core.PublicKey
	Seq       uint64
	Admin     bool
	Valid     bool
	Reason    string
	SchemaErr string
}

// UnmarshalCBOR reads a meta in either stored form.
func (m *meta) UnmarshalCBOR(b []byte) error {
	type plain meta
	var p plain
	if err := core.Unmarshal(b, &p); err == nil {
		*m = meta(p)
		return nil
	}
	var old metaV1
	if err := core.Unmarshal(b, &old); err != nil {
		return err
	}
	*m = meta{Height: old.Height, HLC: old.HLC, Author: old.Author, Seq: old.Seq, Admin: old.Admin,
		Valid: old.Valid, Reason: old.Reason, SchemaErr: old.SchemaErr}
	if !old.Valid && old.SchemaErr == "" {
		m.AuthErr = old.Reason
	}
	return nil
}

// ok reports whether the change passes schema, authorization and rules.
func (m *meta) ok() bool { return m.SchemaErr == "" && m.AuthErr == "" && m.RuleErr == "" }

// Replica is one space on one node: the Badger op-log of signed changes,
// the materialized documents, and the membership and schema derived from
// them. All writes go through one mutex; reads run concurrently.
type Replica struct {
	db   *badger.DB
	opts Options
	log  *slog.Logger

	mu        sync.Mutex // serialises ingest and local writes
	genesisID core.ID
	genesis   *core.Change
	maxAhead  uint64
	heads     map[core.ID]struct{}
	authorIx  map[core.PublicKey]uint32
	members   *core.Membership
	adminLog  []core.MemberChange
	schemas   map[core.ID]*schema.Schema // genesis and the upgrades in force, by change
	parsed    map[core.ID]parsedSchema   // every schema op parsed, by change
	current   *schema.Schema
	metas     map[core.ID]*meta
	vvs       map[core.ID][]uint64
	orphans   map[core.ID]core.Signed
	equivocal map[core.PublicKey]bool
	counts    counts
	closed    bool

	// Rules (rules.go, conflicts.go).
	indexed map[string]map[string]bool // collection -> fields in the value index
	rulesOn bool                       // some known schema has rules
	renames bool                       // some accepted schema renames a field
	edges   map[edge]string            // conflicts between concurrent changes, with why
	undone  map[core.ID]bool           // changes whose meta has Undone set

	view atomic.Pointer[view] // what readers see (see publish)

	pendMu  sync.Mutex
	pending []*mutation // Mutate calls waiting for a group commit

	watchMu  sync.Mutex
	watchers map[int]func(local bool, ids []core.ID)
	watchSeq int
}

// Watch registers fn to be told of every change stored from now on: local
// writes (local true) and changes received from elsewhere, after their
// transaction committed. fn runs on the writer's goroutine while the
// replica's write lock is held: it must return quickly and must not call
// back into the replica (hand the IDs to a goroutine of your own). The
// returned function unregisters fn.
func (r *Replica) Watch(fn func(local bool, ids []core.ID)) (cancel func()) {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.watchers == nil {
		r.watchers = map[int]func(bool, []core.ID){}
	}
	r.watchSeq++
	id := r.watchSeq
	r.watchers[id] = fn
	return func() {
		r.watchMu.Lock()
		defer r.watchMu.Unlock()
		delete(r.watchers, id)
	}
}

func (r *Replica) notify(local bool, ids []core.ID) {
	if len(ids) == 0 {
		return
	}
	r.watchMu.Lock()
	fns := make([]func(bool, []core.ID), 0, len(r.watchers))
	for _, fn := range r.watchers {
		fns = append(fns, fn)
	}
	r.watchMu.Unlock()
	for _, fn := range fns {
		fn(local, ids)
	}
}

// Orphans returns the envelopes of changes held for missing parents, by ID.
func (r *Replica) Orphans() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]byte, 0, len(r.orphans))
	for _, id := range core.SortIDs(slices.Collect(maps.Keys(r.orphans))) {
		if b, err := r.orphans[id].Encode(); err == nil {
			out = append(out, b)
		}
	}
	return out
}

const cacheLimit = 1 << 16

// guard runs the write guard.
func (r *Replica) guard() error {
	if r.opts.WriteGuard == nil {
		return nil
	}
	return r.opts.WriteGuard()
}

// Open opens (or creates) the replica in opts.Dir. A new replica holds no
// space until Found or a received genesis change.
func Open(opts Options) (*Replica, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxOrphans == 0 {
		opts.MaxOrphans = 100000
	}
	bo := badger.DefaultOptions(opts.Dir).WithLogger(nil).WithSyncWrites(opts.SyncWrites).
		WithNumVersionsToKeep(1).WithMetricsEnabled(false).
		// Sized for a node beside other services, not Badger's defaults
		// (5 x 64 MiB memtables and a 256 MiB block cache).
		WithMemTableSize(48 << 20).WithNumMemtables(3).
		WithBlockCacheSize(48 << 20).WithIndexCacheSize(24 << 20).
		// Compaction builds whole tables in memory, several at once: two
		// compactors, 1 MiB base tables, and writes that stall at 8 level-0
		// tables (not 15) bound what a bulk load leaves to compact at the
		// next start (1M documents: 783 MiB peak after a restart, was
		// 1.2 GiB, at the same load rate).
		WithNumCompactors(2).WithNumLevelZeroTables(4).WithNumLevelZeroTablesStall(8).WithBaseTableSize(1 << 20)
	if opts.InMemory {
		bo = bo.WithInMemory(true).WithDir("").WithValueDir("")
	} else {
		// Values past 64 KiB (large envelopes, documents, effects) live in
		// the value log: they count by pointer toward a transaction's size
		// limit, so a change of up to core.MaxChangeBytes always fits one.
		bo = bo.WithValueThreshold(64 << 10)
	}
	if opts.BadgerOptions != nil {
		bo = opts.BadgerOptions(bo)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open replica store %s: %w", opts.Dir, err)
	}
	r := &Replica{db: db, opts: opts, log: opts.Logger}
	if err := r.load(); err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

// DB exposes the Badger database so the effect log can share it (its keys
// live under their own prefix).
func (r *Replica) DB() *badger.DB { return r.db }

// Close closes the store.
func (r *Replica) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("close replica store: %w", err)
	}
	return nil
}

// load rebuilds the in-memory view (heads, authors, membership, schemas,
// orphans) from the store. It is also how a failed commit is undone.
func (r *Replica) load() error {
	r.heads = map[core.ID]struct{}{}
	r.authorIx = map[core.PublicKey]uint32{}
	r.schemas = map[core.ID]*schema.Schema{}
	r.parsed = map[core.ID]parsedSchema{}
	r.metas = map[core.ID]*meta{}
	r.vvs = map[core.ID][]uint64{}
	r.orphans = map[core.ID]core.Signed{}
	r.equivocal = map[core.PublicKey]bool{}
	r.adminLog = nil
	r.counts = counts{}
	r.genesis, r.current, r.members = nil, nil, nil
	r.indexed, r.rulesOn, r.edges, r.undone = map[string]map[string]bool{}, false, map[edge]string{}, map[core.ID]bool{}
	defer r.publish()
	return r.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(pGenesis))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return r.loadOrphans(txn)
		}
		if err != nil {
			return fmt.Errorf("load genesis: %w", err)
		}
		if err := item.Value(func(v []byte) error { copy(r.genesisID[:], v); return nil }); err != nil {
			return err
		}
		g, err := r.loadChange(txn, r.genesisID)
		if err != nil {
			return fmt.Errorf("load genesis: %w", err)
		}
		if err := r.setGenesis(r.genesisID, g); err != nil {
			return err
		}
		err = scan(txn, []byte(pHead), func(k, _ []byte) error {
			var id core.ID
			copy(id[:], k[len(pHead):])
			r.heads[id] = struct{}{}
			return nil
		})
		if err != nil {
			return err
		}
		err = scan(txn, []byte(pAuthorIx), func(k, v []byte) error {
			var a core.PublicKey
			copy(a[:], k[len(pAuthorIx):])
			var ix uint32
			if err := core.Unmarshal(v, &ix); err != nil {
				return err
			}
			r.authorIx[a] = ix
			return nil
		})
		if err != nil {
			return err
		}
		err = scan(txn, []byte(pEquivoc), func(k, _ []byte) error {
			var a core.PublicKey
			copy(a[:], k[len(pEquivoc):])
			r.equivocal[a] = true
			return nil
		})
		if err != nil {
			return err
		}
		if err := r.loadAdminLog(txn); err != nil {
			return err
		}
		if err := r.loadRules(txn); err != nil {
			return err
		}
		return r.loadOrphans(txn)
	})
}

// loadRules restores the value index's field list, whether rules are on,
// and the conflicts known.
func (r *Replica) loadRules(txn *badger.Txn) error {
	err := scanKeys(txn, []byte(pIndexed), func(k []byte) error {
		coll, field, _ := strings.Cut(string(k[len(pIndexed):]), "\x00")
		if r.indexed[coll] == nil {
			r.indexed[coll] = map[string]bool{}
		}
		r.indexed[coll][field] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("load value index: %w", err)
	}
	for _, s := range r.schemas {
		r.rulesOn = r.rulesOn || s.HasRules()
		r.renames = r.renames || s.HasRenames()
	}
	if err := r.loadEdges(txn); err != nil {
		return fmt.Errorf("load conflicts: %w", err)
	}
	return nil
}

func (r *Replica) loadOrphans(txn *badger.Txn) error {
	return scan(txn, []byte(pOrphan), func(k, v []byte) error {
		s, err := core.DecodeSigned(v)
		if err != nil {
			return fmt.Errorf("load orphan: %w", err)
		}
		r.orphans[s.ID()] = s
		return nil
	})
}

func (r *Replica) loadAdminLog(txn *badger.Txn) error {
	var ids []core.ID
	err := scan(txn, []byte(pMeta), func(k, v []byte) error {
		var m meta
		if err := core.Unmarshal(v, &m); err != nil {
			return err
		}
		r.counts.changes++
		if !m.Valid {
			r.counts.invalid++
		}
		r.counts.maxHeight = max(r.counts.maxHeight, m.Height)
		if m.Undone != "" {
			var id core.ID
			copy(id[:], k[len(pMeta):])
			r.undone[id] = true
		}
		if m.Admin {
			var id core.ID
			copy(id[:], k[len(pMeta):])
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load admin changes: %w", err)
	}
	for _, id := range ids {
		c, err := r.loadChange(txn, id)
		if err != nil {
			return err
		}
		r.adminLog = append(r.adminLog, core.MemberView(c, id))
	}
	return r.evaluateMembership(txn)
}

func (r *Replica) setGenesis(id core.ID, g *core.Change) error {
	op := g.Ops[0]
	s, err := schema.Parse(op.Schema)
	if err != nil {
		return fmt.Errorf("genesis schema: %w", err)
	}
	r.genesisID, r.genesis = id, g
	r.maxAhead = op.MaxClockAhead
	if r.maxAhead == 0 {
		r.maxAhead = core.DefaultMaxClockAhead
	}
	r.schemas[id] = s
	r.current = s
	return nil
}

// evaluateMembership recomputes membership and the accepted schemas from
// the admin changes known.
func (r *Replica) evaluateMembership(txn *badger.Txn) error {
	founders := append([]core.PublicKey{r.genesis.Author}, r.genesis.Ops[0].Admins...)
	anc := txnAncestry{r: r, txn: txn}
	r.members = core.EvaluateMembership(r.genesisID, founders, r.adminLog, anc)
	r.settleSchemas(anc)
	return anc.err
}

// settleSchemas decides which accepted schema upgrades are in force: in
// (height, ID) order, an upgrade counts only if it parses and passes
// schema.CheckUpgrade against the schema in force at it (the newest
// upgrade in force in its causal past, else the genesis schema). An
// upgrade refused there is stored without effect, as a local write of it
// is refused before signing: the same validity function on both paths,
// and a pure function of the admin changes known. An upgrade whose change
// was judged invalid at arrival (a bad data op beside it) has no effect
// either.
func (r *Replica) settleSchemas(anc txnAncestry) {
	genesis := r.schemas[r.genesisID]
	r.schemas = map[core.ID]*schema.Schema{r.genesisID: genesis}
	r.current = genesis
	var inForce []core.ID // (height, ID) order
	for _, c := range r.members.Schemas {
		if m, err := r.meta(anc.txn, c.ID); err == nil && m.SchemaErr != "" {
			continue
		}
		base := genesis
		for _, u := range inForce {
			if anc.IsAncestor(u, c.ID) {
				base = r.schemas[u]
			}
		}
		next, ok := base, true
		for _, op := range c.Ops {
			if op.Kind != core.OpSchema {
				continue
			}
			s, err := r.parseSchema(c.ID, op.Schema)
			if err == nil {
				err = schema.CheckUpgrade(next, s)
			}
			if err != nil {
				ok = false
				break
			}
			next = s
		}
		if !ok || next == base {
			continue
		}
		r.schemas[c.ID] = next
		inForce = append(inForce, c.ID)
		r.renames = r.renames || next.HasRenames()
		r.current = next
	}
}

// parseSchema parses the schema op of change id once; a text that does
// not parse gives its error every time.
func (r *Replica) parseSchema(id core.ID, text string) (*schema.Schema, error) {
	if p, ok := r.parsed[id]; ok {
		return p.schema, p.err
	}
	s, err := schema.Parse(text)
	r.parsed[id] = parsedSchema{s, err}
	return s, err
}

// parsedSchema is the outcome of parsing a change's schema op.
type parsedSchema struct {
	schema *schema.Schema
	err    error
}

func scan(txn *badger.Txn, prefix []byte, fn func(k, v []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		err := item.Value(func(v []byte) error { return fn(item.Key(), v) })
		if err != nil {
			return err
		}
	}
	return nil
}

func scanKeys(txn *badger.Txn, prefix []byte, fn func(k []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := fn(it.Item().KeyCopy(nil)); err != nil {
			return err
		}
	}
	return nil
}

func getValue(txn *badger.Txn, key []byte, into any) error {
	item, err := txn.Get(key)
	if err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		return err
	}
	return item.Value(func(v []byte) error { return core.Unmarshal(v, into) })
}

func (r *Replica) loadChange(txn *badger.Txn, id core.ID) (*core.Change, error) {
	s, err := r.loadSigned(txn, id)
	if err != nil {
		return nil, err
	}
	c, err := s.Decode()
	if err != nil {
		return nil, fmt.Errorf("stored change %s: %w", id, err)
	}
	return c, nil
}

func (r *Replica) loadSigned(txn *badger.Txn, id core.ID) (core.Signed, error) {
	item, err := txn.Get(idKey(pChange, id))
	if err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return core.Signed{}, fmt.Errorf("change %s: %w", id, ErrNotFound)
		}
		return core.Signed{}, err
	}
	var s core.Signed
	err = item.Value(func(v []byte) error {
		var err error
		s, err = core.DecodeSigned(v)
		return err
	})
	return s, err
}

func (r *Replica) meta(txn *badger.Txn, id core.ID) (*meta, error) {
	if m, ok := r.metas[id]; ok {
		return m, nil
	}
	var m meta
	if err := getValue(txn, idKey(pMeta, id), &m); err != nil {
		return nil, err
	}
	r.cacheMeta(id, &m)
	return &m, nil
}

func (r *Replica) cacheMeta(id core.ID, m *meta) {
	if len(r.metas) >= cacheLimit {
		clear(r.metas)
	}
	r.metas[id] = m
}

func (r *Replica) vv(txn *badger.Txn, id core.ID) ([]uint64, error) {
	if v, ok := r.vvs[id]; ok {
		return v, nil
	}
	var v []uint64
	if err := getValue(txn, idKey(pVV, id), &v); err != nil {
		return nil, err
	}
	if len(r.vvs) >= cacheLimit {
		clear(r.vvs)
	}
	r.vvs[id] = v
	return v, nil
}

// txnAncestry answers ancestry from version vectors: a precedes b iff b's
// vector has seen a's author up to a's sequence. Sequence numbers are
// chained through Prev, so this is exact for authors who never
// equivocated; for an equivocating author both forks at a sequence count as
// seen once one is, which every replica computes alike.
type txnAncestry struct {
	r   *Replica
	txn *badger.Txn
	err error
}

func (a txnAncestry) IsAncestor(x, y core.ID) bool {
	if x == y {
		return false
	}
	mx, err := a.r.meta(a.txn, x)
	if err != nil {
		return false
	}
	my, err := a.r.meta(a.txn, y)
	if err != nil || my.Height <= mx.Height {
		return false
	}
	v, err := a.r.vv(a.txn, y)
	if err != nil {
		return false
	}
	ix, ok := a.r.authorIx[mx.Author]
	return ok && int(ix) < len(v) && v[ix] >= mx.Seq
}
