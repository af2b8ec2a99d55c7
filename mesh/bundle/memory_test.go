//go:build linux

// Linux only: the child's memory is read from /proc and ru_maxrss is in
// KiB there (bytes on Darwin, absent on Windows).

package bundle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// The memory test: a bundle of bigBundleBytes of real signed changes,
// each carrying a bigValueBytes string, imported by a child process whose
// peak anonymous memory must stay under maxImportRSS.
const (
	bigBundleBytes = 256 << 20
	bigValueBytes  = 64 << 10
	maxImportRSS   = 200 << 20
	memChildEnv    = "TRIBUTARY_BUNDLE_MEMORY_CHILD" // "generate" or "import"
	memBundleEnv   = "TRIBUTARY_BUNDLE_MEMORY_BUNDLE"
	memDBEnv       = "TRIBUTARY_BUNDLE_MEMORY_DB"
	memSeedEnv     = "TRIBUTARY_BUNDLE_MEMORY_SEED"
	memBytesEnv    = "TRIBUTARY_BUNDLE_MEMORY_BYTES" // bundle size; bigBundleBytes when unset
	statsPrefix    = "BUNDLE-MEMORY-STATS "
)

// childStats is what a child reports on a line of its output.
type childStats struct {
	Written  int64 // generate: changes written
	Result   Result
	Verify   time.Duration
	Apply    time.Duration
	HeapSys  uint64
	Changes  int
	LastHead string // the replica's one head, or the bundle's last change
}

