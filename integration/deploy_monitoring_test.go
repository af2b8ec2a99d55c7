package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	tnode "github.com/tributary-sync/tributary/cmd/tributary/node"
)

// exported is what the running node serves on /metrics: each series
// with its labels (Prometheus adds instance and job), and which are
// histograms. The dashboard and the alerts may name no other.
type exported struct {
	series     map[string][]string
	histograms map[string]bool
}

var (
	exportedOnce sync.Once
	exportedErr  error
	exportedSet  exported
)

// nodeExports starts the binary on a home with a space, a memory sink and
// libp2p, writes a document so that every series has a sample (a sink
// batch, HTTP requests, a mesh node per space), and reads /metrics with the
// Prometheus text parser. Once per test binary.
func nodeExports(t *testing.T) exported {
	t.Helper()
	exportedOnce.Do(func() { exportedSet, exportedErr = scrapeNode() })
	if exportedErr != nil {
		t.Fatalf("the series the node exports: %v", exportedErr)
	}
	return exportedSet
}

func scrapeNode() (exported, error) {
	var ex exported
	home, err := os.MkdirTemp("", "tributary-metrics-")
	if err != nil {
		return ex, err
	}
	defer os.RemoveAll(home)
	schema, err := filepath.Abs(filepath.Join(repoDir, "cmd", "tributary", "demo_schema.graphql"))
	if err != nil {
		return ex, err
	}
	for _, args := range [][]string{{"init"}, {"space", "create", "--name", "library", "--schema", schema}} {
		if _, err := cli(home, args...); err != nil {
			return ex, err
		}
	}
	cfg := filepath.Join(home, "config.yaml")
	if err := os.WriteFile(cfg, []byte("sinks:\n  - {name: view, type: memory}\n"), 0o600); err != nil {
		return ex, err
	}
	n, err := startRun(home, "--config", cfg, "--p2p", "/ip4/127.0.0.1/tcp/0")
	if err != nil {
		return ex, err
	}
	defer n.cmd.Process.Kill()
	if _, err := cli(home, "put", "--id", "le-guin", "Author", `{"name": "Ursula K. Le Guin"}`); err != nil {
		return ex, err
	}
	ri, ok := tnode.ReadRunInfo(home)
	if !ok {
		return ex, fmt.Errorf("no run.json in %s", home)
	}
	tok, err := os.ReadFile(filepath.Join(home, "api-token"))
	if err != nil {
		return ex, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ex, err = scrapeMetrics(ri.HTTP, strings.TrimSpace(string(tok))); err != nil {
			return ex, err
		}
		if _, ok := ex.series["tributary_sink_batch_duration_seconds"]; ok {
			break // the sink has applied the document
		}
		if time.Now().After(deadline) {
			return ex, fmt.Errorf("/metrics has no tributary_sink_batch_duration_seconds 30s after a write")
		}
	}
	for _, want := range []string{"tributary_ready", "tributary_sink_lag_seconds", "tributary_sink_parked",
		"tributary_mesh_peers", "tributary_http_requests_total"} {
		if _, ok := ex.series[want]; !ok {
			return ex, fmt.Errorf("/metrics lacks %s: %v", want, slices.Sorted(maps.Keys(ex.series)))
		}
	}
	return ex, nil
}

// scrapeMetrics reads a node's /metrics with the Prometheus text parser.
func scrapeMetrics(addr, token string) (exported, error) {
	ex := exported{series: map[string][]string{}, histograms: map[string]bool{}}
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ex, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ex, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return ex, fmt.Errorf("/metrics does not parse: %w", err)
	}
	for name, f := range families {
		if !strings.HasPrefix(name, "tributary_") {
			continue
		}
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		ex.series[name] = slices.Sorted(maps.Keys(labels))
		if f.GetType().String() == "HISTOGRAM" {
			ex.histograms[name] = true
		}
	}
	return ex, nil
}

