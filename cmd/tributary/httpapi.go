package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
)

// routes is the running node's HTTP API:
//
//	POST /v1/cli                              run a CLI command here ({"args": [...]})
//	GET  /v1/status                           spaces, mesh peers and counters
//	GET  /v1/spaces/{space}/docs/{coll}/{id}  one document as JSON
//	POST   /v1/spaces/{space}/docs/{coll}       create (JSON object body; "id" optional)
//	PUT    /v1/spaces/{space}/docs/{coll}/{id}  create or merge fields
//	DELETE /v1/spaces/{space}/docs/{coll}/{id}  delete
//	GET    /v1/spaces/{space}/docs/{coll}?f=v   query by field equality
//	GET    /v1/spaces/{space}/effects?from=LSN  the effect stream as server-sent events
//	GET  /metrics                             counters in the Prometheus text format
//	GET  /healthz, /readyz                    liveness, readiness
func (b *bridge) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/cli", b.handleCLI)
	mux.HandleFunc("GET /v1/status", b.handleStatus)
	mux.HandleFunc("GET /v1/spaces/{space}/docs/{coll}/{id}", b.handleDoc)
	mux.HandleFunc("POST /v1/spaces/{space}/docs/{coll}", b.handlePut)
	mux.HandleFunc("PUT /v1/spaces/{space}/docs/{coll}/{id}", b.handlePut)
	mux.HandleFunc("DELETE /v1/spaces/{space}/docs/{coll}/{id}", b.handleDelete)
	mux.HandleFunc("GET /v1/spaces/{space}/docs/{coll}", b.handleQuery)
	mux.HandleFunc("GET /v1/spaces/{space}/effects", b.handleEffects)
	mux.HandleFunc("GET /metrics", b.handleMetrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", b.handleReady)
	return mux
}

// space resolves the {space} path value to an open space, or writes the
// error.
func (b *bridge) space(w http.ResponseWriter, r *http.Request) (*node.Space, bool) {
	id, err := b.home.Resolve(r.PathValue("space"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return nil, false
	}
	sp, err := b.reg.Open(r.Context(), id)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return nil, false
	}
	return sp, true
}

// errStatus maps write errors: bad input is the client's, the rest ours.
func errStatus(err error) int {
	switch {
	case errors.Is(err, core.ErrSchemaViolation), errors.Is(err, core.ErrUnauthorized), errors.Is(err, core.ErrInvalidChange):
		return http.StatusUnprocessableEntity
	case errors.Is(err, replica.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

func (b *bridge) handlePut(w http.ResponseWriter, r *http.Request) {
	sp, ok := b.space(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	input, err := parseObject(string(body))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	id := r.PathValue("id")
	if id == "" {
		if s, ok := input["id"].(string); ok {
			id = s
		}
	}
	docID, change, created, err := putDocument(r.Context(), sp.Replica, b.home.Key, r.PathValue("coll"), id, input, time.Now())
	if err != nil {
		writeJSON(w, errStatus(err), map[string]string{"error": err.Error()})
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, map[string]string{"id": docID, "change": change.String()})
}

func (b *bridge) handleDelete(w http.ResponseWriter, r *http.Request) {
	sp, ok := b.space(w, r)
	if !ok {
		return
	}
	coll, id := r.PathValue("coll"), r.PathValue("id")
	change, err := deleteDocument(r.Context(), sp.Replica, b.home.Key, coll, id, time.Now())
	if err != nil {
		writeJSON(w, errStatus(err), map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "change": change.String()})
}

func (b *bridge) handleQuery(w http.ResponseWriter, r *http.Request) {
	sp, ok := b.space(w, r)
	if !ok {
		return
	}
	coll, ok := sp.Replica.Schema().Collection(r.PathValue("coll"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown collection %q", r.PathValue("coll"))})
		return
	}
	filter := map[string]any{}
	for name, vals := range r.URL.Query() {
		v, err := whereValue(coll, name, vals[0])
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		filter[name] = v
	}
	docs, err := sp.Replica.Query(coll.Name, filter)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	out := make([]map[string]any, len(docs))
	for i, d := range docs {
		out[i] = docJSON(d)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleEffects streams the effect log as server-sent events from ?from=
// (or the Last-Event-ID header on reconnect), then follows new effects.
func (b *bridge) handleEffects(w http.ResponseWriter, r *http.Request) {
	sp, ok := b.space(w, r)
	if !ok {
		return
	}
	from := uint64(1)
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "from: want an LSN"})
			return
		}
		from = n
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			from = n + 1
		}
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "streaming unsupported"})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	ctx := r.Context()
	for {
		effects, err := sp.Effects.Read(ctx, from, 500)
		if err != nil {
			return
		}
		for _, e := range effects {
			data, _ := json.Marshal(e)
			if _, err := fmt.Fprintf(w, "id: %d\nevent: effect\ndata: %s\n\n", e.LSN, data); err != nil {
				return
			}
			from = e.LSN + 1
		}
		fl.Flush()
		if len(effects) > 0 {
			continue
		}
		if err := sp.Effects.Wait(ctx, from-1); err != nil {
			return
		}
	}
}

func (b *bridge) handleReady(w http.ResponseWriter, r *http.Request) {
	if !b.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (b *bridge) handleCLI(w http.ResponseWriter, r *http.Request) {
	var req cliRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, cliReply{Error: "bad request: " + err.Error()})
		return
	}
	if len(req.Args) > 0 && local[req.Args[0]] {
		writeJSON(w, http.StatusBadRequest, cliReply{Error: fmt.Sprintf("%q cannot run through the running node", req.Args[0])})
		return
	}
	out, err := b.execCLI(r.Context(), req.Args)
	rep := cliReply{Stdout: out}
	if err != nil {
		rep.Error = err.Error()
	}
	writeJSON(w, http.StatusOK, rep)
}

