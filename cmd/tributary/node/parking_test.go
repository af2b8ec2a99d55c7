package node

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/eventstream"
)

// Parked effects are removed one by one (retried) or all at once (a
// reset), per sink, and what is left survives reopening the store.
func TestParkingRemoveAndClear(t *testing.T) {
	h, _, err := InitHome(filepath.Join(t.TempDir(), "home"))
	if err != nil {
		t.Fatal(err)
	}
	id := foundSpace(t, h, "alpha")
	ctx := context.Background()
	sp, err := h.OpenSpace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	p := sp.Parking()
	for _, sink := range []string{"pg", "pg2"} {
		for lsn := uint64(1); lsn <= 4; lsn++ {
			e := eventstream.Effect{LSN: lsn, Collection: "Note", DocID: "n", Kind: eventstream.Upsert}
			if err := p.Park(ctx, checkpoint.Parked{Sink: sink, Effect: e, Reason: "r", ParkedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	lsns := func(p *Parking, sink string) []uint64 {
		l, err := p.List(ctx, sink)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, x := range l {
			out = append(out, x.Effect.LSN)
		}
		return out
	}
	if err := p.Remove(ctx, "pg", 2, 4, 9); err != nil {
		t.Fatal(err)
	}
	if got := lsns(p, "pg"); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("after Remove: %v", got)
	}
	if err := p.Clear(ctx, "pg2"); err != nil {
		t.Fatal(err)
	}
	if got := lsns(p, "pg2"); len(got) != 0 {
		t.Fatalf("after Clear: %v", got)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	sp, err = h.OpenSpace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if got, other := lsns(sp.Parking(), "pg"), lsns(sp.Parking(), "pg2"); !slices.Equal(got, []uint64{1, 3}) || len(other) != 0 {
		t.Fatalf("reopened: pg %v, pg2 %v", got, other)
	}
}
