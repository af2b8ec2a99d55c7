package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// loadOut is what `tributary load --json` prints.
type loadOut struct {
	Operations int `json:"operations"`
	Batches    int `json:"batches"`
	Created    int `json:"created"`
	Updated    int `json:"updated"`
	Unchanged  int `json:"unchanged"`
	Deleted    int `json:"deleted"`
	Absent     int `json:"absent"`
	Changes    int `json:"changes"`
	LastLine   int `json:"last_line"`
}

// loadInput writes lines to a file and returns its path.
func loadInput(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ops.ndjson")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func bookPut(id, title string, year int) string {
	return fmt.Sprintf(`{"op":"put","collection":"Book","id":%q,"doc":{"title":%q,"year":%d}}`, id, title, year)
}

// runWithInput runs the binary with stdin.
func runWithInput(t *testing.T, home, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home, "--json"}, args...)...)
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// books lists the Book documents by id.
func books(t *testing.T, home, space string) map[string]map[string]any {
	t.Helper()
	var docs []map[string]any
	ok(t, home, &docs, "query", "--space", space, "Book")
	out := map[string]map[string]any{}
	for _, d := range docs {
		out[d["id"].(string)] = d
	}
	return out
}

func ids(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestLoadBatchesAndRerun: a file with puts, an update, deletes and a
// blank line loads in batches of 3; loading it again ends in the same
// documents (the delete of a document the first run removed is counted
// as absent, not refused).
func TestLoadBatchesAndRerun(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	put(t, home, space, "Book", `{"title":"Doomed"}`, "--id", "x0")
	file := loadInput(t,
		bookPut("b1", "Kindred", 1979),
		bookPut("b2", "Dawn", 1987),
		`{"op":"put","collection":"Author","id":"ob","doc":{"name":"Octavia Butler"}}`,
		"",
		`{"op":"put","collection":"Book","id":"b1","doc":{"year":1980}}`,
		`{"op":"delete","collection":"Book","id":"b2"}`,
		`{"op":"delete","collection":"Book","id":"x0"}`,
		bookPut("b3", "Wild Seed", 1980),
	)
	var first loadOut
	ok(t, home, &first, "load", "--space", space, "--batch", "3", file)
	want := loadOut{Operations: 7, Batches: 3, Created: 4, Updated: 1, Deleted: 2, LastLine: 8}
	got := first
	got.Changes = 0
	if got != want {
		t.Fatalf("first load reported %+v, want %+v", first, want)
	}
	if first.Changes < 3 {
		t.Fatalf("first load wrote %d changes, want at least one per batch", first.Changes)
	}
	after := books(t, home, space)
	if strings.Join(ids(after), ",") != "b1,b3" || after["b1"]["year"] != float64(1980) || after["b1"]["title"] != "Kindred" {
		t.Fatalf("books after the load: %v", after)
	}

	var again loadOut
	ok(t, home, &again, "load", "--space", space, "--batch", "3", file)
	if again.Operations != 7 || again.Created != 1 || again.Deleted != 1 || again.Absent != 1 {
		t.Fatalf("second load reported %+v, want 7 operations: b2 created and deleted again, x0 absent", again)
	}
	if rerun := books(t, home, space); !reflect.DeepEqual(rerun, after) {
		t.Fatalf("loading again changed the books:\n%v\nwant\n%v", rerun, after)
	}
}

// TestLoadBadLine: a line that does not parse fails the load, named by
// its line; nothing of its batch is written, the batch before it is.
func TestLoadBadLine(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	file := loadInput(t,
		bookPut("b1", "One", 2001), bookPut("b2", "Two", 2002), bookPut("b3", "Three", 2003),
		bookPut("b4", "Four", 2004), bookPut("b5", "Five", 2005),
		`{"op":"put","collection":"Book","id":"b6","doc":{"title":"Six"`,
		bookPut("b7", "Seven", 2007),
	)
	fails(t, home, []string{"line 6:", "batch 2 (lines 4-6)", "nothing of it was applied", "batch 1 (lines 1-3, 3 operations) is committed", "continue from line 4"},
		"load", "--space", space, "--batch", "3", file)
	if got := ids(books(t, home, space)); strings.Join(got, ",") != "b1,b2,b3" {
		t.Fatalf("books after the failed load: %v, want b1,b2,b3", got)
	}
	fails(t, home, []string{"line 2:", `unknown field "docs"`, "nothing was committed"}, "load", "--space", space,
		loadInput(t, bookPut("c1", "x", 1), `{"op":"put","collection":"Book","id":"c2","docs":{"title":"typo"}}`))
	fails(t, home, []string{"line 1:", `"op" "upsert"`}, "load", "--space", space,
		loadInput(t, `{"op":"upsert","collection":"Book","id":"c3","doc":{"title":"x"}}`))
	if _, ok := books(t, home, space)["c1"]; ok {
		t.Fatal("c1 was written from a batch that failed")
	}
}

// TestLoadRefusedOperationThroughNode: with a node running, the load goes
// through its API; an operation the space refuses is named by its file
// line (the batch's operation index mapped back), and nothing of its
// batch is applied.
func TestLoadRefusedOperationThroughNode(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	startNode(t, home, "--p2p", "/ip4/127.0.0.1/tcp/0", "--mdns=false")
	file := loadInput(t,
		bookPut("b1", "One", 2001), bookPut("b2", "Two", 2002),
		"",
		bookPut("b3", "Three", 2003), bookPut("b4", "Four", 9999), bookPut("b5", "Five", 2005),
	)
	fails(t, home, []string{"line 5:", "year", "maximum", "batch 2 (lines 4-5)", "nothing of it was applied", "batch 1 (lines 1-2, 2 operations) is committed"},
		"load", "--space", space, "--batch", "2", file)
	if got := ids(books(t, home, space)); strings.Join(got, ",") != "b1,b2" {
		t.Fatalf("books after the refused batch: %v, want b1,b2", got)
	}
	// The same file, fixed, loads through the node; the batch of the
	// refused line goes in whole.
	fixed := loadInput(t, bookPut("b1", "One", 2001), bookPut("b2", "Two", 2002), "",
		bookPut("b3", "Three", 2003), bookPut("b4", "Four", 2004), bookPut("b5", "Five", 2005))
	var out loadOut
	ok(t, home, &out, "load", "--space", space, "--batch", "2", fixed)
	if out.Operations != 5 || out.Batches != 3 || out.Created != 3 || out.Updated != 2 {
		t.Fatalf("load through the node reported %+v", out)
	}
	if got := ids(books(t, home, space)); strings.Join(got, ",") != "b1,b2,b3,b4,b5" {
		t.Fatalf("books: %v", got)
	}
}

// TestLoadStdin: operations from stdin, as NDJSON with a node running
// and as a JSON array spread over lines without one; a bad element of
// the array is named by the line it starts on.
func TestLoadStdin(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	array := "[\n  " + bookPut("a1", "Array one", 1990) + ",\n  {\"op\": \"put\",\n   \"collection\": \"Book\", \"id\": \"a2\",\n   \"doc\": {\"title\": \"Array two\"}}\n]\n"
	r := runWithInput(t, home, array, "load", "--space", space, "-")
	var out loadOut
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Created != 2 || out.LastLine != 3 {
		t.Fatalf("load - of a JSON array: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
	bad := "[\n" + bookPut("a3", "Fine", 1990) + ",\n\n{\"op\":\"put\",\"collection\":\"Book\",\"id\":\"a4\",\n \"doc\":{\"title\":\"x\",\"year\":\"soon\"}}\n]"
	r = runWithInput(t, home, bad, "load", "--space", space, "-")
	if r.code == 0 || !strings.Contains(r.stderr, "line 4:") || !strings.Contains(r.stderr, "year") {
		t.Fatalf("bad array element: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, ok := books(t, home, space)["a3"]; ok {
		t.Fatal("a3 was written from a batch that failed")
	}

	startNode(t, home, "--p2p", "/ip4/127.0.0.1/tcp/0", "--mdns=false")
	r = runWithInput(t, home, bookPut("s1", "Piped", 2000)+"\n"+bookPut("s2", "Piped too", 2000)+"\n", "load", "--space", space, "-")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Created != 2 {
		t.Fatalf("load - through the node: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
	if got := ids(books(t, home, space)); strings.Join(got, ",") != "a1,a2,s1,s2" {
		t.Fatalf("books: %v", got)
	}
}

// TestLoadAtomic: --atomic refuses, before writing anything, a file that
// does not fit in one batch, and takes one that does.
func TestLoadAtomic(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	file := loadInput(t, bookPut("b1", "One", 2001), bookPut("b2", "Two", 2002), bookPut("b3", "Three", 2003))
	fails(t, home, []string{"--atomic", "line 3", "nothing was committed"}, "load", "--space", space, "--atomic", "--batch", "2", file)
	if got := books(t, home, space); len(got) != 0 {
		t.Fatalf("--atomic wrote %v", ids(got))
	}
	var out loadOut
	ok(t, home, &out, "load", "--space", space, "--atomic", file)
	if out.Batches != 1 || out.Created != 3 {
		t.Fatalf("--atomic load reported %+v", out)
	}
	fails(t, home, []string{"--batch-bytes", "8 MiB"}, "load", "--space", space, "--batch-bytes", "40000000", file)
	fails(t, home, []string{"no such file"}, "load", "--space", space, filepath.Join(t.TempDir(), "missing.ndjson"))
}

// TestLoadHumanOutput: without --json the summary is one line on stdout.
func TestLoadHumanOutput(t *testing.T) {
	home, _ := newHome(t, "alice")
	space := newSpace(t, home, "library")
	cmd := exec.Command(bin, "--home", home, "load", "--space", space, loadInput(t, bookPut("b1", "One", 2001)))
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "loaded 1 operations") || !strings.Contains(string(out), "1 created") || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("load printed %q (%v)", out, err)
	}
}

// TestOpReaderLines: each operation is named by the line it starts on,
// in NDJSON (blank lines and CRLF counted) and in a JSON array however
// it is spread over lines; a syntax error is named by its line too.
func TestOpReaderLines(t *testing.T) {
	op := func(id string) string { return `{"op":"delete","collection":"Book","id":"` + id + `"}` }
	for _, tc := range []struct {
		name, in string
		want     []int
		errLine  int // 0: no error
	}{
		{"ndjson", op("a") + "\n" + op("b") + "\n", []int{1, 2}, 0},
		{"ndjson blank and crlf", "\r\n" + op("a") + "\r\n\r\n" + op("b"), []int{2, 4}, 0},
		{"ndjson bad", op("a") + "\n{\n", []int{1}, 2},
		{"array one line", "[" + op("a") + "," + op("b") + "]", []int{1, 1}, 0},
		{"array spread", "\n\n [\n" + op("a") + ",\n\n  {\"op\":\"delete\",\n\"collection\":\"Book\",\"id\":\"b\"}\n]\n", []int{4, 6}, 0},
		{"array bad element", "[\n" + op("a") + ",\n\n {\"op\": tru}]", []int{2}, 4},
		{"array not closed", "[\n" + op("a") + ",\n" + op("b"), []int{2, 3}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOpReader(strings.NewReader(tc.in))
			var got []int
			for {
				o, err := r.next()
				if err != nil {
					var le *lineError
					switch {
					case tc.errLine == 0 && errors.Is(err, io.EOF):
					case tc.errLine > 0 && errors.As(err, &le) && le.line == tc.errLine:
					default:
						t.Fatalf("after lines %v: %v, want error on line %d", got, err, tc.errLine)
					}
					break
				}
				got = append(got, o.line)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("lines %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEncodedBound: what load counts for an operation is never less than
// what the API client sends for it.
func TestEncodedBound(t *testing.T) {
	for _, line := range []string{
		`{"op":"put","collection":"Book","id":"b1","doc":{"title":"<b>&</b>"}}`,
		"{\"op\":\"put\",\"collection\":\"Book\",\"doc\":{\"title\":\"a\u2028b\u2029\"}}",
		`{ "op" : "put", "collection" : "Book", "doc" : { "year" : 1.50e3, "title": "\u00e9t\u00e9" } }`,
	} {
		m, err := parseLoadOp([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(m); err != nil {
			t.Fatal(err)
		}
		if got := encodedBound([]byte(line)); got < int64(buf.Len()) {
			t.Errorf("bound %d < %d sent for %s", got, buf.Len(), line)
		}
	}
}
