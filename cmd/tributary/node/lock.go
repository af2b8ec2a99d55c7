package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrHomeBusy: another process holds the home's lock (a running or
// starting node, or another command).
var ErrHomeBusy = errors.New("the home is in use by another process")

// lockFile is the home's liveness lock. Whoever holds an exclusive flock
// on it owns the home's stores; the kernel drops the lock when its holder
// dies however it dies, so a crashed node never leaves the home locked
// (unlike a PID file, whose PID another process may reuse).
const lockFile = "lock"

// Lock is a held home lock.
type Lock struct{ f *os.File }

// TryLock takes the home's lock without waiting; ErrHomeBusy when it is
// held.
func TryLock(dir string) (*Lock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock home: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrHomeBusy
		}
		return nil, fmt.Errorf("lock home: %w", err)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}

// runFile in a home tells where the node that holds the lock serves its
// API. It is written once the node is ready and removed when it stops; it
// is trusted only while the lock is held.
const runFile = "run.json"

// RunInfo is what a running node publishes in its home.
type RunInfo struct {
	PID  int    `json:"pid"`
	HTTP string `json:"http"`           // host:port of the API
	TLS  bool   `json:"tls,omitempty"`  // the API speaks HTTPS
	Cert string `json:"cert,omitempty"` // its certificate file, for a self-signed setup
}

// WriteRunInfo publishes ri (call it while holding the lock).
func WriteRunInfo(dir string, ri RunInfo) error {
	b, err := json.Marshal(ri)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, runFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", runFile, err)
	}
	return os.Rename(tmp, filepath.Join(dir, runFile))
}

// ReadRunInfo reads what the node holding the lock published, if anything.
func ReadRunInfo(dir string) (RunInfo, bool) {
	var ri RunInfo
	b, err := os.ReadFile(filepath.Join(dir, runFile))
	if err != nil || json.Unmarshal(b, &ri) != nil || ri.HTTP == "" {
		return ri, false
	}
	return ri, true
}

// RemoveRunInfo withdraws the published info (a node stopping, or a
// process that took the lock and found a stale file).
func RemoveRunInfo(dir string) {
	os.Remove(filepath.Join(dir, runFile))
}
