package bundle

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"

	"github.com/tributary-sync/tributary/core"
)

// Errors of bundle files. Every error returned by this package wraps one of
// them (or an I/O error of the underlying file) and names what was wrong.
var (
	ErrNotBundle = errors.New("not a tributary bundle")
	ErrCorrupt   = errors.New("bundle is corrupt")
	ErrBadChange = errors.New("bundle holds a change that fails verification")
	// ErrChanged: the bundle read for applying differs from the one verified
	// (the file was modified between the two passes). Nothing of the
	// differing part is applied.
	ErrChanged = errors.New("bundle changed after it was verified")
	// ErrOtherSpace: a bundle imported into a replica of another space.
	ErrOtherSpace = errors.New("bundle is for another space")
	// ErrTooLarge: a spooled stream passed the size the caller allows.
	ErrTooLarge = errors.New("bundle too large")
	// ErrRefused: a verified bundle held changes the replica refused (see
	// Result.Err).
	ErrRefused = errors.New("changes refused by the replica")
)

// Format versions. Version 2 is written; both are read.
const (
	Version1 = 1 // one CBOR document {space, since, changes}; read only
	Version2 = 2 // framed stream: header, length-prefixed envelopes, trailer
	Version  = Version2
)

// magicPrefix starts every bundle file; the byte after it is the version.
const magicPrefix = "TRIBUTARY-BUNDLE"

// Limits of the format. A reader holds at most one frame at a time, so
// they bound its memory.
const (
	// MaxEnvelopeBytes bounds one change's envelope: core.MaxChangeBytes of
	// body plus the envelope's own CBOR (the bound core.DecodeSigned
	// enforces).
	MaxEnvelopeBytes = core.MaxChangeBytes + 256
	// MaxHeaderBytes bounds the encoded header (space and since heads:
	// about 30000 heads).
	MaxHeaderBytes = 1 << 20
	// MaxSize is the usual bound on a bundle taken from a stream (Spool,
	// OpenReader): it costs that much temporary disk, not memory. Files
	// read in place have no bound.
	MaxSize = 1 << 30
)

// Header is what a bundle says before its changes.
type Header struct {
	_     struct{} `cbor:",toarray"`
	Space core.ID
	Since []core.ID // heads the exporter assumed the importer has; empty = everything
}

func (h Header) equal(o Header) bool {
	if h.Space != o.Space || len(h.Since) != len(o.Since) {
		return false
	}
	for i := range h.Since {
		if h.Since[i] != o.Since[i] {
			return false
		}
	}
	return true
}

// sumReader passes a stream through while hashing all of it except the
// last sha256.Size bytes seen, which it keeps aside. At the end of a
// well-formed bundle (either version) those are the checksum and the hash
// is over everything before them, so intact answers "is this file whole"
// without the parser's help, even after the parser gave up mid-file.
type sumReader struct {
	r    io.Reader
	h    hash.Hash
	tail [sha256.Size]byte
	nt   int
	n    int64 // bytes read from r
	eof  bool
}

func newSumReader(r io.Reader) *sumReader { return &sumReader{r: r, h: sha256.New()} }

func (s *sumReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.push(p[:n])
	if err == io.EOF {
		s.eof = true
	}
	return n, err
}

func (s *sumReader) push(b []byte) {
	s.n += int64(len(b))
	if s.nt+len(b) <= sha256.Size {
		s.nt += copy(s.tail[s.nt:], b)
		return
	}
	// Hash the oldest bytes so that exactly sha256.Size stay aside.
	over := s.nt + len(b) - sha256.Size
	fromTail := min(over, s.nt)
	s.h.Write(s.tail[:fromTail])
	s.h.Write(b[:over-fromTail])
	kept := copy(s.tail[:], s.tail[fromTail:s.nt])
	copy(s.tail[kept:], b[over-fromTail:])
	s.nt = sha256.Size
}

// drain reads the rest of the stream (hashing it) and reports whether
// the whole stream ends in a matching checksum. It returns a read error
// of the underlying stream, if any.
func (s *sumReader) drain() (intact bool, err error) {
	if !s.eof {
		if _, err := io.Copy(io.Discard, s); err != nil {
			return false, err
		}
	}
	return s.intact(), nil
}

// intact reports whether the bytes read so far end in the SHA-256 of the
// bytes before them.
func (s *sumReader) intact() bool {
	if s.nt < sha256.Size {
		return false
	}
	var sum [sha256.Size]byte
	return [sha256.Size]byte(s.h.Sum(sum[:0])) == s.tail
}
