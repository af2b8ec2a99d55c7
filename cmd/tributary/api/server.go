package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/eventstream"
	"github.com/tributary-sync/tributary/mesh/bundle"
)

// Content types the API accepts for request bodies. Anything else is
// refused: a browser can send text/plain or a form across sites without
// asking, so accepting only these (and a bearer token a page cannot know)
// closes the door to cross-site writes.
const (
	TypeJSON   = "application/json"
	TypeNDJSON = "application/x-ndjson"
	TypeBundle = "application/vnd.tributary.bundle"
)

// Route is an extra route of the running node (readiness, metrics).
type Route struct {
	Pattern string
	Handler http.Handler
	// Public routes need no token (health probes only).
	Public bool
}

// Config configures the API handler.
type Config struct {
	// Token returns the bearer token currently accepted.
	Token func() string
	// Addr is the address the server listens on (host:port, as bound).
	Addr string
	// Names are further host names (with or without port) clients may
	// use in the Host header, e.g. the name of a load balancer.
	Names []string
	// MaxBodyBytes bounds a document or admin request (default 8 MiB).
	MaxBodyBytes int64
	// MaxBatchBytes bounds a batch request (default 8 MiB: an atomic batch
	// must fit one transaction of the store, see replica.ErrBatchTooLarge).
	MaxBatchBytes int64
	// MaxInflightBytes bounds the request bytes read and being handled at
	// once across all requests (default 32 MiB); past it requests get 503
	// with Retry-After instead of growing memory without bound.
	MaxInflightBytes int64
	Extra            []Route
	Logger           *slog.Logger
	// Observe, when set, is told of every request served: its route
	// pattern, status code and duration (metrics).
	Observe func(route, method string, code int, took time.Duration)
}

func (c *Config) defaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 8 << 20
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 8 << 20
	}
	if c.MaxInflightBytes <= 0 {
		c.MaxInflightBytes = 32 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// server serves a Service over HTTP.
type server struct {
	svc   service.Service
	cfg   Config
	hosts hostRule

	mu       sync.Mutex
	inflight int64
}

// NewHandler returns the HTTP API over svc:
//
//	GET    /healthz, /readyz                             liveness, readiness (no token)
//	GET    /v1/spaces                                    spaces of the home
//	POST   /v1/spaces                                    found one {name, schema, admins}
//	GET    /v1/spaces/{space}                            status
//	POST   /v1/spaces/{space}/schema                     upgrade {schema}
//	GET    /v1/spaces/{space}/docs/{coll}?field=value    query
//	POST   /v1/spaces/{space}/docs/{coll}                create ("id" optional)
//	GET    /v1/spaces/{space}/docs/{coll}/{id}?at=CHANGE one document, now or at a change
//	PUT    /v1/spaces/{space}/docs/{coll}/{id}           create or merge fields
//	DELETE /v1/spaces/{space}/docs/{coll}/{id}           delete
//	GET    /v1/spaces/{space}/docs/{coll}/{id}/history   changes that touched it
//	POST   /v1/spaces/{space}/batch                      atomic batch (NDJSON or JSON array)
//	GET    /v1/spaces/{space}/log?limit=N                changes, newest last
//	GET    /v1/spaces/{space}/conflicts                  open conflicts
//	GET    /v1/spaces/{space}/rollbacks                  changes the rules rolled back
//	GET    /v1/spaces/{space}/violations                 documents breaking a rule tightened with @existing(policy: flag)
//	GET    /v1/spaces/{space}/effects?from=LSN&limit=N   effects (JSON; SSE with Accept: text/event-stream)
//	GET    /v1/spaces/{space}/export?since=ID,ID         bundle of the changes a peer lacks
//	GET    /v1/spaces/{space}/members                    members
//	POST   /v1/spaces/{space}/members                    grant {key, role}
//	DELETE /v1/spaces/{space}/members/{key}              revoke
//	GET    /v1/spaces/{space}/invites                    invites
//	POST   /v1/spaces/{space}/invites                    new code {ttl, addrs}
//	DELETE /v1/spaces/{space}/invites/{invite}           revoke an invite
//	POST   /v1/spaces/{space}/invites/{invite}/settle    settle a contest {member}
//	POST   /v1/join                                      join with a code {code}
//	POST   /v1/import                                    apply a bundle (body)
//	GET    /v1/sinks                                     sink checkpoints and lag
//	POST   /v1/sinks/{name}/reset                        re-backfill a sink
//	GET    /v1/sinks/{name}/parked                       effects a sink refused
//	POST   /v1/sinks/{name}/retry                        apply them again
//	POST   /v1/token/rotate                              new API token (read it from the home)
//
// Every route but the public ones needs "Authorization: Bearer TOKEN";
// every route checks Host (against the bound address and Names) and
// refuses a foreign Origin.
func NewHandler(svc service.Service, cfg Config) http.Handler {
	cfg.defaults()
	s := &server{svc: svc, cfg: cfg, hosts: newHostRule(cfg.Addr, cfg.Names)}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.private(rt.handle))
	}
	mux.Handle("GET /healthz", s.public(func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	for _, rt := range cfg.Extra {
		if rt.Public {
			mux.Handle(rt.Pattern, s.public(func(w http.ResponseWriter, r *http.Request) error { rt.Handler.ServeHTTP(w, r); return nil }))
		} else {
			mux.Handle(rt.Pattern, s.private(func(w http.ResponseWriter, r *http.Request) error { rt.Handler.ServeHTTP(w, r); return nil }))
		}
	}
	if cfg.Observe != nil {
		return observe(mux, cfg.Observe)
	}
	return mux
}

// observe wraps h to report each request's route, code and duration.
func observe(mux *http.ServeMux, fn func(route, method string, code int, took time.Duration)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		_, pattern := mux.Handler(r)
		mux.ServeHTTP(rec, r)
		route := pattern
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		if route == "" {
			route = "unmatched"
		}
		fn(route, r.Method, rec.code, time.Since(began))
	})
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

