package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiClient calls a node's HTTP API as a program would: JSON bodies and
// the bearer token from the home.
type apiClient struct {
	base, token string
	hc          *http.Client
}

// newHTTPClient keeps up to conns connections open to one host, so
// concurrent clients do not reconnect per request.
func newHTTPClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	return &http.Client{Transport: tr}
}

func newAPIClient(base, token string, conns int) *apiClient {
	return &apiClient{base: base, token: token, hc: newHTTPClient(conns)}
}

func (c *apiClient) send(ctx context.Context, method, path string, body []byte, ctype string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// call sends a request and decodes the JSON reply into out (nil: drop it).
func (c *apiClient) call(ctx context.Context, method, path string, body []byte, out any) error {
	ctype := ""
	if body != nil {
		ctype = "application/json"
	}
	resp, err := c.send(ctx, method, path, body, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func spacePath(space string) string { return "/v1/spaces/" + url.PathEscape(space) }

// put writes one document (PUT: create or merge).
func (c *apiClient) put(ctx context.Context, space, id string, body []byte) error {
	return c.call(ctx, "PUT", spacePath(space)+"/docs/"+collection+"/"+url.PathEscape(id), body, nil)
}

// spaceStatus is the part of GET /v1/spaces/{space} the bench reads.
type spaceStatus struct {
	Space struct {
		Heads   []string `json:"heads"`
		Changes int      `json:"changes"`
	} `json:"space"`
	Effects struct {
		Last uint64 `json:"last_lsn"`
	} `json:"effects"`
	Mesh []struct {
		Peers []string `json:"peers"`
	} `json:"mesh"`
}

func (s spaceStatus) peers() int {
	n := 0
	for _, m := range s.Mesh {
		n += len(m.Peers)
	}
	return n
}

func (c *apiClient) status(ctx context.Context, space string) (spaceStatus, error) {
	var st spaceStatus
	return st, c.call(ctx, "GET", spacePath(space), nil, &st)
}

// sinkStatus is one sink of GET /v1/sinks.
type sinkStatus struct {
	Name       string `json:"name"`
	State      string `json:"state"` // connecting, failing, refused, running, stopped
	Error      string `json:"error"`
	Checkpoint uint64 `json:"checkpoint"`
	LastLSN    uint64 `json:"last_lsn"`
	Applied    uint64 `json:"applied"`
	Running    bool   `json:"running"`
	LastError  string `json:"last_error"`
	Fatal      string `json:"fatal"`
}

func (c *apiClient) sink(ctx context.Context, name string) (sinkStatus, error) {
	var all []sinkStatus
	if err := c.call(ctx, "GET", "/v1/sinks", nil, &all); err != nil {
		return sinkStatus{}, err
	}
	for _, s := range all {
		if s.Name == name {
			switch {
			case s.Fatal != "":
				return s, fmt.Errorf("sink %s stopped: %s", name, s.Fatal)
			case s.Error != "":
				return s, fmt.Errorf("sink %s is %s: %s", name, s.State, s.Error)
			}
			s.Running = s.Running && (s.State == "" || s.State == "running")
			return s, nil
		}
	}
	return sinkStatus{}, fmt.Errorf("the node runs no sink %q", name)
}

// Series the bench reads from a node's /metrics (a test checks the node
// exports each family).
const (
	seriesRounds          = "tributary_mesh_reconcile_rounds_total"
	seriesBytesReceived   = "tributary_mesh_bytes_received_total"
	seriesChangesReceived = "tributary_mesh_changes_received_total"
	seriesChangesApplied  = "tributary_mesh_changes_applied_total"
	seriesSyncsStarted    = `tributary_mesh_syncs_total{result="started"}`
	seriesSyncsFailed     = `tributary_mesh_syncs_total{result="failed"}`
)

// Series lists the metric families the bench reads.
func Series() []string {
	out := []string{}
	for _, s := range []string{seriesRounds, seriesBytesReceived, seriesChangesReceived, seriesChangesApplied, seriesSyncsStarted, seriesSyncsFailed} {
		name, _, _ := strings.Cut(s, "{")
		out = append(out, name)
	}
	return out
}

// metrics reads /metrics: each series by name, summed over its labels,
// and by name with one of its labels (name{label="value"}), summed over
// the others.
func (c *apiClient) metrics(ctx context.Context) (map[string]float64, error) {
	resp, err := c.send(ctx, "GET", "/metrics", nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		out[name] += v
		for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			if l != "" {
				out[name+"{"+l+"}"] += v
			}
		}
	}
	return out, sc.Err()
}

// exportSize is the size of the bundle of changes a peer at heads lacks:
// the encoded size of what catch-up must carry.
func (c *apiClient) exportSize(ctx context.Context, space string, since []string) (bytes int64, changes int, err error) {
	q := ""
	if len(since) > 0 {
		q = "?since=" + url.QueryEscape(strings.Join(since, ","))
	}
	resp, err := c.send(ctx, "GET", spacePath(space)+"/export"+q, nil, "")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if bytes, err = io.Copy(io.Discard, resp.Body); err != nil {
		return 0, 0, fmt.Errorf("export: %w", err)
	}
	if msg := resp.Trailer.Get("X-Tributary-Error"); msg != "" {
		return 0, 0, fmt.Errorf("export: %s", msg)
	}
	changes, _ = strconv.Atoi(resp.Trailer.Get("X-Tributary-Changes"))
	return bytes, changes, nil
}

// follow reads the space's effect stream (server-sent events) from LSN
// from and calls seen with each effect's document id and when it came,
// until ctx ends. ready is closed once the stream is open.
func (c *apiClient) follow(ctx context.Context, space string, from uint64, ready chan<- struct{}, seen func(id string, at time.Time)) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+spacePath(space)+"/effects?from="+strconv.FormatUint(from, 10), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("effect stream: %s", resp.Status)
	}
	close(ready)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 16<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		at := time.Now()
		var e struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return fmt.Errorf("effect stream: %v", err)
		}
		seen(e.ID, at)
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("effect stream: %w", err)
	}
	return fmt.Errorf("effect stream ended")
}
