package memory

import (
	"context"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// Doc is one document of the view.
type Doc struct {
	Collection string         `json:"collection"`
	ID         string         `json:"id"`
	Fields     map[string]any `json:"fields"`
	LSN        uint64         `json:"lsn"`
	Author     string         `json:"author"`
	HLC        string         `json:"hlc"`
	LastChange string         `json:"last_change"`
}

// Update is one applied effect, sent to subscribers.
type Update struct {
	Doc     Doc  `json:"doc"`
	Deleted bool `json:"deleted"`
}

// Options configure a view.
type Options struct {
	// Validate, when set, refuses effects: a non-empty reason makes the
	// runner park the effect instead of applying it.
	Validate func(e eventstream.Effect) (reason string)
}

// View is an in-memory sink.
type View struct {
	name string
	opts Options

	mu       sync.RWMutex
	schemaID string                    // schema of the last batch: renames followed up to it
	docs     map[string]map[string]Doc // collection -> id -> doc
	ckpt     uint64
	subs     map[int]*subscription
	subID    int
}

// New makes an empty view.
func New(name string, opts Options) *View {
	return &View{name: name, opts: opts, docs: map[string]map[string]Doc{}, subs: map[int]*subscription{}}
}

var _ checkpoint.Sink = (*View)(nil)

// Name implements checkpoint.Sink.
func (v *View) Name() string { return v.name }

// Checkpoint implements checkpoint.Sink.
func (v *View) Checkpoint(context.Context) (uint64, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.ckpt, nil
}

// Apply implements checkpoint.Sink: all of the batch and its checkpoint,
// or nothing. A Redo batch (parked effects offered again) is applied
// although the checkpoint covers it. Subscribers are sent the updates after the batch is in; a
// full subscriber channel makes Apply wait (back-pressure), until the
// subscriber reads or cancels.
func (v *View) Apply(ctx context.Context, b checkpoint.Batch) error {
	if v.opts.Validate != nil {
		for i, e := range b.Effects {
			if e.Kind == eventstream.Upsert {
				if reason := v.opts.Validate(e); reason != "" {
					return &checkpoint.RejectedError{Index: i, Reason: reason}
				}
			}
		}
	}
	updates := make([]Update, 0, len(b.Effects))
	v.mu.Lock()
	if b.Through < v.ckpt && !b.Redo {
		v.mu.Unlock()
		return nil // already applied: replay is harmless
	}
	if b.Schema != nil && b.Schema.ID != v.schemaID {
		v.follow(b.Schema)
	}
	for _, e := range b.Effects {
		if e.LSN <= v.ckpt && !b.Redo { // a parked effect offered again is applied
			continue
		}
		d := Doc{Collection: e.Collection, ID: e.DocID, Fields: e.Doc, LSN: e.LSN, Author: e.Author, HLC: e.HLC, LastChange: e.LastChange}
		coll := v.docs[e.Collection]
		if coll == nil {
			coll = map[string]Doc{}
			v.docs[e.Collection] = coll
		}
		if e.Kind == eventstream.Delete {
			delete(coll, e.DocID)
		} else {
			coll[e.DocID] = d
		}
		updates = append(updates, Update{Doc: d, Deleted: e.Kind == eventstream.Delete})
	}
	v.ckpt = max(v.ckpt, b.Through)
	subs := slices.Collect(maps.Values(v.subs))
	v.mu.Unlock()
	for _, s := range subs {
		for _, u := range updates {
			if !s.send(ctx, u) {
				break
			}
		}
	}
	return nil
}

// follow moves the values of renamed fields (schema.Field.Former) from
// their former names to their names in the documents held, as a table
// keeps a renamed field's column. Called with v.mu held.
func (v *View) follow(s *schema.Schema) {
	v.schemaID = s.ID
	for _, c := range s.Collections {
		for _, f := range c.Fields {
			for _, former := range f.Former {
				for id, d := range v.docs[c.Name] {
					val, ok := d.Fields[former]
					if !ok {
						continue
					}
					fields := maps.Clone(d.Fields) // effects share their maps
					delete(fields, former)
					if _, has := fields[f.Name]; !has {
						fields[f.Name] = val
					}
					d.Fields = fields
					v.docs[c.Name][id] = d
				}
			}
		}
	}
}

// subscription is one subscriber: ch is never closed (a sender may be
// blocked on it); done closes when the subscription ends.
type subscription struct {
	ch   chan Update
	done chan struct{}
	once sync.Once
}

func (s *subscription) end() { s.once.Do(func() { close(s.done) }) }

// send delivers u unless the subscription ended or ctx did.
func (s *subscription) send(ctx context.Context, u Update) bool {
	select {
	case s.ch <- u:
		return true
	case <-s.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// Close implements checkpoint.Sink; it ends every subscription.
func (v *View) Close(context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for id, s := range v.subs {
		s.end()
		delete(v.subs, id)
	}
	return nil
}

// Get returns a document.
func (v *View) Get(coll, id string) (Doc, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d, ok := v.docs[coll][id]
	return d, ok
}

// Query returns the documents of coll whose fields equal every value in
// where (canonical values, as in effects), ordered by id.
func (v *View) Query(coll string, where map[string]any) []Doc {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []Doc
	for _, d := range v.docs[coll] {
		match := true
		for f, want := range where {
			if got, ok := d.Fields[f]; !ok || core.CompareValues(got, want) != 0 {
				match = false
				break
			}
		}
		if match {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Count returns how many documents coll holds.
func (v *View) Count(coll string) int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.docs[coll])
}

// Subscribe returns a channel receiving every update applied from now on,
// buffered to size, and a cancel function that ends the subscription
// (the channel is not closed; stop reading once you cancel).
func (v *View) Subscribe(size int) (<-chan Update, func()) {
	s := &subscription{ch: make(chan Update, max(size, 0)), done: make(chan struct{})}
	v.mu.Lock()
	v.subID++
	id := v.subID
	v.subs[id] = s
	v.mu.Unlock()
	return s.ch, func() {
		v.mu.Lock()
		delete(v.subs, id)
		v.mu.Unlock()
		s.end()
	}
}

// Reset empties the view and its checkpoint: the runner refills it from
// the effect log.
func (v *View) Reset(context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.docs)
	v.ckpt = 0
	return nil
}
