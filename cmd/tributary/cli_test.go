package main

// End-to-end tests of the tributary binary: TestMain builds it once, every
// test runs it as a subprocess against t.TempDir() homes with --json and
// checks what it prints, its exit code, and (for bad input) that it wrote
// nothing.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh/bundle"
)

// bin is the tributary binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tributary-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "tributary")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		return 1
	}
	return m.Run()
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary with --home home --json args.
func run(t *testing.T, home string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home, "--json"}, args...)...)
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=") // only --home counts
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// withoutWarnings drops the "warning: " lines a command may print.
func withoutWarnings(stderr string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l != "" && !strings.HasPrefix(l, "warning: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// ok runs the binary, requires success and silence on stderr, and decodes
// stdout (one JSON value) into v when v is not nil.
func ok(t *testing.T, home string, v any, args ...string) {
	t.Helper()
	r := run(t, home, args...)
	if r.code != 0 {
		t.Fatalf("tributary %v: exit %d\nstderr: %s", args, r.code, r.stderr)
	}
	if rest := withoutWarnings(r.stderr); rest != "" {
		t.Fatalf("tributary %v: unexpected stderr: %q", args, rest)
	}
	if v == nil {
		return
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("tributary %v: stdout is not the expected JSON (%v): %q", args, err, r.stdout)
	}
}

// fails runs the binary and requires a non-zero exit, nothing on stdout,
// and exactly one line on stderr that contains every one of want.
func fails(t *testing.T, home string, want []string, args ...string) {
	t.Helper()
	r := run(t, home, args...)
	if r.code == 0 {
		t.Fatalf("tributary %v: exit 0, want failure; stdout %q", args, r.stdout)
	}
	if r.stdout != "" {
		t.Errorf("tributary %v: failed but printed on stdout: %q", args, r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("tributary %v: stderr is not exactly one line: %q", args, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("tributary %v: stderr %q does not name %q", args, r.stderr, w)
		}
	}
}

// schemaPath is the demo schema (tests run in the package directory).
func schemaPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("demo_schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newHome inits a home under a fresh temp dir and returns its path and
// author key.
func newHome(t *testing.T, name string) (home, author string) {
	t.Helper()
	home = filepath.Join(t.TempDir(), name)
	var out struct {
		Author  string `json:"author"`
		Home    string `json:"home"`
		Created bool   `json:"created"`
	}
	ok(t, home, &out, "init")
	if out.Author == "" || !out.Created || out.Home != home {
		t.Fatalf("init printed %+v", out)
	}
	return home, out.Author
}

// newSpace founds a space with the demo schema in home.
func newSpace(t *testing.T, home, name string) string {
	t.Helper()
	var out struct {
		Space string `json:"space"`
	}
	ok(t, home, &out, "space", "create", "--schema", schemaPath(t), "--name", name)
	if out.Space == "" {
		t.Fatal("space create printed no space")
	}
	return out.Space
}

type putOut struct {
	ID     string `json:"id"`
	Change string `json:"change"`
}

func put(t *testing.T, home, space, coll, doc string, extra ...string) putOut {
	t.Helper()
	var out putOut
	ok(t, home, &out, append([]string{"put", "--space", space, coll, doc}, extra...)...)
	if out.ID == "" || out.Change == "" {
		t.Fatalf("put printed %+v", out)
	}
	return out
}

func get(t *testing.T, home, space, coll, id string, extra ...string) map[string]any {
	t.Helper()
	var doc map[string]any
	ok(t, home, &doc, append([]string{"get", "--space", space, coll, id}, extra...)...)
	return doc
}

type logEntry struct {
	Change string `json:"change"`
	Author string `json:"author"`
	Valid  bool   `json:"valid"`
	Ops    []struct {
		Kind   string         `json:"kind"`
		Coll   string         `json:"collection"`
		Doc    string         `json:"id"`
		Field  string         `json:"field"`
		Value  any            `json:"value"`
		Fields map[string]any `json:"fields"`
	} `json:"ops"`
}

type statusOut struct {
	Author string `json:"author"`
	Space  struct {
		Space   string   `json:"space"`
		Name    string   `json:"name"`
		Changes int      `json:"changes"`
		Heads   []string `json:"heads"`
		Orphans int      `json:"orphans"`
		Members []struct {
			Role string `json:"role"`
		} `json:"members"`
	} `json:"space"`
	Effects struct {
		LastLSN int `json:"last_lsn"`
	} `json:"effects"`
}

// snapshot is what a write would change: the space's change count, heads,
// orphans, effect log, full log, and the spaces the home holds.
type snapshot struct {
	Changes, Orphans, LastLSN int
	Heads, Log, Spaces        []string
}

func snap(t *testing.T, home, space string) snapshot {
	t.Helper()
	var st statusOut
	ok(t, home, &st, "status", "--space", space)
	var log []logEntry
	ok(t, home, &log, "log", "--space", space)
	var spaces []struct {
		Space string `json:"space"`
	}
	ok(t, home, &spaces, "space", "list")
	s := snapshot{Changes: st.Space.Changes, Orphans: st.Space.Orphans, LastLSN: st.Effects.LastLSN, Heads: st.Space.Heads}
	for _, e := range log {
		s.Log = append(s.Log, e.Change)
	}
	for _, sp := range spaces {
		s.Spaces = append(s.Spaces, sp.Space)
	}
	// No half-made space may be left behind either.
	entries, err := os.ReadDir(filepath.Join(home, "spaces"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(spaces) {
		t.Fatalf("home has %d entries under spaces/, but lists %d spaces", len(entries), len(spaces))
	}
	return s
}

type importOut struct {
	Released   int `json:"released"`
	Applied    int `json:"applied"`
	Invalid    int `json:"invalid"`
	Duplicates int `json:"duplicates"`
	Held       int `json:"held"`
	Rejected   []struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	} `json:"rejected"`
}

type exportOut struct {
	File    string   `json:"file"`
	Changes int      `json:"changes"`
	Heads   []string `json:"heads"`
}

// exchange exports everything from one home and imports it into another.
func exchange(t *testing.T, from, to, space, file string) importOut {
	t.Helper()
	var ex exportOut
	ok(t, from, &ex, "export", "--space", space, "-o", file)
	if ex.File != file || ex.Changes == 0 {
		t.Fatalf("export printed %+v", ex)
	}
	var im importOut
	ok(t, to, &im, "import", file)
	if len(im.Rejected) != 0 {
		t.Fatalf("import %s refused changes: %+v", file, im.Rejected)
	}
	return im
}

func TestSingleNode(t *testing.T) {
	t.Parallel()
	home, author := newHome(t, "alice")

	// init is idempotent: same author, created false.
	var again struct {
		Author  string `json:"author"`
		Created bool   `json:"created"`
	}
	ok(t, home, &again, "init")
	if again.Author != author || again.Created {
		t.Fatalf("second init printed %+v, want author %s, created false", again, author)
	}

	space := newSpace(t, home, "library")
	var spaces []struct {
		Space string `json:"space"`
		Name  string `json:"name"`
	}
	ok(t, home, &spaces, "space", "list")
	if len(spaces) != 1 || spaces[0].Space != space || spaces[0].Name != "library" {
		t.Fatalf("space list = %+v", spaces)
	}

	// put creates a document and prints its id and change.
	dune := put(t, home, space, "Book", `{"title":"Dune","year":1965,"tags":["classic"]}`)
	other := put(t, home, space, "Book", `{"title":"Emma","year":1815}`)
	if dune.ID == other.ID || dune.Change == other.Change {
		t.Fatalf("two puts share an id or change: %+v %+v", dune, other)
	}
	doc := get(t, home, space, "Book", dune.ID)
	if doc["id"] != dune.ID || doc["title"] != "Dune" || doc["year"] != float64(1965) {
		t.Fatalf("get = %v", doc)
	}
	if tags, _ := doc["tags"].([]any); len(tags) != 1 || tags[0] != "classic" {
		t.Fatalf("get tags = %v", doc["tags"])
	}

	// put --id merges: given fields change, others stay.
	upd := put(t, home, space, "Book", `{"year":1966,"likes":3,"tags":["classic","sci-fi"]}`, "--id", dune.ID)
	if upd.ID != dune.ID {
		t.Fatalf("put --id printed id %s, want %s", upd.ID, dune.ID)
	}
	doc = get(t, home, space, "Book", dune.ID)
	if doc["title"] != "Dune" || doc["year"] != float64(1966) || doc["likes"] != float64(3) {
		t.Fatalf("after merge get = %v", doc)
	}
	if tags, _ := doc["tags"].([]any); len(tags) != 2 {
		t.Fatalf("after merge tags = %v", doc["tags"])
	}
	// get --at reads the document as it was at its creation.
	if old := get(t, home, space, "Book", dune.ID, "--at", dune.Change); old["year"] != float64(1965) || old["title"] != "Dune" {
		t.Fatalf("get --at %s = %v", dune.Change, old)
	}

	// A document with the caller's own id.
	put(t, home, space, "Author", `{"name":"Frank Herbert"}`, "--id", "herbert")
	if a := get(t, home, space, "Author", "herbert"); a["id"] != "herbert" || a["name"] != "Frank Herbert" {
		t.Fatalf("get Author/herbert = %v", a)
	}

	// query --where filters by equality.
	query := func(where ...string) []string {
		t.Helper()
		args := []string{"query", "--space", space, "Book"}
		for _, w := range where {
			args = append(args, "--where", w)
		}
		var docs []map[string]any
		ok(t, home, &docs, args...)
		var ids []string
		for _, d := range docs {
			ids = append(ids, d["id"].(string))
		}
		sort.Strings(ids)
		return ids
	}
	all := []string{dune.ID, other.ID}
	sort.Strings(all)
	if got := query(); !reflect.DeepEqual(got, all) {
		t.Fatalf("query Book = %v, want %v", got, all)
	}
	if got := query("year=1966"); !reflect.DeepEqual(got, []string{dune.ID}) {
		t.Fatalf("query year=1966 = %v, want [%s]", got, dune.ID)
	}
	if got := query("title=Emma"); !reflect.DeepEqual(got, []string{other.ID}) {
		t.Fatalf("query title=Emma = %v, want [%s]", got, other.ID)
	}
	if got := query("title=Dune", "year=1815"); len(got) != 0 {
		t.Fatalf("query title=Dune year=1815 = %v, want none", got)
	}

	// delete: get then fails, naming the document.
	var del putOut
	ok(t, home, &del, "delete", "--space", space, "Book", other.ID)
	if del.ID != other.ID || del.Change == "" {
		t.Fatalf("delete printed %+v", del)
	}
	fails(t, home, []string{"Book/" + other.ID, "not found"}, "get", "--space", space, "Book", other.ID)
	fails(t, home, []string{"Book/" + other.ID, "not found"}, "delete", "--space", space, "Book", other.ID)
	if got := query(); !reflect.DeepEqual(got, []string{dune.ID}) {
		t.Fatalf("query after delete = %v", got)
	}

	// log lists every change, oldest first: genesis, 2 creates, merge,
	// author, delete.
	var log []logEntry
	ok(t, home, &log, "log", "--space", space)
	if len(log) != 6 {
		t.Fatalf("log has %d entries, want 6: %+v", len(log), log)
	}
	if log[0].Change != space || log[0].Ops[0].Kind != "genesis" {
		t.Fatalf("first log entry %+v is not the genesis %s", log[0], space)
	}
	if log[1].Change != dune.Change || log[1].Ops[0].Kind != "create" || log[1].Ops[0].Doc != dune.ID {
		t.Fatalf("second log entry %+v is not the create %s", log[1], dune.Change)
	}
	if last := log[5]; last.Change != del.Change || last.Ops[0].Kind != "delete" {
		t.Fatalf("last log entry %+v is not the delete %s", last, del.Change)
	}
	for _, e := range log {
		if !e.Valid || e.Author != author {
			t.Fatalf("log entry %+v: want valid, by %s", e, author)
		}
	}
	// log COLLECTION ID: one document's history.
	var hist []logEntry
	ok(t, home, &hist, "log", "--space", space, "Book", dune.ID)
	if len(hist) != 2 || hist[0].Change != dune.Change || hist[1].Change != upd.Change {
		t.Fatalf("history of %s = %+v", dune.ID, hist)
	}

	// status: the same count, one head (the delete), alice the only admin.
	var st statusOut
	ok(t, home, &st, "status", "--space", space)
	if st.Author != author || st.Space.Space != space || st.Space.Name != "library" || st.Space.Changes != 6 {
		t.Fatalf("status = %+v", st)
	}
	if !reflect.DeepEqual(st.Space.Heads, []string{del.Change}) {
		t.Fatalf("status heads = %v, want [%s]", st.Space.Heads, del.Change)
	}
	if len(st.Space.Members) != 1 || st.Space.Members[0].Role != "admin" {
		t.Fatalf("status members = %+v", st.Space.Members)
	}
	// --space is optional while the home holds one space.
	var st2 statusOut
	ok(t, home, &st2, "status")
	if st2.Space.Space != space {
		t.Fatalf("status without --space = %+v", st2)
	}

	// effects: one per document-changing write.
	var effs []map[string]any
	ok(t, home, &effs, "effects")
	if len(effs) != 5 {
		t.Fatalf("effects has %d entries, want 5: %v", len(effs), effs)
	}
}

// twoPeers founds a space in alice's home, has bob join it offline with an
// invite code, and syncs them both ways with bundle files.
func twoPeers(t *testing.T) (alice, bob, space, dir string) {
	t.Helper()
	dir = t.TempDir()
	alice, _ = newHome(t, "alice")
	space = newSpace(t, alice, "library")

	var inv struct {
		Code   string `json:"code"`
		Change string `json:"change"`
	}
	ok(t, alice, &inv, "invite", "--space", space)
	if !strings.HasPrefix(inv.Code, "trib2") || inv.Change == "" {
		t.Fatalf("invite printed %+v", inv)
	}

	// bob's home does not exist yet: join creates it, offline.
	bob = filepath.Join(t.TempDir(), "bob")
	var joined struct {
		Space  string `json:"space"`
		Author string `json:"author"`
		Grant  string `json:"grant"`
	}
	ok(t, bob, &joined, "join", inv.Code)
	if joined.Space != space || joined.Author == "" || joined.Grant == "" {
		t.Fatalf("join printed %+v", joined)
	}
	// The same code again: bob already holds the space.
	fails(t, bob, []string{"already holds space"}, "join", inv.Code)

	// bob's bundle carries his grant to alice; alice's carries the space
	// to bob.
	if im := exchange(t, bob, alice, space, filepath.Join(dir, "bob-1.trb")); im.Applied != 1 {
		t.Fatalf("alice imports bob's grant: %+v, want 1 applied", im)
	}
	// alice, an admin, acknowledged bob's use of the code on import.
	if im := exchange(t, alice, bob, space, filepath.Join(dir, "alice-1.trb")); im.Applied != 3 || im.Released != 1 || im.Duplicates != 1 {
		t.Fatalf("bob imports alice's space: %+v, want 3 new (genesis, invite, acknowledgement), his own grant already held and released", im)
	}
	var sa, sb statusOut
	ok(t, alice, &sa, "status", "--space", space)
	ok(t, bob, &sb, "status", "--space", space)
	if sa.Space.Changes != 4 || sb.Space.Changes != 4 || sb.Space.Orphans != 0 || !reflect.DeepEqual(sa.Space.Heads, sb.Space.Heads) {
		t.Fatalf("after sync: alice %+v, bob %+v", sa.Space, sb.Space)
	}
	return alice, bob, space, dir
}

func TestTwoPeersConcurrentWrites(t *testing.T) {
	t.Parallel()
	alice, bob, space, dir := twoPeers(t)

	// alice writes a book; bob gets it by bundle and writes too.
	book := put(t, alice, space, "Book", `{"title":"Dune","year":1965}`)
	exchange(t, alice, bob, space, filepath.Join(dir, "alice-2.trb"))
	if d := get(t, bob, space, "Book", book.ID); d["title"] != "Dune" {
		t.Fatalf("bob sees %v", d)
	}
	bobs := put(t, bob, space, "Book", `{"title":"Emma"}`)

	// Both retitle the same book without having seen the other's write.
	a := put(t, alice, space, "Book", `{"title":"Dune (alice)"}`, "--id", book.ID)
	b := put(t, bob, space, "Book", `{"title":"Dune (bob)","year":1966}`, "--id", book.ID)

	exchange(t, alice, bob, space, filepath.Join(dir, "alice-3.trb"))
	exchange(t, bob, alice, space, filepath.Join(dir, "bob-3.trb"))

	da := get(t, alice, space, "Book", book.ID)
	db := get(t, bob, space, "Book", book.ID)
	if !reflect.DeepEqual(da, db) {
		t.Fatalf("peers disagree:\nalice %v\nbob   %v", da, db)
	}
	if da["title"] != "Dune (alice)" && da["title"] != "Dune (bob)" {
		t.Fatalf("title = %v, want one of the two concurrent writes", da["title"])
	}
	if da["year"] != float64(1966) {
		t.Fatalf("year = %v, want bob's uncontested 1966", da["year"])
	}
	if e := get(t, alice, space, "Book", bobs.ID); e["title"] != "Emma" {
		t.Fatalf("alice sees bob's book as %v", e)
	}

	type write struct {
		Value  any    `json:"value"`
		Change string `json:"change"`
	}
	type conflict struct {
		Collection string  `json:"collection"`
		ID         string  `json:"id"`
		Field      string  `json:"field"`
		Winner     write   `json:"winner"`
		Losers     []write `json:"losers"`
	}
	var ca, cb []conflict
	ok(t, alice, &ca, "conflicts", "--space", space)
	ok(t, bob, &cb, "conflicts", "--space", space)
	if !reflect.DeepEqual(ca, cb) {
		t.Fatalf("peers list different conflicts:\nalice %+v\nbob   %+v", ca, cb)
	}
	if len(ca) != 1 {
		t.Fatalf("conflicts = %+v, want exactly one", ca)
	}
	c := ca[0]
	if c.Collection != "Book" || c.ID != book.ID || c.Field != "title" || len(c.Losers) != 1 {
		t.Fatalf("conflict = %+v", c)
	}
	if c.Winner.Value != da["title"] {
		t.Fatalf("conflict winner %v, but the document holds %v", c.Winner.Value, da["title"])
	}
	got := []string{c.Winner.Change, c.Losers[0].Change}
	want := []string{a.Change, b.Change}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("conflict changes %v, want the two retitles %v", got, want)
	}

	// An ordinary put resolves it, and the resolution travels.
	put(t, bob, space, "Book", `{"title":"Dune"}`, "--id", book.ID)
	exchange(t, bob, alice, space, filepath.Join(dir, "bob-4.trb"))
	for _, h := range []string{alice, bob} {
		var cs []conflict
		ok(t, h, &cs, "conflicts", "--space", space)
		if len(cs) != 0 {
			t.Fatalf("conflicts after resolving = %+v", cs)
		}
		if d := get(t, h, space, "Book", book.ID); d["title"] != "Dune" {
			t.Fatalf("after resolving: %v", d)
		}
	}
}

func TestImportIsIdempotent(t *testing.T) {
	t.Parallel()
	alice, bob, space, dir := twoPeers(t)
	put(t, alice, space, "Book", `{"title":"Dune"}`)
	put(t, alice, space, "Author", `{"name":"Frank Herbert"}`)

	file := filepath.Join(dir, "alice.trb")
	var ex exportOut
	ok(t, alice, &ex, "export", "--space", space, "-o", file)
	if ex.Changes != 6 {
		t.Fatalf("export printed %+v, want 6 changes", ex)
	}
	var first importOut
	ok(t, bob, &first, "import", file)
	if first.Applied != 2 || first.Duplicates != 4 {
		t.Fatalf("first import = %+v, want 2 new, 4 already held", first)
	}
	before := snap(t, bob, space)
	var second importOut
	ok(t, bob, &second, "import", file)
	if second.Applied != 0 || second.Invalid != 0 || second.Held != 0 || second.Duplicates != 6 || len(second.Rejected) != 0 {
		t.Fatalf("second import = %+v, want 0 new, 6 already held", second)
	}
	if after := snap(t, bob, space); !reflect.DeepEqual(before, after) {
		t.Fatalf("second import changed bob's space:\nbefore %+v\nafter  %+v", before, after)
	}

	// --since the heads bob holds: nothing more to carry.
	var st statusOut
	ok(t, bob, &st, "status", "--space", space)
	ok(t, alice, &ex, "export", "--space", space, "-o", filepath.Join(dir, "since.trb"), "--since", strings.Join(st.Space.Heads, ","))
	if ex.Changes != 0 {
		t.Fatalf("export --since bob's heads = %+v, want 0 changes", ex)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	alice, bob, space, dir := twoPeers(t)
	book := put(t, alice, space, "Book", `{"title":"Dune","year":1965}`)

	// A good bundle to damage, and one from a space bob does not hold.
	good := filepath.Join(dir, "good.trb")
	ok(t, alice, nil, "export", "--space", space, "-o", good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	writeFile := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x01
	// An intact file (its checksum holds) whose last change's signature
	// does not verify.
	b, err := bundle.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.DecodeSigned(b.Changes[len(b.Changes)-1])
	if err != nil {
		t.Fatal(err)
	}
	s.Sig[0] ^= 0x01
	if b.Changes[len(b.Changes)-1], err = s.Encode(); err != nil {
		t.Fatal(err)
	}
	forged, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// A verified bundle whose change the replica refuses: its height does
	// not follow its parent, the genesis.
	refused := refusedChangeBundle(t, space)

	carol, _ := newHome(t, "carol")
	carolSpace := newSpace(t, carol, "elsewhere")
	foreign := filepath.Join(dir, "foreign.trb")
	ok(t, carol, nil, "export", "--space", carolSpace, "-o", foreign)

	badSchema := writeFile("bad.graphql", []byte("type Book @collection {\n  title: Strin\n}\n"))
	emptySchema := writeFile("empty.graphql", nil)

	cases := []struct {
		name string
		home string
		want []string
		args []string
	}{
		{"wrong type", alice, []string{"year", "Int"}, []string{"put", "--space", space, "Book", `{"title":"Dune","year":"abc"}`}},
		{"wrong type on merge", alice, []string{"year", "Int"}, []string{"put", "--space", space, "--id", book.ID, "Book", `{"year":"abc"}`}},
		{"out of range", alice, []string{"year", "3000"}, []string{"put", "--space", space, "Book", `{"title":"Dune","year":99999}`}},
		{"unknown field", alice, []string{"Book.colour"}, []string{"put", "--space", space, "Book", `{"title":"Dune","colour":"red"}`}},
		{"unknown collection", alice, []string{"Magazine"}, []string{"put", "--space", space, "Magazine", `{"title":"Dune"}`}},
		{"rule broken", alice, []string{"title", "at least 1"}, []string{"put", "--space", space, "Book", `{"title":""}`}},
		{"rule broken on merge", alice, []string{"title", "at least 1"}, []string{"put", "--space", space, "--id", book.ID, "Book", `{"title":""}`}},
		{"missing reference", alice, []string{"author", "nobody"}, []string{"put", "--space", space, "Book", `{"title":"Dune","author":"nobody"}`}},
		{"malformed JSON", alice, []string{"JSON"}, []string{"put", "--space", space, "Book", `{"title":`}},
		{"not an object", alice, []string{"JSON", "object"}, []string{"put", "--space", space, "Book", `null`}},
		{"trailing JSON", alice, []string{"JSON", "trailing"}, []string{"put", "--space", space, "Book", `{"title":"a"} {}`}},
		{"bad document id", alice, []string{"document id"}, []string{"put", "--space", space, "--id", "a/b", "Book", `{"title":"Dune"}`}},
		{"unknown space", alice, []string{`"nosuch"`, "unknown space"}, []string{"put", "--space", "nosuch", "Book", `{"title":"Dune"}`}},
		{"unknown space delete", alice, []string{`"nosuch"`, "unknown space"}, []string{"delete", "--space", "nosuch", "Book", book.ID}},
		{"delete unknown document", alice, []string{"Book/nothere", "not found"}, []string{"delete", "--space", space, "Book", "nothere"}},
		{"corrupted bundle", bob, []string{"corrupt", "flipped.trb"}, []string{"import", writeFile("flipped.trb", flipped)}},
		{"forged bundle", bob, []string{"fails verification", "forged.trb"}, []string{"import", writeFile("forged.trb", forged)}},
		{"change refused by the replica", bob, []string{"refused", "1 of 1 changes", "height 5, want 2"}, []string{"import", writeFile("refused.trb", refused)}},
		{"truncated bundle", bob, []string{"truncated", "truncated.trb"}, []string{"import", writeFile("truncated.trb", data[:len(data)*2/3])}},
		{"tiny bundle", bob, []string{"not a tributary bundle"}, []string{"import", writeFile("tiny.trb", data[:10])}},
		{"not a bundle", bob, []string{"not a tributary bundle"}, []string{"import", badSchema}},
		{"missing bundle", bob, []string{"nothere.trb"}, []string{"import", filepath.Join(dir, "nothere.trb")}},
		{"bundle of another space", bob, []string{carolSpace, "join it first"}, []string{"import", foreign}},
		{"missing schema file", alice, []string{"missing.graphql"}, []string{"space", "create", "--schema", filepath.Join(dir, "missing.graphql")}},
		{"invalid schema file", alice, []string{"bad.graphql", "Strin"}, []string{"space", "create", "--schema", badSchema}},
		{"empty schema file", alice, []string{"empty.graphql", "schema"}, []string{"space", "create", "--schema", emptySchema}},
		{"no schema flag", alice, []string{"--schema"}, []string{"space", "create"}},
		{"bad invite code", bob, []string{"invite code"}, []string{"join", "trib1garbage"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snap(t, tc.home, space)
			fails(t, tc.home, tc.want, tc.args...)
			if after := snap(t, tc.home, space); !reflect.DeepEqual(before, after) {
				t.Fatalf("failed command wrote:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}

	// After all that, both peers still hold the same, unharmed book.
	for _, h := range []string{alice, bob} {
		if h == bob {
			ok(t, bob, nil, "import", good)
		}
		if d := get(t, h, space, "Book", book.ID); d["title"] != "Dune" || d["year"] != float64(1965) {
			t.Fatalf("book after bad input: %v", d)
		}
	}
}

// refusedChangeBundle is a bundle of space holding one validly signed
// change that every replica refuses: height 5 on a parent at height 1.
func refusedChangeBundle(t *testing.T, space string) []byte {
	t.Helper()
	sid, err := core.ParseID(space)
	if err != nil {
		t.Fatal(err)
	}
	k, err := core.PrivateKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	c := &core.Change{Version: core.ChangeVersion, Space: sid, Author: k.Public(), Seq: 1, Parents: []core.ID{sid}, Height: 5,
		HLC: core.HLC{Wall: uint64(time.Now().UnixMilli())}, Ops: []core.Op{{Kind: core.OpCreate, Coll: "Book", Doc: "x", Fields: map[string]any{"title": "t"}}}}
	s, _, err := core.Sign(c, k)
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	data, err := bundle.Bundle{Space: sid, Changes: [][]byte{env}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A home without a key fails cleanly and is not created by reads.
func TestNoHome(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "none")
	fails(t, home, []string{"no key", "tributary init"}, "status")
	fails(t, home, []string{"no key"}, "put", "Book", `{"title":"Dune"}`)
	fails(t, home, []string{"no key"}, "space", "create", "--schema", schemaPath(t))
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Fatalf("failed commands created %s (stat: %v)", home, err)
	}
	home2, _ := newHome(t, "empty")
	fails(t, home2, []string{"no space"}, "status")
}
