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

// Parking keeps refused effects for an operator to inspect and replay.
type Parking interface {
	Park(ctx context.Context, p Parked) error
	List(ctx context.Context, sink string) ([]Parked, error)
}

// MemoryParking keeps parked effects in memory (tests, the demo); the
// bridge process uses a durable one.
type MemoryParking struct {
	mu     sync.Mutex
	parked []Parked
}

// NewMemoryParking returns an empty in-memory parking.
func NewMemoryParking() *MemoryParking { return &MemoryParking{} }

// Park records p.
func (m *MemoryParking) Park(_ context.Context, p Parked) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parked = append(m.parked, p)
	return nil
}

// List returns the effects parked for sink, oldest first.
func (m *MemoryParking) List(_ context.Context, sink string) ([]Parked, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(m.parked), func(p Parked) bool { return p.Sink != sink }), nil
}