var (
	seriesName = regexp.MustCompile(`\btributary_[a-zA-Z0-9_]+`)
	selector   = regexp.MustCompile(`\{([^{}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"`)
	grouping   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	labelValue = regexp.MustCompile(`label_values\((?:[^,()]*(?:\{[^}]*\})?\s*,)?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// checkQuery parses a PromQL query loosely: every tributary_ series is one
// the node exports (a histogram's _bucket, _sum and _count included), and
// every label it names is one of those series' (or instance, job, le).
// It returns the series named.
func checkQuery(t *testing.T, where, query string) []string {
	t.Helper()
	ex := nodeExports(t)
	var names []string
	labels := map[string]bool{"instance": true, "job": true, "__name__": true}
	for _, name := range seriesName.FindAllString(query, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b := strings.TrimSuffix(name, suffix); b != name && ex.histograms[b] {
				base = b
				if suffix == "_bucket" {
					labels["le"] = true
				}
			}
		}
		ls, ok := ex.series[base]
		if !ok {
			t.Errorf("%s: %s is not a series the node exports (query: %s)", where, name, query)
			continue
		}
		names = append(names, base)
		for _, l := range ls {
			labels[l] = true
		}
	}
	var used []string
	for _, sel := range selector.FindAllStringSubmatch(query, -1) {
		for _, m := range matcher.FindAllStringSubmatch(sel[1], -1) {
			used = append(used, m[1])
		}
	}
	bare := quoted.ReplaceAllString(query, `""`)
	for _, g := range grouping.FindAllStringSubmatch(bare, -1) {
		for _, l := range strings.Split(g[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				used = append(used, l)
			}
		}
	}
	for _, m := range labelValue.FindAllStringSubmatch(query, -1) {
		used = append(used, m[1])
	}
	for _, l := range used {
		if !labels[l] {
			t.Errorf("%s: label %q belongs to none of the series %v (query: %s)", where, l, names, query)
		}
	}
	return names
}

// TestDeployGrafana: the dashboard's queries name only series the node
// exports, with their labels, use every one of them, and read the data
// source chosen on import.
func TestDeployGrafana(t *testing.T) {
	ex := nodeExports(t)
	path := filepath.Join(deployDir, "grafana", "tributary.json")
	var dash map[string]any
	if err := json.Unmarshal([]byte(readFile(t, path)), &dash); err != nil {
		t.Fatal(err)
	}
	if asString(dash["title"]) == "" || asString(dash["uid"]) == "" || dash["schemaVersion"] == nil {
		t.Error("the dashboard lacks a title, uid or schemaVersion")
	}
	vars := map[string]map[string]any{}
	for _, v := range asList(dig(dash, "templating", "list")) {
		vars[asString(dig(v, "name"))] = asMap(v)
	}
	if ds := vars["datasource"]; asString(ds["type"]) != "datasource" || asString(ds["query"]) != "prometheus" {
		t.Error("no data source variable (type datasource, query prometheus) to pick Prometheus on import")
	}
	used := map[string]bool{}
	var queries []string
	for name, v := range vars {
		if asString(v["type"]) != "query" {
			continue
		}
		q := asString(dig(v, "query", "query"))
		if q == "" {
			q = asString(v["query"])
		}
		queries = append(queries, q)
		for _, s := range checkQuery(t, path+": variable "+name, q) {
			used[s] = true
		}
	}
	ids := map[string]bool{}
	var walk func(panels []any)
	quantiles := map[string]bool{}
	walk = func(panels []any) {
		for _, p := range panels {
			pm := asMap(p)
			title := asString(pm["title"])
			id := asString(pm["id"])
			if ids[id] {
				t.Errorf("%s: panel id %s used twice", path, id)
			}
			ids[id] = true
			if pm["gridPos"] == nil {
				t.Errorf("%s: panel %q has no gridPos", path, title)
			}
			walk(asList(pm["panels"]))
			if asString(pm["type"]) == "row" {
				continue
			}
			targets := asList(pm["targets"])
			if len(targets) == 0 {
				t.Errorf("%s: panel %q has no query", path, title)
			}
			for _, tg := range targets {
				if uid := asString(dig(tg, "datasource", "uid")); uid != "${datasource}" {
					t.Errorf("%s: panel %q reads data source %q, want ${datasource}", path, title, uid)
				}
				q := asString(dig(tg, "expr"))
				queries = append(queries, q)
				for _, s := range checkQuery(t, path+": panel "+title, q) {
					used[s] = true
					if ex.histograms[s] && strings.Contains(q, "histogram_quantile(") {
						quantiles[s] = true
					}
				}
			}
		}
	}
	walk(asList(dash["panels"]))
	var missing []string
	for s := range ex.series {
		if !used[s] {
			missing = append(missing, s)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the node exports %v, which the dashboard shows nowhere: add them to a panel of %s", missing, path)
	}
	for h := range ex.histograms {
		if !quantiles[h] {
			t.Errorf("the dashboard shows no quantiles of %s", h)
		}
	}
	rejected := false
	for _, q := range queries {
		if strings.Contains(q, "tributary_mesh_changes_rejected_total") && regexp.MustCompile(`by \([^)]*\breason\b`).MatchString(q) {
			rejected = true
		}
	}
	if !rejected {
		t.Error("the dashboard does not show rejected changes by reason")
	}
}

// TestDeployAlerts: the rules parse as Prometheus rule groups, name only
// series the node exports (with their labels, annotations included), and
// alert on a lagging sink (for 5m), a sink down, parked effects, a node not
// ready, a space without peers and rejected changes.
func TestDeployAlerts(t *testing.T) {
	path := filepath.Join(deployDir, "prometheus", "alerts.yml")
	doc := yamlDocs(t, path)[0]
	groups := asList(doc["groups"])
	if len(groups) == 0 {
		t.Fatalf("%s has no groups", path)
	}
	have := map[string]bool{}
	template := regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	for _, g := range groups {
		if asString(dig(g, "name")) == "" {
			t.Errorf("%s: a group has no name", path)
		}
		for _, r := range asList(dig(g, "rules")) {
			rule := asMap(r)
			name, expr := asString(rule["alert"]), asString(rule["expr"])
			where := path + ": " + name
			if name == "" || expr == "" {
				t.Errorf("%s: a rule lacks alert or expr: %v", path, rule)
				continue
			}
			d, err := time.ParseDuration(asString(rule["for"]))
			if err != nil {
				t.Errorf("%s: for %q: %v", where, rule["for"], err)
			}
			if asString(dig(rule, "labels", "severity")) == "" || asString(dig(rule, "annotations", "summary")) == "" {
				t.Errorf("%s: no severity label or summary", where)
			}
			series := checkQuery(t, where, expr)
			labels := map[string]bool{"instance": true, "job": true}
			for _, s := range series {
				for _, l := range nodeExports(t).series[s] {
					labels[l] = true
				}
			}
			for _, a := range asMap(rule["annotations"]) {
				for _, m := range template.FindAllStringSubmatch(asString(a), -1) {
					if !labels[m[1]] {
						t.Errorf("%s: annotation uses $labels.%s, which %v lack", where, m[1], series)
					}
				}
			}
			on := func(s string) bool { return contains(series, s) }
			switch {
			case (on("tributary_sink_lag_seconds") || on("tributary_sink_lag_effects")) && regexp.MustCompile(`>\s*[0-9]`).MatchString(expr) && d == 5*time.Minute:
				have["lag"] = true
			case on("tributary_sink_up") && strings.Contains(expr, "== 0"):
				have["sink down"] = true
			case on("tributary_ready") && strings.Contains(expr, "== 0"):
				have["not ready"] = true
			case on("tributary_mesh_changes_rejected_total") && regexp.MustCompile(`(rate|increase)\(`).MatchString(expr):
				have["rejected"] = true
			case on("tributary_sink_parked") && regexp.MustCompile(`>\s*0\b`).MatchString(expr):
				have["parked"] = true
			case on("tributary_mesh_peers") && regexp.MustCompile(`==\s*0\b`).MatchString(expr):
				have["no peers"] = true
			}
		}
	}
	for _, want := range []string{"lag", "sink down", "not ready", "rejected", "parked", "no peers"} {
		if !have[want] {
			t.Errorf("%s has no alert for: %s", path, want)
		}
	}
}

// TestDeployPrometheus: the scrape config loads the alert rules beside it
// and sends the API token (/metrics needs it).
func TestDeployPrometheus(t *testing.T) {
	path := filepath.Join(deployDir, "prometheus", "prometheus.yml")
	doc := yamlDocs(t, path)[0]
	for _, f := range asStrings(doc["rule_files"]) {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), f)); err != nil {
			t.Errorf("%s: rule file %s: %v", path, f, err)
		}
	}
	jobs := asList(doc["scrape_configs"])
	if len(jobs) == 0 {
		t.Fatalf("%s scrapes nothing", path)
	}
	for _, j := range jobs {
		name := asString(dig(j, "job_name"))
		if asString(dig(j, "authorization", "credentials_file")) == "" && asString(dig(j, "bearer_token_file")) == "" {
			t.Errorf("%s: job %s sends no token: /metrics answers 401", path, name)
		}
		if mp := asString(dig(j, "metrics_path")); mp != "" && mp != "/metrics" {
			t.Errorf("%s: job %s scrapes %s", path, name, mp)
		}
	}
}
