package memory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

const testSDL = "type Book @collection { title: String! year: Int }"

type schemaSrc struct{ s *schema.Schema }

func (s schemaSrc) Schema() *schema.Schema { return s.s }

func mustSchema(t testing.TB) *schema.Schema {
	t.Helper()
	s, err := schema.Parse(testSDL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func book(lsn uint64, id, title string, year int64) eventstream.Effect {
	return eventstream.Effect{
		LSN: lsn, Collection: "Book", DocID: id, Kind: eventstream.Upsert,
		Doc:     map[string]any{"title": title, "year": year},
		Changes: []string{"c" + id}, Author: "alice", HLC: fmt.Sprintf("%d.0", lsn), LastChange: "c" + id, SchemaID: "s1",
	}
}

func del(lsn uint64, id string) eventstream.Effect {
	return eventstream.Effect{LSN: lsn, Collection: "Book", DocID: id, Kind: eventstream.Delete, Author: "bob", HLC: fmt.Sprintf("%d.0", lsn)}
}

func apply(t testing.TB, v *View, through uint64, effects ...eventstream.Effect) {
	t.Helper()
	if err := v.Apply(context.Background(), checkpoint.Batch{Effects: effects, Schema: mustSchema(t), Through: through}); err != nil {
		t.Fatal(err)
	}
}

func ckpt(t testing.TB, v *View) uint64 {
	t.Helper()
	c, err := v.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(docs []Doc) string {
	var s []string
	for _, d := range docs {
		s = append(s, d.ID)
	}
	return strings.Join(s, ",")
}

func TestApplyGetQueryCount(t *testing.T) {
	v := New("view", Options{})
	if v.Name() != "view" || ckpt(t, v) != 0 || v.Count("Book") != 0 {
		t.Fatal("a new view is not empty")
	}
	apply(t, v, 5,
		book(1, "b3", "Dune", 1965),
		book(2, "b1", "Neuromancer", 1984),
		book(3, "b2", "Hyperion", 1989),
		book(4, "b4", "Neuromancer", 1999),
		eventstream.Effect{LSN: 5, Collection: "Author", DocID: "a1", Kind: eventstream.Upsert, Doc: map[string]any{"name": "Gibson"}},
	)
	if c := ckpt(t, v); c != 5 {
		t.Fatalf("checkpoint %d, want 5", c)
	}
	if v.Count("Book") != 4 || v.Count("Author") != 1 || v.Count("Nope") != 0 {
		t.Fatalf("counts Book %d, Author %d", v.Count("Book"), v.Count("Author"))
	}

	d, ok := v.Get("Book", "b1")
	if !ok {
		t.Fatal("b1 missing")
	}
	if d.Collection != "Book" || d.ID != "b1" || d.LSN != 2 || d.Author != "alice" || d.HLC != "2.0" || d.LastChange != "cb1" ||
		d.Fields["title"] != "Neuromancer" || d.Fields["year"] != int64(1984) {
		t.Fatalf("b1 = %+v", d)
	}
	if _, ok := v.Get("Book", "zz"); ok {
		t.Fatal("Get found a missing document")
	}
	if _, ok := v.Get("Author", "b1"); ok {
		t.Fatal("Get found a document in the wrong collection")
	}

	for _, tc := range []struct {
		name  string
		coll  string
		where map[string]any
		want  string
	}{
		{"all, ordered by id", "Book", nil, "b1,b2,b3,b4"},
		{"empty where", "Book", map[string]any{}, "b1,b2,b3,b4"},
		{"int64", "Book", map[string]any{"year": int64(1989)}, "b2"},
		{"string", "Book", map[string]any{"title": "Neuromancer"}, "b1,b4"},
		{"both", "Book", map[string]any{"title": "Neuromancer", "year": int64(1999)}, "b4"},
		{"no match", "Book", map[string]any{"year": int64(2024)}, ""},
		{"conflicting", "Book", map[string]any{"title": "Dune", "year": int64(1999)}, ""},
		{"missing field", "Book", map[string]any{"isbn": "x"}, ""},
		{"non-canonical int is no int64", "Book", map[string]any{"year": 1989}, ""},
		{"type mismatch", "Book", map[string]any{"year": "1989"}, ""},
		{"other collection", "Author", map[string]any{"name": "Gibson"}, "a1"},
		{"unknown collection", "Nope", nil, ""},
	} {
		if got := ids(v.Query(tc.coll, tc.where)); got != tc.want {
			t.Errorf("%s: Query(%s, %v) = %q, want %q", tc.name, tc.coll, tc.where, got, tc.want)
		}
	}

	// An update replaces the document.
	apply(t, v, 6, book(6, "b2", "Hyperion", 1990))
	if d, _ := v.Get("Book", "b2"); d.LSN != 6 || d.Fields["year"] != int64(1990) {
		t.Fatalf("b2 after update = %+v", d)
	}
	if got := ids(v.Query("Book", map[string]any{"year": int64(1989)})); got != "" {
		t.Fatalf("old value still matches: %q", got)
	}
	if v.Count("Book") != 4 {
		t.Fatalf("update changed the count to %d", v.Count("Book"))
	}
}

func TestDeleteRemoves(t *testing.T) {
	v := New("view", Options{})
	apply(t, v, 2, book(1, "b1", "A", 1), book(2, "b2", "B", 2))
	apply(t, v, 4, del(3, "b1"), del(4, "never-existed"))
	if _, ok := v.Get("Book", "b1"); ok {
		t.Fatal("deleted b1 still there")
	}
	if v.Count("Book") != 1 || ids(v.Query("Book", nil)) != "b2" || ckpt(t, v) != 4 {
		t.Fatalf("after delete: count %d, query %q, checkpoint %d", v.Count("Book"), ids(v.Query("Book", nil)), ckpt(t, v))
	}
	// A document can come back after a delete.
	apply(t, v, 5, book(5, "b1", "A again", 1))
	if d, ok := v.Get("Book", "b1"); !ok || d.Fields["title"] != "A again" {
		t.Fatalf("recreated b1 = %+v, %v", d, ok)
	}
}

func TestReplayIsIgnored(t *testing.T) {
	v := New("view", Options{})
	apply(t, v, 5, book(3, "b1", "new", 2000), book(5, "b2", "B", 2))
	updates, cancel := v.Subscribe(16)
	defer cancel()

	// An old batch (Through below the checkpoint) changes nothing.
	apply(t, v, 3, book(1, "b1", "old", 1900), book(2, "b9", "ghost", 1))
	if d, _ := v.Get("Book", "b1"); d.Fields["title"] != "new" {
		t.Fatalf("replay overwrote b1: %+v", d)
	}
	if _, ok := v.Get("Book", "b9"); ok || v.Count("Book") != 2 {
		t.Fatal("replay added a document")
	}
	if c := ckpt(t, v); c != 5 {
		t.Fatalf("replay moved the checkpoint to %d", c)
	}

	// A batch overlapping the checkpoint applies only its new effects.
	apply(t, v, 7, book(5, "b2", "stale", 0), book(7, "b3", "C", 3))
	if d, _ := v.Get("Book", "b2"); d.Fields["title"] != "B" {
		t.Fatalf("re-sent LSN 5 was applied again: %+v", d)
	}
	if _, ok := v.Get("Book", "b3"); !ok || ckpt(t, v) != 7 {
		t.Fatal("the new part of an overlapping batch was not applied")
	}

	// An empty batch only records the checkpoint.
	apply(t, v, 9)
	if c := ckpt(t, v); c != 9 || v.Count("Book") != 3 {
		t.Fatalf("empty batch: checkpoint %d, count %d", c, v.Count("Book"))
	}

	select {
	case u := <-updates:
		if u.Doc.ID != "b3" {
			t.Fatalf("replayed effects were published: %+v", u)
		}
	default:
		t.Fatal("the new effect was not published")
	}
	select {
	case u := <-updates:
		t.Fatalf("unexpected update %+v", u)
	default:
	}
}

func TestValidateRejects(t *testing.T) {
	var seen []uint64
	v := New("view", Options{Validate: func(e eventstream.Effect) string {
		seen = append(seen, e.LSN)
		if y, _ := e.Doc["year"].(int64); y < 0 {
			return fmt.Sprintf("year %d is negative", y)
		}
		return ""
	}})
	updates, cancel := v.Subscribe(16)
	defer cancel()

	err := v.Apply(context.Background(), checkpoint.Batch{Schema: mustSchema(t), Through: 4, Effects: []eventstream.Effect{
		book(1, "b1", "A", 1), del(2, "b0"), book(3, "b2", "B", -5), book(4, "b3", "C", -6),
	}})
	var rej *checkpoint.RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("Apply returned %v, want *checkpoint.RejectedError", err)
	}
	if rej.Index != 2 || rej.Reason != "year -5 is negative" || !errors.Is(err, checkpoint.ErrRejected) {
		t.Fatalf("rejection %+v (%v), want index 2 with its reason", rej, err)
	}
	if v.Count("Book") != 0 || ckpt(t, v) != 0 {
		t.Fatalf("a rejected batch applied something: count %d, checkpoint %d", v.Count("Book"), ckpt(t, v))
	}
	select {
	case u := <-updates:
		t.Fatalf("a rejected batch published %+v", u)
	default:
	}
	for _, lsn := range seen {
		if lsn == 2 {
			t.Fatal("Validate was asked about a delete")
		}
	}

	// Deletes are never refused; good batches pass.
	apply(t, v, 2, book(1, "b1", "A", 1), del(2, "b1"))
	if v.Count("Book") != 0 || ckpt(t, v) != 2 {
		t.Fatalf("good batch: count %d, checkpoint %d", v.Count("Book"), ckpt(t, v))
	}
}

func recv(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no update arrived")
	}
	return Update{}
}

func noUpdate(t *testing.T, ch <-chan Update) {
	t.Helper()
	select {
	case u := <-ch:
		t.Fatalf("unexpected update %+v", u)
	default:
	}
}

// applyAsync runs Apply in a goroutine and returns its result channel.
func applyAsync(ctx context.Context, v *View, b checkpoint.Batch) <-chan error {
	done := make(chan error, 1)
	go func() { done <- v.Apply(ctx, b) }()
	return done
}

func waitApply(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Apply blocked", what)
	}
}