type spaceStatus struct {
	Space  string         `json:"space"`
	Status any            `json:"status"`
	Mesh   []meshStatus   `json:"mesh"`
	Extra  map[string]any `json:"extra,omitempty"`
}

type meshStatus struct {
	Transport string            `json:"transport"`
	Peers     []string          `json:"peers"`
	Banned    map[string]string `json:"banned,omitempty"`
	Metrics   map[string]uint64 `json:"metrics"`
}

func (b *bridge) status() []spaceStatus {
	var out []spaceStatus
	b.reg.Each(func(id string, sp *node.Space) {
		st, err := sp.Replica.Status()
		ss := spaceStatus{Space: id, Status: st}
		if err != nil {
			ss.Status = map[string]string{"error": err.Error()}
		}
		b.mu.Lock()
		for _, n := range b.nodes[id] {
			ms := meshStatus{Transport: n.transport, Metrics: n.node.Metrics().Snapshot(), Banned: map[string]string{}}
			for _, t := range b.transports {
				if t.name == n.transport {
					for _, p := range t.tr.Peers(sp.Replica.Space()) {
						ms.Peers = append(ms.Peers, string(p))
					}
				}
			}
			for p, why := range n.node.Banned() {
				ms.Banned[string(p)] = why
			}
			ss.Mesh = append(ss.Mesh, ms)
		}
		b.mu.Unlock()
		out = append(out, ss)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Space < out[j].Space })
	return out
}

func (b *bridge) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"author": b.home.Key.Public().String(), "spaces": b.status()})
}

func (b *bridge) handleDoc(w http.ResponseWriter, r *http.Request) {
	sp, found := b.space(w, r)
	if !found {
		return
	}
	d, ok, err := sp.Replica.Get(r.PathValue("coll"), r.PathValue("id"))
	switch {
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	case !ok:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	default:
		writeJSON(w, http.StatusOK, docJSON(d))
	}
}

func (b *bridge) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, ss := range b.status() {
		for _, m := range ss.Mesh {
			names := make([]string, 0, len(m.Metrics))
			for k := range m.Metrics {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				fmt.Fprintf(w, "tributary_mesh_%s{space=%q,transport=%q} %d\n", k, ss.Space, m.Transport, m.Metrics[k])
			}
			fmt.Fprintf(w, "tributary_mesh_peers{space=%q,transport=%q} %d\n", ss.Space, m.Transport, len(m.Peers))
		}
	}
}
