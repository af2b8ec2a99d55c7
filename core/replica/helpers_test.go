package replica

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core"
)

func librarySchema(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/library.graphql")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func key(t testing.TB, seed byte) core.PrivateKey {
	t.Helper()
	k, err := core.PrivateKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openMem(t testing.TB) *Replica {
	t.Helper()
	r, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// found creates a space founded by admin and returns the replica.
func found(t testing.TB, admin core.PrivateKey) *Replica {
	t.Helper()
	r := openMem(t)
	if _, err := r.Found(context.Background(), admin, "test", librarySchema(t), nil, 1_000_000); err != nil {
		t.Fatal(err)
	}
	return r
}

// clock hands out increasing milliseconds for writes.
type clock struct{ ms uint64 }

func (c *clock) now() uint64 { c.ms += 7; return 1_000_000 + c.ms }

func mustWrite(t testing.TB, r *Replica, k core.PrivateKey, clk *clock, ops ...core.Op) core.ID {
	t.Helper()
	id, err := r.Write(context.Background(), k, ops, clk.now())
	if err != nil {
		t.Fatalf("write %v: %v", ops, err)
	}
	return id
}

// syncInto sends every change from src that dst lacks.
func syncInto(t testing.TB, dst, src *Replica) Report {
	t.Helper()
	envs, err := src.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := dst.Receive(context.Background(), envs)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// fingerprint is the raw materialized state (every document's CRDT bytes),
// the open conflicts and every change's verdict: byte-equal fingerprints
// mean byte-identical replicas.
func fingerprint(t testing.TB, r *Replica) string {
	t.Helper()
	var buf bytes.Buffer
	err := r.db.View(func(txn *badger.Txn) error {
		for _, p := range []string{pDoc, pConflict, pHead} {
			if err := scan(txn, []byte(p), func(k, v []byte) error {
				fmt.Fprintf(&buf, "%q=%x", k, v)
				if p == pDoc {
					var st core.DocState
					if err := core.Unmarshal(v, &st); err != nil {
						return err
					}
					fmt.Fprintf(&buf, " %s", docDump(&st))
				}
				buf.WriteByte('\n')
				return nil
			}); err != nil {
				return err
			}
		}
		return scan(txn, []byte(pMeta), func(k, v []byte) error {
			var m meta
			if err := core.Unmarshal(v, &m); err != nil {
				return err
			}
			buf.Write(k)
			if m.Valid {
				buf.WriteString(" valid\n")
			} else {
				buf.WriteString(" invalid: " + m.Reason + "\n")
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := r.Conflicts()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cs)
	buf.Write(b)
	return buf.String()
}

// printDiff shows the fingerprint lines only one side has.
func printDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out strings.Builder
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			fmt.Fprintf(&out, "- %q\n", l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			fmt.Fprintf(&out, "+ %q\n", l)
		}
	}
	return out.String()
}

func docDump(st *core.DocState) string {
	var b strings.Builder
	k := func(w core.WriteKey) string { return fmt.Sprintf("%s/%s/%d", w.HLC, w.Change.Short(), w.Op) }
	fmt.Fprintf(&b, "exists=[")
	for _, w := range st.Exists.Writes {
		fmt.Fprintf(&b, "%v@%s ", w.Value, k(w.Key))
	}
	fmt.Fprintf(&b, "] del=%s", k(st.DeleteKey))
	for _, f := range slices.Sorted(maps.Keys(st.Fields)) {
		r := st.Fields[f]
		fmt.Fprintf(&b, " %s=[", f)
		for _, w := range r.Writes {
			fmt.Fprintf(&b, "%v@%s ", w.Value, k(w.Key))
		}
		b.WriteString("]")
	}
	for _, f := range slices.Sorted(maps.Keys(st.Counters)) {
		incs := st.Counters[f]
		fmt.Fprintf(&b, " %s=counter[", f)
		for _, i := range incs {
			fmt.Fprintf(&b, "%d@%s ", i.Delta, k(i.Key))
		}
		b.WriteString("]")
	}
	for _, f := range slices.Sorted(maps.Keys(st.Sets)) {
		es := st.Sets[f]
		fmt.Fprintf(&b, " %s=set{", f)
		for _, e := range es {
			fmt.Fprintf(&b, "%v:adds(", e.Value)
			for _, a := range e.Adds {
				b.WriteString(k(a) + " ")
			}
			b.WriteString(")rm(")
			for _, a := range e.Removes {
				b.WriteString(k(a) + " ")
			}
			b.WriteString(") ")
		}
		b.WriteString("}")
	}
	fmt.Fprintf(&b, " last=%s", k(st.Last))
	return b.String()
}
