package adaptertest_test

import (
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/tributary-sync/tributary/adapters/adaptertest"
	"github.com/tributary-sync/tributary/adapters/memory"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/eventstream"
)

// memoryHarness runs the suite against the reference in-memory sink: it
// checks the suite itself. A view lives as long as the test; opening a name
// again returns the same view, as reopening a database returns its data.
type memoryHarness struct {
	mu    sync.Mutex
	views map[string]*memory.View
}

func newMemoryHarness() *memoryHarness { return &memoryHarness{views: map[string]*memory.View{}} }

func (h *memoryHarness) Name() string { return "memory" }

func (h *memoryHarness) Open(t testing.TB, name string) checkpoint.Sink {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.views[name]
	if !ok {
		v = memory.New(name, memory.Options{Validate: func(e eventstream.Effect) string {
			if s, _ := e.Doc["title"].(string); strings.ContainsRune(s, 0) {
				return "title contains a NUL character"
			}
			return ""
		}})
		h.views[name] = v
	}
	return v
}

func (h *memoryHarness) Read(t testing.TB, sinkName, collection string) map[string]map[string]any {
	h.mu.Lock()
	v := h.views[sinkName]
	h.mu.Unlock()
	out := map[string]map[string]any{}
	if v == nil {
		return out
	}
	for _, d := range v.Query(collection, nil) {
		fields := maps.Clone(d.Fields)
		maps.DeleteFunc(fields, func(_ string, v any) bool { return v == nil })
		out[d.ID] = fields
	}
	return out
}

func (h *memoryHarness) Poison() (eventstream.Effect, bool) {
	return eventstream.Effect{Collection: "Book", Kind: eventstream.Upsert, Doc: map[string]any{"title": "bad\x00title"}}, true
}

func TestMemoryConforms(t *testing.T) { adaptertest.Run(t, newMemoryHarness()) }

func BenchmarkMemory(b *testing.B) { adaptertest.Bench(b, newMemoryHarness()) }
