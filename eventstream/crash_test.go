package eventstream

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

var crashSeed = flag.Uint64("crash-seed", 0, "seed for TestKillNineNoGap (0: time-based)")

const crashChildEnv = "TRIBUTARY_EVENTSTREAM_CRASH_CHILD"

// crashEffect is the deterministic content of the effect with this LSN, so
// the parent can check every survivor byte for byte.
func crashEffect(n uint64) Effect {
	return Effect{Collection: "Book", DocID: strconv.FormatUint(n%97, 10), Kind: Upsert,
		Doc: map[string]any{"n": int64(n), "title": strings.Repeat("x", int(n%50))}, Changes: []string{fmt.Sprint("c", n)}}
}

// TestMain lets the test binary act as the child that is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends effects in batches of varying size forever, printing
// each acknowledged LSN after its commit returned.
func crashChild(dir string) {
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	l, err := Open(db, []byte("e/"))
	if err != nil {
		fmt.Println("open log:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		next := l.LastLSN() + 1
		batch := make([]Effect, 1+i%7)
		for j := range batch {
			batch[j] = crashEffect(next + uint64(j))
		}
		got, err := l.Append(batch)
		if err != nil {
			fmt.Println("append:", err)
			os.Exit(2)
		}
		fmt.Fprintln(out, got[len(got)-1].LSN)
		out.Flush()
	}
}

// TestKillNineNoGap kills a writing child process with SIGKILL at random
// instants, reopens the log each time and checks that every LSN from 1 to
// the last is present with the right content and that no acknowledged
// effect is lost.
func TestKillNineNoGap(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash-seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	var acked uint64
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for the child to make progress, then kill it at a random instant.
		deadline := time.After(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		first := true
	loop:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break loop
				}
				n, err := strconv.ParseUint(line, 10, 64)
				if err != nil {
					t.Fatalf("round %d: child said %q", round, line)
				}
				acked = max(acked, n)
				if first {
					first = false
				}
			case <-deadline:
				if first { // not started writing yet: give it time
					deadline = time.After(50 * time.Millisecond)
					continue
				}
				break loop
			}
		}
		_ = cmd.Process.Kill()
		for line := range lines { // drain what it printed before dying
			if n, err := strconv.ParseUint(line, 10, 64); err == nil {
				acked = max(acked, n)
			}
		}
		_ = cmd.Wait()

		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		l, err := Open(db, []byte("e/"))
		if err != nil {
			t.Fatalf("round %d: reopen log: %v", round, err)
		}
		last := l.LastLSN()
		if last < acked {
			t.Fatalf("round %d: last LSN %d below acknowledged %d: effects lost", round, last, acked)
		}
		all, err := l.Read(context.Background(), 1, int(last)+10)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if uint64(len(all)) != last {
			t.Fatalf("round %d: %d effects stored for last LSN %d: gap", round, len(all), last)
		}
		for i, e := range all {
			want := crashEffect(uint64(i + 1))
			want.LSN = uint64(i + 1)
			if fmt.Sprint(e) != fmt.Sprint(want) {
				t.Fatalf("round %d: LSN %d holds %v, want %v", round, i+1, e, want)
			}
		}
		t.Logf("round %d: killed with %d effects acknowledged, %d stored, no gap", round, acked, last)
		db.Close()
	}
	if acked == 0 {
		t.Fatal("the child never acknowledged a write")
	}
}
