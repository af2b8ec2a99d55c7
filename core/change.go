package core

import (
	"fmt"
	"slices"
)

// Limits every replica enforces on a change. They are part of validity, so
// they are constants, not configuration.
const (
	MaxParents     = 16
	MaxOps         = 4096
	MaxChangeBytes = 4 << 20
	ChangeVersion  = 1
)

// Change is the unit of signing and replication: a batch of ops by one
// author, placed in the space's Merkle DAG by its parents. One signature
// covers the whole change.
type Change struct {
	_       struct{} `cbor:",toarray"`
	Version uint8
	Space   ID        // genesis ID; zero in the genesis change itself
	Author  PublicKey // signer
	Seq     uint64    // per-author sequence, from 1
	Prev    ID        // the author's change Seq-1; zero when Seq == 1
	Parents []ID      // heads of the DAG when written; sorted, distinct
	Height  uint64    // 1 + max parent height; genesis is 1
	HLC     HLC       // greater than every parent's
	Ops     []Op
}

// Encode returns the canonical CBOR body. Its SHA-256 is the change ID.
func (c *Change) Encode() ([]byte, error) {
	b, err := Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode change: %w", err)
	}
	return b, nil
}

// Signed is a change as stored and sent: canonical body plus the author's
// signature over its ID.
type Signed struct {
	_    struct{} `cbor:",toarray"`
	Body []byte
	Sig  []byte
}

// Sign encodes c, signs it with key (whose public half must be c.Author)
// and returns the envelope and the ID.
func Sign(c *Change, key PrivateKey) (Signed, ID, error) {
	if key.Public() != c.Author {
		return Signed{}, ID{}, fmt.Errorf("sign change: key %s is not the author %s", key.Public(), c.Author)
	}
	body, err := c.Encode()
	if err != nil {
		return Signed{}, ID{}, err
	}
	if len(body) > MaxChangeBytes {
		return Signed{}, ID{}, fmt.Errorf("%w: %w: %d bytes encoded, limit %d", ErrInvalidChange, ErrTooLarge, len(body), MaxChangeBytes)
	}
	id := IDOf(body)
	return Signed{Body: body, Sig: key.SignID(id)}, id, nil
}

// Encode returns the envelope bytes.
func (s Signed) Encode() ([]byte, error) { return Marshal(s) }

// ID returns the ID of the envelope's body.
func (s Signed) ID() ID { return IDOf(s.Body) }

// DecodeSigned parses envelope bytes. It does not verify the signature.
func DecodeSigned(b []byte) (Signed, error) {
	var s Signed
	if len(b) > MaxChangeBytes+256 {
		return s, fmt.Errorf("%w: %w: envelope is %d bytes, limit %d", ErrMalformed, ErrTooLarge, len(b), MaxChangeBytes)
	}
	if err := Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return s, nil
}

