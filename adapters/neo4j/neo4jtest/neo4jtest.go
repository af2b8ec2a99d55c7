package neo4jtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// StartTimeout bounds how long a server may take to print its URI and then
// to answer.
const StartTimeout = 120 * time.Second

// StopTimeout is how long a server gets to shut down after its stdin
// closes before it is killed.
const StopTimeout = 60 * time.Second

// Server is a running harness.
type Server struct {
	// URL is its Bolt URI (bolt://127.0.0.1:PORT), without authentication.
	URL string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	dir    string
	exited chan struct{}
	out    *tail // stdout and stderr, for diagnostics

	stopOnce sync.Once
	stopErr  error
}

// Start starts a server for t, stopped when t ends, and returns its URL.
func Start(t testing.TB) string {
	t.Helper()
	s, err := StartServer()
	if err != nil {
		t.Fatalf("neo4jtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("neo4jtest: %v", err)
		}
	})
	return s.URL
}

var shared struct {
	sync.Mutex
	srv *Server
	err error
}

// Shared returns the URL of the test binary's shared server, starting it on
// first use. Main stops it after the tests; without Main it stops when the
// test process exits (its stdin closes).
func Shared(t testing.TB) string {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = StartServer()
	}
	if shared.err != nil {
		t.Fatalf("neo4jtest: %v", shared.err)
	}
	return shared.srv.URL
}

// Main runs the tests of m and then stops the shared server, if one was
// started.
func Main(m *testing.M) {
	code := m.Run()
	shared.Lock()
	srv := shared.srv
	shared.srv, shared.err = nil, errors.New("the shared server was stopped")
	shared.Unlock()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "neo4jtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Wipe deletes every node and relationship of the server at url (its
// schema, constraints and indexes, stays).
func Wipe(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := neo4j.NewDriverWithContext(url, neo4j.NoAuth())
	if err != nil {
		t.Fatalf("neo4jtest: wipe: %v", err)
	}
	defer d.Close(ctx)
	s := d.NewSession(ctx, neo4j.SessionConfig{})
	defer s.Close(ctx)
	// An implicit transaction: CALL ... IN TRANSACTIONS needs one.
	res, err := s.Run(ctx, "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS", nil)
	if err == nil {
		_, err = res.Consume(ctx)
	}
	if err != nil {
		t.Fatalf("neo4jtest: wipe: %v", err)
	}
}

// StartServer builds the harness if needed and starts a server.
func StartServer() (*Server, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("java is not installed (or not in PATH): the Neo4j tests run Neo4j's Java test harness and need a JDK 17 or later")
	}
	jar, err := harnessJar()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "neo4jtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, exited: make(chan struct{}), out: &tail{max: 64 << 10}}
	s.cmd = exec.Command(java, "-Djava.io.tmpdir="+dir, "-XX:+UseSerialGC", "-Xms256m", "-Xmx2g", "-jar", jar)
	s.cmd.Dir = dir
	s.cmd.Stderr = s.out
	// Its own process group: a Ctrl-C to the test does not hit it before
	// the test closes its stdin.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start the Neo4j harness (%s -jar %s): %v", java, jar, err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !found && (strings.HasPrefix(line, "bolt://") || strings.HasPrefix(line, "neo4j://")) {
				found = true
				urls <- strings.TrimSuffix(line, "/")
				continue
			}
			s.out.Write([]byte(line + "\n"))
		}
		io.Copy(s.out, stdout)
	}()
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.NewTimer(StartTimeout)
	defer deadline.Stop()
	select {
	case s.URL = <-urls:
	case <-s.exited:
		s.cleanup()
		return nil, fmt.Errorf("the Neo4j harness exited before printing its URI (%v):\n%s", s.cmd.ProcessState, s.out)
	case <-deadline.C:
		s.Stop()
		return nil, fmt.Errorf("the Neo4j harness printed no URI within %s:\n%s", StartTimeout, s.out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := waitReady(ctx, s.URL, s.exited); err != nil {
		s.Stop()
		return nil, fmt.Errorf("the Neo4j harness at %s does not answer: %v\n%s", s.URL, err, s.out)
	}
	return s, nil
}

// waitReady polls the server until the driver connects.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	d, err := neo4j.NewDriverWithContext(url, neo4j.NoAuth())
	if err != nil {
		return err
	}
	defer d.Close(context.Background())
	for {
		err := d.VerifyConnectivity(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the server exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("%v (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop closes the server's stdin, waits for it to exit (killing it after
// StopTimeout) and removes its directory. Stopping twice is harmless.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stdin.Close()
		select {
		case <-s.exited:
		case <-time.After(StopTimeout):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
			s.stopErr = fmt.Errorf("the Neo4j harness did not stop within %s of its stdin closing: killed", StopTimeout)
		}
		s.cleanup()
	})
	return s.stopErr
}

func (s *Server) cleanup() { os.RemoveAll(s.dir) }

// Output returns the end of what the server printed (besides its URI).
func (s *Server) Output() string { return s.out.String() }

var build struct {
	sync.Mutex
	jar string
	err error
}

// harnessJar returns the harness jar, building it when it is missing.
func harnessJar() (string, error) {
	build.Lock()
	defer build.Unlock()
	if build.jar != "" || build.err != nil {
		return build.jar, build.err
	}
	build.jar, build.err = buildJar()
	return build.jar, build.err
}

func buildJar() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "integration", "neo4jharness")
	jar := filepath.Join(dir, "target", "neo4jharness.jar")
	if exists(jar) {
		return jar, nil
	}
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return "", fmt.Errorf("%s is missing and Maven (mvn) is not installed to build it: install Maven, or build it elsewhere with `mvn -q -B -f integration/neo4jharness/pom.xml package -DskipTests`", jar)
	}
	// Test processes of several packages may build at once: one does.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "tributary-neo4jharness-build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock the harness build: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if exists(jar) {
		return jar, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "-f", filepath.Join(dir, "pom.xml"), "package", "-DskipTests")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the Neo4j harness (%s): %v\n%s", strings.Join(cmd.Args, " "), err, lastBytes(out.Bytes(), 8<<10))
	}
	if !exists(jar) {
		return "", fmt.Errorf("the Neo4j harness build made no %s", jar)
	}
	return jar, nil
}

// repoRoot walks up from the working directory to the directory holding
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if exists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: cannot find integration/neo4jharness")
		}
		dir = parent
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
