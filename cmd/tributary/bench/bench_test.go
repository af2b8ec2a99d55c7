package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := summarize(ds)
	if s.p50 != 50*time.Millisecond || s.p99 != 99*time.Millisecond || s.max != 100*time.Millisecond {
		t.Fatalf("summary %+v", s)
	}
	if ds[0] != 100*time.Millisecond {
		t.Fatal("summarize reordered its input")
	}
	if (summarize(nil) != latencies{}) {
		t.Fatal("summary of nothing")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Binary = "/bin/true"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Binary = "" }, "binary"},
		{func(c *Config) { c.Scenarios = []string{"http", "nope"} }, `unknown scenario "nope"`},
		{func(c *Config) { c.Scenarios = nil }, "no scenario"},
		{func(c *Config) { c.LoadDocs = 0 }, "load docs 0"},
		{func(c *Config) { c.CatchupDocs = []int{10, -1} }, "catch-up docs -1"},
		{func(c *Config) { c.HTTPClients = nil }, "at least one value"},
		{func(c *Config) { c.MissingHeld = 0 }, "missing held 0"},
		{func(c *Config) { c.MissingDocs = -3 }, "missing docs -3"},
		{func(c *Config) { c.VisibilityTime = time.Millisecond }, "visibility time"},
	} {
		c := ok
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", c, err, tc.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	rep := &Report{Machine: Machine{CPUs: 2, Model: "Test CPU", Go: "go1", OS: "linux/amd64", Commit: "abc", Modified: true}}
	tr := &trial{h: &harness{}, name: "http"}
	tr.add(Result{Case: "clients=1", Metric: "writes", Unit: "docs/s", Value: 250}, &Baseline{What: "floor", Value: 1000})
	tr.add(Result{Case: "n=1", Metric: "time", Unit: "s", Value: 1.5, Note: "a note"}, nil)
	rep.Results = tr.results
	rep.Failures = []Failure{{Scenario: "rss", Error: "boom"}}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"machine: 2 CPUs, Test CPU", "commit abc (modified)", "SCENARIO", "250 docs/s", "1000 docs/s", "0.250", "floor", "1.50 s", "a note", "FAILED rss: boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if rep.Results[0].Ratio != 0.25 || rep.Results[0].Scenario != "http" {
		t.Errorf("result %+v", rep.Results[0])
	}
}

// TestDriveAndPaced: every index is called once, from the clients asked.
func TestDriveAndPaced(t *testing.T) {
	ctx := context.Background()
	seen := make([]atomic.Int32, 500)
	d, err := drive(ctx, 8, len(seen), func(ctx context.Context, i int) error { seen[i].Add(1); return nil })
	if err != nil || d.rate <= 0 {
		t.Fatalf("drive: %+v %v", d, err)
	}
	rate, err := paced(ctx, 5000, len(seen), 4, func(ctx context.Context, i int) error { seen[i].Add(1); return nil })
	if err != nil || rate <= 0 {
		t.Fatalf("paced: %v %v", rate, err)
	}
	for i := range seen {
		if n := seen[i].Load(); n != 2 {
			t.Fatalf("index %d called %d times, want once by each", i, n)
		}
	}
	if _, err := drive(ctx, 4, 100, func(ctx context.Context, i int) error {
		if i == 7 {
			return fmt.Errorf("refused")
		}
		return nil
	}); err == nil || !strings.Contains(err.Error(), "write 7: refused") {
		t.Fatalf("drive with a failing call: %v", err)
	}
}

// TestAPIClientReads: the metrics, sinks and effect stream as a node
// serves them.
func TestAPIClientReads(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"token"}`, http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/metrics":
			fmt.Fprintln(w, `tributary_mesh_reconcile_rounds_total{space="a",transport="libp2p"} 3`)
			fmt.Fprintln(w, `tributary_mesh_reconcile_rounds_total{space="b",transport="nats"} 2`)
			fmt.Fprintln(w, `tributary_mesh_syncs_total{space="a",transport="libp2p",result="started"} 4`)
			fmt.Fprintln(w, `tributary_mesh_syncs_total{space="a",transport="libp2p",result="failed"} 1`)
			fmt.Fprintln(w, `tributary_mesh_peers{space="a",transport="libp2p"} 1`)
		case "/v1/sinks":
			fmt.Fprintln(w, `[{"name":"pg","checkpoint":5,"last_lsn":7,"running":true}]`)
		case "/v1/spaces/s/effects":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "id: 1\nevent: effect\ndata: {\"lsn\":1,\"id\":\"v00000001\"}\n\nid: 2\nevent: effect\ndata: {\"lsn\":2,\"id\":\"x\"}\n\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := newAPIClient(srv.URL, "tok", 1)
	m, err := c.metrics(ctx)
	if err != nil || m[seriesRounds] != 5 || m["tributary_mesh_peers"] != 1 || m[seriesSyncsStarted] != 4 || m[seriesSyncsFailed] != 1 || m["tributary_mesh_syncs_total"] != 5 {
		t.Fatalf("metrics %v %v", m, err)
	}
	s, err := c.sink(ctx, "pg")
	if err != nil || s.Checkpoint != 5 || !s.Running {
		t.Fatalf("sink %+v %v", s, err)
	}
	if _, err := c.sink(ctx, "other"); err == nil {
		t.Fatal("a sink the node does not run")
	}
	var ids []string
	err = c.follow(ctx, "s", 1, make(chan struct{}), func(id string, _ time.Time) { ids = append(ids, id) })
	if strings.Join(ids, ",") != "v00000001,x" || err == nil || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("follow: %v %v", ids, err)
	}
	if i, ok := visIndex(ids[0], 10); !ok || i != 1 {
		t.Fatalf("visIndex %d %v", i, ok)
	}
	if err := newAPIClient(srv.URL, "wrong", 1).call(ctx, "GET", "/v1/sinks", nil, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}
}

// TestItems: the same seed gives the same documents, as JSON the schema
// takes.
func TestItems(t *testing.T) {
	a, b := genItem(7, "x", 3), genItem(7, "x", 3)
	if a != b || a.ID != "x00000003" || a == genItem(8, "x", 3) {
		t.Fatalf("items %+v %+v", a, b)
	}
	if !strings.Contains(string(a.line()), `"op":"put"`) || !strings.Contains(string(a.body()), `"note"`) {
		t.Fatalf("line %s body %s", a.line(), a.body())
	}
}
