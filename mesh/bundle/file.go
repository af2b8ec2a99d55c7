package bundle

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// File is a verified bundle, ready to apply: the first pass is done, the
// second runs in Import (or Apply).
type File struct {
	r      io.ReadSeeker
	start  int64     // where the bundle starts in r
	closer io.Closer // what Close closes: nil when the caller owns r
	name   string
	remove bool // a spool whose path could not be unlinked while open
	v      *Verified
}

// OpenFile opens the bundle at path and verifies all of it (Verify);
// nothing is applied. Close the File after use.
func OpenFile(ctx context.Context, path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	v, err := Verify(ctx, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read bundle %s: %w", path, err)
	}
	return &File{r: f, closer: f, name: path, v: v}, nil
}

// OpenReader verifies the bundle r holds, wherever it comes from: in place
// when r can seek (an open file, read from where it stands), otherwise by
// spooling it (Spool into spoolDir, at most maxBytes). Closing the File
// does not close r.
func OpenReader(ctx context.Context, r io.Reader, spoolDir string, maxBytes int64) (*File, error) {
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		return Spool(ctx, r, spoolDir, maxBytes)
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return Spool(ctx, r, spoolDir, maxBytes) // a pipe or a terminal: not seekable after all
	}
	v, err := Verify(ctx, rs)
	if err != nil {
		return nil, err
	}
	name := "stream"
	if f, ok := r.(interface{ Name() string }); ok {
		name = f.Name()
	}
	return &File{r: rs, start: start, name: name, v: v}, nil
}

// Spool takes a bundle from a stream that cannot be read twice (an HTTP
// request body): it copies r into a temporary file in dir, verifying as
// it copies, and refuses with ErrTooLarge a stream longer than maxBytes.
// The temporary file is unlinked at once where the system allows it (and
// on Close otherwise), so no other process reaches it by name and a crash
// leaves nothing behind. Memory stays bounded; disk use is the bundle's
// size.
func Spool(ctx context.Context, r io.Reader, dir string, maxBytes int64) (*File, error) {
	f, err := os.CreateTemp(dir, "bundle-*.spool")
	if err != nil {
		return nil, fmt.Errorf("spool bundle: %w", err)
	}
	sf := &File{r: f, closer: f, name: f.Name(), remove: os.Remove(f.Name()) != nil}
	bw := bufio.NewWriterSize(f, 64<<10)
	capped := &capReader{r: r, left: maxBytes}
	v, err := Verify(ctx, io.TeeReader(capped, bw))
	if err == nil {
		err = bw.Flush()
	}
	if capped.over {
		err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	if err != nil {
		sf.Close()
		return nil, fmt.Errorf("spool bundle: %w", err)
	}
	sf.v = v
	return sf, nil
}

// capReader reads at most left bytes of r, then fails.
type capReader struct {
	r    io.Reader
	left int64
	over bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a stream of exactly the cap from a longer one.
		var b [1]byte
		if n, _ := io.ReadFull(c.r, b[:]); n == 0 {
			return 0, io.EOF
		}
		c.over = true
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// Header is the bundle's header.
func (f *File) Header() Header { return f.v.Header }

// Verified is what the first pass found.
func (f *File) Verified() *Verified { return f.v }

// Apply runs the second pass (Verified.Apply) over the file.
func (f *File) Apply(ctx context.Context, fn func(ctx context.Context, batch [][]byte) error) error {
	if _, err := f.r.Seek(f.start, io.SeekStart); err != nil {
		return fmt.Errorf("read bundle %s again: %w", f.name, err)
	}
	return f.v.Apply(ctx, f.r, fn)
}

// Close closes the file, removing it if it was a spool.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	if f.remove {
		if rerr := os.Remove(f.name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// Receiver applies changes: *replica.Replica. Receive reports per change
// what it did; its error means the store failed.
type Receiver interface {
	Receive(ctx context.Context, envelopes [][]byte) (replica.Report, error)
}

// spaceHolder is a Receiver that knows its space (*replica.Replica):
// Import then refuses a bundle of another space before applying anything,
// rather than leaving its changes held as orphans.
type spaceHolder interface {
	Space() core.ID
}

// MaxRejections is how many refusals a Result lists (all are counted).
const MaxRejections = 100

// Result sums what a Receiver did with a bundle's batches.
type Result struct {
	Changes    int64               `json:"changes"`    // in the bundle
	Applied    int                 `json:"applied"`    // stored (valid or not)
	Invalid    int                 `json:"invalid"`    // stored, but with no effect
	Duplicates int                 `json:"duplicates"` // already held
	Held       int                 `json:"held"`       // waiting for missing parents at the end
	Released   int                 `json:"released"`   // held before (waiting for parents), applied now
	Refused    int                 `json:"refused"`    // refused outright by the replica
	Rejected   []replica.Rejection `json:"rejected,omitempty"`
}

// Err is nil when the replica refused nothing; otherwise it wraps
// ErrRefused, naming how many changes were refused, the first reason, and
// what became of the rest.
func (r Result) Err() error {
	if r.Refused == 0 {
		return nil
	}
	first := r.Rejected[0]
	return fmt.Errorf("%w: %d of %d changes (%d applied, %d already held, %d waiting for parents); the first, %s: %s",
		ErrRefused, r.Refused, r.Changes, r.Applied, r.Duplicates, r.Held, first.ID, first.Msg)
}

func (r *Result) add(rep replica.Report) {
	// What still waits for parents at the end is the last batch's held
	// changes and those it did not release.
	r.Applied += rep.Applied
	r.Released += rep.Released
	r.Invalid += rep.Invalid
	r.Duplicates += rep.Duplicates
	r.Held = rep.Held + rep.StillHeld
	r.Refused += len(rep.Rejected)
	for _, rj := range rep.Rejected {
		if len(r.Rejected) < MaxRejections {
			r.Rejected = append(r.Rejected, rj)
		}
	}
}

// Import applies the verified bundle to dst, batch by batch in the file's
// (height) order, and sums the reports. progress, if set, is called after
// each batch with the changes done so far and the total. The error is
// the store's, ErrChanged, or the context's; refusals are in the Result
// (see Result.Err). A bundle of another space than dst's is refused with
// ErrOtherSpace, before anything is applied.
func (f *File) Import(ctx context.Context, dst Receiver, progress func(done, total int64)) (Result, error) {
	res := Result{Changes: f.v.Changes}
	if sh, ok := dst.(spaceHolder); ok {
		if have := sh.Space(); !have.IsZero() && have != f.v.Header.Space {
			return res, fmt.Errorf("import bundle %s: %w: it carries space %s, the replica holds %s", f.name, ErrOtherSpace, f.v.Header.Space, have)
		}
	}
	var done int64
	err := f.Apply(ctx, func(ctx context.Context, batch [][]byte) error {
		rep, err := dst.Receive(ctx, batch)
		if err != nil {
			return err
		}
		res.add(rep)
		done += int64(len(batch))
		if progress != nil {
			progress(done, f.v.Changes)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("import bundle %s: %w", f.name, err)
	}
	return res, nil
}
