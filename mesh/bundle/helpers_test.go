package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

const blobSchema = "type Blob @collection { data: String }"

func testKey(t testing.TB, seed byte) core.PrivateKey {
	t.Helper()
	k, err := core.PrivateKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// chain signs a genesis and then one change per call of next, each on top
// of the one before (heights 1, 2, 3, ...): what a replica exports when
// one author wrote everything.
type chain struct {
	key    core.PrivateKey
	space  core.ID
	prev   core.ID
	height uint64
}

func newChain(t testing.TB, seed byte) (*chain, []byte) {
	t.Helper()
	k := testKey(t, seed)
	g := &core.Change{Version: core.ChangeVersion, Author: k.Public(), Seq: 1, Height: 1, HLC: core.HLC{Wall: 1000},
		Ops: []core.Op{{Kind: core.OpGenesis, Name: "t", Schema: blobSchema}}}
	env, id := sign(t, g, k)
	return &chain{key: k, space: id, prev: id, height: 1}, env
}

// next signs a change creating document doc with a data field.
func (c *chain) next(t testing.TB, doc, data string) []byte {
	t.Helper()
	c.height++
	ch := &core.Change{Version: core.ChangeVersion, Space: c.space, Author: c.key.Public(), Seq: c.height, Prev: c.prev,
		Parents: []core.ID{c.prev}, Height: c.height, HLC: core.HLC{Wall: 1000 + c.height},
		Ops: []core.Op{{Kind: core.OpCreate, Coll: "Blob", Doc: doc, Fields: map[string]any{"data": data}}}}
	env, id := sign(t, ch, c.key)
	c.prev = id
	return env
}

func sign(t testing.TB, c *core.Change, k core.PrivateKey) ([]byte, core.ID) {
	t.Helper()
	s, id, err := core.Sign(c, k)
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return env, id
}

// sampleBundle is a genesis and n small changes.
func sampleBundle(t testing.TB, n int) Bundle {
	t.Helper()
	c, g := newChain(t, 7)
	b := Bundle{Space: c.space, Changes: [][]byte{g}}
	for i := range n {
		b.Changes = append(b.Changes, c.next(t, fmt.Sprintf("d%d", i), fmt.Sprintf("value %d", i)))
	}
	return b
}

// longChain is a genesis and 1100 small changes, past the first
// signature batch and the first apply batch, and the chain to continue
// it. It is built once: signing is slow under the race detector.
func longChain(t testing.TB) (Bundle, chain) {
	long.Lock()
	defer long.Unlock()
	if long.b.Changes == nil {
		c, g := newChain(t, 7)
		b := Bundle{Space: c.space, Changes: [][]byte{g}}
		for i := range 1100 {
			b.Changes = append(b.Changes, c.next(t, fmt.Sprintf("d%d", i), fmt.Sprintf("value %d", i)))
		}
		long.b, long.c = b, *c
	}
	b := long.b
	b.Changes = slices.Clone(b.Changes)
	return b, long.c
}

var long struct {
	sync.Mutex
	b Bundle
	c chain
}

// sample is the smallest useful bundle: a genesis and one change.
func sample(t testing.TB) Bundle { return sampleBundle(t, 1) }

func encode(t testing.TB, b Bundle) []byte {
	t.Helper()
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// encodeV1 writes a bundle in format version 1, as earlier builds did.
func encodeV1(t testing.TB, b Bundle) []byte {
	t.Helper()
	body, err := core.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(magicPrefix+"\x01"), body...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// reseal replaces the checksum of a bundle (either version) so that it
// matches the bytes before it: an altered file made to look intact.
func reseal(data []byte) []byte {
	body := bytes.Clone(data[:len(data)-sha256.Size])
	sum := sha256.Sum256(body)
	return append(body, sum[:]...)
}

func openReplica(t testing.TB) *replica.Replica {
	t.Helper()
	r, err := replica.Open(replica.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// importBytes imports bundle bytes into r the way a node imports an
// upload: spool, verify, apply.
func importBytes(t testing.TB, r *replica.Replica, data []byte) (Result, error) {
	t.Helper()
	ctx := context.Background()
	f, err := Spool(ctx, bytes.NewReader(data), os.TempDir(), int64(len(data)))
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	return f.Import(ctx, r, nil)
}

// state is what an import can change in a replica.
func state(t testing.TB, r *replica.Replica) string {
	t.Helper()
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("changes %d, heads %v, orphans %d", st.Changes, st.Heads, st.Orphans)
}

func writeTemp(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "b.trb")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// oneByteReader hands out a byte per Read, the worst case for framing.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
