package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
)

// sinkLine is one sink as `tributary sinks --json` prints it.
type sinkLine struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Error      string `json:"error"`
	Attempts   int    `json:"connect_attempts"`
	Checkpoint uint64 `json:"checkpoint"`
	LastLSN    uint64 `json:"last_lsn"`
	Lag        uint64 `json:"lag"`
	Parked     int    `json:"parked_total"`
}

func sinkLines(t *testing.T, home string) map[string]sinkLine {
	t.Helper()
	var lines []sinkLine
	ok(t, home, &lines, "sinks")
	out := map[string]sinkLine{}
	for _, l := range lines {
		out[l.Name] = l
	}
	return out
}

// waitSink polls `tributary sinks` until cond holds for the sink.
func waitSink(t *testing.T, home, name, what string, cond func(sinkLine) bool) sinkLine {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		l := sinkLines(t, home)[name]
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink %s never got %s: %+v", name, what, l)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func caughtUp(l sinkLine) bool {
	return l.State == "running" && l.Checkpoint == l.LastLSN && l.LastLSN > 0
}

// text runs the binary without --json and returns what it printed.
func text(t *testing.T, home string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home}, args...)...)
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tributary %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pgExec(t *testing.T, url, sql string, args ...any) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pgCount(t *testing.T, url, sql string, args ...any) int {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// proxy forwards the TCP connections it accepts on addr to target, until
// the test ends.
func proxy(t *testing.T, addr, target string) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was free a moment ago; a closing socket may hold it briefly
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("proxy on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Go(func() { io.Copy(out, in); out.Close() })
			wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Issue 9, item 12: a sink whose database is down when the node starts
// does not stop the node: it is retried in the background, shown as
// failing with its error meanwhile, and catches up once the database is
// there.
func TestSinkWaitsForItsDatabase(t *testing.T) {
	dbURL := pgtest.Database(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	down := freeAddr(t) // nothing listens here yet
	sinkURL := strings.Replace(dbURL, u.Host, down, 1)
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	put(t, home, space, "Author", `{"name":"Before"}`, "--id", "a0")
	cfg := writeConfig(t, fmt.Sprintf("sinks:\n  - {name: pg, type: postgres, url: %q}\n  - {name: view, type: memory}\n", sinkURL))
	startNode(t, home, "--config", cfg)

	// The node runs: writes go through it, the other sink catches up.
	put(t, home, space, "Author", `{"name":"While down"}`, "--id", "a1")
	waitSink(t, home, "view", "caught up", caughtUp)
	l := waitSink(t, home, "pg", "failing twice", func(l sinkLine) bool { return l.State == "failing" && l.Attempts >= 2 })
	if !strings.Contains(l.Error, "connect") || l.Checkpoint != 0 {
		t.Fatalf("failing sink: %+v", l)
	}
	if out := text(t, home, "sinks"); !strings.Contains(out, "pg\tpostgres\tfailing: ") || !strings.Contains(out, "view\tmemory\trunning, caught up") {
		t.Fatalf("sinks printed:\n%s", out)
	}
	fails(t, home, []string{"sink pg is failing"}, "sink", "reset", "pg")

	// The database comes up where the sink looks for it.
	proxy(t, down, u.Host)
	waitSink(t, home, "pg", "caught up", caughtUp)
	if n := pgCount(t, dbURL, "SELECT count(*) FROM public.author WHERE id IN ('a0', 'a1')"); n != 2 {
		t.Fatalf("%d of the authors in PostgreSQL, want 2", n)
	}
}

// Issue 9, item 13: parked effects are listed with their LSN, collection,
// document and reason; retried once the target takes them; cleared by a
// reset.
func TestSinkParkedRetryAndReset(t *testing.T) {
	dbURL := pgtest.Database(t)
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	put(t, home, space, "Author", `{"name":"Ann"}`, "--id", "a0")
	startNode(t, home, "--config", writeConfig(t, fmt.Sprintf("sinks:\n  - {name: pg, type: postgres, url: %q}\n", dbURL)))
	waitSink(t, home, "pg", "caught up", caughtUp)

	// The target refuses long names from now on.
	pgExec(t, dbURL, "ALTER TABLE public.author ADD CONSTRAINT short_name CHECK (length(name) < 10)")
	bad := put(t, home, space, "Author", `{"name":"A name too long"}`, "--id", "a1")
	put(t, home, space, "Author", `{"name":"Bo"}`, "--id", "a2")
	l := waitSink(t, home, "pg", "caught up", caughtUp)
	if l.Parked != 1 {
		t.Fatalf("sink %+v, want 1 parked", l)
	}
	var parked []struct {
		Effect struct {
			LSN        uint64 `json:"lsn"`
			Collection string `json:"collection"`
			ID         string `json:"id"`
		} `json:"effect"`
		Reason string `json:"reason"`
	}
	ok(t, home, &parked, "sink", "parked", "pg")
	if len(parked) != 1 || parked[0].Effect.Collection != "Author" || parked[0].Effect.ID != bad.ID || parked[0].Effect.LSN == 0 || !strings.Contains(parked[0].Reason, "23514") {
		t.Fatalf("parked %+v", parked)
	}
	if out := text(t, home, "sink", "parked", "pg"); !strings.HasPrefix(out, fmt.Sprintf("%d\tAuthor\ta1\t", parked[0].Effect.LSN)) {
		t.Fatalf("sink parked printed %q", out)
	}

	type retried struct {
		Effect struct {
			LSN uint64 `json:"lsn"`
		} `json:"effect"`
		Outcome string `json:"outcome"`
		Why     string `json:"why"`
	}
	var out []retried
	ok(t, home, &out, "sink", "retry", "pg")
	if len(out) != 1 || out[0].Outcome != "refused" || !strings.Contains(out[0].Why, "short_name") {
		t.Fatalf("retry against the constraint: %+v", out)
	}
	pgExec(t, dbURL, "ALTER TABLE public.author DROP CONSTRAINT short_name")
	ok(t, home, &out, "sink", "retry", "pg")
	if len(out) != 1 || out[0].Outcome != "applied" {
		t.Fatalf("retry without the constraint: %+v", out)
	}
	if n := pgCount(t, dbURL, "SELECT count(*) FROM public.author WHERE id = 'a1' AND name = 'A name too long'"); n != 1 {
		t.Fatal("the retried effect is not in PostgreSQL")
	}
	ok(t, home, &parked, "sink", "parked", "pg")
	if l := sinkLines(t, home)["pg"]; len(parked) != 0 || l.Parked != 0 {
		t.Fatalf("after the retry: parked %+v, sink %+v", parked, l)
	}

	// Park again, then reset: the list is cleared and the replay applies
	// what the target now takes.
	pgExec(t, dbURL, "ALTER TABLE public.author ADD CONSTRAINT short_name CHECK (length(name) < 10) NOT VALID")
	put(t, home, space, "Author", `{"name":"Another long one"}`, "--id", "a3")
	waitSink(t, home, "pg", "one parked", func(l sinkLine) bool { return caughtUp(l) && l.Parked == 1 })
	pgExec(t, dbURL, "ALTER TABLE public.author DROP CONSTRAINT short_name")
	ok(t, home, nil, "sink", "reset", "pg")
	waitSink(t, home, "pg", "caught up with nothing parked", func(l sinkLine) bool { return caughtUp(l) && l.Parked == 0 })
	if n := pgCount(t, dbURL, "SELECT count(*) FROM public.author"); n != 4 {
		t.Fatalf("%d authors after the reset, want 4", n)
	}
	fails(t, home, []string{"no sink", "nope"}, "sink", "retry", "nope")
}

// Issue 9, item 5: two spaces whose sinks share a name and a database. The
// second is refused, naming the owner, instead of skipping rows while
// reporting "caught up"; its node keeps running.
func TestSinkOfAnotherSpaceIsRefused(t *testing.T) {
	dbURL := pgtest.Database(t)
	cfg := writeConfig(t, fmt.Sprintf("sinks:\n  - {name: reports, type: postgres, url: %q}\n", dbURL))
	alice, aliceKey := newHome(t, "alice")
	aSpace := newSpace(t, alice, "library")
	put(t, alice, aSpace, "Author", `{"name":"Ann"}`, "--id", "a0")
	startNode(t, alice, "--config", cfg)
	waitSink(t, alice, "reports", "caught up", caughtUp)

	bob, _ := newHome(t, "bob")
	bSpace := newSpace(t, bob, "other")
	put(t, bob, bSpace, "Author", `{"name":"Bo"}`, "--id", "b0")
	startNode(t, bob, "--config", cfg)
	l := waitSink(t, bob, "reports", "refused", func(l sinkLine) bool { return l.State == "refused" })
	for _, want := range []string{aSpace, aliceKey, "reports", "claimed"} {
		if !strings.Contains(l.Error, want) {
			t.Fatalf("refusal %q does not name %s", l.Error, want)
		}
	}
	put(t, bob, bSpace, "Author", `{"name":"Still writing"}`, "--id", "b1")
	if n := pgCount(t, dbURL, "SELECT count(*) FROM public.author WHERE id LIKE 'b%'"); n != 0 {
		t.Fatalf("bob's sink wrote %d rows into alice's tables", n)
	}
	if a := sinkLines(t, alice)["reports"]; !caughtUp(a) {
		t.Fatalf("alice's sink after bob's start: %+v", a)
	}
	if out := text(t, bob, "sinks"); !strings.Contains(out, "reports\tpostgres\trefused: ") {
		t.Fatalf("sinks printed %q", out)
	}
}
