package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

func titledBook(title string) core.Op {
	return core.Op{Kind: core.OpCreate, Coll: "Book", Doc: title, Fields: map[string]any{"title": title}}
}

// exportIDs runs ExportTo and returns the IDs handed out, in order.
func exportIDs(t *testing.T, r *Replica, since []core.ID) []core.ID {
	t.Helper()
	var ids []core.ID
	err := r.ExportTo(context.Background(), since, func(env []byte) error {
		s, err := core.DecodeSigned(env)
		if err != nil {
			return err
		}
		ids = append(ids, s.ID())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestExportToHeightOrderSinceAndOrphans(t *testing.T) {
	admin := key(t, 1)
	clk := &clock{}
	src := found(t, admin)
	var written []core.ID
	for i := range 5 {
		written = append(written, mustWrite(t, src, admin, clk, titledBook(fmt.Sprintf("b%d", i))))
	}
	all := exportIDs(t, src, nil)
	if len(all) != 6 || all[0] != src.Space() || all[5] != written[4] {
		t.Fatalf("export of everything = %v, want genesis then %v", all, written)
	}
	envs, err := src.Export(nil)
	if err != nil || len(envs) != len(all) {
		t.Fatalf("Export = %d envelopes, %v; want %d", len(envs), err, len(all))
	}

	// Since the third write: only what follows it.
	if got := exportIDs(t, src, []core.ID{written[2]}); len(got) != 2 || got[0] != written[3] || got[1] != written[4] {
		t.Fatalf("export since %s = %v, want %v", written[2].Short(), got, written[3:])
	}
	// A head the replica never saw is ignored.
	if got := exportIDs(t, src, []core.ID{{1, 2, 3}}); len(got) != 6 {
		t.Fatalf("export since an unknown head = %d changes, want 6", len(got))
	}

	// A replica holding a change without its parent exports it last.
	dst := openMem(t)
	if _, err := dst.Receive(context.Background(), [][]byte{envs[0], envs[1], envs[3]}); err != nil {
		t.Fatal(err)
	}
	got := exportIDs(t, dst, nil)
	if len(got) != 3 || got[2] != written[2] {
		t.Fatalf("export with an orphan = %v, want genesis, %s, then orphan %s", got, written[0].Short(), written[2].Short())
	}
	if !bytes.Equal(mustEnvelopeOf(t, dst, got[1]), envs[1]) {
		t.Fatal("exported envelope differs from the stored one")
	}
}

func mustEnvelopeOf(t *testing.T, r *Replica, id core.ID) []byte {
	t.Helper()
	b, err := r.Envelope(id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A write made while an export is in progress neither waits for it nor
// appears in it: the export reads a snapshot without the writer's lock.
func TestExportToDoesNotBlockWriters(t *testing.T) {
	admin := key(t, 1)
	clk := &clock{}
	r := found(t, admin)
	for i := range 3 {
		mustWrite(t, r, admin, clk, titledBook(fmt.Sprintf("b%d", i)))
	}
	var during core.ID
	n := 0
	err := r.ExportTo(context.Background(), nil, func([]byte) error {
		if n++; n == 2 {
			during = mustWrite(t, r, admin, clk, titledBook("during"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("export handed out %d changes, want the 4 stored when it began", n)
	}
	if got := exportIDs(t, r, nil); len(got) != 5 || got[4] != during {
		t.Fatalf("next export = %v, want the write made during the first one last", got)
	}
}

func TestExportToStopsOnError(t *testing.T) {
	admin := key(t, 1)
	r := found(t, admin)
	mustWrite(t, r, admin, &clock{}, titledBook("b"))
	stop := errors.New("disk full")
	n := 0
	err := r.ExportTo(context.Background(), nil, func([]byte) error { n++; return stop })
	if n != 1 || !errors.Is(err, stop) {
		t.Fatalf("export after its callback failed: %d calls, %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.ExportTo(ctx, nil, func([]byte) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("export with a cancelled context = %v", err)
	}
	r.Close()
	if err := r.ExportTo(context.Background(), nil, func([]byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("export of a closed replica = %v, want ErrClosed", err)
	}
}
