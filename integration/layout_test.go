package integration

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tributary-sync/tributary"

// TestDependencyDirection enforces the package rules of DESIGN.md: core
// imports nothing of ours outside core; adapters never import mesh or
// Badger; eventstream and checkpoint never import mesh or adapters; only
// cmd wires concrete backends together. Tests may use real backends
// (a checkpoint test reads a real effect log in Badger), so only the
// packages' own imports are checked.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	rules := []struct {
		pkg       string // package path prefix (under the module)
		forbidden []string
		why       string
	}{
		{"core", []string{module + "/eventstream", module + "/checkpoint", module + "/adapters", module + "/mesh", module + "/cmd", module + "/integration"}, "core imports nothing of ours"},
		{"eventstream", []string{module + "/checkpoint", module + "/adapters", module + "/mesh", module + "/cmd"}, "the effect log knows no sinks or transports"},
		{"checkpoint", []string{module + "/adapters", module + "/mesh", module + "/cmd", "github.com/dgraph-io/badger"}, "the runner knows sinks only by interface"},
		{"adapters", []string{module + "/mesh", module + "/cmd", module + "/core/replica", "github.com/dgraph-io/badger"}, "adapters never import mesh or Badger"},
		{"mesh", []string{module + "/adapters", module + "/checkpoint", module + "/cmd"}, "transports move changes, nothing else"},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, imports := fields[0], fields[1:]
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		for _, r := range rules {
			if rel != r.pkg && !strings.HasPrefix(rel, r.pkg+"/") {
				continue
			}
			checked++
			for _, imp := range imports {
				for _, bad := range r.forbidden {
					if imp == bad || strings.HasPrefix(imp, bad+"/") {
						t.Errorf("%s imports %s: %s", pkg, imp, r.why)
					}
				}
			}
		}
	}
	if checked < 4 {
		t.Fatalf("only %d packages matched the rules; is the layout intact?\n%s", checked, out)
	}
}
