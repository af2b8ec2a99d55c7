package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
