package replica

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
)

// holdLock keeps the writer's lock until n Mutate calls wait for it, so
// they are committed as one group when it is released.
func holdLock(t *testing.T, r *Replica, n int, start func()) {
	t.Helper()
	r.mu.Lock()
	start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.pendMu.Lock()
		waiting := len(r.pending)
		r.pendMu.Unlock()
		if waiting == n {
			break
		}
		if time.Now().After(deadline) {
			r.mu.Unlock()
			t.Fatalf("%d of %d writers queued", waiting, n)
		}
		time.Sleep(time.Millisecond)
	}
	r.mu.Unlock()
}

// TestGroupCommitOneBadRequestFailsAlone: concurrent single writes share
// one transaction and one signed change; the one that breaks a rule fails
// alone, naming its problem, and the others are all there.
func TestGroupCommitOneBadRequestFailsAlone(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	r := found(t, admin)
	before, _ := r.Status()
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	holdLock(t, r, n, func() {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				year := 1900 + i
				if i == 7 {
					year = 99999 // above the schema's maximum
				}
				_, _, errs[i] = r.Mutate(ctx, admin, []Mutation{{Op: MutPut, Collection: "Book", ID: fmt.Sprintf("b%d", i), Fields: map[string]any{"title": "T", "year": year}}}, 1_000_100)
			}()
		}
	})
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 7 && !errors.Is(err, core.ErrSchemaViolation):
			t.Fatalf("the bad write: %v", err)
		case i != 7 && err != nil:
			t.Fatalf("write %d failed with the bad one: %v", i, err)
		}
	}
	after, _ := r.Status()
	if got := after.Changes - before.Changes; got != 1 {
		t.Fatalf("%d changes written for one group, want 1", got)
	}
	if docs, _ := r.Query("Book", nil); len(docs) != n-1 {
		t.Fatalf("%d books, want %d", len(docs), n-1)
	}
	// The whole group replicates as one valid change.
	if b := clone(t, r); fingerprint(t, b) != fingerprint(t, r) {
		t.Fatal("a replica of the group differs")
	}
}

// TestGroupCommitAuthorsGetTheirOwnChange: writers with different keys in
// one group each sign their own change.
func TestGroupCommitAuthorsGetTheirOwnChange(t *testing.T) {
	ctx := context.Background()
	admin, writer := key(t, 1), key(t, 2)
	clk := &clock{}
	r := found(t, admin)
	mustWrite(t, r, admin, clk, core.Op{Kind: core.OpGrant, Member: writer.Public(), Role: core.RoleWriter})
	before, _ := r.Status()
	var wg sync.WaitGroup
	changes := make([]core.ID, 4)
	now := clk.now() + 100
	holdLock(t, r, 4, func() {
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := []core.PrivateKey{admin, writer}[i%2]
				_, c, err := r.Mutate(ctx, k, []Mutation{{Op: MutPut, Collection: "Author", ID: fmt.Sprintf("a%d", i), Fields: map[string]any{"name": "N"}}}, now)
				if err != nil {
					t.Error(err)
				}
				changes[i] = c
			}()
		}
	})
	wg.Wait()
	after, _ := r.Status()
	if got := after.Changes - before.Changes; got != 2 {
		t.Fatalf("%d changes, want one per author", got)
	}
	for i := range 4 {
		e, err := r.Change(changes[i])
		if err != nil {
			t.Fatal(err)
		}
		if want := []core.PrivateKey{admin, writer}[i%2].Public().String(); e.Author != want {
			t.Fatalf("write %d landed in a change by %s", i, e.Author)
		}
	}
}

const groupCrashEnv = "TRIBUTARY_GROUP_COMMIT_CRASH_CHILD"

