package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh/bundle"
)

// libraryNode is one replica of the library test: a home with a running
// `tributary run` (libp2p on loopback, mDNS off, peers only as told), a
// Postgres sink "pg" in a database of its own and a memory sink "view".
type libraryNode struct {
	name, home string
	pg         string // URL of its sink's database
	cfg        string // its run config
	info       map[string]any
	stop       func()
}

// start runs the node, peered with the given libp2p addresses only.
func (n *libraryNode) start(t *testing.T, peers ...string) {
	t.Helper()
	args := []string{"--config", n.cfg, "--p2p", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--sync-interval", "300ms"}
	for _, p := range peers {
		args = append(args, "--peer", p)
	}
	n.info, n.stop = launchNode(t, n.home, args...)
}

// addrs are the node's libp2p addresses, as it printed them at start.
func (n *libraryNode) addrs(t *testing.T) []string {
	t.Helper()
	lp, _ := n.info["libp2p"].(map[string]any)
	raw, _ := lp["addrs"].([]any)
	var out []string
	for _, a := range raw {
		out = append(out, a.(string))
	}
	if len(out) == 0 {
		t.Fatalf("node %s printed no libp2p address: %v", n.name, n.info)
	}
	return out
}

// settle waits until every node holds the same heads (and no orphans),
// then until every sink of every node has applied the node's whole effect
// log.
func settle(t *testing.T, space string, nodes ...*libraryNode) {
	t.Helper()
	var last []string
	defer func() {
		if t.Failed() {
			t.Logf("last seen: %v", last)
		}
	}()
	eventually(t, "the replicas never agreed on their heads", func() bool {
		last = last[:0]
		var first []string
		for i, n := range nodes {
			var st statusOut
			ok(t, n.home, &st, "status", "--space", space)
			heads := slices.Sorted(slices.Values(st.Space.Heads))
			last = append(last, fmt.Sprintf("%s: %d changes, %d orphans, heads %v", n.name, st.Space.Changes, st.Space.Orphans, heads))
			if i == 0 {
				first = heads
			}
			if st.Space.Orphans != 0 || !slices.Equal(heads, first) {
				return false
			}
		}
		return true
	})
	t.Logf("settled: %v", last)
	for _, n := range nodes {
		for _, s := range []string{"pg", "view"} {
			if l := waitSink(t, n.home, s, "caught up", caughtUp); l.Parked != 0 {
				t.Fatalf("node %s: sink %s parked effects: %+v", n.name, s, l)
			}
		}
	}
}

// libraryColls are the collections of the lending schema.
var libraryColls = []string{"Book", "Loan", "Review"}

// rows maps id to document (its fields, as JSON values).
type rows map[string]map[string]any

// replicaRows is what `tributary query` lists on the node.
func replicaRows(t *testing.T, n *libraryNode, space, coll string) rows {
	t.Helper()
	var docs []map[string]any
	ok(t, n.home, &docs, "query", "--space", space, coll)
	out := rows{}
	for _, d := range docs {
		out[d["id"].(string)] = d
	}
	return out
}

// viewRows is what the node's memory sink holds, read over HTTP, less the
// LSN (local to each node).
func viewRows(t *testing.T, n *libraryNode, coll string) rows {
	t.Helper()
	code, body := n.get(t, "/v1/sinks/view/docs/"+coll)
	if code != 200 {
		t.Fatalf("node %s: GET view %s: %d %s", n.name, coll, code, body)
	}
	var docs []map[string]any
	if err := json.Unmarshal(body, &docs); err != nil {
		t.Fatal(err)
	}
	out := rows{}
	for _, d := range docs {
		delete(d, "_lsn")
		out[d["id"].(string)] = d
	}
	return out
}

// get calls the node's API as a program would, with the home's token.
func (n *libraryNode) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	a := newAPIClient(t, n.home, n.info)
	return a.raw("GET", path, "", map[string]string{"Authorization": "Bearer " + a.token})
}

