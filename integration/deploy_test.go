package integration

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDeployFilesParse checks the deploy/ examples for syntax: every YAML
// document parses, the Dockerfile's instructions are known, and the
// systemd unit has its sections and an ExecStart running `tributary run`.
func TestDeployFilesParse(t *testing.T) {
	yamls, _ := filepath.Glob("../deploy/*/*.y*ml")
	if len(yamls) < 2 {
		t.Fatalf("found %d YAML files under deploy/", len(yamls))
	}
	for _, p := range yamls {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		docs := 0
		for {
			var v map[string]any
			if err := dec.Decode(&v); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: %v", p, err)
			}
			if v != nil {
				docs++
			}
		}
		if docs == 0 {
			t.Fatalf("%s holds no YAML document", p)
		}
	}
	known := map[string]bool{"FROM": true, "WORKDIR": true, "COPY": true, "RUN": true, "ENV": true, "USER": true, "VOLUME": true, "EXPOSE": true, "ENTRYPOINT": true, "CMD": true, "ARG": true, "LABEL": true}
	f, err := os.Open("../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	from := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word := strings.Fields(line)[0]
		if !known[word] {
			t.Fatalf("Dockerfile: unknown instruction %q", word)
		}
		if word == "FROM" {
			from++
		}
	}
	if from == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	unit, err := os.ReadFile("../deploy/systemd/tributary.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[Unit]", "[Service]", "[Install]", "ExecStart=/usr/local/bin/tributary run"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Fatalf("systemd unit lacks %q", want)
		}
	}
}
