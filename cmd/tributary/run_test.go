package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
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
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("log of tributary run on %s:\n%s", home, b)
		}
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

func TestHTTPAPI(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	info := startNode(t, home)
	base := "http://" + info["http"].(string)
	call := func(method, path, body string, wantCode int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantCode {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, wantCode)
		}
		var out map[string]any
		json.Unmarshal(b, &out)
		return out
	}
	call("GET", "/healthz", "", 200)
	call("GET", "/readyz", "", 200)
	docs := "/v1/spaces/" + space + "/docs/"
	call("POST", docs+"Author", `{"id":"ul","name":"Ursula"}`, 201)
	call("PUT", docs+"Book/b1", `{"title":"The Dispossessed","year":1974,"author":"ul"}`, 201)
	call("PUT", docs+"Book/b1", `{"year":1975}`, 200)
	if d := call("GET", docs+"Book/b1", "", 200); d["year"] != float64(1975) || d["title"] != "The Dispossessed" {
		t.Fatalf("merged document %v", d)
	}
	if e := call("PUT", docs+"Book/b2", `{"title":"x","year":"soon"}`, 422); !strings.Contains(e["error"].(string), "year") {
		t.Fatalf("bad value error %v", e)
	}
	call("PUT", docs+"Book/b3", `{"title":`, 400)
	if e := call("PUT", docs+"Book/b4", `{"title":"x","year":5000}`, 422); !strings.Contains(e["error"].(string), "maximum") {
		t.Fatalf("rule error %v", e)
	}
	resp, err := http.Get(base + docs + "Book?year=1975")
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 1 || list[0]["id"] != "b1" {
		t.Fatalf("query gave %v", list)
	}
	call("DELETE", docs+"Book/b1", "", 200)
	call("GET", docs+"Book/b1", "", 404)
	call("GET", "/v1/spaces/nope/docs/Book/b1", "", 404)

	// The effect stream as server-sent events, from LSN 2.
	req, _ := http.NewRequest("GET", base+"/v1/spaces/"+space+"/effects?from=2", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err = http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var ids []string
	for sc.Scan() && len(ids) < 3 {
		if line := sc.Text(); strings.HasPrefix(line, "id: ") {
			ids = append(ids, strings.TrimPrefix(line, "id: "))
		}
	}
	if strings.Join(ids, ",") != "2,3,4" {
		t.Fatalf("SSE event ids %v, want 2,3,4", ids)
	}
	// A write made now arrives on the open stream.
	call("PUT", docs+"Author/new", `{"name":"Later"}`, 201)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") && strings.Contains(line, `"id":"new"`) {
			return
		}
	}
	t.Fatal("the live effect never arrived on the stream")
}
