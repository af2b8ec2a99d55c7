package api

import (
	"fmt"
	"strings"
	"testing"
)

// A large NDJSON batch is decoded on several cores; the result keeps the
// lines' order and skips blank lines, and of several bad lines the first
// is the one named, as a line-by-line parse would.
func TestParseMutationsKeepsOrderAndNamesFirstBadLine(t *testing.T) {
	var sb strings.Builder
	const n = 3000
	for i := range n {
		fmt.Fprintf(&sb, `{"op":"put","collection":"Book","id":"b%d","doc":{"title":"t%d"}}`+"\n", i, i)
		if i%500 == 0 {
			sb.WriteString("\n   \n")
		}
	}
	muts, err := ParseMutations([]byte(sb.String()), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(muts) != n {
		t.Fatalf("%d mutations, want %d", len(muts), n)
	}
	for i, m := range muts {
		if want := fmt.Sprintf("b%d", i); m.ID != want || m.Fields["title"] != fmt.Sprintf("t%d", i) {
			t.Fatalf("mutation %d is %s %v, want %s", i, m.ID, m.Fields, want)
		}
	}

	lines := strings.Split(strings.TrimSpace(sb.String()), "\n")
	lines[2900] = `{"op":"put",` // bad, late
	lines[1711] = `{"op":1}`     // bad, earlier: this one is named
	_, err = ParseMutations([]byte(strings.Join(lines, "\n")), true)
	if err == nil || !strings.HasPrefix(err.Error(), "line 1712:") {
		t.Fatalf("error %v, want the first bad line, 1712, named", err)
	}
}