func TestSubscribeInOrderAndCancel(t *testing.T) {
	v := New("view", Options{})
	apply(t, v, 1, book(1, "before", "X", 1)) // not seen: before Subscribe
	a, cancelA := v.Subscribe(0)              // unbuffered: Apply waits for the reader
	b, cancelB := v.Subscribe(100)

	got := make(chan []Update, 1)
	go func() {
		var us []Update
		for range 5 {
			us = append(us, <-a)
		}
		got <- us
	}()
	apply(t, v, 4, book(2, "b1", "A", 1), book(3, "b2", "B", 2), del(4, "before"))
	apply(t, v, 6, book(5, "b1", "A2", 1), del(6, "b2"))
	us := <-got
	want := []struct {
		id      string
		lsn     uint64
		deleted bool
	}{{"b1", 2, false}, {"b2", 3, false}, {"before", 4, true}, {"b1", 5, false}, {"b2", 6, true}}
	for i, w := range want {
		if us[i].Doc.ID != w.id || us[i].Doc.LSN != w.lsn || us[i].Deleted != w.deleted || us[i].Doc.Collection != "Book" {
			t.Fatalf("update %d = %+v, want %+v", i, us[i], w)
		}
		if ub := recv(t, b); ub.Doc.LSN != w.lsn || ub.Deleted != w.deleted {
			t.Fatalf("second subscriber update %d = %+v, want LSN %d", i, ub, w.lsn)
		}
	}
	if us[3].Doc.Fields["title"] != "A2" || us[4].Doc.Fields != nil {
		t.Fatalf("update payloads %+v, %+v", us[3], us[4])
	}
	noUpdate(t, b)

	// Cancelled, the unbuffered subscriber nobody reads no longer holds
	// Apply up, and receives nothing more.
	cancelA()
	cancelA() // idempotent
	waitApply(t, applyAsync(context.Background(), v, checkpoint.Batch{Through: 7, Effects: []eventstream.Effect{book(7, "b3", "C", 3)}}), "apply after cancel")
	noUpdate(t, a)
	if u := recv(t, b); u.Doc.LSN != 7 {
		t.Fatalf("live subscriber got %+v", u)
	}
	cancelB()
}

