package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
)

// routes is the running node's HTTP API:
//
//	POST /v1/cli                              run a CLI command here ({"args": [...]})
//	GET  /v1/status                           spaces, mesh peers and counters
//	GET  /v1/spaces/{space}/docs/{coll}/{id}  one document as JSON
//	GET  /metrics                             counters in the Prometheus text format
func (b *bridge) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/cli", b.handleCLI)
	mux.HandleFunc("GET /v1/status", b.handleStatus)
	mux.HandleFunc("GET /v1/spaces/{space}/docs/{coll}/{id}", b.handleDoc)
	mux.HandleFunc("GET /metrics", b.handleMetrics)
	return mux
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
	id, err := b.home.Resolve(r.PathValue("space"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	sp, err := b.reg.Open(r.Context(), id)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
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