// TestImportMemoryIsBounded imports a bundle of a few hundred MB into an
// on-disk replica through the streaming path (OpenFile, File.Import), in
// a child process, and asserts the child's peak resident anonymous memory
// (heap, stacks, Badger's tables being built) while it runs. The peak RSS
// the kernel reports (ru_maxrss) is logged too, but not asserted: Badger
// writes its files through mmap, so the pages of everything written stay
// mapped and counted in RSS until the kernel needs them back; they are
// page cache, not memory the import holds.
//
// With memChildEnv set, the same test is a child: it generates the bundle
// (so that a parent built with the race detector need not) or imports it.
// To measure another size by hand, set memBytesEnv, e.g. to 1073741824.
func TestImportMemoryIsBounded(t *testing.T) {
	size := int64(bigBundleBytes)
	if s := os.Getenv(memBytesEnv); s != "" {
		var err error
		if size, err = strconv.ParseInt(s, 10, 64); err != nil || size <= 0 {
			t.Fatalf("%s=%q: want a size in bytes", memBytesEnv, s)
		}
	}
	switch os.Getenv(memChildEnv) {
	case "generate":
		seed, err := strconv.ParseUint(os.Getenv(memSeedEnv), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		n, last := writeBigBundle(t, os.Getenv(memBundleEnv), seed, size)
		report(t, childStats{Written: n, LastHead: last.String()})
		return
	case "import":
		importChild(t, os.Getenv(memBundleEnv), os.Getenv(memDBEnv))
		return
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	path, db := filepath.Join(dir, "big.trb"), filepath.Join(dir, "db")
	bin := childBinary(t, dir)
	child := func(mode string) (childStats, *os.ProcessState, int64) {
		cmd := exec.Command(bin, "-test.run=^TestImportMemoryIsBounded$", "-test.v")
		cmd.Env = append(os.Environ(), memChildEnv+"="+mode, memBundleEnv+"="+path, memDBEnv+"="+db,
			memSeedEnv+"="+strconv.FormatUint(seed, 10), memBytesEnv+"="+strconv.FormatInt(size, 10))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		peakAnon := watchAnon(cmd.Process.Pid)
		err := cmd.Wait()
		anon := <-peakAnon
		if err != nil {
			t.Fatalf("%s child (seed %d): %v\n%s", mode, seed, err, out.Bytes())
		}
		var st childStats
		for _, l := range strings.Split(out.String(), "\n") {
			if i := strings.Index(l, statsPrefix); i >= 0 {
				if err := json.Unmarshal([]byte(l[i+len(statsPrefix):]), &st); err != nil {
					t.Fatalf("%s child stats %q: %v", mode, l, err)
				}
			}
		}
		return st, cmd.ProcessState, anon
	}

	start := time.Now()
	gen, _, _ := child("generate")
	n, last := gen.Written, gen.LastHead
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bundle: %d changes, %.1f MiB, written in %v", n, mib(fi.Size()), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	st, ps, anon := child("import")
	maxRSS := ps.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	t.Logf("import of %.1f MiB in %v (verify %v, apply %v): peak anonymous RSS %.1f MiB (limit %d MiB); ru_maxrss %.1f MiB including Badger's mapped files; Go heap from the OS %.1f MiB",
		mib(fi.Size()), time.Since(start).Round(time.Millisecond), st.Verify.Round(time.Millisecond), st.Apply.Round(time.Millisecond),
		mib(anon), maxImportRSS>>20, mib(maxRSS), mib(int64(st.HeapSys)))
	if anon == 0 {
		t.Fatalf("no memory reading of the import child (seed %d)", seed)
	}
	if anon >= maxImportRSS {
		t.Fatalf("importing a %.0f MiB bundle peaked at %.1f MiB of anonymous memory, limit %d MiB (seed %d)", mib(fi.Size()), mib(anon), maxImportRSS>>20, seed)
	}
	if st.Result.Applied != int(n) || st.Result.Err() != nil || st.Changes != int(n) || st.LastHead != last {
		t.Fatalf("import incomplete: %+v, replica holds %d changes with head %s; want %d ending in %s (seed %d)", st.Result, st.Changes, st.LastHead, n, last, seed)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// watchAnon samples the resident anonymous memory of process pid every
// few milliseconds until it exits, then sends the largest reading.
func watchAnon(pid int) <-chan int64 {
	peak := make(chan int64, 1)
	go func() {
		var max int64
		status := fmt.Sprintf("/proc/%d/status", pid)
		for {
			b, err := os.ReadFile(status)
			if err != nil {
				break // the process is gone
			}
			kb, ok := statusField(b, "RssAnon:")
			if !ok || strings.Contains(string(b), "State:\tZ") {
				break
			}
			max = maxInt(max, kb<<10)
			time.Sleep(2 * time.Millisecond)
		}
		peak <- max
	}()
	return peak
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// statusField reads a "Name:   123 kB" line of /proc/<pid>/status.
func statusField(status []byte, name string) (int64, bool) {
	for _, l := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(l, name); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// childBinary is this test binary, unless it was built with the race
// detector (which multiplies memory use): then a plain build of it.
func childBinary(t *testing.T, dir string) string {
	if !raceEnabled {
		return os.Args[0]
	}
	bin := filepath.Join(dir, "bundle.test")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(gobin, "test", "-c", "-o", bin, "github.com/tributary-sync/tributary/mesh/bundle").CombinedOutput(); err != nil {
		t.Fatalf("build the import child without the race detector: %v\n%s", err, out)
	}
	return bin
}

// writeBigBundle writes a chain of changes with bigValueBytes of random
// text each, up to size bytes, and returns the count and the last ID.
func writeBigBundle(t *testing.T, path string, seed uint64, size int64) (int64, core.ID) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	c, g := newChain(t, 5)
	w, err := NewWriter(bw, Header{Space: c.space})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(g); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	value := make([]byte, bigValueBytes)
	for written := int64(0); written < size; written += int64(len(value)) {
		for i := 0; i < len(value); i += 8 {
			r := rng.Uint64()
			for j := range 8 {
				value[i+j] = alphabet[r>>(6*j)&63]
			}
		}
		if err := w.Add(c.next(t, fmt.Sprintf("d%d", w.Count()), string(value))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return w.Count(), c.prev
}

// importChild is the child's side: open an on-disk replica with
// synchronous writes and the replica's own Badger sizing, as a node does,
// import the bundle through the streaming path, and report. (The store's
// memory is Badger's and set by replica.Open; with Badger's stock options
// it alone passes a GiB on this import.)
func importChild(t *testing.T, path, db string) {
	ctx := context.Background()
	r, err := replica.Open(replica.Options{Dir: db, SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	f, err := OpenFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := childStats{Verify: time.Since(start)}
	if st.Result, err = f.Import(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	st.Apply = time.Since(start) - st.Verify
	status, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	st.Changes = status.Changes
	if len(status.Heads) == 1 {
		st.LastHead = status.Heads[0].String()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.HeapSys = ms.HeapSys
	report(t, st)
}

func report(t *testing.T, st childStats) {
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(statsPrefix + string(b))
}