// Decode parses the body and checks that it is canonical (re-encoding gives
// the same bytes), so one change has exactly one ID.
func (s Signed) Decode() (*Change, error) {
	if len(s.Body) > MaxChangeBytes {
		return nil, fmt.Errorf("%w: %w: body is %d bytes, limit %d", ErrMalformed, ErrTooLarge, len(s.Body), MaxChangeBytes)
	}
	var c Change
	if err := Unmarshal(s.Body, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	again, err := c.Encode()
	if err != nil || string(again) != string(s.Body) {
		return nil, fmt.Errorf("%w: body is not canonical CBOR", ErrMalformed)
	}
	return &c, nil
}

// Check is the part of validity that needs nothing but the envelope's
// bytes, less the signature: the body decodes (within MaxChangeBytes, all
// text valid UTF-8), is canonical, and passes CheckShape. A writer runs it
// on what it just signed and a receiver on what it was sent, so nothing
// is written locally that a peer would refuse.
func (s Signed) Check() (*Change, error) {
	c, err := s.Decode()
	if err != nil {
		return nil, err
	}
	if err := c.CheckShape(); err != nil {
		return nil, err
	}
	return c, nil
}

// Open decodes and verifies an envelope: the one call for anything received.
func Open(b []byte) (*Change, ID, Signed, error) {
	s, err := DecodeSigned(b)
	if err != nil {
		return nil, ID{}, s, err
	}
	c, err := s.Check()
	if err != nil {
		return nil, ID{}, s, err
	}
	id := s.ID()
	if !VerifyID(c.Author, id, s.Sig) {
		return nil, id, s, fmt.Errorf("change %s: %w", id, ErrBadSignature)
	}
	return c, id, s, nil
}

// IsGenesis reports whether c founds a space.
func (c *Change) IsGenesis() bool { return c.Space.IsZero() && len(c.Parents) == 0 }

// CheckShape checks the rules that need nothing but the change itself:
// version, limits, parent order, sequence/prev agreement and op shapes.
func (c *Change) CheckShape() error {
	if c.Version != ChangeVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrInvalidChange, c.Version, ChangeVersion)
	}
	if len(c.Ops) == 0 {
		return fmt.Errorf("%w: no ops", ErrInvalidChange)
	}
	if len(c.Ops) > MaxOps {
		return fmt.Errorf("%w: %d ops, limit %d", ErrInvalidChange, len(c.Ops), MaxOps)
	}
	if len(c.Parents) > MaxParents {
		return fmt.Errorf("%w: %d parents, limit %d", ErrInvalidChange, len(c.Parents), MaxParents)
	}
	for i := 1; i < len(c.Parents); i++ {
		if c.Parents[i-1].Compare(c.Parents[i]) >= 0 {
			return fmt.Errorf("%w: parents not sorted and distinct", ErrInvalidChange)
		}
	}
	if c.Seq == 0 {
		return fmt.Errorf("%w: sequence 0", ErrInvalidChange)
	}
	if (c.Seq == 1) != c.Prev.IsZero() {
		return fmt.Errorf("%w: sequence %d with prev %q", ErrInvalidChange, c.Seq, c.Prev)
	}
	genesisOps := 0
	for i := range c.Ops {
		if err := c.Ops[i].checkShape(); err != nil {
			return fmt.Errorf("%w: op %d: %v", ErrInvalidChange, i, err)
		}
		if c.Ops[i].Kind == OpGenesis {
			genesisOps++
		}
	}
	if c.Space.IsZero() || len(c.Parents) == 0 {
		if !c.Space.IsZero() || len(c.Parents) != 0 || c.Height != 1 || c.Seq != 1 || genesisOps != 1 || len(c.Ops) != 1 {
			return fmt.Errorf("%w: a genesis change has no space, no parents, height 1, sequence 1 and one genesis op", ErrInvalidChange)
		}
	} else if genesisOps != 0 {
		return fmt.Errorf("%w: genesis op outside a genesis change", ErrInvalidChange)
	}
	return nil
}

// ParentMeta is what validation needs to know of each parent.
type ParentMeta struct {
	Height uint64
	HLC    HLC
}

// CheckPlacement checks height and clock against the parents: height is
// 1 + max parent height, the clock is above every parent's and at most
// maxAheadMillis past the largest.
func (c *Change) CheckPlacement(parents []ParentMeta, maxAheadMillis uint64) error {
	if c.IsGenesis() {
		return nil
	}
	var maxH uint64
	var maxC HLC
	for _, p := range parents {
		maxH = max(maxH, p.Height)
		if p.HLC.Compare(maxC) > 0 {
			maxC = p.HLC
		}
	}
	if c.Height != maxH+1 {
		return fmt.Errorf("%w: height %d, want %d (1 + max parent height)", ErrInvalidChange, c.Height, maxH+1)
	}
	if c.HLC.Compare(maxC) <= 0 {
		return fmt.Errorf("%w: clock %s not after parent clock %s", ErrInvalidChange, c.HLC, maxC)
	}
	if c.HLC.Wall > maxC.Wall+maxAheadMillis {
		return fmt.Errorf("%w: clock %s runs %d ms ahead of its parents, limit %d ms", ErrInvalidChange, c.HLC, c.HLC.Wall-maxC.Wall, maxAheadMillis)
	}
	return nil
}

// SortIDs sorts ids bytewise in place and drops duplicates.
func SortIDs(ids []ID) []ID {
	slices.SortFunc(ids, func(a, b ID) int { return a.Compare(b) })
	return slices.Compact(ids)
}
