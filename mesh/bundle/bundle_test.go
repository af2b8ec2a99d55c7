package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

func sameBundle(t *testing.T, got, want Bundle) {
	t.Helper()
	if got.Space != want.Space || len(got.Since) != len(want.Since) || len(got.Changes) != len(want.Changes) {
		t.Fatalf("got space %s, %d since, %d changes; want %s, %d, %d", got.Space, len(got.Since), len(got.Changes), want.Space, len(want.Since), len(want.Changes))
	}
	for i := range got.Since {
		if got.Since[i] != want.Since[i] {
			t.Fatalf("since %d differs", i)
		}
	}
	for i := range got.Changes {
		if !bytes.Equal(got.Changes[i], want.Changes[i]) {
			t.Fatalf("change %d differs", i)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	b := sampleBundle(t, 30)
	b.Since = []core.ID{{1}, {2}}
	for name, data := range map[string][]byte{"version 2": encode(t, b), "version 1": encodeV1(t, b)} {
		t.Run(name, func(t *testing.T) {
			got, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			sameBundle(t, got, b)

			// A byte at a time: framing does not depend on read sizes.
			v, err := Verify(context.Background(), oneByteReader{bytes.NewReader(data)})
			if err != nil {
				t.Fatal(err)
			}
			if v.Changes != 31 || v.Bytes != int64(len(data)) || !v.Header.equal(Header{Space: b.Space, Since: b.Since}) {
				t.Fatalf("verified %+v", v)
			}
			got, err = collect(context.Background(), v.Header, func(ctx context.Context, fn func(context.Context, [][]byte) error) error {
				return v.Apply(ctx, oneByteReader{bytes.NewReader(data)}, fn)
			})
			if err != nil {
				t.Fatal(err)
			}
			sameBundle(t, got, b)
		})
	}

	path := filepath.Join(t.TempDir(), "x.trb")
	if err := WriteFile(path, b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sameBundle(t, got, b)

	// No changes at all is a bundle too.
	empty := Bundle{Space: b.Space}
	if got, err = Decode(encode(t, empty)); err != nil {
		t.Fatal(err)
	}
	sameBundle(t, got, empty)
}

func TestWriterRefusesBadFrames(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Space: core.ID{1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(nil); err == nil {
		t.Fatal("Add took an empty envelope")
	}
	if err := w.Add(make([]byte, MaxEnvelopeBytes+1)); err == nil {
		t.Fatal("Add took an envelope over the limit")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]byte{1}); err == nil {
		t.Fatal("Add after Close")
	}
	if _, err := NewWriter(&buf, Header{Since: make([]core.ID, MaxHeaderBytes/32)}); err == nil {
		t.Fatal("NewWriter took a header over the limit")
	}
}

// Batches reach the callback in file order, within both limits, and
// together hold every change once.
func TestApplyBatches(t *testing.T) {
	b, c := longChain(t) // over BatchChanges
	for i := range 50 {  // over BatchBytes
		b.Changes = append(b.Changes, c.next(t, fmt.Sprintf("big%d", i), strings.Repeat("x", 100<<10)))
	}
	data := encode(t, b)
	v, err := Verify(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var i, batches, byCount, bySize int
	err = v.Apply(context.Background(), bytes.NewReader(data), func(_ context.Context, batch [][]byte) error {
		batches++
		if len(batch) == BatchChanges {
			byCount++
		}
		size := 0
		for _, env := range batch {
			if !bytes.Equal(env, b.Changes[i]) {
				return fmt.Errorf("change %d out of order", i)
			}
			i++
			size += len(env)
		}
		if len(batch) == 0 || len(batch) > BatchChanges || len(batch) > 1 && size > BatchBytes {
			return fmt.Errorf("batch %d: %d changes, %d bytes", batches, len(batch), size)
		}
		if i < len(b.Changes) && size+len(b.Changes[i]) > BatchBytes {
			bySize++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(b.Changes) || byCount == 0 || bySize == 0 {
		t.Fatalf("applied %d changes in %d batches (%d cut by count, %d by size), want %d and both limits reached", i, batches, byCount, bySize, len(b.Changes))
	}
}

func TestImportIsIdempotent(t *testing.T) {
	for name, enc := range map[string]func(testing.TB, Bundle) []byte{"version 2": encode, "version 1": encodeV1} {
		t.Run(name, func(t *testing.T) {
			data := enc(t, sampleBundle(t, 20))
			r := openReplica(t)
			res, err := importBytes(t, r, data)
			if err != nil || res.Err() != nil {
				t.Fatalf("first import: %v, %v", err, res.Err())
			}
			if res.Changes != 21 || res.Applied != 21 || res.Duplicates != 0 {
				t.Fatalf("first import = %+v, want 21 applied", res)
			}
			before := state(t, r)
			res, err = importBytes(t, r, data)
			if err != nil || res.Err() != nil {
				t.Fatalf("second import: %v, %v", err, res.Err())
			}
			if res.Applied != 0 || res.Duplicates != 21 || res.Held != 0 {
				t.Fatalf("second import = %+v, want 21 already held", res)
			}
			if after := state(t, r); after != before {
				t.Fatalf("second import changed the replica:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestExportFileImportFile(t *testing.T) {
	ctx := context.Background()
	src := openReplica(t)
	k := testKey(t, 3)
	space, err := src.Found(ctx, k, "t", blobSchema, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var mid core.ID
	for i := range 10 {
		id, err := src.Write(ctx, k, []core.Op{{Kind: core.OpCreate, Coll: "Blob", Doc: fmt.Sprintf("d%d", i), Fields: map[string]any{"data": "x"}}}, uint64(1001+i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			mid = id
		}
	}
	var buf bytes.Buffer
	if n, err := Export(ctx, &buf, Header{Space: space}, src); err != nil || n != 11 {
		t.Fatalf("export to a writer = %d, %v; want 11 changes", n, err)
	}
	if _, err := Decode(buf.Bytes()); err != nil {
		t.Fatalf("exported bundle: %v", err)
	}
	dir := t.TempDir()
	all, since := filepath.Join(dir, "all.trb"), filepath.Join(dir, "since.trb")
	if n, err := ExportFile(ctx, all, Header{Space: space}, src); err != nil || n != 11 {
		t.Fatalf("export = %d, %v; want 11 changes", n, err)
	}
	if n, err := ExportFile(ctx, since, Header{Space: space, Since: []core.ID{mid}}, src); err != nil || n != 5 {
		t.Fatalf("export since = %d, %v; want 5 changes", n, err)
	}
	dst := openReplica(t)
	for _, p := range []string{all, since} {
		f, err := OpenFile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.Import(ctx, dst, nil)
		f.Close()
		if err != nil || res.Err() != nil {
			t.Fatalf("import %s: %v, %v", p, err, res.Err())
		}
	}
	if a, b := state(t, src), state(t, dst); a != b {
		t.Fatalf("after import:\nsource %s\ndest   %s", a, b)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 2 {
		t.Fatalf("export left %d files in its directory (%v), want the 2 bundles", len(entries), err)
	}
}

// region names the part of a bundle a byte offset falls in.
func region(data []byte, off int) string {
	hdr := len(magicPrefix) + 1 + 4 + int(binary.BigEndian.Uint32(data[len(magicPrefix)+1:]))
	switch {
	case off <= len(magicPrefix):
		return "magic"
	case off < hdr:
		return "header"
	case off < len(data)-sha256.Size-12:
		return "changes"
	default:
		return "trailer"
	}
}

// Every truncation and every flipped bit is refused, before anything is
// applied, with an error naming damage.
func TestDamageIsRefusedAndNothingApplied(t *testing.T) {
	for name, data := range map[string][]byte{"version 2": encode(t, sampleBundle(t, 3)), "version 1": encodeV1(t, sampleBundle(t, 3))} {
		t.Run(name, func(t *testing.T) {
			r := openReplica(t)
			before := state(t, r)
			check := func(what string, bad []byte, want error, wantText string) {
				t.Helper()
				res, err := importBytes(t, r, bad)
				if !errors.Is(err, want) || !strings.Contains(err.Error(), wantText) {
					t.Fatalf("%s: got %v, want %v naming %q", what, err, want, wantText)
				}
				if res.Applied != 0 {
					t.Fatalf("%s: %d changes applied", what, res.Applied)
				}
				if after := state(t, r); after != before {
					t.Fatalf("%s changed the replica: %s", what, after)
				}
			}
			for n := 0; n < len(data); n++ {
				want, text := error(ErrCorrupt), "truncated"
				if n < len(magicPrefix)+1 {
					want, text = ErrNotBundle, ""
				}
				check(fmt.Sprintf("truncated to %d of %d bytes", n, len(data)), data[:n], want, text)
			}
			for off := range data {
				bad := bytes.Clone(data)
				bad[off] ^= 0x10
				want, text := error(ErrCorrupt), ""
				switch {
				case off < len(magicPrefix):
					want = ErrNotBundle
				case off == len(magicPrefix):
					want, text = ErrNotBundle, "format version"
				case off >= len(data)-sha256.Size:
					text = "checksum mismatch"
				}
				what := fmt.Sprintf("byte %d flipped", off)
				if name == "version 2" {
					what += " (" + region(data, off) + ")"
				}
				check(what, bad, want, text)
			}
			check("data after the end", append(bytes.Clone(data), 0), ErrCorrupt, "checksum mismatch")
			check("a bundle twice", append(bytes.Clone(data), data...), ErrCorrupt, "checksum mismatch")
			check("empty", nil, ErrNotBundle, "")
			check("not ours", bytes.Repeat([]byte("x"), 100), ErrNotBundle, "")
		})
	}
}

func TestUnknownVersionIsRefused(t *testing.T) {
	data := encode(t, sample(t))
	data[len(magicPrefix)] = 3
	_, err := Decode(data)
	if !errors.Is(err, ErrNotBundle) || !strings.Contains(err.Error(), "format version 3") {
		t.Fatalf("version 3: got %v", err)
	}
}

// An intact file (its checksum holds) whose content is bad: the change is
// named, nothing is applied.
func TestBadChangesAreRefusedAndNothingApplied(t *testing.T) {
	big, _ := longChain(t) // past the first signature batch and the first apply batch
	forge := func(b Bundle, i int) Bundle {
		s, err := core.DecodeSigned(b.Changes[i])
		if err != nil {
			t.Fatal(err)
		}
		s.Sig[0] ^= 1
		b.Changes = append([][]byte{}, b.Changes...)
		if b.Changes[i], err = s.Encode(); err != nil {
			t.Fatal(err)
		}
		return b
	}
	other := sample(t)
	other.Space[0] ^= 1
	_, g2 := newChain(t, 9) // the genesis of another space
	mixed := sample(t)
	mixed.Changes = append(mixed.Changes, g2)
	garbled := sample(t)
	garbled.Changes = append(garbled.Changes, []byte{0x82, 0x41, 0x00, 0x40}) // an envelope holding a non-change
	notCanonical := sample(t)
	s, err := core.DecodeSigned(notCanonical.Changes[1])
	if err != nil {
		t.Fatal(err)
	}
	// The version as a two-byte integer: the same change, not its canonical encoding.
	s.Body = append([]byte{s.Body[0], 0x18}, s.Body[1:]...)
	if notCanonical.Changes[1], err = s.Encode(); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		data   []byte
		want   []error
		naming string
	}{
		{"forged signature", encode(t, forge(sample(t), 1)), []error{ErrBadChange, core.ErrBadSignature}, "change 1 ("},
		{"forged signature, late", encode(t, forge(big, 1050)), []error{ErrBadChange, core.ErrBadSignature}, "change 1050 ("},
		{"forged signature, version 1", encodeV1(t, forge(sample(t), 1)), []error{ErrBadChange, core.ErrBadSignature}, "change 1 ("},
		{"wrong space in the header", encode(t, other), []error{ErrBadChange}, "another space"},
		{"two spaces", encode(t, mixed), []error{ErrBadChange}, "change 2 ("},
		{"not a change", encode(t, garbled), []error{ErrBadChange, core.ErrMalformed}, "change 2"},
		{"not canonical", encode(t, notCanonical), []error{ErrBadChange}, "canonical"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := openReplica(t)
			before := state(t, r)
			res, err := importBytes(t, r, c.data)
			for _, want := range c.want {
				if !errors.Is(err, want) {
					t.Fatalf("got %v, want %v", err, want)
				}
			}
			if !strings.Contains(err.Error(), c.naming) {
				t.Fatalf("error %q does not name %q", err, c.naming)
			}
			if errors.Is(err, ErrCorrupt) {
				t.Fatalf("an intact file reported as damaged: %v", err)
			}
			if after := state(t, r); res.Applied != 0 || after != before {
				t.Fatalf("refused bundle changed the replica: %s", after)
			}
		})
	}
}

// A change that verifies but that the replica refuses (here: a height
// that does not follow its parent) is counted and named in Result.Err.
func TestRefusedChangesAreReported(t *testing.T) {
	c, g := newChain(t, 7)
	good := c.next(t, "a", "x")
	c.height += 3 // the next change claims height 6 on a parent at 2
	bad := c.next(t, "b", "y")
	b := Bundle{Space: c.space, Changes: [][]byte{g, good, bad}}
	r := openReplica(t)
	res, err := importBytes(t, r, encode(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 2 || res.Refused != 1 || len(res.Rejected) != 1 {
		t.Fatalf("import = %+v, want 2 applied, 1 refused", res)
	}
	err = res.Err()
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "1 of 3 changes") || !strings.Contains(err.Error(), "height") {
		t.Fatalf("Result.Err = %v, want the count and the reason", err)
	}

}

// A bundle of another space is refused before anything is applied,
// rather than leaving its changes held for parents that never come.
func TestOtherSpaceIsRefused(t *testing.T) {
	r := openReplica(t)
	if _, err := r.Found(context.Background(), testKey(t, 1), "mine", blobSchema, nil, 1000); err != nil {
		t.Fatal(err)
	}
	before := state(t, r)
	foreign := sampleBundle(t, 2)
	res, err := importBytes(t, r, encode(t, foreign))
	if !errors.Is(err, ErrOtherSpace) || !strings.Contains(err.Error(), foreign.Space.String()) {
		t.Fatalf("foreign import: %v, want ErrOtherSpace naming %s", err, foreign.Space)
	}
	if after := state(t, r); res.Applied != 0 || after != before {
		t.Fatalf("foreign bundle changed the replica: %s", after)
	}
}

// A file changed between verification and applying: nothing of the
// changed part is applied.
func TestChangedBetweenPasses(t *testing.T) {
	ctx := context.Background()
	a := sampleBundle(t, 5)
	b := a
	b.Changes = append([][]byte{}, a.Changes...)
	c, _ := newChain(t, 7) // the same genesis: a sibling of a's first change
	b.Changes[1] = c.next(t, "other", "validly signed, never verified")
	for name, replacement := range map[string][]byte{
		"another change": encode(t, b),
		"another space":  encode(t, sampleBundle(t, 0)),
		"truncated":      encode(t, a)[:100],
	} {
		t.Run(name, func(t *testing.T) {
			path := writeTemp(t, encode(t, a))
			f, err := OpenFile(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := os.WriteFile(path, replacement, 0o600); err != nil { // same file, new content
				t.Fatal(err)
			}
			r := openReplica(t)
			before := state(t, r)
			res, err := f.Import(ctx, r, nil)
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("got %v, want ErrChanged", err)
			}
			if after := state(t, r); res.Applied != 0 || after != before {
				t.Fatalf("changed bundle applied: %s", after)
			}
		})
	}
}

func TestSpool(t *testing.T) {
	ctx := context.Background()
	data := encode(t, sampleBundle(t, 10))
	dir := t.TempDir()
	left := func() int {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}

	// Exactly at the limit is fine; the spool is unreachable by name.
	f, err := Spool(ctx, oneByteReader{bytes.NewReader(data)}, dir, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if n := left(); n != 0 {
		t.Fatalf("%d files visible in the spool directory while open", n)
	}
	r := openReplica(t)
	res, err := f.Import(ctx, r, nil)
	if err != nil || res.Applied != 11 {
		t.Fatalf("import from spool = %+v, %v", res, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// One byte over is refused.
	_, err = Spool(ctx, bytes.NewReader(data), dir, int64(len(data)-1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("stream over the limit: got %v, want ErrTooLarge", err)
	}
	// A damaged stream is refused the same as a damaged file.
	_, err = Spool(ctx, bytes.NewReader(data[:len(data)-1]), dir, 1<<20)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated stream: got %v, want ErrCorrupt", err)
	}
	// A stream that fails mid-way is reported as such.
	_, err = Spool(ctx, io.MultiReader(bytes.NewReader(data[:50]), errReader{}), dir, 1<<20)
	if !errors.Is(err, errBroken) {
		t.Fatalf("broken stream: got %v, want %v", err, errBroken)
	}
	if n := left(); n != 0 {
		t.Fatalf("%d files left in the spool directory", n)
	}
	if _, err := Spool(ctx, bytes.NewReader(data), filepath.Join(dir, "missing"), 1<<20); err == nil {
		t.Fatal("spool into a missing directory")
	}
}

// OpenReader verifies a file where it stands (from its current offset,
// nothing copied) and spools any other stream.
func TestOpenReader(t *testing.T) {
	ctx := context.Background()
	data := encode(t, sampleBundle(t, 4))
	f, err := os.Open(writeTemp(t, append([]byte("preamble"), data...)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(int64(len("preamble")), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, in := range map[string]io.Reader{"file": f, "stream": io.MultiReader(bytes.NewReader(data))} {
		bf, err := OpenReader(ctx, in, dir, int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := openReplica(t)
		res, err := bf.Import(ctx, r, nil)
		if err != nil || res.Applied != 5 {
			t.Fatalf("%s: import = %+v, %v; want 5 applied", name, res, err)
		}
		if err := bf.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Seek(0, io.SeekCurrent); err != nil {
		t.Fatalf("OpenReader's Close closed the caller's file: %v", err)
	}
	if _, err := OpenReader(ctx, bytes.NewReader(data[:len(data)-1]), dir, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged reader: got %v, want ErrCorrupt", err)
	}
}

var errBroken = errors.New("connection reset")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

func TestOpenFileErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := OpenFile(ctx, filepath.Join(t.TempDir(), "missing.trb")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.trb") {
		t.Fatalf("missing file: %v", err)
	}
	data := encode(t, sample(t))
	path := writeTemp(t, data[:len(data)-3])
	if _, err := OpenFile(ctx, path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("truncated file: %v, want ErrCorrupt naming the file", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := OpenFile(cctx, writeTemp(t, data)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

var _ Receiver = (*replica.Replica)(nil)
var _ Source = (*replica.Replica)(nil)

// FuzzBundleDecode: reading never panics; whatever Decode accepts
// verifies change by change, re-encodes to a bundle that decodes to the
// same changes, and the streaming Reader returns the same envelopes.
func FuzzBundleDecode(f *testing.F) {
	good := sampleBundle(f, 3)
	v2, v1 := encode(f, good), encodeV1(f, good)
	f.Add(v2)
	f.Add(v1)
	f.Add(v2[:len(v2)/2])
	f.Add(v1[:len(v1)/2])
	f.Add(reseal(append(v2[:len(v2)-sha256.Size-12:len(v2)-sha256.Size-12], make([]byte, 12+sha256.Size)...)))
	f.Add(encode(f, Bundle{Space: good.Space}))
	f.Add([]byte(magicPrefix + "\x02"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var streamed [][]byte
		var rerr error
		if rd, err := NewReader(bytes.NewReader(data)); err == nil {
			for {
				env, err := rd.Next()
				if err != nil {
					rerr = err
					break
				}
				streamed = append(streamed, env)
			}
		}
		b, err := Decode(data)
		if err != nil {
			if len(b.Changes) != 0 {
				t.Fatalf("failed decode returned %d changes", len(b.Changes))
			}
			return
		}
		if rerr != io.EOF || len(streamed) != len(b.Changes) {
			t.Fatalf("Decode accepted %d changes, Reader read %d then %v", len(b.Changes), len(streamed), rerr)
		}
		for i, env := range b.Changes {
			if _, _, _, err := core.Open(env); err != nil {
				t.Fatalf("accepted change %d does not verify on its own: %v", i, err)
			}
			if !bytes.Equal(env, streamed[i]) {
				t.Fatalf("change %d: Reader and Decode disagree", i)
			}
		}
		b2, err := Decode(encode(t, b))
		if err != nil || len(b2.Changes) != len(b.Changes) {
			t.Fatalf("re-encoded bundle: %v", err)
		}
	})
}
