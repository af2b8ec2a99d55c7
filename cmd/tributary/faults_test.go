package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core/replica"
)

// startRaw starts `tributary run` on home and returns the process and a
// channel that yields its first stdout line.
func startRaw(t *testing.T, home string, env []string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home, "--json", "run", "--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0", "--mdns=false"}, args...)...)
	cmd.Env = append(append(os.Environ(), "TRIBUTARY_HOME="), env...)
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
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("log of tributary run:\n%s", b)
		}
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		for sc.Scan() {
		}
	}()
	return cmd, first
}

func waitStarted(t *testing.T, first <-chan string) map[string]any {
	t.Helper()
	select {
	case line, ok := <-first:
		var out map[string]any
		if !ok || json.Unmarshal([]byte(line), &out) != nil {
			t.Fatalf("tributary run printed %q", line)
		}
		return out
	case <-time.After(60 * time.Second):
		t.Fatal("tributary run did not start")
	}
	return nil
}

// TestKilledNodeNeverLocksTheHome replays finding 9: a node killed with
// SIGKILL, whose PID is then reused by another live process (here PID 1
// and this test's own PID, written into its run.json), must not lock the
// home: commands work at once and a new node starts. Nothing it
// acknowledged is lost.
func TestKilledNodeNeverLocksTheHome(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	written := 0
	for round := range 5 {
		cmd, first := startRaw(t, home, nil)
		waitStarted(t, first)
		for i := range 3 {
			put(t, home, space, "Author", fmt.Sprintf(`{"name":"round %d"}`, round), "--id", fmt.Sprintf("a%d-%d", round, i))
			written++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		pid := []int{1, os.Getpid()}[round%2]
		if err := os.WriteFile(filepath.Join(home, "run.json"), []byte(fmt.Sprintf(`{"pid":%d,"http":"127.0.0.1:9"}`, pid)), 0o600); err != nil {
			t.Fatal(err)
		}
		var docs []map[string]any
		ok(t, home, &docs, "query", "--space", space, "Author")
		if len(docs) != written {
			t.Fatalf("round %d: %d documents after the kill, want %d", round, len(docs), written)
		}
	}
}

// TestCommandsRacingAStartingNode replays the second half of finding 9:
// commands run while a node starts never make it die on the store's
// lock; each either runs before the node takes the home or waits and
// goes through it.
func TestCommandsRacingAStartingNode(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	for round := range 3 {
		cmd, first := startRaw(t, home, nil)
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := run(t, home, "put", "--space", space, "--id", fmt.Sprintf("r%d-%d", round, i), "Author", `{"name":"racer"}`)
				if r.code != 0 {
					errs <- r.stderr
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatalf("round %d: a command racing the start failed: %s", round, e)
		}
		waitStarted(t, first)
		if cmd.ProcessState != nil {
			t.Fatalf("round %d: the node exited", round)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if !cmd.ProcessState.Success() {
			t.Fatalf("round %d: the node did not stop cleanly: %v", round, cmd.ProcessState)
		}
	}
	var docs []map[string]any
	ok(t, home, &docs, "query", "--space", space, "Author")
	if len(docs) != 24 {
		t.Fatalf("%d documents, want 24", len(docs))
	}
}

// TestDiskFullRefusesWritesKeepsReads replays finding 10. On a small
// tmpfs when this process may mount one, the disk is filled until the
// node's free-space reserve is reached: writes are refused with a clear
// error (HTTP 507), reads and status keep working, and once space is
// freed writes resume with nothing acknowledged lost. Where no filesystem
// can be mounted, the same is driven through the free-space check with a
// fake measure.
func TestDiskFullRefusesWritesKeepsReads(t *testing.T) {
	dir, err := os.MkdirTemp("", "tributary-small-fs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=160m"); err != nil {
		t.Logf("cannot mount a small filesystem here (%v): driving the free-space check with a fake measure", err)
		diskFullWithFakeMeasure(t)
		return
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	t.Log("home on a 160 MiB tmpfs, reserve 64 MiB")
	home := filepath.Join(dir, "alice")
	ok(t, home, nil, "init")
	space := newSpace(t, home, "library")
	env := []string{node.DiskReserveEnv + "=64MiB"}
	cmd, first := startRaw(t, home, env)
	a := newAPIClient(t, home, waitStarted(t, first))
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	docs := "/v1/spaces/" + space + "/docs/Author/"
	a.call("PUT", docs+"before", `{"name":"before"}`, 201)
	free, err := node.FreeBytes(home)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := fill(filler, free-40<<20); err != nil {
		t.Fatalf("fill the disk: %v", err)
	}
	if e := a.call("PUT", docs+"during", `{"name":"during"}`, 507); !strings.Contains(e["error"].(string), "disk almost full") {
		t.Fatalf("write on a full disk: %v", e)
	}
	if d := a.call("GET", docs+"before", "", 200); d["name"] != "before" {
		t.Fatalf("read on a full disk: %v", d)
	}
	a.call("GET", "/v1/spaces/"+space, "", 200)
	os.Remove(filler)
	a.call("PUT", docs+"after", `{"name":"after"}`, 201)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	for _, id := range []string{"before", "after"} {
		if d := get(t, home, space, "Author", id); d["name"] != id {
			t.Fatalf("%s after restart: %v", id, d)
		}
	}
	fails(t, home, []string{"not found"}, "get", "--space", space, "Author", "during")
}

func fill(path string, n uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, uint64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return f.Sync()
}

// diskFullWithFakeMeasure is the same scenario through the service layer,
// with the free-space measure under the test's control.
func diskFullWithFakeMeasure(t *testing.T) {
	ctx := context.Background()
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	h, err := node.OpenHome(home)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	free := uint64(1 << 30)
	h.DiskReserve = 64 << 20
	h.FreeBytes = func(string) (uint64, error) { mu.Lock(); defer mu.Unlock(); return free, nil }
	svc := &service.Local{Home: h, Open: h.OpenSpace}
	if _, err := svc.Put(ctx, space, "Author", "before", map[string]any{"name": "before"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	free = 10 << 20
	mu.Unlock()
	_, err = svc.Put(ctx, space, "Author", "during", map[string]any{"name": "during"})
	if err == nil || !strings.Contains(err.Error(), "disk almost full") {
		t.Fatalf("write below the reserve: %v", err)
	}
	if d, err := svc.Get(ctx, space, "Author", "before", ""); err != nil || d["name"] != "before" {
		t.Fatalf("read below the reserve: %v %v", d, err)
	}
	if _, err := svc.Status(ctx, space); err != nil {
		t.Fatalf("status below the reserve: %v", err)
	}
	mu.Lock()
	free = 1 << 30
	mu.Unlock()
	if _, err := svc.Put(ctx, space, "Author", "after", map[string]any{"name": "after"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(ctx, space, "Author", "during", ""); !strings.Contains(fmt.Sprint(err), replica.ErrNotFound.Error()) {
		t.Fatalf("the refused write exists: %v", err)
	}
}

// TestConcurrentHugeBodiesStayBounded replays finding 11 (request half):
// 32 clients each send a 4 MB body the node must refuse. The in-flight
// budget turns most away with 503 at once instead of reading them all;
// the node's peak RSS is reported and bounded.
func TestConcurrentHugeBodiesStayBounded(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	cmd, first := startRaw(t, home, nil)
	a := newAPIClient(t, home, waitStarted(t, first))
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	before := peakRSS(t, cmd.Process.Pid)
	big := `{"name":"` + strings.Repeat("x", 4<<20-20) + `", "nope": 1}`
	var wg sync.WaitGroup
	codes := make(chan int, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("PUT", a.base+"/v1/spaces/"+space+"/docs/Author/big", strings.NewReader(big))
			req.Header.Set("Authorization", "Bearer "+a.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	seen := map[int]int{}
	for c := range codes {
		seen[c]++
	}
	after := peakRSS(t, cmd.Process.Pid)
	t.Logf("32 concurrent 4 MB bodies: status codes %v; node peak RSS %d MB before, %d MB after", seen, before>>20, after>>20)
	if seen[201] > 0 || seen[200] > 0 {
		t.Fatalf("a bad body was accepted: %v", seen)
	}
	if after > 512<<20 {
		t.Fatalf("node peak RSS %d MB", after>>20)
	}
	a.call("GET", "/healthz", "", 200)
}

// peakRSS reads a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
