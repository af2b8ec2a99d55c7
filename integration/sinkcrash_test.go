package integration

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/core/schema"
)

var crashSeed = flag.Uint64("crash-seed", 0, "seed of the sink crash tests (0: time-based)")

const crashSchema = `type Author @collection { name: String! }
type Book @collection {
  title: String!
  year: Int
  price: Float
  author: Author
  tags: [String!] @set
  likes: Int @counter
}`

// target is a sink type under the crash test: how to get a server and
// how to read back what the sink wrote, as collection -> id -> fields in
// canonical values, and its checkpoint.
type target struct {
	typ   string
	kills int
	start func(t testing.TB) (url string)
	read  func(t *testing.T, url string, sch *schema.Schema) (docs map[string]map[string]map[string]any, checkpoint uint64)
}

// crashTest kills a `tributary run` feeding the target with SIGKILL at
// random instants while writes continue (through the node when it is up,
// straight into the store when it is down); at the end the target must
// equal the materialized state row by row and its checkpoint the last LSN.
func crashTest(t *testing.T, tg target) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash-seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	url := tg.start(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mustCLI(t, home, nil, "init")
	schemaFile := filepath.Join(dir, "schema.graphql")
	if err := os.WriteFile(schemaFile, []byte(crashSchema), 0o600); err != nil {
		t.Fatal(err)
	}
	var sp struct {
		Space string `json:"space"`
	}
	mustCLI(t, home, &sp, "space", "create", "--schema", schemaFile)
	mustCLI(t, home, nil, "put", "Author", `{"name":"Ursula"}`, "--id", "a0")
	cfg := filepath.Join(dir, "run.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("sinks:\n  - name: crash\n    type: %s\n    url: %q\n    batch_size: 7\n", tg.typ, url)), 0o600); err != nil {
		t.Fatal(err)
	}

	// The writer: creates, updates and deletes books until told to stop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	writes, failed := 0, 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		wrng := rand.New(rand.NewPCG(seed, 11))
		var ids []string
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch k := wrng.IntN(10); {
			case k < 5 || len(ids) < 3:
				id := fmt.Sprintf("b%d", n)
				_, err = cli(home, "put", "Book", fmt.Sprintf(`{"title":"Book %d","year":%d,"price":%d.5,"author":"a0","tags":["t%d"]}`, n, 1900+wrng.IntN(120), wrng.IntN(50), wrng.IntN(4)), "--id", id)
				if err == nil {
					ids = append(ids, id)
				}
			case k < 9:
				id := ids[wrng.IntN(len(ids))]
				_, err = cli(home, "put", "Book", fmt.Sprintf(`{"year":%d,"likes":%d,"tags":["t%d","t%d"]}`, 1900+wrng.IntN(120), wrng.IntN(9), wrng.IntN(4), wrng.IntN(4)), "--id", id)
			default:
				i := wrng.IntN(len(ids))
				_, err = cli(home, "delete", "Book", ids[i])
				ids = append(ids[:i], ids[i+1:]...)
			}
			mu.Lock()
			writes++
			if err != nil {
				failed++
			}
			mu.Unlock()
		}
	}()

	for kill := 0; kill < tg.kills; kill++ {
		var n *node
		var err error
		for attempt := 0; ; attempt++ {
			if n, err = startRun(home, "--config", cfg); err == nil {
				break
			}
			if attempt == 20 {
				t.Fatalf("kill %d: could not start the node: %v", kill, err)
			}
			time.Sleep(50 * time.Millisecond) // a CLI command holds the store
		}
		time.Sleep(time.Duration(100+rng.IntN(1200)) * time.Millisecond)
		n.kill()
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // writes go straight to the store now
	}
	close(stop)
	wg.Wait()
	t.Logf("%d kills; %d writes attempted, %d failed (the node died under them or held the store)", tg.kills, writes, failed)

	// Final run: let the sink catch up, then compare.
	var n *node
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if n, err = startRun(home, "--config", cfg); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer n.stop(t)
	var status struct {
		Effects struct {
			Last uint64 `json:"last_lsn"`
		} `json:"effects"`
	}
	mustCLI(t, home, &status, "status")
	waitCaughtUp(t, home, status.Effects.Last)
	sch, err := schema.Parse(crashSchema)
	if err != nil {
		t.Fatal(err)
	}
	compareTarget(t, home, tg, url, sch, status.Effects.Last)

	// A reset sink refills from the effect log (a backfill) to the same state.
	mustCLI(t, home, nil, "sink", "reset", "crash")
	waitCaughtUp(t, home, status.Effects.Last)
	compareTarget(t, home, tg, url, sch, status.Effects.Last)
}

// waitCaughtUp polls `tributary sinks` until the sink's checkpoint is last.
func waitCaughtUp(t *testing.T, home string, last uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var sinks []struct {
			Checkpoint uint64 `json:"checkpoint"`
			LastLSN    uint64 `json:"last_lsn"`
			Parked     int    `json:"parked_total"`
			LastError  string `json:"last_error"`
		}
		mustCLI(t, home, &sinks, "sinks")
		if len(sinks) == 1 && sinks[0].Checkpoint == last {
			if sinks[0].Parked != 0 {
				t.Fatalf("%d effects parked", sinks[0].Parked)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink did not catch up to LSN %d: %+v", last, sinks)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// compareTarget requires the target to equal the materialized state row
// by row, with its checkpoint at last.
func compareTarget(t *testing.T, home string, tg target, url string, sch *schema.Schema, last uint64) {
	t.Helper()
	got, ckpt := tg.read(t, url, sch)
	if ckpt != last {
		t.Fatalf("target checkpoint %d, last LSN %d", ckpt, last)
	}
	for _, coll := range []string{"Author", "Book"} {
		var docs []map[string]any
		mustCLI(t, home, &docs, "query", coll)
		want := map[string]map[string]any{}
		for _, d := range docs {
			id := d["id"].(string)
			delete(d, "id")
			want[id] = d
		}
		have := normalize(t, got[coll])
		if !reflect.DeepEqual(normalize(t, want), have) {
			for id, w := range normalize(t, want) {
				if !reflect.DeepEqual(w, have[id]) {
					t.Errorf("%s/%s: materialized %v, target %v", coll, id, w, have[id])
				}
			}
			for id := range have {
				if _, ok := want[id]; !ok {
					t.Errorf("%s/%s: in the target but not materialized: %v", coll, id, have[id])
				}
			}
			t.Fatalf("%s: target (%d rows) differs from the materialized state (%d documents)", coll, len(have), len(want))
		}
		t.Logf("%s: %d documents, identical in the target", coll, len(want))
	}
}

// normalize passes values through JSON so that canonical values (int64,
// []byte) and CLI output (float64, base64 text) compare alike.
func normalize(t *testing.T, docs map[string]map[string]any) map[string]map[string]any {
	b, err := json.Marshal(docs)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out == nil {
		out = map[string]map[string]any{}
	}
	return out
}

var _ = context.Background
