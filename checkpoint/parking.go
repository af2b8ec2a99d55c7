package checkpoint

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tributary-sync/tributary/eventstream"
)

// Parked is an effect a sink refused, with the reason.
type Parked struct {
	Sink     string             `json:"sink"`
	Effect   eventstream.Effect `json:"effect"`
	Reason   string             `json:"reason"`
	ParkedAt time.Time          `json:"parked_at"`
}

// Parking keeps refused effects for an operator to inspect and retry.
// Effects are kept per sink under their LSN: parking an LSN again
// replaces it.
type Parking interface {
	// Park records p.
	Park(ctx context.Context, p Parked) error
	// List returns the effects parked for sink, oldest first.
	List(ctx context.Context, sink string) ([]Parked, error)
	// Remove forgets the effects of sink with the given LSNs (retried
	// with success, or superseded); LSNs not parked are ignored.
	Remove(ctx context.Context, sink string, lsns ...uint64) error
	// Clear forgets every effect parked for sink (the sink was reset).
	Clear(ctx context.Context, sink string) error
}

// MemoryParking keeps parked effects in memory (tests, the demo); the
// bridge process uses a durable one.
type MemoryParking struct {
	mu     sync.Mutex
	parked []Parked
}

// NewMemoryParking returns an empty in-memory parking.
func NewMemoryParking() *MemoryParking { return &MemoryParking{} }

var _ Parking = (*MemoryParking)(nil)

// Park records p, replacing an effect of the same sink and LSN.
func (m *MemoryParking) Park(_ context.Context, p Parked) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parked = slices.DeleteFunc(m.parked, func(q Parked) bool { return q.Sink == p.Sink && q.Effect.LSN == p.Effect.LSN })
	m.parked = append(m.parked, p)
	slices.SortStableFunc(m.parked, func(a, b Parked) int {
		if a.Effect.LSN < b.Effect.LSN {
			return -1
		}
		if a.Effect.LSN > b.Effect.LSN {
			return 1
		}
		return 0
	})
	return nil
}

// List returns the effects parked for sink, oldest first.
func (m *MemoryParking) List(_ context.Context, sink string) ([]Parked, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(m.parked), func(p Parked) bool { return p.Sink != sink }), nil
}

// Remove forgets the given LSNs of sink.
func (m *MemoryParking) Remove(_ context.Context, sink string, lsns ...uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parked = slices.DeleteFunc(m.parked, func(p Parked) bool { return p.Sink == sink && slices.Contains(lsns, p.Effect.LSN) })
	return nil
}

// Clear forgets every effect of sink.
func (m *MemoryParking) Clear(_ context.Context, sink string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parked = slices.DeleteFunc(m.parked, func(p Parked) bool { return p.Sink == sink })
	return nil
}
