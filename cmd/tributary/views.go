package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tributary-sync/tributary/adapters/memory"
	"github.com/tributary-sync/tributary/cmd/tributary/api"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
)

// nodeRoutes are the routes the running node adds to the API (see
// api.NewHandler for the rest); docs/openapi.yaml describes them all.
var nodeRoutes = []string{
	"GET /readyz",
	"GET /metrics",
	"GET /v1/status",
	"GET /v1/sinks/{name}/docs/{coll}",
	"GET /v1/sinks/{name}/docs/{coll}/{id}",
}

// extraRoutes are the node's own routes, by pattern (nodeRoutes).
func (b *bridge) extraRoutes() []api.Route {
	return []api.Route{
		{Pattern: "GET /readyz", Handler: http.HandlerFunc(b.handleReady), Public: true},
		{Pattern: "GET /metrics", Handler: b.metrics.handler()},
		{Pattern: "GET /v1/status", Handler: http.HandlerFunc(b.handleStatus)},
		{Pattern: "GET /v1/sinks/{name}/docs/{coll}", Handler: http.HandlerFunc(b.handleViewQuery)},
		{Pattern: "GET /v1/sinks/{name}/docs/{coll}/{id}", Handler: http.HandlerFunc(b.handleViewGet)},
	}
}

// view returns the in-memory view of a memory sink, or writes the error.
func (b *bridge) view(w http.ResponseWriter, name string) (*memory.View, bool) {
	fail := func(code int, msg string) {
		w.Header().Set("Content-Type", api.TypeJSON)
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": "not_found"})
	}
	if b.sinks == nil {
		fail(http.StatusNotFound, fmt.Sprintf("no sink %q: this node runs no sinks", name))
		return nil, false
	}
	b.sinks.mu.Lock()
	rs, ok := b.sinks.sinks[name]
	b.sinks.mu.Unlock()
	if !ok {
		fail(http.StatusNotFound, fmt.Sprintf("no sink %q", name))
		return nil, false
	}
	rs.mu.Lock()
	v, isView := rs.sink.(*memory.View)
	rs.mu.Unlock()
	if !isView {
		fail(http.StatusNotFound, fmt.Sprintf("sink %s is a %s sink: only memory sinks are read here (read the others in their database)", name, rs.cfg.Type))
		return nil, false
	}
	return v, true
}

// handleViewGet serves one document of a memory sink's view: what the
// sink holds, which may trail the replica.
func (b *bridge) handleViewGet(w http.ResponseWriter, r *http.Request) {
	v, ok := b.view(w, r.PathValue("name"))
	if !ok {
		return
	}
	d, found := v.Get(r.PathValue("coll"), r.PathValue("id"))
	if !found {
		w.Header().Set("Content-Type", api.TypeJSON)
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf("%s/%s: not in the view", r.PathValue("coll"), r.PathValue("id")), "code": "not_found"})
		return
	}
	writeJSONTo(w, viewDoc(d))
}

// handleViewQuery lists a collection of a memory sink's view, filtered by
// field equality (?field=value, compared as text).
func (b *bridge) handleViewQuery(w http.ResponseWriter, r *http.Request) {
	v, ok := b.view(w, r.PathValue("name"))
	if !ok {
		return
	}
	out := []service.Doc{}
	for _, d := range v.Query(r.PathValue("coll"), nil) {
		match := true
		for k, vals := range r.URL.Query() {
			match = match && strings.EqualFold(fmt.Sprint(d.Fields[k]), vals[0])
		}
		if match {
			out = append(out, viewDoc(d))
		}
	}
	writeJSONTo(w, out)
}

func viewDoc(d memory.Doc) service.Doc {
	out := service.Doc{"id": d.ID, "_lsn": d.LSN}
	for k, v := range d.Fields {
		out[k] = v
	}
	return out
}
