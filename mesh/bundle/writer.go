package bundle

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/tributary-sync/tributary/core"
)

// Writer writes a bundle (the current version) to any io.Writer as it
// goes: the header when created, one frame per Add, the trailer on Close.
// It holds nothing but a hash, so a bundle of any size streams through it.
type Writer struct {
	w      io.Writer
	h      hash.Hash
	n      int64
	closed bool
	err    error // sticky
}

// NewWriter starts a bundle on w with header h.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	head, err := core.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode bundle header: %w", err)
	}
	if len(head) > MaxHeaderBytes {
		return nil, fmt.Errorf("bundle header is %d bytes (%d since heads), limit %d", len(head), len(h.Since), MaxHeaderBytes)
	}
	bw := &Writer{w: w, h: sha256.New()}
	bw.write(append([]byte(magicPrefix), Version))
	bw.write(binary.BigEndian.AppendUint32(nil, uint32(len(head))))
	bw.write(head)
	if bw.err != nil {
		return nil, bw.err
	}
	return bw, nil
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("write bundle: %w", err)
		return
	}
	w.h.Write(b)
}

// Add appends one signed envelope. Envelopes should come in height order
// (as a replica exports them) so that an importer applies them in one
// pass; Add does not verify them, a reader does.
func (w *Writer) Add(env []byte) error {
	if w.closed {
		return errors.New("write bundle: add after close")
	}
	if len(env) == 0 || len(env) > MaxEnvelopeBytes {
		return fmt.Errorf("write bundle: change %d is %d bytes, want 1 to %d", w.n, len(env), MaxEnvelopeBytes)
	}
	var lb [4]byte
	binary.BigEndian.PutUint32(lb[:], uint32(len(env)))
	w.write(lb[:])
	w.write(env)
	if w.err == nil {
		w.n++
	}
	return w.err
}

// Count is the number of envelopes added.
func (w *Writer) Count() int64 { return w.n }

// Close writes the trailer (end mark, count, checksum). It does not close
// the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	var t [12]byte // end mark (a zero length), then the count
	binary.BigEndian.PutUint64(t[4:], uint64(w.n))
	w.write(t[:])
	if w.err != nil {
		return w.err
	}
	if _, err := w.w.Write(w.h.Sum(nil)); err != nil {
		w.err = fmt.Errorf("write bundle: %w", err)
	}
	return w.err
}

// Source is what a bundle is exported from: *replica.Replica. ExportTo
// hands fn every stored change not in the causal past of since, in height
// order; env is valid only during the call.
type Source interface {
	ExportTo(ctx context.Context, since []core.ID, fn func(env []byte) error) error
}

// Export writes to out a bundle of what src holds beyond h.Since and
// returns the number of changes written. Memory stays bounded whatever the
// size of the export. On an error out holds a bundle without its trailer,
// which every reader refuses.
func Export(ctx context.Context, out io.Writer, h Header, src Source) (int64, error) {
	w, err := NewWriter(out, h)
	if err != nil {
		return 0, err
	}
	if err := src.ExportTo(ctx, h.Since, w.Add); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Count(), nil
}

// ExportFile is Export to path, atomically (temporary file in the same
// directory, fsync, rename).
func ExportFile(ctx context.Context, path string, h Header, src Source) (int64, error) {
	var n int64
	err := writeFileAtomic(path, func(f io.Writer) (err error) {
		n, err = Export(ctx, f, h, src)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("export bundle %s: %w", path, err)
	}
	return n, nil
}

func writeFileAtomic(path string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bundle-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
