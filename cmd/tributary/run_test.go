package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/cmd/tributary/api"
)

// startNode runs `tributary run` on home until the test ends and returns
// the first JSON line it printed.
func startNode(t *testing.T, home string, args ...string) map[string]any {
	t.Helper()
	info, _ := launchNode(t, home, args...)
	return info
}

// launchNode is startNode that also returns a function stopping the node
// (SIGTERM, then a check that it stopped cleanly); it runs at the latest
// when the test ends, and only once.
func launchNode(t *testing.T, home string, args ...string) (map[string]any, func()) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home, "--json", "run", "--http", "127.0.0.1:0"}, args...)...)
	// Never the default ports: tests run side by side.
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=", "TRIBUTARY_LIBP2P_LISTEN=/ip4/127.0.0.1/tcp/0", "TRIBUTARY_LIBP2P_MDNS=false")
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
	var once sync.Once
	stop := func() { once.Do(func() { stopNode(t, home, cmd, logf.Name()) }) }
	t.Cleanup(stop)
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
		return out, stop
	case <-time.After(60 * time.Second):
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("tributary run did not start:\n%s", b)
	}
	return nil, stop
}

// stopNode stops a node launchNode started: SIGTERM, at most 20 s to
// exit, and no run.json left behind. Its log is shown if the test failed.
func stopNode(t *testing.T, home string, cmd *exec.Cmd, logPath string) {
	t.Helper()
	if t.Failed() {
		b, _ := os.ReadFile(logPath)
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
	if _, err := os.Stat(filepath.Join(home, "run.json")); err == nil {
		t.Errorf("run.json left behind after a clean stop")
	}
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

// apiClient calls a running node's API as a program would: with the
// token from the home and JSON bodies.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func newAPIClient(t *testing.T, home string, info map[string]any) *apiClient {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(home, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{t: t, base: "http://" + info["http"].(string), token: strings.TrimSpace(string(tok))}
}

// raw sends a request with the given headers and returns the status and body.
func (a *apiClient) raw(method, path, body string, headers map[string]string) (int, []byte) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, strings.NewReader(body))
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (a *apiClient) call(method, path, body string, wantCode int) map[string]any {
	a.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + a.token}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	code, b := a.raw(method, path, body, h)
	if code != wantCode {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, wantCode)
	}
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func TestHTTPAPI(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	info := startNode(t, home)
	a := newAPIClient(t, home, info)
	call := a.call
	call("GET", "/healthz", "", 200)
	call("GET", "/readyz", "", 200)
	docs := "/v1/spaces/" + space + "/docs/"
	call("POST", docs+"Author", `{"id":"ul","name":"Ursula"}`, 201)
	call("PUT", docs+"Book/b1", `{"title":"The Dispossessed","year":1974,"author":"ul","meta":{"isbn":"x"}}`, 201)
	call("PUT", docs+"Book/b1", `{"year":1975}`, 200)
	d := call("GET", docs+"Book/b1", "", 200)
	if d["year"] != float64(1975) || d["title"] != "The Dispossessed" {
		t.Fatalf("merged document %v", d)
	}
	if m, ok := d["meta"].(map[string]any); !ok || m["isbn"] != "x" {
		t.Fatalf("a JSON field is shown as %T %v, want the JSON object", d["meta"], d["meta"])
	}
	if e := call("PUT", docs+"Book/b2", `{"title":"x","year":"soon"}`, 422); !strings.Contains(e["error"].(string), "year") {
		t.Fatalf("bad value error %v", e)
	}
	call("PUT", docs+"Book/b3", `{"title":`, 400)
	if e := call("PUT", docs+"Book/b4", `{"title":"x","year":5000}`, 422); !strings.Contains(e["error"].(string), "maximum") {
		t.Fatalf("rule error %v", e)
	}
	if e := call("PUT", docs+"Book/bad%FFid", `{"title":"x"}`, 422); !strings.Contains(e["error"].(string), "UTF-8") {
		t.Fatalf("invalid UTF-8 id: %v", e)
	}
	code, b := a.raw("PUT", docs+"Book/b5", "{\"title\":\"bad\xff\"}", map[string]string{"Authorization": "Bearer " + a.token, "Content-Type": "application/json"})
	if code != 400 || !strings.Contains(string(b), "UTF-8") {
		t.Fatalf("invalid UTF-8 body: %d %s", code, b)
	}
	code, b = a.raw("GET", docs+"Book?year=1975", "", map[string]string{"Authorization": "Bearer " + a.token})
	var list []map[string]any
	json.Unmarshal(b, &list)
	if code != 200 || len(list) != 1 || list[0]["id"] != "b1" {
		t.Fatalf("query gave %d %s", code, b)
	}
	if h := call("GET", docs+"Book/b1/history", "", 200); h != nil {
		t.Fatalf("history is not a list: %v", h)
	}
	call("DELETE", docs+"Book/b1", "", 200)
	call("GET", docs+"Book/b1", "", 404)
	call("GET", "/v1/spaces/nope/docs/Book/b1", "", 404)

	// The effect stream as server-sent events, from LSN 2.
	sse := func(from string) (*bufio.Scanner, func()) {
		req, _ := http.NewRequest("GET", a.base+"/v1/spaces/"+space+"/effects?from="+from, nil)
		req.Header.Set("Authorization", "Bearer "+a.token)
		req.Header.Set("Accept", "text/event-stream")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		return bufio.NewScanner(resp.Body), func() { resp.Body.Close(); cancel() }
	}
	sc, stop := sse("2")
	defer stop()
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

// TestSSEFromZeroOnEmptyLog: a follower that starts before anything was
// written (from=0) gets the first effect when it comes (the wait
// position used to wrap around).
func TestSSEFromZeroOnEmptyLog(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	a := newAPIClient(t, home, startNode(t, home))
	req, _ := http.NewRequest("GET", a.base+"/v1/spaces/"+space+"/effects?from=0", nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a.call("PUT", "/v1/spaces/"+space+"/docs/Author/first", `{"name":"First"}`, 201)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "id: 1" {
			return
		}
	}
	t.Fatalf("the first effect never arrived on a stream opened at from=0: %v", sc.Err())
}

// TestHTTPAPIRefusesAttacks replays the API findings: no token, a wrong
// token, a rotated token, a form-encodable content type (what a web page
// can send across sites), a foreign Origin, a Host that is not the
// node's (DNS rebinding), and the old endpoint that ran any command.
func TestHTTPAPIRefusesAttacks(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	info := startNode(t, home)
	a := newAPIClient(t, home, info)
	write := "/v1/spaces/" + space + "/docs/Author/x"
	body := `{"name":"Mallory"}`
	auth := "Bearer " + a.token
	host := info["http"].(string)
	_, port, _ := net.SplitHostPort(host)
	for name, tc := range map[string]struct {
		method, path string
		headers      map[string]string
		want         int
	}{
		"no token":              {"PUT", write, map[string]string{"Content-Type": "application/json"}, 401},
		"wrong token":           {"PUT", write, map[string]string{"Authorization": "Bearer trt_nope", "Content-Type": "application/json"}, 401},
		"token in query":        {"PUT", write + "?token=" + a.token, map[string]string{"Content-Type": "application/json"}, 401},
		"read without token":    {"GET", "/v1/spaces/" + space, nil, 401},
		"metrics without token": {"GET", "/metrics", nil, 401},
		"text/plain":            {"PUT", write, map[string]string{"Authorization": auth, "Content-Type": "text/plain"}, 403},
		"form":                  {"PUT", write, map[string]string{"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}, 403},
		"no content type":       {"PUT", write, map[string]string{"Authorization": auth}, 403},
		"foreign origin":        {"PUT", write, map[string]string{"Authorization": auth, "Content-Type": "application/json", "Origin": "https://evil.example"}, 403},
		"rebinding host":        {"PUT", write, map[string]string{"Authorization": auth, "Content-Type": "application/json", "Host": "evil.example:" + port}, 403},
		"bare name":             {"PUT", write, map[string]string{"Authorization": auth, "Content-Type": "application/json", "Host": "intranet"}, 403},
		"the old /v1/cli":       {"POST", "/v1/cli", map[string]string{"Authorization": auth, "Content-Type": "application/json"}, 404},
	} {
		t.Run(name, func(t *testing.T) {
			payload := body
			if tc.method == "GET" {
				payload = ""
			}
			if tc.path == "/v1/cli" {
				payload = `{"args":["member","grant","x","--role","admin"]}`
			}
			code, b := a.raw(tc.method, tc.path, payload, tc.headers)
			if code != tc.want {
				t.Fatalf("%d %s, want %d", code, b, tc.want)
			}
		})
	}
	// Health probes need no token; the same-origin page and localhost work.
	if code, _ := a.raw("GET", "/healthz", "", nil); code != 200 {
		t.Fatalf("healthz without token: %d", code)
	}
	a.call("PUT", write, body, 201)
	if code, b := a.raw("PUT", write, body, map[string]string{"Authorization": auth, "Content-Type": "application/json", "Origin": "http://" + host, "Host": "localhost:" + port}); code != 403 && code != 200 {
		t.Fatalf("same-origin request: %d %s", code, b)
	}
	if d := get(t, home, space, "Author", "x"); d["name"] != "Mallory" {
		t.Fatalf("document %v", d)
	}
	// Every route the node serves, old or new, refuses a request without
	// the token, except the health probes.
	for _, pat := range api.Patterns() {
		method, path, _ := strings.Cut(pat, " ")
		if path == "/healthz" || path == "/readyz" {
			continue
		}
		path = strings.NewReplacer("{space}", space, "{coll}", "Author", "{id}", "x", "{name}", "sink",
			"{key}", "k", "{invite}", "i").Replace(path)
		if code, b := a.raw(method, path, "{}", map[string]string{"Content-Type": "application/json"}); code != 401 {
			t.Errorf("%s without a token: %d %s, want 401", pat, code, b)
		}
	}
	// Rotating the token through the CLI cuts the old one off; the CLI
	// keeps working (it reads the new token from the home).
	ok(t, home, nil, "token", "rotate")
	if code, _ := a.raw("GET", "/v1/spaces/"+space, "", map[string]string{"Authorization": auth}); code != 401 {
		t.Fatalf("old token after rotate: %d", code)
	}
	if d := get(t, home, space, "Author", "x"); d["name"] != "Mallory" {
		t.Fatalf("CLI after rotate: %v", d)
	}
	if fi, err := os.Stat(filepath.Join(home, "api-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("api-token: %v %v", fi, err)
	}
}

// TestNonLoopbackWithoutTLSWarns: binding every interface without TLS is
// allowed but said loudly at start.
func TestNonLoopbackWithoutTLSWarns(t *testing.T) {
	home, _ := newHome(t, "alice")
	newSpace(t, home, "library")
	cmd := exec.Command(bin, "--home", home, "--json", "run", "--http", "0.0.0.0:0", "--p2p", "/ip4/127.0.0.1/tcp/0", "--mdns=false")
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		if strings.Contains(sc.Text(), "without TLS") {
			return
		}
	}
	t.Fatal("no warning about a non-loopback API without TLS")
}
