package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tributary-sync/tributary/cmd/tributary/api"
)

// TestOpenAPIMatchesRoutes: docs/openapi.yaml describes exactly the
// routes the running node serves, each with its responses, and needs the
// token everywhere but the health probes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI  string                    `yaml:"openapi"`
		Security []map[string][]string     `yaml:"security"`
		Paths    map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Security) == 0 {
		t.Fatalf("openapi %q, security %v", doc.OpenAPI, doc.Security)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			op, _ := raw.(map[string]any)
			documented = append(documented, strings.ToUpper(method)+" "+path)
			if op["responses"] == nil || op["operationId"] == nil {
				t.Errorf("%s %s: no responses or operationId", method, path)
			}
			sec, hasSec := op["security"]
			public := hasSec && len(sec.([]any)) == 0
			if public != (path == "/healthz" || path == "/readyz") {
				t.Errorf("%s %s: public=%v", method, path, public)
			}
		}
	}
	served := append(api.Patterns(), nodeRoutes...)
	slices.Sort(documented)
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("served but not documented: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("documented but not served: %s", r)
		}
	}
}
