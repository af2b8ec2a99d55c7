package eventstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// Effect is one document's new state (core.Effect: the replica produces
// it, the log numbers it, sinks apply it).
type Effect = core.Effect

// Kind says what an effect does to its document.
type Kind = core.EffectKind

// Effect kinds.
const (
	Upsert = core.Upsert
	Delete = core.Delete
)

// ErrCorrupt marks a log whose stored bytes cannot be decoded.
var ErrCorrupt = errors.New("effect log corrupt")

// Stats describe the log.
type Stats struct {
	Last             uint64 `json:"last_lsn"`
	First            uint64 `json:"first_lsn"` // lowest LSN still stored, 0 when empty
	CompactedThrough uint64 `json:"compacted_through"`
}

// Log is the effect log of one space.
type Log struct {
	db     *badger.DB
	prefix []byte

	mu     sync.Mutex
	last   uint64
	notify chan struct{} // closed when last advances
}

// Key layout under prefix: "n" -> last LSN; "c" -> compacted-through LSN;
// "l/"+LSN(8 bytes BE) -> effect; "d/"+collection+0+doc -> newest LSN.
func (l *Log) key(parts ...[]byte) []byte {
	k := append([]byte{}, l.prefix...)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func lsnBytes(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func (l *Log) entryKey(n uint64) []byte { return l.key([]byte("l/"), lsnBytes(n)) }
func (l *Log) docKey(e *Effect) []byte  { return l.key([]byte("d/"), []byte(e.Key())) }

// Open opens the log kept in db under prefix.
func Open(db *badger.DB, prefix []byte) (*Log, error) {
	l := &Log{db: db, prefix: append([]byte{}, prefix...), notify: make(chan struct{})}
	err := db.View(func(txn *badger.Txn) error {
		n, err := l.readCounter(txn, "n")
		l.last = n
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open effect log: %w", err)
	}
	return l, nil
}

func (l *Log) readCounter(txn *badger.Txn, name string) (uint64, error) {
	item, err := txn.Get(l.key([]byte(name)))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: counter %q holds %d bytes", ErrCorrupt, name, len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}

var _ replica.EffectLog = (*Log)(nil)

// AppendTx implements replica.EffectLog: it numbers effects with the next
// LSNs and writes them in the replica's transaction, so a change and its
// effects commit together. Nothing is visible to readers until tx commits
// and Committed is called; if tx is discarded, the LSNs are not used.
func (l *Log) AppendTx(tx replica.Tx, effects []Effect) error {
	_, err := l.appendTo(tx, effects)
	return err
}

// badgerTx lets a Badger transaction of the log's own stand for the
// replica's.
type badgerTx struct{ txn *badger.Txn }

func (t badgerTx) Get(k []byte) ([]byte, error) {
	item, err := t.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, replica.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (t badgerTx) Set(k, v []byte) error { return t.txn.Set(k, v) }

func (l *Log) appendTo(tx replica.Tx, effects []Effect) ([]Effect, error) {
	if len(effects) == 0 {
		return nil, nil
	}
	var n uint64
	switch v, err := tx.Get(l.key([]byte("n"))); {
	case errors.Is(err, replica.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("append effects: %w", err)
	case len(v) != 8:
		return nil, fmt.Errorf("%w: counter \"n\" holds %d bytes", ErrCorrupt, len(v))
	default:
		n = binary.BigEndian.Uint64(v)
	}
	out := make([]Effect, len(effects))
	for i := range effects {
		e := effects[i]
		n++
		e.LSN = n
		if e.Kind != Upsert && e.Kind != Delete {
			return nil, fmt.Errorf("append effects: %s/%s has invalid kind %d", e.Collection, e.DocID, e.Kind)
		}
		b, err := core.Marshal(&e)
		if err != nil {
			return nil, fmt.Errorf("append effect %s/%s: %w", e.Collection, e.DocID, err)
		}
		if err := tx.Set(l.entryKey(n), b); err != nil {
			return nil, fmt.Errorf("append effects: %w", err)
		}
		if err := tx.Set(l.docKey(&e), lsnBytes(n)); err != nil {
			return nil, fmt.Errorf("append effects: %w", err)
		}
		out[i] = e
	}
	if err := tx.Set(l.key([]byte("n")), lsnBytes(n)); err != nil {
		return nil, fmt.Errorf("append effects: %w", err)
	}
	return out, nil
}

// Committed tells the log that a transaction holding AppendTx output has
// committed: it reloads the last LSN and wakes waiting readers.
func (l *Log) Committed() {
	var n uint64
	if err := l.db.View(func(txn *badger.Txn) error {
		var err error
		n, err = l.readCounter(txn, "n")
		return err
	}); err != nil {
		return // the next commit or Wait's poll picks it up
	}
	l.advance(n)
}

func (l *Log) advance(n uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > l.last {
		l.last = n
		close(l.notify)
		l.notify = make(chan struct{})
	}
}

// Append writes effects in a transaction of its own and returns them with
// their LSNs.
func (l *Log) Append(effects []Effect) ([]Effect, error) {
	var out []Effect
	err := l.db.Update(func(txn *badger.Txn) error {
		var err error
		out, err = l.appendTo(badgerTx{txn}, effects)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out) > 0 {
		l.advance(out[len(out)-1].LSN)
	}
	return out, nil
}

// LastLSN is the LSN of the newest committed effect (0 when none).
func (l *Log) LastLSN() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Read returns up to max effects with LSN >= from, in LSN order. Effects
// removed by compaction are skipped.
func (l *Log) Read(ctx context.Context, from uint64, max int) ([]Effect, error) {
	return l.ReadSized(ctx, from, max, 0)
}

// ReadSized is Read that also stops before the effect that would take the
// stored (encoded) size of the effects it returns past maxBytes; the
// first effect is returned whatever its size. maxBytes 0: no bound.
func (l *Log) ReadSized(ctx context.Context, from uint64, max, maxBytes int) ([]Effect, error) {
	if from == 0 {
		from = 1
	}
	last := l.LastLSN()
	if from > last || max <= 0 {
		return nil, nil
	}
	var out []Effect
	size := 0
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: min(max, 256), Prefix: l.key([]byte("l/"))})
		defer it.Close()
		for it.Seek(l.entryKey(from)); it.Valid() && len(out) < max; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			k := item.Key()
			n := binary.BigEndian.Uint64(k[len(k)-8:])
			if n > last {
				break
			}
			if size += int(item.ValueSize()); maxBytes > 0 && size > maxBytes && len(out) > 0 {
				break
			}
			var e Effect
			if err := item.Value(func(v []byte) error { return core.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("%w: LSN %d: %v", ErrCorrupt, n, err)
			}
			if e.LSN != n {
				return fmt.Errorf("%w: key LSN %d holds effect LSN %d", ErrCorrupt, n, e.LSN)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read effects from LSN %d: %w", from, err)
	}
	return out, nil
}

// Wait blocks until an effect with LSN > after has committed, or ctx ends.
func (l *Log) Wait(ctx context.Context, after uint64) error {
	for {
		l.mu.Lock()
		last, ch := l.last, l.notify
		l.mu.Unlock()
		if last > after {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Stats reports the log's bounds.
func (l *Log) Stats() (Stats, error) {
	s := Stats{Last: l.LastLSN()}
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		if s.CompactedThrough, err = l.readCounter(txn, "c"); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: l.key([]byte("l/"))})
		defer it.Close()
		it.Rewind()
		if it.Valid() {
			k := it.Item().Key()
			s.First = binary.BigEndian.Uint64(k[len(k)-8:])
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("effect log stats: %w", err)
	}
	return s, nil
}

// Compact removes every effect with LSN <= through that is not the newest
// effect of its document, and returns how many it removed. Sinks that have
// not yet read past through lose only superseded states: the newest state
// of every document is kept. Callers choose through as LastLSN minus their
// retention window.
func (l *Log) Compact(ctx context.Context, through uint64) (int, error) {
	through = min(through, l.LastLSN())
	removed := 0
	from := uint64(1)
	for from <= through {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		var next uint64
		var n int
		err := l.db.Update(func(txn *badger.Txn) error {
			var err error
			next, n, err = l.compactChunk(txn, from, through, 2000)
			if err != nil {
				return err
			}
			if next > through {
				prev, err := l.readCounter(txn, "c")
				if err != nil {
					return err
				}
				if through > prev {
					return txn.Set(l.key([]byte("c")), lsnBytes(through))
				}
			}
			return nil
		})
		if errors.Is(err, badger.ErrConflict) {
			continue // a concurrent append touched a document index: redo the chunk
		}
		if err != nil {
			return removed, fmt.Errorf("compact effect log: %w", err)
		}
		removed += n
		from = next
	}
	return removed, nil
}

// compactChunk examines up to limit stored effects from LSN from and
// deletes the superseded ones; it returns the LSN to continue from.
func (l *Log) compactChunk(txn *badger.Txn, from, through uint64, limit int) (uint64, int, error) {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: l.key([]byte("l/"))})
	defer it.Close()
	var dels [][]byte
	next := through + 1
	seen := 0
	for it.Seek(l.entryKey(from)); it.Valid(); it.Next() {
		item := it.Item()
		k := item.KeyCopy(nil)
		n := binary.BigEndian.Uint64(k[len(k)-8:])
		if n > through {
			break
		}
		if seen == limit {
			next = n
			break
		}
		seen++
		var e Effect
		if err := item.Value(func(v []byte) error { return core.Unmarshal(v, &e) }); err != nil {
			return 0, 0, fmt.Errorf("%w: LSN %d: %v", ErrCorrupt, n, err)
		}
		newest, err := l.readDocLSN(txn, &e)
		if err != nil {
			return 0, 0, err
		}
		if newest != n {
			dels = append(dels, k)
		}
	}
	for _, k := range dels {
		if err := txn.Delete(k); err != nil {
			return 0, 0, err
		}
	}
	return next, len(dels), nil
}

func (l *Log) readDocLSN(txn *badger.Txn, e *Effect) (uint64, error) {
	item, err := txn.Get(l.docKey(e))
	if err != nil {
		return 0, fmt.Errorf("%w: document index of %s/%s: %v", ErrCorrupt, e.Collection, e.DocID, err)
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: document index of %s/%s holds %d bytes", ErrCorrupt, e.Collection, e.DocID, len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}

// OpenMemory opens a log over an in-memory store of its own, for tests and
// tools that need a real log without a replica; close releases the store.
func OpenMemory() (l *Log, close func() error, err error) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		return nil, nil, fmt.Errorf("open in-memory effect log: %w", err)
	}
	if l, err = Open(db, []byte("e/")); err != nil {
		db.Close()
		return nil, nil, err
	}
	return l, db.Close, nil
}
