package mesh

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/tributary-sync/tributary/core"
)

// HeightLookup is implemented by stores that give the heights of stored
// changes (replica.Replica): the node then keeps its reconciliation index
// up to date by inserting what is stored, instead of listing the whole
// store again after every write.
type HeightLookup interface {
	// Heights returns the heights of stored changes, in the order of
	// ids; it fails if one is not stored.
	Heights(ids []core.ID) ([]uint64, error)
}

// maxPending bounds the changes remembered for the index between two
// reads of it; past it, the index is rebuilt from the store.
const maxPending = 1 << 20

// index is the node's sorted (height, ID) list of stored changes, the
// reconciliation's view of the store. Changes stored since the last read
// wait in pending (the store's watch callback cannot call the store); a
// read looks their heights up and merges them in: an append when they
// come after everything held (the usual case: new changes are higher),
// else one merge into a new slice. The items below a returned slice's
// length are never changed, so readers use it without the lock. Without
// a HeightLookup, or when a lookup fails, the list is rebuilt with
// Store.Range.
type index struct {
	mu      sync.Mutex
	items   []Item
	pending []core.ID
	dirty   bool // rebuild with a full Range
}

// add records changes just stored; it must not block nor call the store.
func (x *index) add(ids []core.ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dirty {
		return
	}
	if len(x.pending)+len(ids) > maxPending {
		x.dirty, x.pending = true, nil
		return
	}
	x.pending = append(x.pending, ids...)
}

// snapshot returns the sorted items of the store.
func (x *index) snapshot(store Store) ([]Item, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.dirty && len(x.pending) > 0 {
		if err := x.merge(store); err != nil {
			x.dirty = true
		}
	}
	x.pending = x.pending[:0]
	if !x.dirty {
		return x.items, nil
	}
	items := make([]Item, 0, len(x.items)+64)
	err := store.Range(0, math.MaxUint64, func(h uint64, id core.ID) bool {
		items = append(items, Item{Height: h, ID: id})
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	x.items, x.dirty = items, false
	return items, nil
}

// merge inserts the pending changes into items.
func (x *index) merge(store Store) error {
	hl, ok := store.(HeightLookup)
	if !ok {
		return fmt.Errorf("the store gives no heights")
	}
	hs, err := hl.Heights(x.pending)
	if err != nil {
		return err
	}
	add := make([]Item, len(x.pending))
	for i, id := range x.pending {
		add[i] = Item{Height: hs[i], ID: id}
	}
	sortItems(add)
	add = slices.Compact(add)
	if n := len(x.items); n == 0 || x.items[n-1].Compare(add[0]) < 0 {
		// Past the end: readers never see beyond their slice's length.
		x.items = append(x.items, add...)
		return nil
	}
	merged := make([]Item, 0, len(x.items)+len(add)+64)
	i, j := 0, 0
	for i < len(x.items) || j < len(add) {
		switch {
		case j == len(add):
			merged = append(merged, x.items[i:]...)
			i = len(x.items)
		case i == len(x.items):
			merged = append(merged, add[j:]...)
			j = len(add)
		default:
			switch c := x.items[i].Compare(add[j]); {
			case c < 0:
				merged = append(merged, x.items[i])
				i++
			case c > 0:
				merged = append(merged, add[j])
				j++
			default: // held already
				merged = append(merged, x.items[i])
				i++
				j++
			}
		}
	}
	x.items = merged
	return nil
}
