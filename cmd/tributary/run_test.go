package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startNode runs `tributary run` on home until the test ends and returns
// the first JSON line it printed.
func startNode(t *testing.T, home string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home, "--json", "run", "--http", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("tributary run did not stop on SIGTERM")
		}
		if _, err := os.Stat(filepath.Join(home, runFile)); err == nil {
			t.Errorf("run.json left behind after a clean stop")
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		var out map[string]any
		if err := json.Unmarshal([]byte(line), &out); err != nil {
			t.Fatalf("run printed %q", line)
		}
		return out
	case <-time.After(60 * time.Second):
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("tributary run did not start:\n%s", b)
	}
	return nil
}

func TestRunServesCommandsAndSinks(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	put(t, home, space, "Author", `{"name":"Before"}`, "--id", "a0")
	cfg := filepath.Join(t.TempDir(), "cfg.yaml")
	if err := os.WriteFile(cfg, []byte("sinks:\n  - name: view\n    type: memory\n    batch_size: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	info := startNode(t, home, "--config", cfg)
	if info["http"] == "" {
		t.Fatalf("run printed %v", info)
	}
	// The store is held by the running node: commands go through it.
	for i := range 25 {
		put(t, home, space, "Author", `{"name":"Through the node"}`, "--id", "a"+strings.Repeat("x", i+1))
	}
	if d := get(t, home, space, "Author", "a0"); d["name"] != "Before" {
		t.Fatalf("get through the node: %v", d)
	}
	fails(t, home, []string{"unknown field", "Author.nme"}, "put", "--space", space, "Author", `{"nme":"x"}`)
	fails(t, home, []string{"already runs"}, "run", "--http", "127.0.0.1:0")

	deadline := time.Now().Add(30 * time.Second)
	for {
		var sinks []struct {
			Name       string `json:"name"`
			Checkpoint uint64 `json:"checkpoint"`
			LastLSN    uint64 `json:"last_lsn"`
			Lag        uint64 `json:"lag"`
		}
		ok(t, home, &sinks, "sinks")
		if len(sinks) != 1 || sinks[0].Name != "view" {
			t.Fatalf("sinks printed %+v", sinks)
		}
		if sinks[0].LastLSN == 26 && sinks[0].Checkpoint == 26 && sinks[0].Lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink did not catch up: %+v", sinks[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	var reset map[string]string
	ok(t, home, &reset, "sink", "reset", "view")
	fails(t, home, []string{"no sink", "nope"}, "sink", "reset", "nope")
}

func TestSinksWithoutNodeFails(t *testing.T) {
	home, _ := newHome(t, "alice")
	newSpace(t, home, "library")
	fails(t, home, []string{"no node is running"}, "sinks")
}
