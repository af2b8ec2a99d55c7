package bundle

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tributary-sync/tributary/core"
)

// Reader reads the frames of a bundle of either version in bounded memory:
// it holds one envelope at a time. It checks the format (framing, limits,
// count, checksum) but not the changes: Verify does that on top of it.
type Reader struct {
	sum     *sumReader
	br      *bufio.Reader
	off     int64 // bytes consumed by the parser
	version int
	header  Header
	stage   stage
	left    uint64 // version 1: changes still to come
	n       int64  // envelopes returned
	err     error  // sticky
}

// NewReader reads the magic, version and header of the bundle in r. It
// buffers r itself.
func NewReader(r io.Reader) (*Reader, error) {
	s := newSumReader(r)
	rd := &Reader{sum: s, br: bufio.NewReaderSize(s, 64<<10)}
	if err := rd.readStart(); err != nil {
		return nil, err
	}
	rd.stage = inChanges
	return rd, nil
}

// Version is the format version of the bundle (Version1 or Version2).
func (rd *Reader) Version() int { return rd.version }

// Header is the bundle's header.
func (rd *Reader) Header() Header { return rd.header }

// Count is the number of envelopes returned so far.
func (rd *Reader) Count() int64 { return rd.n }

// Offset is the number of bytes of the bundle consumed so far.
func (rd *Reader) Offset() int64 { return rd.off }

// Next returns the next envelope, as stored: unverified, and a fresh
// slice the caller may keep. After the last one it checks the trailer
// (count, checksum, end of file) and returns io.EOF. Any other error names
// the problem and is returned again by every later call.
func (rd *Reader) Next() ([]byte, error) {
	if rd.err != nil {
		return nil, rd.err
	}
	env, err := rd.next()
	if err != nil {
		if err != io.EOF {
			err = rd.classify(err)
		}
		rd.err = err
		return nil, err
	}
	rd.n++
	return env, nil
}

// stage is the part of the file the parser is in.
type stage int

const (
	inHeader stage = iota
	inChanges
	inTrailer
)

// problem is a format violation found by the parser, at an offset.
type problem struct {
	off int64
	msg string
}

func (p *problem) Error() string { return fmt.Sprintf("%s (at byte %d)", p.msg, p.off) }

func (rd *Reader) fail(format string, args ...any) error {
	return &problem{off: rd.off, msg: fmt.Sprintf(format, args...)}
}

// classify turns a parser error into the error the caller sees. Running
// out of bytes is truncation; a read error of the file is returned as is;
// any other problem is checked against the checksum, so that an altered
// file is reported as altered rather than by its first symptom.
func (rd *Reader) classify(err error) error {
	var p *problem
	switch {
	case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotBundle):
		return err
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated or altered: the file ends at byte %d, %s", ErrCorrupt, rd.off, rd.where())
	case errors.As(err, &p):
		return rd.explain(p, fmt.Errorf("%w: %v", ErrCorrupt, p))
	default:
		return fmt.Errorf("read bundle: %w", err)
	}
}

// where names the part of the file the parser is in.
func (rd *Reader) where() string {
	switch rd.stage {
	case inHeader:
		return "inside the header"
	case inTrailer:
		return "inside the trailer"
	default:
		return fmt.Sprintf("inside change %d", rd.n)
	}
}

// explain reads the rest of the file to see whether its checksum holds.
// If not, the file was damaged and that is the error, naming symptom as
// the first problem seen; if it does, err stands (the file was built that
// way).
func (rd *Reader) explain(symptom, err error) error {
	intact, rerr := rd.sum.drain()
	if rerr != nil {
		return fmt.Errorf("read bundle: %w", rerr)
	}
	if !intact {
		return fmt.Errorf("%w: checksum mismatch (truncated or altered file); first problem: %v", ErrCorrupt, symptom)
	}
	return err
}

// readFull reads exactly len(b) bytes; running out, even before the
// first, is io.ErrUnexpectedEOF (the parser reads only what must follow).
func (rd *Reader) readFull(b []byte) error {
	n, err := io.ReadFull(rd.br, b)
	rd.off += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (rd *Reader) readStart() error {
	m := make([]byte, len(magicPrefix)+1)
	if err := rd.readFull(m); err != nil || string(m[:len(magicPrefix)]) != magicPrefix {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("read bundle: %w", err)
		}
		return ErrNotBundle
	}
	switch v := int(m[len(magicPrefix)]); v {
	case Version1:
		rd.version = v
		return rd.wrapStart(rd.readStartV1())
	case Version2:
		rd.version = v
		return rd.wrapStart(rd.readStartV2())
	default:
		return fmt.Errorf("%w: format version %d, this build reads versions %d and %d", ErrNotBundle, v, Version1, Version2)
	}
}

func (rd *Reader) wrapStart(err error) error {
	if err == nil {
		return nil
	}
	return rd.classify(err)
}

