package main

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
	"github.com/tributary-sync/tributary/cmd/tributary/bench"
)

// exportedSeries is every series the node promises (deploy/grafana and
// deploy/prometheus use them; docs/CONFIG.md lists them).
var exportedSeries = []string{
	"tributary_http_requests_total", "tributary_http_request_duration_seconds",
	"tributary_replica_changes", "tributary_replica_invalid_changes", "tributary_replica_heads",
	"tributary_replica_orphans", "tributary_replica_members", "tributary_replica_contested_invites",
	"tributary_effect_log_last_lsn",
	"tributary_mesh_peers", "tributary_mesh_changes_received_total", "tributary_mesh_changes_applied_total",
	"tributary_mesh_changes_rejected_total", "tributary_mesh_bytes_sent_total", "tributary_mesh_bytes_received_total",
	"tributary_mesh_reconcile_rounds_total", "tributary_mesh_syncs_total", "tributary_transport_up",
	"tributary_sink_up", "tributary_sink_checkpoint_lsn", "tributary_sink_lag_effects", "tributary_sink_lag_seconds",
	"tributary_sink_applied_total", "tributary_sink_parked", "tributary_sink_failures_total",
	"tributary_sink_batch_duration_seconds", "tributary_ready",
}

// TestBridgeHealthAndMetrics runs the bridge as a child process with a
// Postgres sink, a memory sink and a sink whose database is down, and
// NATS configured but unreachable: the healthy sinks stay caught up,
// /readyz names the failing sink and NATS, and /metrics parses with the
// Prometheus text parser and carries every promised series.
func TestBridgeHealthAndMetrics(t *testing.T) {
	dbURL := pgtest.Database(t)
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	down := "postgres://tributary@" + freeAddr(t) + "/nothing?sslmode=disable&connect_timeout=2"
	cfg := writeConfig(t, fmt.Sprintf(`nats: {urls: ["nats://%s"], connect_timeout: 500ms}
runner: {ready_max_lag: 0}
sinks:
  - {name: reports, type: postgres, url: %q}
  - {name: view, type: memory}
  - {name: broken, type: postgres, url: %q}
`, freeAddr(t), dbURL, down))
	info := startNode(t, home, "--config", cfg, "--p2p", "/ip4/127.0.0.1/tcp/0")
	a := newAPIClient(t, home, info)
	for i := range 30 {
		a.call("PUT", fmt.Sprintf("/v1/spaces/%s/docs/Author/a%d", space, i), `{"name":"A"}`, 201)
	}
	eventually(t, "the healthy sinks catch up", func() bool {
		var sinks []struct {
			Name  string `json:"name"`
			State string `json:"state"`
			Lag   uint64 `json:"lag"`
		}
		ok(t, home, &sinks, "sinks")
		caught := 0
		for _, s := range sinks {
			if (s.Name == "reports" || s.Name == "view") && s.State == "running" && s.Lag == 0 {
				caught++
			}
		}
		return caught == 2
	})
	code, body := a.raw("GET", "/readyz", "", nil)
	if code != 503 || !strings.Contains(string(body), "sink broken") || !strings.Contains(string(body), "nats") ||
		strings.Contains(string(body), "sink reports") || strings.Contains(string(body), "sink view") {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", a.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range append(exportedSeries, bench.Series()...) {
		if _, ok := families[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	value := func(name string, labels map[string]string) float64 {
		for _, m := range families[name].GetMetric() {
			match := true
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == k && lp.GetValue() == v)
				}
				match = match && found
			}
			if match {
				if g := m.GetGauge(); g != nil {
					return g.GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("%s%v not exported", name, labels)
		return 0
	}
	if value("tributary_sink_up", map[string]string{"sink": "broken"}) != 0 || value("tributary_sink_up", map[string]string{"sink": "reports"}) != 1 {
		t.Error("tributary_sink_up does not tell the broken sink from the healthy one")
	}
	if got := value("tributary_sink_checkpoint_lsn", map[string]string{"sink": "reports"}); got != 30 {
		t.Errorf("reports checkpoint %v, want 30", got)
	}
	if value("tributary_effect_log_last_lsn", map[string]string{"space": space}) != 30 || value("tributary_ready", nil) != 0 {
		t.Error("effect log head or readiness wrong")
	}
	if value("tributary_transport_up", map[string]string{"transport": "nats"}) != 0 || value("tributary_transport_up", map[string]string{"transport": "libp2p"}) != 1 {
		t.Error("transport_up wrong")
	}
}

// TestNATSReachedLate replays finding 12 for NATS: the server is down when
// the node starts; the node runs anyway (libp2p, the API), says so in
// /readyz, and replicates over NATS once the server is there.
func TestNATSReachedLate(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	addr := freeAddr(t)
	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	info := startNode(t, home, "--nats", "nats://"+addr, "--p2p", "/ip4/127.0.0.1/tcp/0")
	a := newAPIClient(t, home, info)
	a.call("PUT", "/v1/spaces/"+space+"/docs/Author/early", `{"name":"Early"}`, 201)
	if code, body := a.raw("GET", "/readyz", "", nil); code != 503 || !strings.Contains(string(body), "nats") {
		t.Fatalf("/readyz with NATS down: %d %s", code, body)
	}
	s, err := natsserver.NewServer(&natsserver.Options{Host: host, Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	eventually(t, "the node reaches NATS", func() bool {
		code, _ := a.raw("GET", "/readyz", "", nil)
		return code == 200
	})
	var st struct {
		Mesh []struct {
			Transport string `json:"transport"`
		} `json:"mesh"`
	}
	ok(t, home, &st, "status", "--space", space)
	transports := ""
	for _, m := range st.Mesh {
		transports += m.Transport + " "
	}
	if !strings.Contains(transports, "nats") {
		t.Fatalf("the space does not replicate over NATS once reached: %q", transports)
	}
}

// TestSIGTERMUnderLoad: SIGTERM while clients write hard stops the node
// within 10 s; every write it acknowledged is there after a restart, and
// the Postgres sink resumes from its saved checkpoint to the same rows.
func TestSIGTERMUnderLoad(t *testing.T) {
	dbURL := pgtest.Database(t)
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	cfg := writeConfig(t, fmt.Sprintf("sinks:\n  - {name: reports, type: postgres, url: %q}\n", dbURL))
	cmd, first := startRaw(t, home, nil, "--config", cfg)
	a := newAPIClient(t, home, waitStarted(t, first))
	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				req, _ := http.NewRequest("PUT", a.base+"/v1/spaces/"+space+"/docs/Author/"+id, strings.NewReader(`{"name":"load"}`))
				req.Header.Set("Authorization", "Bearer "+a.token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the node is going away
				}
				resp.Body.Close()
				if resp.StatusCode == 201 {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	began := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the node exited with %v on SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the node did not stop within 10 s of SIGTERM under load")
	}
	stopped := time.Since(began).Round(time.Millisecond)
	close(stop)
	wg.Wait() // the writers are done with acked from here on
	t.Logf("stopped %s after SIGTERM with %d writes acknowledged", stopped, len(acked))
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before SIGTERM: the test loaded nothing")
	}
	var docs []map[string]any
	ok(t, home, &docs, "query", "--space", space, "Author")
	have := map[string]bool{}
	for _, d := range docs {
		have[d["id"].(string)] = true
	}
	for id := range acked {
		if !have[id] {
			t.Fatalf("acknowledged write %s lost", id)
		}
	}
	startNode(t, home, "--config", cfg)
	eventually(t, "the sink resumes to the last LSN", func() bool {
		var sinks []struct {
			Checkpoint uint64 `json:"checkpoint"`
			LastLSN    uint64 `json:"last_lsn"`
		}
		ok(t, home, &sinks, "sinks")
		return len(sinks) == 1 && sinks[0].Checkpoint == sinks[0].LastLSN && sinks[0].LastLSN > 0
	})
}