// groupCrashChild writes batches of three documents from eight goroutines
// forever on an on-disk replica (fsync on), printing each batch number
// once Mutate returned.
func groupCrashChild(dir string) {
	r, err := Open(Options{Dir: dir, SyncWrites: true})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	admin, _ := core.PrivateKeyFromSeed([]byte(strings.Repeat("\x01", 32)))
	if !r.HasGenesis() {
		if _, err := r.Found(context.Background(), admin, "crash", groupCrashSchema, nil, uint64(time.Now().UnixMilli())); err != nil {
			fmt.Println("found:", err)
			os.Exit(2)
		}
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	next := 0
	claim := func() int {
		mu.Lock()
		defer mu.Unlock()
		next++
		return int(time.Now().UnixNano()%1e12)*100 + next%100
	}
	for range 8 {
		go func() {
			for {
				b := claim()
				muts := make([]Mutation, 3)
				for j := range muts {
					muts[j] = Mutation{Op: MutPut, Collection: "Doc", ID: fmt.Sprintf("%d-%d", b, j), Fields: map[string]any{"batch": b}}
				}
				if _, _, err := r.Mutate(context.Background(), admin, muts, uint64(time.Now().UnixMilli())); err != nil {
					fmt.Println("mutate:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(out, b)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	select {}
}

const groupCrashSchema = `type Doc @collection { batch: Int! }`

// TestGroupCommitSurvivesKillNine kills a process in the middle of group
// commits, again and again: every batch it acknowledged is whole after
// reopening, and no batch is ever half there.
func TestGroupCommitSurvivesKillNine(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), groupCrashEnv+"="+dir)
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
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		for l := range lines {
			if strings.HasPrefix(l, "mutate:") || strings.HasPrefix(l, "open:") || strings.HasPrefix(l, "found:") {
				t.Fatalf("round %d: child failed: %s", round, l)
			}
			acked[l] = true
		}
		cmd.Wait()
		r, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		docs, err := r.Query("Doc", nil)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		perBatch := map[string]int{}
		for _, d := range docs {
			b, _, _ := strings.Cut(d.ID, "-")
			perBatch[b]++
		}
		for b, n := range perBatch {
			if n != 3 {
				t.Fatalf("round %d: batch %s is half there (%d of 3 documents)", round, b, n)
			}
		}
		for b := range acked {
			if perBatch[b] != 3 {
				t.Fatalf("round %d: acknowledged batch %s lost", round, b)
			}
		}
		t.Logf("round %d: %d batches stored, %d acknowledged so far", round, len(perBatch), len(acked))
	}
	if len(acked) == 0 {
		t.Fatal("no batch was acknowledged: the child never wrote")
	}
}

// TestMain lets the test binary act as the child that is killed.
func TestMain(m *testing.M) {
	flag.Parse()
	if dir := os.Getenv(groupCrashEnv); dir != "" {
		groupCrashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// TestBatchTooLargeForOneTransaction: a batch past what one transaction
// of the store holds is refused whole with ErrBatchTooLarge (nothing
// written); grouped with small batches, it does not take them down.
func TestBatchTooLargeForOneTransaction(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	r, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Found(ctx, admin, "t", librarySchema(t), nil, 1_000_000); err != nil {
		t.Fatal(err)
	}
	huge := make([]Mutation, 15000)
	for i := range huge {
		huge[i] = Mutation{Op: MutPut, Collection: "Book", ID: fmt.Sprintf("h%d", i), Fields: map[string]any{"title": strings.Repeat("a title long enough to weigh ", 10), "year": 2000, "tags": []any{"a", "b", "c"}}}
	}
	before, _ := r.Status()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	holdLock(t, r, 3, func() {
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				muts := huge
				if i > 0 {
					muts = []Mutation{{Op: MutPut, Collection: "Book", ID: fmt.Sprintf("s%d", i), Fields: map[string]any{"title": "small"}}}
				}
				_, _, errs[i] = r.Mutate(ctx, admin, muts, 1_000_100)
			}()
		}
	})
	wg.Wait()
	if !errors.Is(errs[0], ErrBatchTooLarge) || errs[1] != nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	after, _ := r.Status()
	if docs, _ := r.Query("Book", nil); len(docs) != 2 || after.Changes-before.Changes < 1 {
		t.Fatalf("%d books, %d new changes", len(docs), after.Changes-before.Changes)
	}
}

// TestLargeCatchUpFitsTransactions: a peer receiving thousands of small
// documents in one Receive call commits them in transactions the store
// accepts (the documents held until commit count toward the limit).
func TestLargeCatchUpFitsTransactions(t *testing.T) {
	ctx := context.Background()
	admin := key(t, 1)
	src := found(t, admin)
	for i := range 20 {
		muts := make([]Mutation, 1000)
		for j := range muts {
			muts[j] = Mutation{Op: MutPut, Collection: "Book", ID: fmt.Sprintf("b%d-%d", i, j), Fields: map[string]any{"title": "t", "year": 2000}}
		}
		if _, _, err := src.Mutate(ctx, admin, muts, uint64(1_000_100+i)); err != nil {
			t.Fatal(err)
		}
	}
	dst, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	rep, err := dst.Receive(ctx, mustExport(t, src))
	if err != nil || len(rep.Rejected) > 0 {
		t.Fatalf("receive: %v %+v", err, rep.Rejected)
	}
	if docs, _ := dst.Query("Book", nil); len(docs) != 20000 {
		t.Fatalf("%d books", len(docs))
	}
}