// Flush lets streaming (server-sent events) through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// route is one typed endpoint.
type route struct {
	pattern string
	handle  func(w http.ResponseWriter, r *http.Request) error
}

func (s *server) routes() []route {
	return []route{
		{"GET /v1/spaces", s.spaces},
		{"POST /v1/spaces", s.createSpace},
		{"GET /v1/spaces/{space}", s.status},
		{"POST /v1/spaces/{space}/schema", s.upgrade},
		{"GET /v1/spaces/{space}/docs/{coll}", s.query},
		{"POST /v1/spaces/{space}/docs/{coll}", s.put},
		{"GET /v1/spaces/{space}/docs/{coll}/{id}", s.get},
		{"PUT /v1/spaces/{space}/docs/{coll}/{id}", s.put},
		{"DELETE /v1/spaces/{space}/docs/{coll}/{id}", s.delete},
		{"GET /v1/spaces/{space}/docs/{coll}/{id}/history", s.history},
		{"POST /v1/spaces/{space}/batch", s.batch},
		{"GET /v1/spaces/{space}/log", s.log},
		{"GET /v1/spaces/{space}/conflicts", s.conflicts},
		{"GET /v1/spaces/{space}/rollbacks", s.rollbacks},
		{"GET /v1/spaces/{space}/violations", s.violations},
		{"GET /v1/spaces/{space}/effects", s.effects},
		{"GET /v1/spaces/{space}/export", s.export},
		{"GET /v1/spaces/{space}/members", s.members},
		{"POST /v1/spaces/{space}/members", s.grant},
		{"DELETE /v1/spaces/{space}/members/{key}", s.revoke},
		{"GET /v1/spaces/{space}/invites", s.invites},
		{"POST /v1/spaces/{space}/invites", s.invite},
		{"DELETE /v1/spaces/{space}/invites/{invite}", s.revokeInvite},
		{"POST /v1/spaces/{space}/invites/{invite}/settle", s.settleInvite},
		{"POST /v1/join", s.join},
		{"POST /v1/import", s.importBundle},
		{"GET /v1/sinks", s.sinks},
		{"POST /v1/sinks/{name}/reset", s.resetSink},
		{"GET /v1/sinks/{name}/parked", s.parkedEffects},
		{"POST /v1/sinks/{name}/retry", s.retrySink},
		{"POST /v1/token/rotate", s.rotateToken},
	}
}

// Patterns lists the method and path of every route NewHandler serves
// itself (the running node adds its own through Config.Extra).
func Patterns() []string {
	out := []string{"GET /healthz"}
	for _, rt := range (&server{}).routes() {
		out = append(out, rt.pattern)
	}
	return out
}

