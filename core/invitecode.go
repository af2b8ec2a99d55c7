package core

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Errors of invite codes, as `join` reports them.
var (
	ErrCodeDamaged = errors.New("invite code is damaged")
	ErrCodeForged  = errors.New("invite code is forged")
	ErrCodeExpired = errors.New("invite code has expired")
	ErrCodeOld     = errors.New("invite code is of an older format")
)

// InviteCodePrefix starts every invite code of the current format.
const InviteCodePrefix = "trib2"

// InviteCode is what a code carries: the space, where to find its peers,
// the invite's throwaway key, and the signed change that made the invite,
// so a joiner can check the code and sign its one use offline.
type InviteCode struct {
	_         struct{} `cbor:",toarray"`
	Space     ID
	Name      string
	Seed      []byte   // the invite key's seed
	Invite    []byte   // envelope of the change holding the invite
	Bootstrap []string // peer addresses; may be empty
}

// Encode renders the code as text.
func (c InviteCode) Encode() (string, error) {
	b, err := Marshal(c)
	if err != nil {
		return "", err
	}
	return InviteCodePrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeInviteCode parses a code and checks everything that can be
// checked offline: it decodes, its invite change is signed by its author
// and belongs to the code's space, and that change makes an invite for
// the code's key. Whether the author is an admin, and whether the invite
// is still unused, only the space's history can tell.
func DecodeInviteCode(text string) (InviteCode, InviteTerms, error) {
	var c InviteCode
	text = strings.TrimSpace(text)
	switch {
	case strings.HasPrefix(text, "trib1"):
		return c, InviteTerms{}, fmt.Errorf("%w: ask an admin for a new code", ErrCodeOld)
	case !strings.HasPrefix(text, InviteCodePrefix):
		return c, InviteTerms{}, fmt.Errorf("%w: it does not start with %q", ErrCodeDamaged, InviteCodePrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(text[len(InviteCodePrefix):])
	if err != nil {
		return c, InviteTerms{}, fmt.Errorf("%w: %v", ErrCodeDamaged, err)
	}
	if err := Unmarshal(b, &c); err != nil {
		return c, InviteTerms{}, fmt.Errorf("%w: %v", ErrCodeDamaged, err)
	}
	key, err := PrivateKeyFromSeed(c.Seed)
	if err != nil || c.Space.IsZero() {
		return c, InviteTerms{}, fmt.Errorf("%w: incomplete", ErrCodeDamaged)
	}
	inv, id, _, err := Open(c.Invite)
	if err != nil {
		return c, InviteTerms{}, fmt.Errorf("%w: its invite change does not verify: %v", ErrCodeForged, err)
	}
	if inv.Space != c.Space {
		return c, InviteTerms{}, fmt.Errorf("%w: its invite change belongs to space %s, the code names %s", ErrCodeForged, inv.Space, c.Space)
	}
	terms, ok := InviteIn(MemberView(inv, id), key.Public())
	if !ok {
		return c, InviteTerms{}, fmt.Errorf("%w: change %s makes no invite for the code's key", ErrCodeForged, id.Short())
	}
	return c, terms, nil
}

// InviteUseChange builds and signs the one change an invite key may sign:
// the grant of the invite's role to member, directly on top of the
// invite, dated nowMillis (kept above the invite's clock). It fails with
// ErrCodeExpired past the invite's expiry.
func (c InviteCode) InviteUseChange(terms InviteTerms, member PublicKey, nowMillis uint64) (Signed, ID, error) {
	if nowMillis > terms.Expires {
		return Signed{}, ID{}, fmt.Errorf("%w: it expired at %d ms, it is now %d ms", ErrCodeExpired, terms.Expires, nowMillis)
	}
	key, err := PrivateKeyFromSeed(c.Seed)
	if err != nil {
		return Signed{}, ID{}, fmt.Errorf("%w: %v", ErrCodeDamaged, err)
	}
	inv, err := DecodeSigned(c.Invite)
	if err != nil {
		return Signed{}, ID{}, fmt.Errorf("%w: %v", ErrCodeDamaged, err)
	}
	ic, err := inv.Decode()
	if err != nil {
		return Signed{}, ID{}, fmt.Errorf("%w: %v", ErrCodeDamaged, err)
	}
	clock := HLC{Wall: nowMillis}
	if clock.Compare(ic.HLC) <= 0 {
		clock = HLC{Wall: ic.HLC.Wall, Logical: ic.HLC.Logical + 1}
	}
	use := &Change{
		Version: ChangeVersion, Space: c.Space, Author: key.Public(), Seq: 1,
		Parents: []ID{terms.Change}, Height: ic.Height + 1, HLC: clock,
		Ops: []Op{{Kind: OpGrant, Member: member, Role: terms.Role}},
	}
	s, id, err := Sign(use, key)
	if err != nil {
		return Signed{}, ID{}, err
	}
	if err := CheckInviteUse(terms, MemberView(use, id)); err != nil {
		return Signed{}, ID{}, err
	}
	return s, id, nil
}