// pgRows is every row of the collection's table in the node's Postgres
// database, every column but _lsn (local to each node); a table not made
// yet holds no rows.
func pgRows(t *testing.T, n *libraryNode, coll string) rows {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, n.pg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	table := strings.ToLower(coll)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT to_regclass('public.' || $1) IS NOT NULL", table).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	out := rows{}
	if !exists {
		return out
	}
	rs, err := c.Query(ctx, "SELECT row_to_json(t)::text FROM public."+table+" t")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var text string
		if err := rs.Scan(&text); err != nil {
			t.Fatal(err)
		}
		var row map[string]any
		if err := json.Unmarshal([]byte(text), &row); err != nil {
			t.Fatal(err)
		}
		delete(row, "_lsn")
		out[row["id"].(string)] = row
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fieldsOf keeps a document's fields and id: no bookkeeping columns
// (names starting with "_") and no absent (null) fields, so a replica's
// document, a view's and a table's row compare.
func fieldsOf(r rows) rows {
	out := rows{}
	for id, d := range r {
		f := map[string]any{}
		for k, v := range d {
			if v != nil && !strings.HasPrefix(k, "_") {
				f[k] = v
			}
		}
		out[id] = f
	}
	return out
}

// sameEverywhere requires every node's replica, memory view and Postgres
// tables to hold the same documents, and returns the replicas' documents
// by collection.
func sameEverywhere(t *testing.T, space string, nodes ...*libraryNode) map[string]rows {
	t.Helper()
	want := map[string]rows{}
	wantPG := map[string]rows{}
	for _, coll := range libraryColls {
		want[coll] = replicaRows(t, nodes[0], space, coll)
		wantPG[coll] = pgRows(t, nodes[0], coll)
		for _, n := range nodes {
			if got := replicaRows(t, n, space, coll); !reflect.DeepEqual(got, want[coll]) {
				t.Fatalf("%s on %s's replica:\n%v\nwant (as on %s):\n%v", coll, n.name, got, nodes[0].name, want[coll])
			}
			pg := pgRows(t, n, coll)
			if !reflect.DeepEqual(pg, wantPG[coll]) {
				t.Fatalf("%s in %s's Postgres:\n%v\nwant (as in %s's):\n%v", coll, n.name, pg, nodes[0].name, wantPG[coll])
			}
			if got, w := fieldsOf(pg), fieldsOf(want[coll]); !reflect.DeepEqual(got, w) {
				t.Fatalf("%s in %s's Postgres:\n%v\nwant the replica's documents:\n%v", coll, n.name, got, w)
			}
			if got, w := fieldsOf(viewRows(t, n, coll)), fieldsOf(want[coll]); !reflect.DeepEqual(got, w) {
				t.Fatalf("%s in %s's memory view:\n%v\nwant the replica's documents:\n%v", coll, n.name, got, w)
			}
		}
	}
	return want
}

// forge signs ops as the member of signer's home, on the heads of from's
// copy of space, bypassing the checks a node makes before it signs (as a
// modified peer would), and returns a bundle file holding that change and
// the change's ID.
func forge(t *testing.T, from, signer, space string, ops ...core.Op) (file, id string) {
	t.Helper()
	dir := t.TempDir()
	all := filepath.Join(dir, "all.trb")
	ok(t, from, nil, "export", "--space", space, "-o", all)
	b, err := bundle.ReadFile(all)
	if err != nil {
		t.Fatal(err)
	}
	h, err := node.OpenHome(signer)
	if err != nil {
		t.Fatal(err)
	}
	key := h.Key
	parents := map[core.ID]bool{}
	var changes []*core.Change
	var ids []core.ID
	for _, env := range b.Changes {
		c, cid, _, err := core.Open(env)
		if err != nil {
			t.Fatal(err)
		}
		changes, ids = append(changes, c), append(ids, cid)
		for _, p := range c.Parents {
			parents[p] = true
		}
	}
	nc := &core.Change{Version: core.ChangeVersion, Space: b.Space, Author: key.Public(), Seq: 1}
	for i, c := range changes {
		if !parents[ids[i]] {
			nc.Parents = append(nc.Parents, ids[i])
			nc.Height = max(nc.Height, c.Height+1)
			if c.HLC.Wall >= nc.HLC.Wall {
				nc.HLC = core.HLC{Wall: c.HLC.Wall + 1}
			}
		}
		if c.Author == key.Public() && c.Seq >= nc.Seq {
			nc.Seq, nc.Prev = c.Seq+1, ids[i]
		}
	}
	nc.Parents = core.SortIDs(nc.Parents)
	nc.Ops = ops
	s, cid, err := core.Sign(nc, key)
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "forged.trb")
	if err := bundle.WriteFile(file, bundle.Bundle{Space: b.Space, Changes: [][]byte{env}}); err != nil {
		t.Fatal(err)
	}
	return file, cid.String()
}

