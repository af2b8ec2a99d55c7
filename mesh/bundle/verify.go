package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/tributary-sync/tributary/core"
)

// Batching. Verification checks signatures sigBatch at a time; applying
// hands the callback runs of at most BatchChanges changes and BatchBytes
// bytes (at least one change), so memory is bounded by one batch.
const (
	sigBatch     = 1024
	BatchChanges = 1000
	BatchBytes   = 4 << 20
)

// Verified is a bundle that passed Verify: its header and size, and a
// fingerprint of each batch Apply will hand out, so that the second pass
// applies exactly what the first one verified. The fingerprints take 32
// bytes per batch (per BatchChanges changes or BatchBytes bytes, whichever
// comes first): 4 KiB for a 1 GiB bundle of 64 KiB changes.
type Verified struct {
	Header  Header
	Version int
	Changes int64
	Bytes   int64
	batches [][sha256.Size]byte
}

// batcher cuts the envelope stream into the batches of Apply, the same
// way in both passes, and fingerprints each.
type batcher struct {
	envs  [][]byte // kept only when applying
	keep  bool
	first int64 // number of the batch's first change
	n     int
	bytes int
	h     hash.Hash
}

func newBatcher(keep bool) *batcher { return &batcher{keep: keep, h: sha256.New()} }

// fits reports whether env may join the open batch.
func (b *batcher) fits(env []byte) bool {
	return b.n == 0 || b.n < BatchChanges && b.bytes+len(env) <= BatchBytes
}

func (b *batcher) add(env []byte) {
	var lb [4]byte
	binary.BigEndian.PutUint32(lb[:], uint32(len(env)))
	b.h.Write(lb[:])
	b.h.Write(env)
	b.n++
	b.bytes += len(env)
	if b.keep {
		b.envs = append(b.envs, env)
	}
}

// cut closes the open batch, returning its fingerprint and envelopes.
func (b *batcher) cut() ([sha256.Size]byte, [][]byte) {
	var sum [sha256.Size]byte
	b.h.Sum(sum[:0])
	envs := b.envs
	b.h.Reset()
	b.first += int64(b.n)
	b.envs, b.n, b.bytes = nil, 0, 0
	return sum, envs
}

// sigCheck gathers signatures and verifies them sigBatch at a time.
type sigCheck struct {
	pubs  []core.PublicKey
	ids   []core.ID
	sigs  [][]byte
	first int64 // change number of pubs[0]
}

func (s *sigCheck) add(n int64, pub core.PublicKey, id core.ID, sig []byte) error {
	if len(s.ids) == 0 {
		s.first = n
	}
	s.pubs = append(s.pubs, pub)
	s.ids = append(s.ids, id)
	s.sigs = append(s.sigs, bytes.Clone(sig))
	if len(s.ids) >= sigBatch {
		return s.flush()
	}
	return nil
}

func (s *sigCheck) flush() error {
	ok := core.VerifyBatch(s.pubs, s.ids, s.sigs)
	for i := range ok {
		if !ok[i] {
			return fmt.Errorf("%w: change %d (%s): %w", ErrBadChange, s.first+int64(i), s.ids[i], core.ErrBadSignature)
		}
	}
	s.pubs, s.ids, s.sigs = s.pubs[:0], s.ids[:0], s.sigs[:0]
	return nil
}

// Verify reads a whole bundle from r, in bounded memory, and checks
// everything an importer relies on before anything is applied: the format
// and checksum, and that every change decodes, is canonical, passes
// core's shape rules, belongs to the bundle's space and carries a valid
// signature. The error names the first problem: ErrNotBundle, ErrCorrupt
// (truncated or altered file) or ErrBadChange (an intact file holding a
// bad change).
func Verify(ctx context.Context, r io.Reader) (*Verified, error) {
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	v := &Verified{Header: rd.Header(), Version: rd.Version()}
	b := newBatcher(false)
	var sc sigCheck
	for {
		env, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		n := rd.Count() - 1
		if n%sigBatch == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		id, s, c, err := checkChange(v.Header.Space, n, env)
		if err == nil {
			err = sc.add(n, c.Author, id, s.Sig)
		}
		if err != nil {
			return nil, rd.explain(err, err)
		}
		if !b.fits(env) {
			sum, _ := b.cut()
			v.batches = append(v.batches, sum)
		}
		b.add(env)
	}
	if err := sc.flush(); err != nil { // the checksum held: the file is as built
		return nil, err
	}
	if b.n > 0 {
		sum, _ := b.cut()
		v.batches = append(v.batches, sum)
	}
	v.Changes, v.Bytes = rd.Count(), rd.Offset()
	return v, nil
}

// checkChange is everything but the signature check of change n.
func checkChange(space core.ID, n int64, env []byte) (core.ID, core.Signed, *core.Change, error) {
	s, err := core.DecodeSigned(env)
	if err != nil {
		return core.ID{}, s, nil, fmt.Errorf("%w: change %d: %w", ErrBadChange, n, err)
	}
	id := s.ID()
	c, err := s.Check()
	if err != nil {
		return id, s, nil, fmt.Errorf("%w: change %d (%s): %w", ErrBadChange, n, id, err)
	}
	if !c.IsGenesis() && c.Space != space || c.IsGenesis() && id != space {
		return id, s, nil, fmt.Errorf("%w: change %d (%s) belongs to another space than the bundle's %s", ErrBadChange, n, id, space)
	}
	return id, s, c, nil
}

// Apply reads the verified bundle again from r (from its start) and hands
// fn its changes in order, in batches of at most BatchChanges changes and
// BatchBytes bytes. Each batch is compared with its fingerprint from
// Verify before fn sees it; if the bundle changed in between, Apply stops
// with ErrChanged and nothing of the changed part reaches fn. fn's error
// stops Apply and is returned.
func (v *Verified) Apply(ctx context.Context, r io.Reader, fn func(ctx context.Context, batch [][]byte) error) error {
	rd, err := NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: reading it again: %v", ErrChanged, err)
	}
	if rd.Version() != v.Version || !rd.Header().equal(v.Header) {
		return fmt.Errorf("%w: its header differs", ErrChanged)
	}
	b := newBatcher(true)
	done := 0
	deliver := func() error {
		first := b.first
		sum, envs := b.cut()
		if done >= len(v.batches) || sum != v.batches[done] {
			return fmt.Errorf("%w: batch %d (from change %d) differs", ErrChanged, done, first)
		}
		done++
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(ctx, envs)
	}
	for {
		env, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrChanged, err)
		}
		if !b.fits(env) {
			if err := deliver(); err != nil {
				return err
			}
		}
		b.add(env)
	}
	if b.n > 0 {
		if err := deliver(); err != nil {
			return err
		}
	}
	if done != len(v.batches) {
		return fmt.Errorf("%w: %d batches, %d verified", ErrChanged, done, len(v.batches))
	}
	return nil
}