// public serves a route that needs no token.
func (s *server) public(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// private checks Host, Origin, the token and the body's type and size
// before h runs.
func (s *server) private(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.admit(r); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

func (s *server) admit(r *http.Request) error {
	if !s.hosts.allows(r.Host) {
		return fmt.Errorf("%w: host %q is not a name of this node (use an IP address or localhost, or add the name with --http-name)", ErrForbidden, r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
		return fmt.Errorf("%w: cross-site request from origin %q", ErrForbidden, o)
	}
	want := s.cfg.Token()
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrUnauthenticated
	}
	return nil
}

// sameOrigin reports whether an Origin header names the host the request
// was sent to.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	k := classify(err)
	we := wireError{Error: err.Error(), Code: k.code}
	var me *replica.MutationError
	if errors.As(err, &me) {
		we.Operation = me.Index + 1
	}
	var le *lineError
	if errors.As(err, &le) {
		we.Operation = le.line
	}
	if k.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if k.status >= 500 && k.status != http.StatusInsufficientStorage && k.status != http.StatusServiceUnavailable {
		s.cfg.Logger.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, k.status, we)
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", TypeJSON)
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// body reads a request body of an accepted type, within limit and within
// the in-flight budget, as valid UTF-8. release returns the budget.
func (s *server) body(r *http.Request, limit int64, types ...string) (data []byte, release func(), err error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	ok := false
	for _, t := range types {
		ok = ok || mt == t
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w: Content-Type %q: this route takes %s", ErrForbidden, r.Header.Get("Content-Type"), strings.Join(types, " or "))
	}
	want := limit
	if r.ContentLength >= 0 {
		if r.ContentLength > limit {
			return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, r.ContentLength, limit)
		}
		want = r.ContentLength
	}
	if release, err = s.reserve(want); err != nil {
		return nil, nil, err
	}
	data, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if err == nil && !utf8.Valid(data) {
		err = fmt.Errorf("%w: request body is not valid UTF-8", service.ErrInvalidInput)
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	return data, release, nil
}

// reserve takes n bytes of the in-flight budget. A request alone may
// always proceed (its own limit bounds it); beyond that, the node answers
// 503 rather than queue memory.
func (s *server) reserve(n int64) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight > 0 && s.inflight+n > s.cfg.MaxInflightBytes {
		return nil, fmt.Errorf("%w: %d request bytes in flight, limit %d; retry shortly", ErrBusy, s.inflight, s.cfg.MaxInflightBytes)
	}
	s.inflight += n
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.inflight -= n
			s.mu.Unlock()
		})
	}, nil
}

// decodeJSON decodes a request body into v, keeping numbers exact.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: JSON body: %v", service.ErrInvalidInput, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: JSON body: trailing data", service.ErrInvalidInput)
	}
	return nil
}

func (s *server) jsonBody(r *http.Request, v any) error {
	data, release, err := s.body(r, s.cfg.MaxBodyBytes, TypeJSON)
	if err != nil {
		return err
	}
	defer release()
	return decodeJSON(data, v)
}

