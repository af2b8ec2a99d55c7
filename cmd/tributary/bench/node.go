package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
)

// Node is a `tributary run` child process on a home.
type Node struct {
	Name  string
	Home  string
	Addrs []string // libp2p addresses
	API   *apiClient

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logPath string
	profile string // the CPU profile it writes, "" when not profiled
	state   profileState
}

type profileState int

const (
	profileOff profileState = iota
	profileOn
	profileWritten
)

// nodeOptions are what a scenario asks of `tributary run`.
type nodeOptions struct {
	peers  []string // libp2p addresses to dial
	config string   // run --config (sinks)
	// profileNow starts the node's profile at once: it is started inside
	// the measured part.
	profileNow bool
}

// startNode runs `tributary run` on home as users run it, on loopback
// ports the kernel picks, mDNS off, and waits until it serves.
func (t *trial) startNode(ctx context.Context, home, name string, o nodeOptions) (*Node, error) {
	args := []string{"--home", home, "--json", "run", "--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0", "--mdns=false"}
	for _, p := range o.peers {
		args = append(args, "--peer", p)
	}
	if o.config != "" {
		args = append(args, "--config", o.config)
	}
	t.seq++
	n := &Node{Name: name, Home: home, exited: make(chan struct{}), logPath: filepath.Join(t.dir, fmt.Sprintf("%s-%d.log", name, t.seq))}
	cmd := exec.Command(t.h.cfg.Binary, args...)
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	if dir := t.h.cfg.CPUProfileDir; dir != "" {
		n.profile = filepath.Join(dir, fmt.Sprintf("%s-%s-%d.pprof", t.name, name, t.seq))
		cmd.Env = append(cmd.Env, ProfileEnv+"="+n.profile)
		if o.profileNow {
			cmd.Env = append(cmd.Env, ProfileNowEnv+"=1")
			n.state = profileOn
		}
	}
	// The node dies with the bench, whatever happens to the bench.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(n.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", name, err)
	}
	n.cmd = cmd
	t.nodes = append(t.nodes, n)
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		for sc.Scan() {
		}
		n.waitErr = cmd.Wait()
		close(n.exited)
	}()
	var line string
	select {
	case line = <-first:
	case <-n.exited:
		return nil, fmt.Errorf("node %s exited while starting (%v):\n%s", name, n.waitErr, n.logTail())
	case <-time.After(2 * time.Minute):
		return nil, fmt.Errorf("node %s did not start within 2 minutes:\n%s", name, n.logTail())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var info struct {
		HTTP   string `json:"http"`
		Libp2p struct {
			Addrs []string `json:"addrs"`
		} `json:"libp2p"`
	}
	if err := json.Unmarshal([]byte(line), &info); err != nil || info.HTTP == "" {
		return nil, fmt.Errorf("node %s printed %q, not its addresses", name, line)
	}
	h, err := node.OpenHome(home)
	if err != nil {
		return nil, err
	}
	tok, err := h.Token() // the home's, or the file TRIBUTARY_API_TOKEN_FILE names
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	n.Addrs = info.Libp2p.Addrs
	n.API = newAPIClient("http://"+info.HTTP, tok, 64)
	t.h.logf("  node %s up: http %s", name, info.HTTP)
	return n, nil
}

// startProfile starts the node's CPU profile (if profiled, not yet).
func (n *Node) startProfile() error {
	if n.profile == "" || n.state != profileOff || n.gone() {
		return nil
	}
	n.state = profileOn
	return n.cmd.Process.Signal(syscall.SIGUSR1)
}

// stopProfile has the node write its profile and waits for the file.
func (n *Node) stopProfile() (string, error) {
	if n.state != profileOn || n.gone() {
		return "", nil
	}
	n.state = profileWritten
	if err := n.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return "", err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(n.profile); err == nil {
			return n.profile, nil
		}
		if time.Now().After(deadline) || n.gone() {
			return "", fmt.Errorf("node %s wrote no CPU profile at %s", n.Name, n.profile)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *Node) gone() bool {
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

// Stop ends the node with SIGTERM (as a service manager does), killing it
// if it has not stopped within a minute.
func (n *Node) Stop() error {
	if n.gone() {
		return nil
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(time.Minute):
		n.cmd.Process.Kill()
		<-n.exited
		return fmt.Errorf("node %s did not stop within a minute of SIGTERM; killed", n.Name)
	}
	var ee *exec.ExitError
	if errors.As(n.waitErr, &ee) {
		return fmt.Errorf("node %s exited with %v:\n%s", n.Name, n.waitErr, n.logTail())
	}
	return nil
}

// Memory is a process's resident set: now and at its peak.
type Memory struct {
	RSS, HWM int64 // bytes (VmRSS, VmHWM)
}

// Memory reads /proc/PID/status.
func (n *Node) Memory() (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return Memory{}, fmt.Errorf("node %s memory: %w", n.Name, err)
	}
	var m Memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = kb << 10
		case "VmHWM":
			m.HWM = kb << 10
		}
	}
	if m.HWM == 0 {
		return m, fmt.Errorf("node %s: no VmHWM in /proc/%d/status", n.Name, n.cmd.Process.Pid)
	}
	return m, nil
}

// logTail is the end of the node's log, for errors.
func (n *Node) logTail() string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
