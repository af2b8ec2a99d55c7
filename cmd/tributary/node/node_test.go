package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/eventstream"
)

const testSchema = "type Note @collection { text: String! }"

// foundSpace creates a space in h the way `space create` does.
func foundSpace(t *testing.T, h *Home, name string) string {
	t.Helper()
	staging, sp, err := h.CreateSpaceDir()
	if err != nil {
		t.Fatal(err)
	}
	id, err := sp.Replica.Found(context.Background(), h.Key, name, testSchema, nil, uint64(time.Now().UnixMilli()))
	if err != nil {
		t.Fatal(err)
	}
	sp.Close()
	if err := h.CommitSpace(staging, SpaceInfo{Space: id.String(), Name: name}); err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func TestHomeKeysAndSpaceResolution(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, err := OpenHome(dir); !errors.Is(err, ErrNoKey) {
		t.Fatalf("open before init: %v", err)
	}
	h, created, err := InitHome(dir)
	if err != nil || !created {
		t.Fatalf("init: %v %v", created, err)
	}
	again, created, err := InitHome(dir)
	if err != nil || created || again.Key.Public() != h.Key.Public() {
		t.Fatal("a second init must keep the key")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}
	if _, err := h.Resolve(""); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("no space: %v", err)
	}
	a := foundSpace(t, h, "alpha")
	if got, _ := h.Resolve(""); got != a {
		t.Fatalf("the only space: %s", got)
	}
	b := foundSpace(t, h, "beta")
	if _, err := h.Resolve(""); !errors.Is(err, ErrManySpaces) {
		t.Fatalf("two spaces, none named: %v", err)
	}
	for arg, want := range map[string]string{a: a, "beta": b, b[len(b)-12:]: b} {
		if got, err := h.Resolve(arg); err != nil || got != want {
			t.Fatalf("resolve %q: %s %v", arg, got, err)
		}
	}
	if _, err := h.Resolve("nope"); !errors.Is(err, ErrUnknownSpace) {
		t.Fatalf("unknown space: %v", err)
	}
}

// TestSpaceWiresEffectsIntoTheSameTransaction: a write's effect is in the
// log, the log wakes its readers, and a registry hands out one shared,
// open space.
func TestSpaceWiresEffectsIntoTheSameTransaction(t *testing.T) {
	h, _, err := InitHome(filepath.Join(t.TempDir(), "home"))
	if err != nil {
		t.Fatal(err)
	}
	id := foundSpace(t, h, "alpha")
	reg := NewRegistry(h)
	opened := 0
	reg.OnOpen = func(context.Context, *Space) error { opened++; return nil }
	defer reg.Close()
	ctx := context.Background()
	sp, err := reg.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := reg.Open(ctx, id); again != sp || opened != 1 {
		t.Fatal("the registry must hand out one open space")
	}
	sp.Close() // shared: a no-op
	woke := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		woke <- sp.Effects.Wait(wctx, 0)
	}()
	if _, err := sp.Replica.Write(ctx, h.Key, []core.Op{{Kind: core.OpCreate, Coll: "Note", Doc: "n1", Fields: map[string]any{"text": "hi"}}}, uint64(time.Now().UnixMilli())); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("the effect log did not wake its reader: %v", err)
	}
	es, err := sp.Effects.Read(ctx, 1, 10)
	if err != nil || len(es) != 1 || es[0].DocID != "n1" || es[0].Kind != eventstream.Upsert || es[0].Doc["text"] != "hi" {
		t.Fatalf("effects %+v %v", es, err)
	}

	// Parked effects survive in the space's store.
	p := sp.Parking()
	if err := p.Park(ctx, checkpoint.Parked{Sink: "pg", Effect: es[0], Reason: "refused", ParkedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	got, err := p.List(ctx, "pg")
	if err != nil || len(got) != 1 || got[0].Reason != "refused" || got[0].Effect.DocID != "n1" {
		t.Fatalf("parked %+v %v", got, err)
	}
	if other, _ := p.List(ctx, "p"); len(other) != 0 {
		t.Fatal("a sink name that is a prefix of another sees its parked effects")
	}
}