func (s *server) spaces(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Spaces(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) createSpace(w http.ResponseWriter, r *http.Request) error {
	var req service.CreateSpace
	if err := s.jsonBody(r, &req); err != nil {
		return err
	}
	out, err := s.svc.CreateSpace(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (s *server) status(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Status(r.Context(), spaceOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) upgrade(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Schema string `json:"schema"`
	}
	if err := s.jsonBody(r, &req); err != nil {
		return err
	}
	out, err := s.svc.UpgradeSchema(r.Context(), spaceOf(r), req.Schema)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) query(w http.ResponseWriter, r *http.Request) error {
	where := map[string]string{}
	for k, v := range r.URL.Query() {
		where[k] = v[0]
	}
	out, err := s.svc.Query(r.Context(), spaceOf(r), r.PathValue("coll"), where)
	if err != nil {
		return err
	}
	if out == nil {
		out = []service.Doc{}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) put(w http.ResponseWriter, r *http.Request) error {
	var doc map[string]any
	if err := s.jsonBody(r, &doc); err != nil {
		return err
	}
	if doc == nil {
		return fmt.Errorf("%w: want a JSON object", service.ErrInvalidInput)
	}
	out, err := s.svc.Put(r.Context(), spaceOf(r), r.PathValue("coll"), r.PathValue("id"), doc)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if out.Created {
		code = http.StatusCreated
	}
	return writeJSON(w, code, out)
}

func (s *server) delete(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Delete(r.Context(), spaceOf(r), r.PathValue("coll"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) get(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Get(r.Context(), spaceOf(r), r.PathValue("coll"), r.PathValue("id"), r.URL.Query().Get("at"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) history(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.History(r.Context(), spaceOf(r), r.PathValue("coll"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// lineError names the line of an NDJSON body that does not parse.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

// ParseMutations reads a batch: NDJSON (one operation per line) or a JSON
// array of operations. A line that does not parse is named by its number.
func ParseMutations(data []byte, ndjson bool) ([]replica.Mutation, error) {
	if !ndjson {
		var muts []replica.Mutation
		if err := decodeJSON(data, &muts); err != nil {
			return nil, err
		}
		return muts, nil
	}
	lines := bytes.Split(data, []byte("\n"))
	parsed := make([]replica.Mutation, len(lines))
	present := make([]bool, len(lines))
	errs := make([]error, len(lines))
	// Lines are independent: a large batch is decoded on every core (the
	// commit that follows runs on one).
	workers := min(runtime.GOMAXPROCS(0), 1+len(lines)/256)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(lines); i += workers {
				line := bytes.TrimSpace(lines[i])
				if len(line) == 0 {
					continue
				}
				present[i] = true
				if err := decodeJSON(line, &parsed[i]); err != nil {
					errs[i] = &lineError{line: i + 1, err: err}
				}
			}
		})
	}
	wg.Wait()
	muts := make([]replica.Mutation, 0, len(lines))
	for i := range lines {
		if errs[i] != nil {
			return nil, errs[i] // the first bad line, as a serial parse would name it
		}
		if present[i] {
			muts = append(muts, parsed[i])
		}
	}
	return muts, nil
}

func (s *server) batch(w http.ResponseWriter, r *http.Request) error {
	data, release, err := s.body(r, s.cfg.MaxBatchBytes, TypeNDJSON, TypeJSON)
	if err != nil {
		return err
	}
	defer release()
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	muts, err := ParseMutations(data, mt == TypeNDJSON)
	if err != nil {
		return err
	}
	if len(muts) == 0 {
		return fmt.Errorf("%w: empty batch", service.ErrInvalidInput)
	}
	out, err := s.svc.Batch(r.Context(), spaceOf(r), muts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s=%q: want a non-negative integer", service.ErrInvalidInput, name, v)
	}
	return n, nil
}

func (s *server) log(w http.ResponseWriter, r *http.Request) error {
	limit, err := intParam(r, "limit", 0)
	if err != nil {
		return err
	}
	out, err := s.svc.Log(r.Context(), spaceOf(r), limit)
	if err != nil {
		return err
	}
	if out == nil {
		out = []replica.Entry{}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) conflicts(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Conflicts(r.Context(), spaceOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) rollbacks(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Rollbacks(r.Context(), spaceOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) violations(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Violations(r.Context(), spaceOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// Follower streams a space's effect log: fn gets every effect from from
// on, in order, and Follow returns when ctx ends or fn fails.
type Follower interface {
	Follow(ctx context.Context, space string, from uint64, fn func([]eventstream.Effect) error) error
}

func (s *server) effects(w http.ResponseWriter, r *http.Request) error {
	from := uint64(1)
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: from=%q: want an LSN", service.ErrInvalidInput, v)
		}
		from = max(n, 1) // LSNs start at 1; from=0 means from the start
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		limit, err := intParam(r, "limit", 1000)
		if err != nil {
			return err
		}
		out, err := s.svc.Effects(r.Context(), spaceOf(r), from, limit)
		if err != nil {
			return err
		}
		if out == nil {
			out = []eventstream.Effect{}
		}
		return writeJSON(w, http.StatusOK, out)
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			from = n + 1
		}
	}
	f, ok := s.svc.(Follower)
	fl, canFlush := w.(http.Flusher)
	if !ok || !canFlush {
		return fmt.Errorf("%w: streaming is not available here", service.ErrInvalidInput)
	}
	if _, err := s.svc.Status(r.Context(), spaceOf(r)); err != nil {
		return err // unknown space: a plain error, before the stream starts
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	err := f.Follow(r.Context(), spaceOf(r), from, func(effs []eventstream.Effect) error {
		for _, e := range effs {
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: effect\ndata: %s\n\n", e.LSN, data); err != nil {
				return err
			}
		}
		fl.Flush()
		return nil
	})
	if err != nil && r.Context().Err() == nil {
		s.cfg.Logger.Warn("effect stream ended", "err", err)
	}
	return nil
}

func (s *server) export(w http.ResponseWriter, r *http.Request) error {
	var since []string
	if v := r.URL.Query().Get("since"); v != "" {
		since = strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' })
	}
	w.Header().Set("Content-Type", TypeBundle)
	w.Header().Set("Trailer", "X-Tributary-Changes, X-Tributary-Heads, X-Tributary-Error")
	ex, err := s.svc.Export(r.Context(), spaceOf(r), since, w)
	if err != nil {
		w.Header().Set("X-Tributary-Error", strings.ReplaceAll(err.Error(), "\n", " "))
		return nil
	}
	heads := make([]string, len(ex.Heads))
	for i, h := range ex.Heads {
		heads[i] = h.String()
	}
	w.Header().Set("X-Tributary-Changes", strconv.Itoa(ex.Changes))
	w.Header().Set("X-Tributary-Heads", strings.Join(heads, ","))
	return nil
}

func (s *server) importBundle(w http.ResponseWriter, r *http.Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != TypeBundle {
		return fmt.Errorf("%w: Content-Type %q: this route takes %s", ErrForbidden, r.Header.Get("Content-Type"), TypeBundle)
	}
	if r.ContentLength > bundle.MaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, r.ContentLength, bundle.MaxSize)
	}
	out, err := s.svc.Import(r.Context(), http.MaxBytesReader(w, r.Body, bundle.MaxSize))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) members(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Members(r.Context(), spaceOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) grant(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Key  string `json:"key"`
		Role string `json:"role"`
	}
	if err := s.jsonBody(r, &req); err != nil {
		return err
	}
	out, err := s.svc.Grant(r.Context(), spaceOf(r), req.Key, req.Role)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) revoke(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Revoke(r.Context(), spaceOf(r), r.PathValue("key"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) invites(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Invites(r.Context(), spaceOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// inviteRequest carries the TTL as text ("168h") on the wire.
type inviteRequest struct {
	TTL   string   `json:"ttl"`
	Addrs []string `json:"addrs,omitempty"`
	Role  string   `json:"role,omitempty"`
}

func (s *server) invite(w http.ResponseWriter, r *http.Request) error {
	var req inviteRequest
	if err := s.jsonBody(r, &req); err != nil {
		return err
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil {
		return fmt.Errorf("%w: ttl %q: %v", service.ErrInvalidInput, req.TTL, err)
	}
	out, err := s.svc.Invite(r.Context(), spaceOf(r), service.InviteRequest{TTL: ttl, Addrs: req.Addrs, Role: req.Role})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (s *server) revokeInvite(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.RevokeInvite(r.Context(), spaceOf(r), r.PathValue("invite"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) settleInvite(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Member string `json:"member"`
	}
	if err := s.jsonBody(r, &req); err != nil {
		return err
	}
	out, err := s.svc.SettleInvite(r.Context(), spaceOf(r), r.PathValue("invite"), req.Member)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) join(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Code string `json:"code"`
	}
	if err := s.jsonBody(r, &req); err != nil {
		return err
	}
	out, err := s.svc.Join(r.Context(), req.Code)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) sinks(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.Sinks(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) resetSink(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.ResetSink(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"reset": r.PathValue("name")})
}

func (s *server) parkedEffects(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.ParkedEffects(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) retrySink(w http.ResponseWriter, r *http.Request) error {
	out, err := s.svc.RetrySink(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) rotateToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.RotateToken(r.Context()); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"rotated": "the new token is in the home's api-token file"})
}

// hostRule decides which Host headers the API answers. DNS rebinding
// needs a name the attacker controls, so IP literals (any port: port
// forwards and container port maps change it) and "localhost" are safe;
// any other name must be the bound host or configured (--http-name).
type hostRule struct {
	names map[string]bool // lower case, with or without port
}

func newHostRule(addr string, names []string) hostRule {
	h := hostRule{names: map[string]bool{}}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" && net.ParseIP(host) == nil {
		h.names[strings.ToLower(host)] = true
	}
	for _, n := range names {
		h.names[strings.ToLower(n)] = true
	}
	return h
}

func (h hostRule) allows(hostHeader string) bool {
	hh := strings.ToLower(hostHeader)
	if h.names[hh] {
		return true
	}
	host, _, err := net.SplitHostPort(hh)
	if err != nil {
		host = hh
	}
	if h.names[host] || host == "localhost" {
		return true
	}
	return net.ParseIP(strings.Trim(host, "[]")) != nil
}

// spaceOf is the {space} of the path; "-" names the home's only space.
func spaceOf(r *http.Request) string {
	if s := r.PathValue("space"); s != "-" {
		return s
	}
	return ""
}
