package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/tributary-sync/tributary/core"
)

// Bundle is a whole bundle in memory, for small ones (tests, the demo).
// Anything that may be large streams instead: ExportFile or Writer to
// write, OpenFile or Spool and File.Import to read.
type Bundle struct {
	_       struct{} `cbor:",toarray"` // the layout of a version 1 body
	Space   core.ID
	Since   []core.ID // heads the exporter assumed the importer has; empty = everything
	Changes [][]byte  // signed envelopes in height order
}

// Encode returns the bundle's bytes in the current format version.
func (b Bundle) Encode() ([]byte, error) {
	var buf bytes.Buffer
	if err := b.writeTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (b Bundle) writeTo(out io.Writer) error {
	w, err := NewWriter(out, Header{Space: b.Space, Since: b.Since})
	if err != nil {
		return err
	}
	for _, env := range b.Changes {
		if err := w.Add(env); err != nil {
			return err
		}
	}
	return w.Close()
}

// Decode parses and fully verifies bundle bytes of either version (see
// Verify for what is checked and the errors).
func Decode(data []byte) (Bundle, error) {
	ctx := context.Background()
	v, err := Verify(ctx, bytes.NewReader(data))
	if err != nil {
		return Bundle{}, err
	}
	return collect(ctx, v.Header, func(ctx context.Context, fn func(context.Context, [][]byte) error) error {
		return v.Apply(ctx, bytes.NewReader(data), fn)
	})
}

// collect gathers what a second pass hands out.
func collect(ctx context.Context, h Header, apply func(context.Context, func(context.Context, [][]byte) error) error) (Bundle, error) {
	b := Bundle{Space: h.Space, Since: h.Since}
	err := apply(ctx, func(_ context.Context, batch [][]byte) error {
		b.Changes = append(b.Changes, batch...)
		return nil
	})
	if err != nil {
		return Bundle{}, err
	}
	return b, nil
}

// WriteFile writes the bundle atomically (temporary file, fsync, rename).
func WriteFile(path string, b Bundle) error {
	if err := writeFileAtomic(path, b.writeTo); err != nil {
		return fmt.Errorf("write bundle %s: %w", path, err)
	}
	return nil
}

// ReadFile reads and verifies a bundle file, holding all of it in memory.
func ReadFile(path string) (Bundle, error) {
	ctx := context.Background()
	f, err := OpenFile(ctx, path)
	if err != nil {
		return Bundle{}, err
	}
	defer f.Close()
	b, err := collect(ctx, f.Header(), f.Apply)
	if err != nil {
		return Bundle{}, fmt.Errorf("read bundle %s: %w", path, err)
	}
	return b, nil
}
