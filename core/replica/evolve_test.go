package replica

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

const evolveV1 = `type Book {
  name: String
  tags: [String!] @set
  likes: Int @counter
  status: String @default(value: "draft")
  pages: Int
  sequel: Book
}`

// evolveV2 renames a register, a set, a counter and a reference, changes
// a default and tightens a rule with the flag policy.
const evolveV2 = `type Book {
  title: String @renamed(from: "name")
  labels: [String!] @set @renamed(from: "tags")
  hearts: Int @counter @renamed(from: "likes")
  status: String @default(value: "new")
  pages: Int @range(min: 1) @existing(policy: flag)
  next: Book @renamed(from: "sequel")
}`

// TestSchemaEvolutionConverges: an upgrade renaming fields is written on
// one replica while two others keep writing under the old version; every
// change is then delivered to three fresh replicas in different seeded
// orders. They reach byte-identical state, the renamed fields hold the
// values written under both names, and nothing is lost.
func TestSchemaEvolutionConverges(t *testing.T) {
	ctx := context.Background()
	admin, bob, carol := key(t, 1), key(t, 2), key(t, 3)
	clk := &clock{}
	a := openMem(t)
	if _, err := a.Found(ctx, admin, "evolve", evolveV1, nil, clk.now()); err != nil {
		t.Fatal(err)
	}
	for _, k := range []core.PrivateKey{bob, carol} {
		mustWrite(t, a, admin, clk, core.Op{Kind: core.OpGrant, Member: k.Public(), Role: core.RoleWriter})
	}
	put := func(r *Replica, k core.PrivateKey, id string, fields map[string]any) {
		t.Helper()
		if _, _, err := r.Mutate(ctx, k, []Mutation{{Op: MutPut, Collection: "Book", ID: id, Fields: fields}}, clk.now()); err != nil {
			t.Fatalf("put %s: %v", id, err)
		}
	}
	put(a, admin, "b1", map[string]any{"name": "Dune", "tags": []any{"x", "y"}, "likes": 2, "pages": 0})
	b, c := openMem(t), openMem(t)
	syncInto(t, b, a)
	syncInto(t, c, a)

	// Partitioned: a upgrades and writes under the new names; b and c
	// write under the old ones.
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpSchema, Schema: evolveV2})
	put(a, admin, "b1", map[string]any{"labels": []any{"y", "z"}}) // removes x, written as a tag
	put(a, admin, "b3", map[string]any{"title": "Children of Dune"})
	put(a, admin, "b1", map[string]any{"title": "Dune (a)"}) // concurrent with bob's write of name
	mustWrite(t, a, admin, clk, core.Op{Kind: core.OpIncrement, Coll: "Book", Doc: "b1", Field: "hearts", Delta: 10})
	put(b, bob, "b1", map[string]any{"name": "Dune (revised)", "tags": []any{"x", "w"}}) // removes y, adds w
	mustWrite(t, b, bob, clk, core.Op{Kind: core.OpIncrement, Coll: "Book", Doc: "b1", Field: "likes", Delta: 3})
	put(c, carol, "b2", map[string]any{"name": "Dune Messiah", "sequel": "b1"})
	put(c, carol, "b1", map[string]any{"sequel": "b2"})

	var envs [][]byte
	for _, r := range []*Replica{a, b, c} {
		e, err := r.Export(nil)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e...)
	}
	seed := testSeed(t)
	var prints []string
	var replicas []*Replica
	for i := range 3 {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		order := append([][]byte(nil), envs...)
		rng.Shuffle(len(order), func(x, y int) { order[x], order[y] = order[y], order[x] })
		r := openMem(t)
		for _, e := range order { // one at a time: early arrivals wait for their parents
			if _, err := r.Receive(ctx, [][]byte{e}); err != nil {
				t.Fatal(err)
			}
		}
		replicas = append(replicas, r)
		prints = append(prints, fingerprint(t, r))
	}
	for i := 1; i < 3; i++ {
		if prints[i] != prints[0] {
			t.Fatalf("replica %d differs from replica 0 (seed %d):\n%s", i, seed, printDiff(prints[0], prints[i]))
		}
	}
	// The writers themselves, once they have exchanged everything, agree.
	for _, x := range []*Replica{a, b, c} {
		for _, y := range []*Replica{a, b, c} {
			if x != y {
				syncInto(t, x, y)
			}
		}
	}
	for i, x := range []*Replica{a, b, c} {
		if p := fingerprint(t, x); p != prints[0] {
			t.Fatalf("writer %d differs from the fresh replicas (seed %d):\n%s", i, seed, printDiff(prints[0], p))
		}
	}
	r := replicas[0]
	if !strings.Contains(r.Schema().Text, "@renamed") {
		t.Fatal("the upgrade is not in force")
	}
	b1, ok, _ := r.Get("Book", "b1")
	if !ok {
		t.Fatal("b1 lost")
	}
	want := map[string]any{"title": "Dune (revised)", "labels": []any{"w", "z"}, "hearts": int64(15),
		"status": "draft", "pages": int64(0), "next": "b2"}
	if !reflect.DeepEqual(b1.Fields, want) {
		t.Fatalf("b1 = %v, want %v", b1.Fields, want)
	}
	b2, _, _ := r.Get("Book", "b2")
	if want := map[string]any{"title": "Dune Messiah", "labels": []any{}, "hearts": int64(0), "status": "draft", "next": "b1"}; !reflect.DeepEqual(b2.Fields, want) {
		t.Fatalf("b2 (written under the old version) = %v, want %v", b2.Fields, want)
	}
	b3, _, _ := r.Get("Book", "b3")
	if b3.Fields["status"] != "new" {
		t.Fatalf("b3, created under the new version, has status %v, want its default \"new\"", b3.Fields["status"])
	}
	vs, err := r.Violations()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].ID != "b1" || vs[0].Field != "pages" || !strings.Contains(vs[0].Reason, "1") {
		t.Fatalf("violations %+v, want b1.pages", vs)
	}
	for _, other := range replicas[1:] {
		if ovs, _ := other.Violations(); fmt.Sprint(ovs) != fmt.Sprint(vs) {
			t.Fatalf("violations differ: %v and %v", ovs, vs)
		}
	}
	// a's write of title and bob's concurrent write of name are one
	// conflict of title; bob's is later, so it wins. A write that follows
	// both resolves it.
	cs, err := r.Conflicts()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ID != "b1" || cs[0].Field != "title" || cs[0].Winner.Value != "Dune (revised)" ||
		len(cs[0].Losers) != 1 || cs[0].Losers[0].Value != "Dune (a)" {
		t.Fatalf("conflicts %+v, want b1.title: Dune (revised) over Dune (a)", cs)
	}
	put(r, admin, "b1", map[string]any{"title": "Dune"})
	if cs, _ := r.Conflicts(); len(cs) != 0 {
		t.Fatalf("conflicts after a resolving write: %+v", cs)
	}
	// Under the new version the old names are refused, naming the new one.
	_, err = r.Write(ctx, admin, []core.Op{{Kind: core.OpSet, Coll: "Book", Doc: "b1", Field: "name", Value: "x"}}, clk.now())
	if !errors.Is(err, core.ErrSchemaViolation) || !strings.Contains(err.Error(), "renamed to title") {
		t.Fatalf("a write of an old name under the new version: %v", err)
	}
	// Fixing the flagged value takes it off the list; a bad one is refused.
	if _, _, err := r.Mutate(ctx, admin, []Mutation{{Op: MutPut, Collection: "Book", ID: "b1", Fields: map[string]any{"pages": 0}}}, clk.now()); !errors.Is(err, core.ErrSchemaViolation) {
		t.Fatalf("a value the tightened rule refuses was written: %v", err)
	}
	put(r, admin, "b1", map[string]any{"pages": 412})
	if vs, _ := r.Violations(); len(vs) != 0 {
		t.Fatalf("violations after the fix: %+v", vs)
	}
}
