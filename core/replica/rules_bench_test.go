package replica

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"sync"
	"testing"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// benchBooks is how many books the replica of BenchmarkRulesLookup holds.
const benchBooks = 100_000

var (
	benchLibMu sync.Mutex
	benchLibs  = map[bool]*benchLibrary{}
)

type benchLibrary struct {
	r     *Replica
	admin core.PrivateKey
	clk   *clock
	next  int
}

// withoutRules is the lending schema with its rules and roles taken out:
// the same collections, fields and references.
func withoutRules(text string) string {
	text = regexp.MustCompile(`(?s)extend schema @roles\([^)]*\)`).ReplaceAllString(text, "")
	return regexp.MustCompile(`(?s)@(write|create|update|delete)\((if: """.*?"""|if: "[^"]*"|roles: \[[^\]]*\])\)`).ReplaceAllString(text, "")
}

// benchLibraryOf builds (once per schema) an in-memory replica holding
// benchBooks books, written 1000 to a change.
func benchLibraryOf(b *testing.B, rules bool) *benchLibrary {
	benchLibMu.Lock()
	defer benchLibMu.Unlock()
	if l := benchLibs[rules]; l != nil {
		return l
	}
	text := lendingSchema(b)
	if !rules {
		text = withoutRules(text)
	}
	r, err := Open(Options{InMemory: true})
	if err != nil {
		b.Fatal(err)
	}
	l := &benchLibrary{r: r, admin: key(b, 1), clk: &clock{}}
	ctx := context.Background()
	if _, err := r.Found(ctx, l.admin, "bench", text, nil, 1_000_000); err != nil {
		b.Fatal(err)
	}
	if r.Schema().HasRules() != rules {
		b.Fatalf("schema has rules: %v, want %v", r.Schema().HasRules(), rules)
	}
	for i := 0; i < benchBooks; i += 1000 {
		ops := make([]core.Op, 1000)
		for j := range ops {
			ops[j] = book(fmt.Sprintf("b%d", i+j), "t")
		}
		if _, err := r.Write(ctx, l.admin, ops, l.clk.now()); err != nil {
			b.Fatal(err)
		}
	}
	// Let the store settle from the bulk load before anything is timed.
	for i := 0; i < 2000; i++ {
		if _, err := r.Write(ctx, l.admin, []core.Op{{Kind: core.OpSet, Coll: "Book", Doc: fmt.Sprintf("b%d", i), Field: "copies", Value: int64(2)}}, l.clk.now()); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	benchLibs[rules] = l
	return l
}

// BenchmarkRulesLookup writes one op per change on a replica holding 100k
// books. op=loan creates a loan: without rules only the reference to its
// book is checked; with the lending rules its @create looks the book up
// by id and the book's open loans up by the value index. op=retitle sets
// a book's title, which no rule guards (the cost of a schema with rules
// to writes its rules do not guard). It reports changes/s.
func BenchmarkRulesLookup(b *testing.B) {
	for _, bc := range []struct {
		rules bool
		op    string
	}{{false, "loan"}, {true, "loan"}, {false, "retitle"}, {true, "retitle"}} {
		name := fmt.Sprintf("rules=%s/op=%s", map[bool]string{false: "none", true: "lending"}[bc.rules], bc.op)
		b.Run(name, func(b *testing.B) {
			l := benchLibraryOf(b, bc.rules)
			ctx := context.Background()
			borrower := l.admin.Public().String()
			b.ResetTimer()
			for range b.N {
				l.next++
				op := core.Op{Kind: core.OpCreate, Coll: "Loan", Doc: fmt.Sprintf("l%d", l.next),
					Fields: map[string]any{"book": fmt.Sprintf("b%d", l.next%benchBooks), "borrower": borrower}}
				if bc.op == "retitle" {
					op = core.Op{Kind: core.OpSet, Coll: "Book", Doc: fmt.Sprintf("b%d", l.next%benchBooks), Field: "title", Value: "u"}
				}
				if _, err := l.r.Write(ctx, l.admin, []core.Op{op}, l.clk.now()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
		})
	}
}

func TestWithoutRulesKeepsTheShape(t *testing.T) {
	text := withoutRules(lendingSchema(t))
	s, err := parseForTest(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if s.HasRules() || len(s.Roles) != 0 || len(s.Collections) != 3 {
		t.Fatalf("stripped schema: rules %v, roles %v, %d collections", s.HasRules(), s.Roles, len(s.Collections))
	}
}

func parseForTest(text string) (*schema.Schema, error) { return schema.Parse(text) }
