package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
)

// TestDeployConfigsLoad: every example config under deploy/config is a
// config this binary accepts.
func TestDeployConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/config/*.yaml")
	if len(files) < 4 {
		t.Fatalf("found %d example configs", len(files))
	}
	types := map[string]bool{}
	for _, f := range files {
		cfg, err := loadRunConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cfg.Sinks {
			types[s.Type] = true
		}
	}
	for _, typ := range []string{"postgres", "mongodb", "neo4j", "memory"} {
		if !types[typ] {
			t.Errorf("no example config has a %s sink", typ)
		}
	}
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	cases := map[string]string{
		"sinks:\n  - {name: a, type: oracle, url: x}\n":                      `unknown type "oracle"`,
		"sinks:\n  - {name: 'bad name', type: memory}\n":                     `name "bad name"`,
		"sinks:\n  - {name: a, type: memory}\n  - {name: a, type: memory}\n": `used twice`,
		"sinks:\n  - {name: a, type: postgres}\n":                            `url is required`,
		"sink:\n  - {name: a}\n":                                             `field sink not found`,
		"sinks: [\n":                                                         `yaml`,
		"sinks:\n  - {name: a, type: memory, tables: {Book: ''}}\n":          `tables`,
		"runner:\n  batch_bytes: 0\n":                                        `runner.batch_bytes 0`,
		"runner:\n  batch_bytes: 2GiB\n":                                     `runner.batch_bytes 2147483648`,
		"runner:\n  batch_bytes: -5\n":                                       `size "-5"`,
		"runner:\n  batch_bytes: lots\n":                                     `lots`,
		"runner:\n  catch_up_batch: 2000000\n":                               `catch-up batch 2000000`,
		"runner:\n  catch_up_batch: many\n":                                  `many`,
	}
	for text, want := range cases {
		p := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(p, []byte(text), 0o600)
		_, err := loadRunConfig(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", text, err, want)
		}
	}
}

func TestConfigTables(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("sinks:\n  - name: pg\n    type: postgres\n    url: postgres://x@127.0.0.1/db\n    tables: {BookReview: reviews, Book: books}\n"), 0o600)
	cfg, err := loadRunConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sinks[0].Tables; got["BookReview"] != "reviews" || got["Book"] != "books" {
		t.Fatalf("tables %v", got)
	}
	// Each sink type checks its tables before the node starts.
	for typ, bad := range map[string]string{"postgres": "tributary_tables", "mongodb": "system.x", "neo4j": "_TributaryMapping", "memory": "x"} {
		sc := sinkConfig{Name: "s", Type: typ, URL: map[string]string{"postgres": "postgres://x@127.0.0.1/db", "mongodb": "mongodb://127.0.0.1/db", "neo4j": "bolt://127.0.0.1:7687", "memory": ""}[typ],
			Tables: map[string]string{"Book": bad}}
		if _, err := sinkOpeners[typ](sc, checkpoint.Claim{Sink: "s"}); err == nil || !strings.Contains(err.Error(), "tables") {
			t.Errorf("%s sink with table %q: %v", typ, bad, err)
		}
	}
}

// TestConfigLayers: defaults, then the file, then the environment, then
// flags; every key of every section can be set from the environment.
func TestConfigLayers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("http: {listen: 127.0.0.1:9000}\nnats: {urls: [nats://a:4222], replicas: 3}\nmesh: {sync_interval: 7s}\nlog: {level: debug}\n"), 0o600)
	cfg := DefaultConfig()
	if err := LoadConfigFile(&cfg, p); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"TRIBUTARY_NATS_URLS":            "nats://b:4222, nats://c:4222",
		"TRIBUTARY_NATS_STREAM_MAX_AGE":  "720h",
		"TRIBUTARY_LIBP2P_MDNS":          "false",
		"TRIBUTARY_STORE_DISK_RESERVE":   "1GiB",
		"TRIBUTARY_RUNNER_READY_MAX_LAG": "50",
		"TRIBUTARY_HTTP":                 "127.0.0.1:9100", // the older name, still honoured
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := ApplyEnv(&cfg, lookup); err != nil {
		t.Fatal(err)
	}
	switch {
	case cfg.HTTP.Listen != "127.0.0.1:9100":
		t.Errorf("http.listen %q", cfg.HTTP.Listen)
	case len(cfg.NATS.URLs) != 2 || cfg.NATS.URLs[1] != "nats://c:4222" || cfg.NATS.Replicas != 3:
		t.Errorf("nats %+v", cfg.NATS)
	case cfg.NATS.StreamMaxAge != 720*time.Hour || cfg.Libp2p.MDNS || cfg.Store.DiskReserve != 1<<30 || cfg.Runner.ReadyMaxLag != 50:
		t.Errorf("env not applied: %+v %+v %+v", cfg.NATS.StreamMaxAge, cfg.Libp2p.MDNS, cfg.Store)
	case cfg.Mesh.SyncInterval != 7*time.Second || cfg.Log.Level != "debug":
		t.Errorf("file not applied: %+v %+v", cfg.Mesh, cfg.Log)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(&cfg, func(k string) (string, bool) { return "soon", k == "TRIBUTARY_MESH_SYNC_TIMEOUT" }); err == nil || !strings.Contains(err.Error(), "TRIBUTARY_MESH_SYNC_TIMEOUT") {
		t.Fatalf("a bad variable: %v", err)
	}
	// Every key is reachable from the environment.
	n := 0
	walkConfig(reflect.ValueOf(&cfg).Elem(), EnvPrefix, func(name string, v reflect.Value) error { n++; return nil })
	if n < 50 {
		t.Fatalf("only %d keys reachable from the environment", n)
	}
}

// TestConfigCheckCommand: `config check` accepts the examples and names
// every problem of a bad file, including a key of the older format.
func TestConfigCheckCommand(t *testing.T) {
	home := t.TempDir()
	ok(t, home, nil, "config", "check", "../../deploy/config/all-sinks.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("log: {level: loud}\nhttp: {listen: nope}\n"), 0o600)
	r := run(t, home, "config", "check", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "log.level") || !strings.Contains(r.stderr, "http.listen") {
		t.Fatalf("bad config: %+v", r)
	}
	old := filepath.Join(t.TempDir(), "old.yaml")
	os.WriteFile(old, []byte("p2p: [/ip4/0.0.0.0/tcp/4001]\n"), 0o600)
	fails(t, home, []string{"moved to libp2p.listen"}, "config", "check", old)
}

// TestConfigKeysDocumented: docs/CONFIG.md names every key of the config.
func TestConfigKeysDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	cfg := DefaultConfig()
	walkConfig(reflect.ValueOf(&cfg).Elem(), "", func(name string, v reflect.Value) error {
		section, key, _ := strings.Cut(strings.ToLower(name), "_")
		if !strings.Contains(doc, key+":") {
			t.Errorf("docs/CONFIG.md does not describe %s.%s", section, key)
		}
		return nil
	})
	for _, series := range exportedSeries {
		if !strings.Contains(doc, series) {
			t.Errorf("docs/CONFIG.md does not list the series %s", series)
		}
	}
}

// A runner catches up in runner.catch_up_batch batches, unless its sink
// names a batch_size of its own, which then holds throughout.
func TestRunnerCatchUpBatch(t *testing.T) {
	cfg := DefaultConfig()
	if rc := cfg.runnerConfig(0); rc.BatchSize != 1000 || rc.CatchUpBatch != 3000 || rc.BatchBytes != 8<<20 {
		t.Fatalf("default runner config %+v", rc)
	}
	if rc := cfg.runnerConfig(200); rc.BatchSize != 200 || rc.CatchUpBatch != 200 {
		t.Fatalf("a sink's batch_size 200 gives %+v", rc)
	}
	cfg.Runner.CatchUpBatch = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "catch-up batch") {
		t.Fatalf("a negative catch_up_batch: %v", err)
	}
}