// history is `tributary log COLL ID` on a home: each change and its
// verdict.
func history(t *testing.T, home, space, coll, id string) []verdictEntry {
	t.Helper()
	var log []verdictEntry
	ok(t, home, &log, "log", "--space", space, coll, id)
	return log
}

type verdictEntry struct {
	Change string `json:"change"`
	Valid  bool   `json:"valid"`
	Reason string `json:"reason"`
}

// TestLibraryAcrossPartitionedNodes is the lending library (docs/RULES.md)
// end to end: three homes, each a running node with a Postgres sink and a
// memory sink, partitioned (running but not peered, later one stopped)
// while its member writes. Ann and bob borrow one book offline; bob, a
// librarian, deletes a book ann borrowed meanwhile and borrows one the
// founder deletes meanwhile; bob returns his loan and reviews the book,
// which makes him a non-borrower once his loan loses. After healing,
// every replica, every Postgres database and every memory view hold the
// same rows; the rolled-back changes are listed on every node with the
// same reasons, and their rows, present in bob's sinks before, are gone
// (the rolled-back delete's book is back). A reader's write, signed by a
// peer that skips the checks, is refused by every node.
func TestLibraryAcrossPartitionedNodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	schema, err := filepath.Abs("../../core/replica/testdata/lending.graphql")
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := pgtest.StartCluster()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := cluster.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})

	alice, _ := newHome(t, "alice")
	var created struct {
		Space string `json:"space"`
	}
	ok(t, alice, &created, "space", "create", "--schema", schema, "--name", "library")
	space := created.Space
	// Seniority follows the order of the grants: ann before bob.
	ann, annKey := joinAs(t, alice, space, dir, "ann")
	bob, bobKey := joinAs(t, alice, space, dir, "bob")
	ok(t, alice, nil, "member", "grant", "--space", space, annKey, "--role", "member")
	ok(t, alice, nil, "member", "grant", "--space", space, bobKey, "--role", "librarian")
	var inv struct {
		Code string `json:"code"`
	}
	ok(t, alice, &inv, "invite", "--space", space, "--role", "reader")
	fails(t, alice, []string{"admin"}, "invite", "--space", space, "--role", "admin")
	fails(t, alice, []string{"ghost", "not declared"}, "invite", "--space", space, "--role", "ghost")
	rita := filepath.Join(t.TempDir(), "rita")
	var joined struct {
		Author string `json:"author"`
	}
	ok(t, rita, &joined, "join", inv.Code)
	exchange(t, rita, alice, space, filepath.Join(dir, "rita-join.trb"))
	for _, id := range []string{"b1", "b2", "b3", "b4"} {
		put(t, alice, space, "Book", fmt.Sprintf(`{"title":"Book %s"}`, id), "--id", id)
	}
	for _, h := range []string{ann, bob, rita} {
		exchange(t, alice, h, space, filepath.Join(dir, filepath.Base(h)+"-books.trb"))
	}
	var ms []struct {
		Key  string `json:"key"`
		Role string `json:"role"`
	}
	ok(t, rita, &ms, "member", "list", "--space", space)
	roles := map[string]string{}
	for _, m := range ms {
		roles[m.Key] = m.Role
	}
	if roles[joined.Author] != "reader" || roles[annKey] != "member" || roles[bobKey] != "librarian" {
		t.Fatalf("members as rita's home lists them: %+v", ms)
	}
	// A reader reads, and never writes.
	if d := get(t, rita, space, "Book", "b1"); d["title"] != "Book b1" {
		t.Fatalf("rita reads b1 as %v", d)
	}
	before := snap(t, rita, space)
	fails(t, rita, []string{"not authorized", `role "reader" reads but never writes`}, "put", "--space", space, "Loan", fmt.Sprintf(`{"book":"b4","borrower":%q}`, joined.Author))
	if after := snap(t, rita, space); !reflect.DeepEqual(before, after) {
		t.Fatalf("the reader's refused write changed her space:\nbefore %+v\nafter  %+v", before, after)
	}

	var nodes []*libraryNode
	for _, h := range []struct{ name, home string }{{"alice", alice}, {"ann", ann}, {"bob", bob}} {
		url, _, err := cluster.CreateDatabase(context.Background())
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		n := &libraryNode{name: h.name, home: h.home, pg: url,
			cfg: writeConfig(t, fmt.Sprintf("sinks:\n  - {name: pg, type: postgres, url: %q}\n  - {name: view, type: memory}\n", url))}
		nodes = append(nodes, n)
	}
	na, nb, nc := nodes[0], nodes[1], nodes[2]

	// Partition: every node runs alone.
	for _, n := range nodes {
		n.start(t)
	}
	la := put(t, ann, space, "Loan", fmt.Sprintf(`{"book":"b1","borrower":%q}`, annKey), "--id", "la")
	la2 := put(t, ann, space, "Loan", fmt.Sprintf(`{"book":"b2","borrower":%q}`, annKey), "--id", "la2")
	// A review by someone who has not borrowed and returned the book is
	// refused where it is written, and writes nothing.
	before = snap(t, ann, space)
	fails(t, ann, []string{"rule violation", "@create rule of Review is false"}, "put", "--space", space, "Review", `{"book":"b3","stars":4}`)
	if after := snap(t, ann, space); !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused review changed ann's space:\nbefore %+v\nafter  %+v", before, after)
	}
	lb := put(t, bob, space, "Loan", fmt.Sprintf(`{"book":"b1","borrower":%q}`, bobKey), "--id", "lb")
	ret := put(t, bob, space, "Loan", `{"returned":true}`, "--id", "lb")
	rv := put(t, bob, space, "Review", `{"book":"b1","stars":2,"text":"meh"}`, "--id", "rv")
	var del2 putOut
	ok(t, bob, &del2, "delete", "--space", space, "Book", "b2") // no open loan of b2 in bob's view
	lb3 := put(t, bob, space, "Loan", fmt.Sprintf(`{"book":"b3","borrower":%q}`, bobKey), "--id", "lb3")
	var del3 putOut
	ok(t, alice, &del3, "delete", "--space", space, "Book", "b3") // no open loan of b3 in alice's view
	// On bob's node the book is out: a second loan is refused at once.
	fails(t, bob, []string{"rule violation", "Loan/lb3 matches"}, "put", "--space", space, "Loan", fmt.Sprintf(`{"book":"b3","borrower":%q}`, bobKey))
	settle(t, space, na)
	settle(t, space, nb)
	settle(t, space, nc)
	for _, h := range []string{alice, ann} {
		if has(t, h, space, "Loan", "lb") {
			t.Fatal("the partition leaked: bob's loan reached " + h)
		}
	}
	// Each sink holds what its own node decided: bob's loans, return and
	// review are in bob's sinks, b2 is gone from them.
	for _, src := range []rows{pgRows(t, nc, "Loan"), viewRows(t, nc, "Loan")} {
		if _, ok := src["lb3"]; !ok || src["lb"]["returned"] != true {
			t.Fatalf("bob's sinks before healing hold loans %v, want lb (returned) and lb3", src)
		}
	}
	if _, ok := pgRows(t, nc, "Review")["rv"]; !ok {
		t.Fatal("bob's review is not in his Postgres before healing")
	}
	if _, ok := pgRows(t, nc, "Book")["b2"]; ok {
		t.Fatal("b2, deleted by bob, is still in his Postgres before healing")
	}

	// Heal: ann and bob restart peered with alice, and bob with ann.
	nb.stop()
	nc.stop()
	nb.start(t, na.addrs(t)...)
	nc.start(t, append(na.addrs(t), nb.addrs(t)...)...)
	settle(t, space, nodes...)
	docs := sameEverywhere(t, space, nodes...)

	// What stands: ann's loans (ann is senior to bob), the founder's
	// delete of b3; bob's delete of b2 (lent to ann meanwhile) is undone.
	if !reflect.DeepEqual(keys(docs["Loan"]), []string{"la", "la2"}) || !reflect.DeepEqual(keys(docs["Book"]), []string{"b1", "b2", "b4"}) || len(docs["Review"]) != 0 {
		t.Fatalf("after healing: books %v, loans %v, reviews %v; want b1 b2 b4, la la2, none", keys(docs["Book"]), keys(docs["Loan"]), keys(docs["Review"]))
	}
	wantLost := map[string]string{lb.Change: la.Change, ret.Change: la.Change, rv.Change: la.Change, del2.Change: la2.Change, lb3.Change: del3.Change}
	var rollbacks []rollbackOut
	for i, n := range nodes {
		var rbs []rollbackOut
		ok(t, n.home, &rbs, "conflicts", "--rollbacks", "--space", space)
		if i == 0 {
			rollbacks = rbs
			for _, rb := range rbs {
				t.Logf("rolled back %s by %s (%v), lost to %s: %s", rb.Change, rb.Author, rb.Documents, rb.Winner, rb.Reason)
			}
		} else if !reflect.DeepEqual(rbs, rollbacks) {
			t.Fatalf("%s lists other rollbacks than alice:\n%+v\n%+v", n.name, rbs, rollbacks)
		}
	}
	got := map[string]string{}
	for _, rb := range rollbacks {
		got[rb.Change] = rb.Winner
		if rb.Author != bobKey || !strings.HasPrefix(rb.Reason, "rolled back: ") {
			t.Errorf("rollback %+v: want one of bob's changes, with its reason", rb)
		}
	}
	if !reflect.DeepEqual(got, wantLost) {
		t.Fatalf("rolled back (change: winner) %v, want %v", got, wantLost)
	}
	if text := text(t, ann, "conflicts", "--rollbacks", "--space", space); testing.Verbose() {
		t.Logf("tributary conflicts --rollbacks, as ann sees it:\n%s", text)
	}
	var overHTTP []rollbackOut
	code, body := nb.get(t, "/v1/spaces/"+space+"/rollbacks")
	if err := json.Unmarshal(body, &overHTTP); code != 200 || err != nil || !reflect.DeepEqual(overHTTP, rollbacks) {
		t.Fatalf("GET rollbacks on ann's node: %d %s, want what the command lists", code, body)
	}
	for _, n := range nodes {
		for _, rb := range rollbacks {
			coll, id, _ := strings.Cut(rb.Documents[0], "/")
			var entry *verdictEntry
			for _, e := range history(t, n.home, space, coll, id) {
				if e.Change == rb.Change {
					entry = &e
				}
			}
			if entry == nil || entry.Valid || entry.Reason != rb.Reason {
				t.Fatalf("%s's history of %s holds %+v for %s, want it without effect, with the rollback's reason", n.name, rb.Documents[0], entry, rb.Change)
			}
		}
	}
	// The rolled-back delete's book is back in every sink, as the founder
	// wrote it; the rolled-back review and loans are in none.
	for _, n := range nodes {
		if b2 := pgRows(t, n, "Book")["b2"]; b2["title"] != "Book b2" {
			t.Fatalf("b2 in %s's Postgres: %v, want it back", n.name, b2)
		}
		if v := viewRows(t, n, "Book")["b2"]; v["title"] != "Book b2" {
			t.Fatalf("b2 in %s's memory view: %v, want it back", n.name, v)
		}
	}

	// Healed, the rules judge every write at once, on every node.
	fails(t, alice, []string{"rule violation", "@delete rule of Book is false", "Loan/la matches"}, "delete", "--space", space, "Book", "b1")
	fails(t, bob, []string{"rule violation", "@create rule of Review is false"}, "put", "--space", space, "Review", `{"book":"b1","stars":1}`)
	fails(t, bob, []string{"rule violation", "Loan/la matches"}, "put", "--space", space, "Loan", fmt.Sprintf(`{"book":"b1","borrower":%q}`, bobKey))

	// The reader's write, signed without the checks, refused by every node
	// for the same reason.
	forged, lr := forge(t, alice, rita, space, core.Op{Kind: core.OpCreate, Coll: "Loan", Doc: "lr", Fields: map[string]any{"book": "b4", "borrower": joined.Author}})
	var readerReason string
	for _, n := range nodes {
		var im importOut
		ok(t, n.home, &im, "import", forged)
		log := history(t, n.home, space, "Loan", "lr")
		if len(log) != 1 || log[0].Change != lr || log[0].Valid || !strings.Contains(log[0].Reason, `role "reader" reads but never writes`) {
			t.Fatalf("%s imported the reader's loan (%+v) and holds %+v, want it without effect: a reader never writes", n.name, im, log)
		}
		if readerReason == "" {
			readerReason = log[0].Reason
		} else if log[0].Reason != readerReason {
			t.Fatalf("%s refuses the reader's loan for %q, alice for %q", n.name, log[0].Reason, readerReason)
		}
	}

	// Bob's node stops: he writes offline, straight into his home, while
	// ann gives b1 back and reviews it.
	nc.stop()
	put(t, ann, space, "Loan", `{"returned":true}`, "--id", "la")
	put(t, ann, space, "Review", `{"book":"b1","stars":5,"text":"a classic"}`, "--id", "ra")
	fails(t, bob, []string{"rule violation", "Loan/la matches"}, "put", "--space", space, "Loan", fmt.Sprintf(`{"book":"b1","borrower":%q}`, bobKey))
	put(t, bob, space, "Loan", fmt.Sprintf(`{"book":"b4","borrower":%q}`, bobKey), "--id", "lb4")
	nc.start(t, append(na.addrs(t), nb.addrs(t)...)...)
	settle(t, space, nodes...)
	put(t, bob, space, "Loan", fmt.Sprintf(`{"book":"b1","borrower":%q}`, bobKey), "--id", "lb5")
	settle(t, space, nodes...)
	docs = sameEverywhere(t, space, nodes...)
	if !reflect.DeepEqual(keys(docs["Loan"]), []string{"la", "la2", "lb4", "lb5"}) || !reflect.DeepEqual(keys(docs["Review"]), []string{"ra"}) ||
		docs["Loan"]["la"]["returned"] != true || docs["Loan"]["lb5"]["borrower"] != bobKey {
		t.Fatalf("at the end: loans %v, reviews %v", docs["Loan"], docs["Review"])
	}
	var after []rollbackOut
	ok(t, na.home, &after, "conflicts", "--rollbacks", "--space", space)
	if !reflect.DeepEqual(after, rollbacks) {
		t.Fatalf("rollbacks changed after the last writes:\n%+v\nwas\n%+v", after, rollbacks)
	}
}

func keys(r rows) []string {
	out := make([]string, 0, len(r))
	for k := range r {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
