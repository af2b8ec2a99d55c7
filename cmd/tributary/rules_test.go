package main

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
)

// joinAs makes a home that joins space through an invite of admin, and
// syncs both ways by bundle. It returns the home and its author key.
func joinAs(t *testing.T, admin, space, dir, name string) (home, author string) {
	t.Helper()
	var inv struct {
		Code string `json:"code"`
	}
	ok(t, admin, &inv, "invite", "--space", space)
	home = filepath.Join(t.TempDir(), name)
	var joined struct {
		Author string `json:"author"`
	}
	ok(t, home, &joined, "join", inv.Code)
	exchange(t, home, admin, space, filepath.Join(dir, name+"-join.trb"))
	exchange(t, admin, home, space, filepath.Join(dir, name+"-space.trb"))
	return home, joined.Author
}

type rollbackOut struct {
	Change       string   `json:"change"`
	Author       string   `json:"author"`
	Documents    []string `json:"documents"`
	Winner       string   `json:"winner"`
	WinnerAuthor string   `json:"winner_author"`
	Reason       string   `json:"reason"`
}

// TestLendingRulesThroughTheBinary: a space founded with the lending
// schema; roles granted with `member grant --role`; two members borrow the
// same book offline and exchange bundles; every home lists the same
// rollback (the later-granted member's loan) with `conflicts --rollbacks`,
// and a write that breaks a rule is refused naming it, writing nothing.
func TestLendingRulesThroughTheBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	schema, err := filepath.Abs("../../core/replica/testdata/lending.graphql")
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := newHome(t, "alice")
	var created struct {
		Space string `json:"space"`
	}
	ok(t, alice, &created, "space", "create", "--schema", schema, "--name", "library")
	space := created.Space
	bob, bobKey := joinAs(t, alice, space, dir, "bob")
	carol, carolKey := joinAs(t, alice, space, dir, "carol")
	// bob is granted member before carol: he is the senior of the two.
	ok(t, alice, nil, "member", "grant", "--space", space, bobKey, "--role", "member")
	ok(t, alice, nil, "member", "grant", "--space", space, carolKey, "--role", "member")
	fails(t, alice, []string{"ghost", "not declared"}, "member", "grant", "--space", space, carolKey, "--role", "ghost")
	put(t, alice, space, "Book", `{"title":"Dune"}`, "--id", "b1")
	exchange(t, alice, bob, space, filepath.Join(dir, "alice-bob.trb"))
	exchange(t, alice, carol, space, filepath.Join(dir, "alice-carol.trb"))

	// Members may not add books (@write(roles: ["librarian"])).
	before := snap(t, carol, space)
	fails(t, carol, []string{"not authorized", `may not write Book`}, "put", "--space", space, "Book", `{"title":"Mine"}`)
	// Nor review what they have not borrowed and returned.
	fails(t, carol, []string{"rule violation", "@create rule of Review is false"}, "put", "--space", space, "Review", `{"book":"b1","stars":5}`)
	if after := snap(t, carol, space); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused writes changed carol's space:\nbefore %+v\nafter  %+v", before, after)
	}

	// Offline, both borrow b1.
	lb := put(t, bob, space, "Loan", fmt.Sprintf(`{"book":"b1","borrower":%q}`, bobKey), "--id", "lb")
	lc := put(t, carol, space, "Loan", fmt.Sprintf(`{"book":"b1","borrower":%q}`, carolKey), "--id", "lc")
	// On her own home the book is now lent: a second loan is refused.
	fails(t, carol, []string{"rule violation", "Loan/lc matches"}, "put", "--space", space, "Loan", fmt.Sprintf(`{"book":"b1","borrower":%q}`, carolKey))

	exchange(t, bob, alice, space, filepath.Join(dir, "bob-loan.trb"))
	exchange(t, carol, alice, space, filepath.Join(dir, "carol-loan.trb"))
	exchange(t, alice, bob, space, filepath.Join(dir, "all-bob.trb"))
	exchange(t, alice, carol, space, filepath.Join(dir, "all-carol.trb"))

	var want []rollbackOut
	for i, h := range []string{alice, bob, carol} {
		var rbs []rollbackOut
		ok(t, h, &rbs, "conflicts", "--rollbacks", "--space", space)
		if i == 0 {
			want = rbs
		} else if !reflect.DeepEqual(rbs, want) {
			t.Fatalf("homes list different rollbacks:\n%+v\n%+v", want, rbs)
		}
		if len(rbs) != 1 || rbs[0].Change != lc.Change || rbs[0].Winner != lb.Change || rbs[0].Author != carolKey ||
			!reflect.DeepEqual(rbs[0].Documents, []string{"Loan/lc"}) {
			t.Fatalf("rollbacks %+v, want carol's loan %s, lost to bob's %s", rbs, lc.Change, lb.Change)
		}
		fails(t, h, []string{"not found"}, "get", "--space", space, "Loan", "lc")
		if d := get(t, h, space, "Loan", "lb"); d["borrower"] != bobKey || d["returned"] != false {
			t.Fatalf("bob's loan on home %d: %v", i, d)
		}
		log := history(t, h, space, "Loan", "lc")
		if len(log) != 1 || log[0].Valid || log[0].Reason != rbs[0].Reason {
			t.Fatalf("history of carol's loan: %+v, want one change without effect, with the rollback's reason", log)
		}
	}
}
