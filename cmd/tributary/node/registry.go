package node

import (
	"context"
	"fmt"
	"sync"
)

// Registry keeps a home's spaces open for a running node (`tributary
// run`): every command it serves gets the same open Space, and OnOpen runs
// once per space (the node starts its mesh and sinks there).
type Registry struct {
	Home   *Home
	OnOpen func(ctx context.Context, sp *Space) error

	mu     sync.Mutex
	spaces map[string]*Space
}

// NewRegistry makes an empty registry for h.
func NewRegistry(h *Home) *Registry {
	return &Registry{Home: h, spaces: map[string]*Space{}}
}

// Open returns the space, opening it on first use.
func (r *Registry) Open(ctx context.Context, id string) (*Space, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sp, ok := r.spaces[id]; ok {
		return sp, nil
	}
	sp, err := r.Home.OpenSpace(ctx, id)
	if err != nil {
		return nil, err
	}
	sp.shared = true
	if r.OnOpen != nil {
		if err := r.OnOpen(ctx, sp); err != nil {
			sp.Replica.Close()
			return nil, fmt.Errorf("start space %s: %w", id, err)
		}
	}
	r.spaces[id] = sp
	return sp, nil
}

// Each calls fn for every open space.
func (r *Registry) Each(fn func(id string, sp *Space)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, sp := range r.spaces {
		fn(id, sp)
	}
}

// Close closes every space's store. Stop what uses them first.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for id, sp := range r.spaces {
		if err := sp.Replica.Close(); err != nil && first == nil {
			first = err
		}
		delete(r.spaces, id)
	}
	return first
}
