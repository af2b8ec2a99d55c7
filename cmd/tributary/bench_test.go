package main

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/cmd/tributary/bench"
)

// TestBenchSmoke runs every scenario of `tributary bench` at tiny sizes
// through the binary (nodes, libp2p, PostgreSQL and all) and checks that
// the table and the JSON report are well formed and agree, and that each
// node wrote its CPU profile. It asserts no speed.
func TestBenchSmoke(t *testing.T) {
	dir := t.TempDir()
	out, profiles := filepath.Join(dir, "bench.json"), filepath.Join(dir, "profiles")
	cmd := exec.Command(bin, "bench", "--out", out, "--cpuprofile", profiles, "--dir", filepath.Join(dir, "homes"),
		"--http-clients", "1,2", "--http-writes", "20", "--load-docs", "200", "--load-batch", "50",
		"--replicate-docs", "100", "--catchup-docs", "100", "--missing-held", "200", "--missing-docs", "20", "--backfill-docs", "100", "--rss-docs", "100",
		"--visibility-rate", "50", "--visibility-time", "1s")
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	table, err := cmd.Output()
	if err != nil {
		t.Fatalf("tributary bench: %v\nstdout:\n%s\nstderr:\n%s", err, table, stderr.String())
	}

	var rep bench.Report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("--out is not a JSON report: %v\n%s", err, b)
	}
	if rep.Machine.CPUs < 1 || rep.Machine.Go == "" || rep.Machine.Commit == "" || len(rep.Failures) > 0 {
		t.Fatalf("report machine %+v, failures %+v", rep.Machine, rep.Failures)
	}
	per := map[string]int{}
	for _, r := range rep.Results {
		per[r.Scenario]++
		if r.Metric == "" || r.Unit == "" || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			t.Errorf("malformed result %+v", r)
		}
		if r.Baseline != nil && (r.Baseline.What == "" || math.IsNaN(r.Baseline.Value)) {
			t.Errorf("malformed baseline of %+v", r)
		}
		if !strings.Contains(string(table), r.Metric) {
			t.Errorf("the table lacks %q", r.Metric)
		}
	}
	for _, s := range bench.Scenarios {
		if per[s] == 0 {
			t.Errorf("no result for scenario %s", s)
		}
	}

	lines := strings.Split(strings.TrimSpace(string(table)), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "tributary bench") || !strings.HasPrefix(lines[1], "machine: ") {
		t.Fatalf("table header:\n%s", table)
	}
	header := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "SCENARIO") {
			header = i
		}
	}
	if header < 0 {
		t.Fatalf("no column header in:\n%s", table)
	}
	rows := 0
	for _, l := range lines[header+1:] {
		if strings.HasPrefix(l, "profile: ") {
			if fi, err := os.Stat(strings.TrimPrefix(l, "profile: ")); err != nil || fi.Size() == 0 {
				t.Errorf("%s: %v", l, err)
			}
			continue
		}
		rows++
	}
	if rows != len(rep.Results) {
		t.Errorf("the table has %d rows, the report %d results", rows, len(rep.Results))
	}
	if len(rep.Profiles) == 0 {
		t.Error("no CPU profile written")
	}
}

// TestBenchRefusesBadArguments: an unknown scenario or a size that cannot
// run is refused before anything starts.
func TestBenchRefusesBadArguments(t *testing.T) {
	home := t.TempDir()
	fails(t, home, []string{"unknown scenario", `"warp"`, "http"}, "bench", "--scenarios", "http,warp")
	fails(t, home, []string{"load docs 0"}, "bench", "--scenarios", "load", "--load-docs", "0")
}
