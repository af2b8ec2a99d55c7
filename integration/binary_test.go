package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bin is the tributary binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tributary-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "tributary")
	build := exec.Command("go", "build", "-o", bin, "../cmd/tributary")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the binary on home with --json and returns stdout, or the
// error with stderr.
func cli(home string, args ...string) (string, error) {
	cmd := exec.Command(bin, append([]string{"--home", home, "--json"}, args...)...)
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("tributary %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func mustCLI(t *testing.T, home string, v any, args ...string) {
	t.Helper()
	out, err := cli(home, args...)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("tributary %v printed %q: %v", args, out, err)
		}
	}
}

// node is a `tributary run` child process.
type node struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

// startRun starts `tributary run` on home and waits until it serves
// (its run.json appears). It fails (returns an error) when the process
// exits first, for instance because a CLI command held the store.
func startRun(home string, args ...string) (*node, error) {
	logPath := filepath.Join(home, fmt.Sprintf("run-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--home", home, "--json", "run", "--http", "127.0.0.1:0", "--mdns=false"}, args...)...)
	// Never the default ports: tests run side by side.
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=", "TRIBUTARY_LIBP2P_LISTEN=/ip4/127.0.0.1/tcp/0")
	cmd.Stdout, cmd.Stderr = logf, logf
	os.Remove(filepath.Join(home, "run.json")) // a stale one from a killed node
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	n := &node{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { n.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(home, "run.json")); err == nil && bytes.Contains(b, []byte(fmt.Sprintf(`"pid":%d`, cmd.Process.Pid))) {
			return n, nil
		}
		select {
		case err := <-n.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("tributary run exited (%v): %s", err, strings.TrimSpace(string(b)))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-n.done
			return nil, fmt.Errorf("tributary run did not start in 60s")
		}
	}
}

func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

func (n *node) stop(t *testing.T) {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.kill()
		t.Errorf("tributary run did not stop on SIGTERM")
	}
}