// A full subscriber blocks Apply (back-pressure) until it cancels.
func TestCancelReleasesBlockedApply(t *testing.T) {
	v := New("view", Options{})
	_, cancel := v.Subscribe(1)
	done := applyAsync(context.Background(), v, checkpoint.Batch{Through: 3, Effects: []eventstream.Effect{
		book(1, "b1", "A", 1), book(2, "b2", "B", 2), book(3, "b3", "C", 3),
	}})
	// The view changes before subscribers are told, so readers see it
	// while Apply waits for the slow subscriber.
	deadline := time.Now().Add(10 * time.Second)
	for v.Count("Book") != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the batch never became visible")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Apply returned (%v) with a full subscriber", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	waitApply(t, done, "apply with a cancelled subscriber")

	// A context that ends also releases it.
	_, cancel2 := v.Subscribe(0)
	defer cancel2()
	ctx, stop := context.WithCancel(context.Background())
	done = applyAsync(ctx, v, checkpoint.Batch{Through: 4, Effects: []eventstream.Effect{book(4, "b4", "D", 4)}})
	stop()
	waitApply(t, done, "apply with an ended context")
}

func TestCloseEndsSubscriptions(t *testing.T) {
	v := New("view", Options{})
	ch, cancel := v.Subscribe(0)
	defer cancel() // after Close, still harmless
	done := applyAsync(context.Background(), v, checkpoint.Batch{Through: 1, Effects: []eventstream.Effect{book(1, "b1", "A", 1)}})
	if err := v.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitApply(t, done, "apply blocked on a subscriber when the view closed")
	waitApply(t, applyAsync(context.Background(), v, checkpoint.Batch{Through: 2, Effects: []eventstream.Effect{book(2, "b2", "B", 2)}}), "apply after Close")
	// The blocked send may or may not have won the race with Close; after
	// Close nothing more is delivered.
	select {
	case u := <-ch:
		if u.Doc.LSN != 1 {
			t.Fatalf("update %+v after Close", u)
		}
	default:
	}
	noUpdate(t, ch)
	if v.Count("Book") != 2 {
		t.Fatalf("count %d", v.Count("Book"))
	}
	if err := v.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// The view as a real sink behind checkpoint.Runner over a real effect log.

func openLog(t testing.TB) *eventstream.Log {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := eventstream.Open(db, []byte("fx/"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendAll(t testing.TB, l *eventstream.Log, effects ...eventstream.Effect) {
	t.Helper()
	if _, err := l.Append(effects); err != nil {
		t.Fatal(err)
	}
}

func newRunner(t testing.TB, l *eventstream.Log, v *View, parking checkpoint.Parking, batch int) *checkpoint.Runner {
	t.Helper()
	cfg := checkpoint.DefaultConfig()
	cfg.BatchSize, cfg.Linger, cfg.RetryMin, cfg.RetryMax = batch, time.Millisecond, time.Millisecond, 5*time.Millisecond
	r, err := checkpoint.New(cfg, l, v, schemaSrc{mustSchema(t)}, parking)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRunnerFeedsView(t *testing.T) {
	l := openLog(t)
	for i := range 10 {
		appendAll(t, l, book(0, fmt.Sprint("b", i%4), fmt.Sprint("t", i), int64(i)), book(0, fmt.Sprint("n", i), "N", 1))
	}
	appendAll(t, l, del(0, "n0"))
	v := New("view", Options{})
	r := newRunner(t, l, v, checkpoint.NewMemoryParking(), 7)
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := ckpt(t, v); c != l.LastLSN() || c != 21 {
		t.Fatalf("view checkpoint %d, log last LSN %d", c, l.LastLSN())
	}
	if v.Count("Book") != 4+9 {
		t.Fatalf("count %d, want 13", v.Count("Book"))
	}
	if d, _ := v.Get("Book", "b1"); d.Fields["title"] != "t9" || d.LSN != 19 {
		t.Fatalf("b1 = %+v, want its newest state (LSN 19)", d)
	}

	// A new runner on the same view resumes from its checkpoint.
	r.Close()
	updates, cancel := v.Subscribe(64)
	defer cancel()
	appendAll(t, l, book(0, "b1", "last", 2024))
	r2 := newRunner(t, l, v, checkpoint.NewMemoryParking(), 7)
	if err := r2.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if u := recv(t, updates); u.Doc.LSN != 22 || u.Doc.Fields["title"] != "last" {
		t.Fatalf("resumed runner published %+v, want only LSN 22", u)
	}
	noUpdate(t, updates)
	if st := r2.Status(); st.Applied != 1 || st.Checkpoint != 22 {
		t.Fatalf("resumed status %+v", st)
	}
}

func TestRunnerParksWhatTheViewRefuses(t *testing.T) {
	l := openLog(t)
	appendAll(t, l, book(0, "b1", "A", 1), book(0, "b2", "B", -1), book(0, "b3", "C", 3))
	appendAll(t, l, book(0, "b4", "D", -4), book(0, "b5", "E", 5))
	v := New("view", Options{Validate: func(e eventstream.Effect) string {
		if y, _ := e.Doc["year"].(int64); y < 0 {
			return "negative year"
		}
		return ""
	}})
	parking := checkpoint.NewMemoryParking()
	r := newRunner(t, l, v, parking, 100)
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := ckpt(t, v); c != 5 {
		t.Fatalf("view checkpoint %d, want 5", c)
	}
	if ids(v.Query("Book", nil)) != "b1,b3,b5" {
		t.Fatalf("view holds %q", ids(v.Query("Book", nil)))
	}
	parked, err := parking.List(context.Background(), "view")
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 2 || parked[0].Effect.DocID != "b2" || parked[1].Effect.DocID != "b4" ||
		parked[0].Reason != "negative year" || parked[0].Effect.LSN != 2 || parked[1].Effect.LSN != 4 {
		t.Fatalf("parked %+v", parked)
	}
	if st := r.Status(); st.Parked != 2 || st.Applied != 3 || st.Failures != 0 || st.Lag != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestStartedRunnerFollowsLogIntoView(t *testing.T) {
	l := openLog(t)
	v := New("view", Options{})
	updates, cancel := v.Subscribe(256)
	defer cancel()
	r := newRunner(t, l, v, checkpoint.NewMemoryParking(), 3)
	r.Start(context.Background())
	for i := range 20 {
		appendAll(t, l, book(0, fmt.Sprint("b", i), "T", int64(i)))
	}
	var last uint64
	for range 20 {
		u := recv(t, updates)
		if u.Doc.LSN <= last {
			t.Fatalf("update LSN %d after %d", u.Doc.LSN, last)
		}
		last = u.Doc.LSN
	}
	if last != 20 {
		t.Fatalf("last update LSN %d", last)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Status().Checkpoint != 20 {
		if time.Now().After(deadline) {
			t.Fatal("runner never reached LSN 20")
		}
		time.Sleep(time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if v.Count("Book") != 20 || ckpt(t, v) != 20 {
		t.Fatalf("count %d, checkpoint %d", v.Count("Book"), ckpt(t, v))
	}
}