func (rd *Reader) readStartV2() error {
	var lb [4]byte
	if err := rd.readFull(lb[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 || n > MaxHeaderBytes {
		return rd.fail("header of %d bytes, limit %d", n, MaxHeaderBytes)
	}
	b := make([]byte, n)
	if err := rd.readFull(b); err != nil {
		return err
	}
	if err := core.Unmarshal(b, &rd.header); err != nil {
		return rd.fail("header: %v", err)
	}
	return nil
}

func (rd *Reader) next() ([]byte, error) {
	if rd.version == Version1 {
		return rd.nextV1()
	}
	var lb [4]byte
	if err := rd.readFull(lb[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 {
		return nil, rd.readTrailerV2()
	}
	if n > MaxEnvelopeBytes {
		return nil, rd.fail("change %d is %d bytes, limit %d", rd.n, n, MaxEnvelopeBytes)
	}
	env := make([]byte, n)
	if err := rd.readFull(env); err != nil {
		return nil, err
	}
	return env, nil
}

// readTrailerV2 reads the count and checksum after the end mark and
// returns io.EOF when they hold and the file ends there.
func (rd *Reader) readTrailerV2() error {
	rd.stage = inTrailer
	var cb [8]byte
	if err := rd.readFull(cb[:]); err != nil {
		return err
	}
	var sum [sha256.Size]byte
	if err := rd.readFull(sum[:]); err != nil {
		return err
	}
	if err := rd.expectEnd(); err != nil {
		return err
	}
	if got := binary.BigEndian.Uint64(cb[:]); got != uint64(rd.n) {
		return rd.fail("trailer counts %d changes, the file holds %d", got, rd.n)
	}
	return io.EOF
}

// expectEnd checks that the file ends where the parser is and that its
// checksum holds.
func (rd *Reader) expectEnd() error {
	if _, err := rd.br.ReadByte(); err == nil {
		return rd.fail("data after the end of the bundle")
	} else if err != io.EOF {
		return err
	}
	if !rd.sum.intact() {
		return fmt.Errorf("%w: checksum mismatch (truncated or altered file)", ErrCorrupt)
	}
	return nil
}

// Version 1: magic, one canonical CBOR array [space, since, changes],
// SHA-256. The outer structure is parsed by hand so that changes stream.

const (
	cborBytes = 2
	cborArray = 4
	maxDepth  = 8
)

// readHead reads one CBOR item head, appending its bytes to raw.
func (rd *Reader) readHead(raw []byte) (major byte, arg uint64, _ []byte, err error) {
	b, err := rd.br.ReadByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return 0, 0, raw, err
	}
	rd.off++
	raw = append(raw, b)
	major, info := b>>5, b&31
	switch {
	case info < 24:
		return major, uint64(info), raw, nil
	case info <= 27:
		n := 1 << (info - 24)
		var ab [8]byte
		if err := rd.readFull(ab[:n]); err != nil {
			return 0, 0, raw, err
		}
		raw = append(raw, ab[:n]...)
		for _, x := range ab[:n] {
			arg = arg<<8 | uint64(x)
		}
		return major, arg, raw, nil
	default:
		return 0, 0, raw, rd.fail("indefinite or reserved CBOR item (initial byte %#x)", b)
	}
}

// readItem reads one whole CBOR item into raw, within MaxHeaderBytes.
func (rd *Reader) readItem(raw []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return raw, rd.fail("header nested too deep")
	}
	major, arg, raw, err := rd.readHead(raw)
	if err != nil {
		return raw, err
	}
	if uint64(len(raw))+arg > MaxHeaderBytes {
		return raw, rd.fail("header larger than %d bytes", MaxHeaderBytes)
	}
	switch major {
	case 2, 3: // byte and text strings
		start := len(raw)
		raw = append(raw, make([]byte, arg)...)
		return raw, rd.readFull(raw[start:])
	case 4, 5: // arrays and maps
		items := arg
		if major == 5 {
			items *= 2
		}
		for range items {
			if raw, err = rd.readItem(raw, depth+1); err != nil {
				return raw, err
			}
		}
		return raw, nil
	case 6: // tag: one item follows
		return rd.readItem(raw, depth+1)
	default: // integers and simple values: the head is all
		return raw, nil
	}
}

func (rd *Reader) readStartV1() error {
	major, arg, _, err := rd.readHead(nil)
	if err != nil {
		return err
	}
	if major != cborArray || arg != 3 {
		return rd.fail("version 1 body is not an array of 3")
	}
	raw, err := rd.readItem(nil, 1)
	if err != nil {
		return err
	}
	if err := core.Unmarshal(raw, &rd.header.Space); err != nil {
		return rd.fail("space: %v", err)
	}
	if raw, err = rd.readItem(nil, 1); err != nil {
		return err
	}
	if err := core.Unmarshal(raw, &rd.header.Since); err != nil {
		return rd.fail("since: %v", err)
	}
	if major, arg, _, err = rd.readHead(nil); err != nil {
		return err
	}
	if major != cborArray {
		return rd.fail("version 1 changes are not an array")
	}
	rd.left = arg
	return nil
}

func (rd *Reader) nextV1() ([]byte, error) {
	if rd.left == 0 {
		rd.stage = inTrailer
		var sum [sha256.Size]byte
		if err := rd.readFull(sum[:]); err != nil {
			return nil, err
		}
		if err := rd.expectEnd(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	major, arg, _, err := rd.readHead(nil)
	if err != nil {
		return nil, err
	}
	if major != cborBytes {
		return nil, rd.fail("change %d is not a byte string", rd.n)
	}
	if arg == 0 || arg > MaxEnvelopeBytes {
		return nil, rd.fail("change %d is %d bytes, limit %d", rd.n, arg, MaxEnvelopeBytes)
	}
	env := make([]byte, arg)
	if err := rd.readFull(env); err != nil {
		return nil, err
	}
	rd.left--
	return env, nil
}
