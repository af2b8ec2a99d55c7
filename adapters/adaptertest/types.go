package adaptertest

import (
	"fmt"
	"strings"

	"github.com/tributary-sync/tributary/eventstream"
)

// TypesSchema has fields of operator-defined types: an enum and named
// scalars, alone, in lists and in sets. Every target stores an enum value
// and a named scalar's value as its base kind (a string, a number).
const TypesSchema = `scalar Email @pattern(regex: "^[^@ ]+@[^@ ]+$") @length(max: 254)
scalar Share @base(type: Float) @range(min: 0, max: 1)
scalar Copies @base(type: Int) @range(min: 1, max: 99)
enum LoanStatus { OPEN RETURNED }

type Loan @collection {
  status: LoanStatus!
  history: [LoanStatus!]
  seen: [LoanStatus!] @set
  contact: Email
  contacts: [Email!]
  share: Share
  copies: Copies
}
`

// TypesSchemaV2 upgrades TypesSchema: LoanStatus gains LOST, and Loan a
// field of a new enum.
var TypesSchemaV2 = strings.NewReplacer(
	"enum LoanStatus { OPEN RETURNED }", "enum LoanStatus { OPEN RETURNED LOST }\nenum Medium { PAPER AUDIO }",
	"  copies: Copies\n}", "  copies: Copies\n  medium: Medium\n}",
).Replace(TypesSchema)

func loan(i int, status string) map[string]any {
	return map[string]any{
		"status":   status,
		"history":  list("OPEN", status),
		"seen":     set(status, "OPEN"),
		"contact":  fmt.Sprintf("reader%d@example.org", i),
		"contacts": list(fmt.Sprintf("a%d@x", i), "b@y"),
		"share":    float64(i%10) / 10,
		"copies":   int64(1 + i%99),
	}
}

// testTypes: enum and named-scalar fields land as their base values, and
// an upgrade that adds an enum value (and an enum field) is carried on
// the same target, also by a new instance.
func testTypes(f *fixture) {
	f.setSchema(TypesSchema)
	s := f.open()
	r := f.runner(s, config(50))
	var es []eventstream.Effect
	for i := range 10 {
		es = append(es, f.upsert("Loan", fmt.Sprintf("loan-%d", i), loan(i, []string{"OPEN", "RETURNED"}[i%2])))
	}
	es = append(es, f.upsert("Loan", "bare", map[string]any{"status": "OPEN"}))
	f.append(es...)
	f.catchUp(r)
	f.check(s, f.last())

	f.setSchema(TypesSchemaV2)
	es = nil
	for i := range 4 {
		d := loan(i, "LOST")
		d["medium"] = []string{"PAPER", "AUDIO"}[i%2]
		es = append(es, f.upsert("Loan", fmt.Sprintf("loan-%d", i), d))
	}
	es = append(es, f.upsert("Loan", "new", map[string]any{"status": "LOST", "seen": set("LOST", "RETURNED", "OPEN"), "medium": "AUDIO"}))
	f.append(es...)
	f.catchUp(r)
	f.check(s, f.last())

	f.close(s)
	s2 := f.open()
	f.append(f.upsert("Loan", "loan-9", loan(9, "LOST")), f.upsert("Loan", "loan-5", map[string]any{"status": "RETURNED", "medium": "PAPER"}))
	r2 := f.runner(s2, config(50))
	f.catchUp(r2)
	f.check(s2, f.last())
}
