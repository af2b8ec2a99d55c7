package bundle

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tributary-sync/tributary/core"
)

// Errors of bundle files.
var (
	ErrNotBundle = errors.New("not a tributary bundle")
	ErrCorrupt   = errors.New("bundle is corrupt")
	ErrBadChange = errors.New("bundle holds a change that fails verification")
)

// magic starts every bundle file; the version is its last byte.
var magic = []byte("TRIBUTARY-BUNDLE\x01")

// MaxSize bounds a bundle file (1 GiB).
const MaxSize = 1 << 30

// Bundle is the content of a file.
type Bundle struct {
	_       struct{} `cbor:",toarray"`
	Space   core.ID
	Since   []core.ID // heads the exporter assumed the importer has; empty = everything
	Changes [][]byte  // signed envelopes in height order
}

// Encode returns the file bytes: magic, canonical CBOR body, SHA-256 of
// the two.
func (b Bundle) Encode() ([]byte, error) {
	body, err := core.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode bundle: %w", err)
	}
	out := append(append([]byte{}, magic...), body...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

// Decode parses and fully verifies file bytes. It fails, naming the first
// problem, if the file is not a bundle, is truncated or altered, or holds
// any change that does not decode, is not canonical, is not for the
// bundle's space, or whose signature does not verify.
func Decode(data []byte) (Bundle, error) {
	var b Bundle
	if len(data) < len(magic)+sha256.Size || !bytes.HasPrefix(data, magic[:len(magic)-1]) {
		return b, ErrNotBundle
	}
	if data[len(magic)-1] != magic[len(magic)-1] {
		return b, fmt.Errorf("%w: version %d, this build reads %d", ErrNotBundle, data[len(magic)-1], magic[len(magic)-1])
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return b, fmt.Errorf("%w: checksum mismatch (truncated or altered file)", ErrCorrupt)
	}
	if err := core.Unmarshal(body[len(magic):], &b); err != nil {
		return b, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	pubs := make([]core.PublicKey, len(b.Changes))
	ids := make([]core.ID, len(b.Changes))
	sigs := make([][]byte, len(b.Changes))
	for i, env := range b.Changes {
		s, err := core.DecodeSigned(env)
		if err != nil {
			return Bundle{}, fmt.Errorf("%w: change %d: %v", ErrBadChange, i, err)
		}
		c, err := s.Decode()
		if err != nil {
			return Bundle{}, fmt.Errorf("%w: change %d: %v", ErrBadChange, i, err)
		}
		if err := c.CheckShape(); err != nil {
			return Bundle{}, fmt.Errorf("%w: change %d (%s): %v", ErrBadChange, i, s.ID(), err)
		}
		if !c.IsGenesis() && c.Space != b.Space || c.IsGenesis() && s.ID() != b.Space {
			return Bundle{}, fmt.Errorf("%w: change %d (%s) belongs to another space", ErrBadChange, i, s.ID())
		}
		pubs[i], ids[i], sigs[i] = c.Author, s.ID(), s.Sig
	}
	for i, ok := range core.VerifyBatch(pubs, ids, sigs) {
		if !ok {
			return Bundle{}, fmt.Errorf("%w: change %d (%s): %w", ErrBadChange, i, ids[i], core.ErrBadSignature)
		}
	}
	return b, nil
}

// WriteFile writes the bundle atomically (temporary file, fsync, rename).
func WriteFile(path string, b Bundle) error {
	data, err := b.Encode()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bundle-*")
	if err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

// ReadFile reads and verifies a bundle file.
func ReadFile(path string) (Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return Bundle{}, fmt.Errorf("read bundle: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return Bundle{}, fmt.Errorf("read bundle %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return Bundle{}, fmt.Errorf("read bundle %s: larger than %d bytes", path, MaxSize)
	}
	b, err := Decode(data)
	if err != nil {
		return Bundle{}, fmt.Errorf("read bundle %s: %w", path, err)
	}
	return b, nil
}
