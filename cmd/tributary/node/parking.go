package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core"
)

// Parking keeps effects a sink refused in the space's Badger store, under
// "p/<sink>\x00<lsn>", so they survive restarts and can be inspected.
type Parking struct{ db *badger.DB }

// Parking returns the space's durable parking.
func (s *Space) Parking() *Parking { return &Parking{db: s.Replica.DB()} }

var _ checkpoint.Parking = (*Parking)(nil)

func parkKey(sink string, lsn uint64) []byte {
	k := append([]byte("p/"+sink), 0)
	return binary.BigEndian.AppendUint64(k, lsn)
}

type parked struct {
	_      struct{} `cbor:",toarray"`
	Reason string
	At     int64
	Effect []byte
}

// Park implements checkpoint.Parking.
func (p *Parking) Park(_ context.Context, e checkpoint.Parked) error {
	eb, err := core.Marshal(&e.Effect)
	if err != nil {
		return err
	}
	b, err := core.Marshal(parked{Reason: e.Reason, At: e.ParkedAt.UnixMilli(), Effect: eb})
	if err != nil {
		return err
	}
	if err := p.db.Update(func(txn *badger.Txn) error { return txn.Set(parkKey(e.Sink, e.Effect.LSN), b) }); err != nil {
		return fmt.Errorf("park effect %d of sink %s: %w", e.Effect.LSN, e.Sink, err)
	}
	return nil
}

// List implements checkpoint.Parking.
func (p *Parking) List(_ context.Context, sink string) ([]checkpoint.Parked, error) {
	var out []checkpoint.Parked
	prefix := append([]byte("p/"+sink), 0)
	err := p.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var pk parked
			if err := it.Item().Value(func(v []byte) error { return core.Unmarshal(v, &pk) }); err != nil {
				return err
			}
			var cp checkpoint.Parked
			if err := core.Unmarshal(pk.Effect, &cp.Effect); err != nil {
				return err
			}
			cp.Sink, cp.Reason = sink, pk.Reason
			cp.ParkedAt = timeFromMillis(pk.At)
			out = append(out, cp)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list parked effects of sink %s: %w", sink, err)
	}
	return out, nil
}

func timeFromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Remove implements checkpoint.Parking.
func (p *Parking) Remove(_ context.Context, sink string, lsns ...uint64) error {
	if len(lsns) == 0 {
		return nil
	}
	err := p.db.Update(func(txn *badger.Txn) error {
		for _, lsn := range lsns {
			if err := txn.Delete(parkKey(sink, lsn)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove parked effects of sink %s: %w", sink, err)
	}
	return nil
}

// Clear implements checkpoint.Parking.
func (p *Parking) Clear(_ context.Context, sink string) error {
	prefix := append([]byte("p/"+sink), 0)
	var keys [][]byte
	err := p.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err == nil {
		wb := p.db.NewWriteBatch()
		for _, k := range keys {
			if err = wb.Delete(k); err != nil {
				break
			}
		}
		if err == nil {
			err = wb.Flush()
		} else {
			wb.Cancel()
		}
	}
	if err != nil {
		return fmt.Errorf("clear parked effects of sink %s: %w", sink, err)
	}
	return nil
}
