package mesh

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"

	"github.com/tributary-sync/tributary/core"
)

// Item is one stored change as reconciliation sees it. Items are ordered
// by height, then ID; a change's parents are always lower, so fetching
// missing items in this order applies them without orphans.
type Item struct {
	_      struct{} `cbor:",toarray"`
	Height uint64
	ID     core.ID
}

// Compare orders items.
func (a Item) Compare(b Item) int {
	if c := cmp.Compare(a.Height, b.Height); c != 0 {
		return c
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// MaxItem bounds every item from above.
var MaxItem = Item{Height: math.MaxUint64, ID: core.ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}

// Range modes.
const (
	ModeFingerprint uint8 = 1 // Fingerprint and Count summarize the sender's items in the range
	ModeIDs         uint8 = 2 // IDs lists the sender's items; the receiver answers with its own
	ModeFinal       uint8 = 3 // IDs lists the sender's items; nothing more to say
)

// Range is one piece of a reconciliation message: the half-open interval
// [Lower, Upper) of the item order, and what the sender has in it.
type Range struct {
	_           struct{} `cbor:",toarray"`
	Lower       Item
	Upper       Item
	Mode        uint8
	Fingerprint [16]byte
	Count       uint64
	IDs         []Item
}

// Fingerprint of a set of items: SHA-256 of the 256-bit sum of their IDs
// (mod 2^256) and their count, truncated to 16 bytes. Sums make the
// fingerprint of a range independent of how it was split.
func Fingerprint(items []Item) [16]byte {
	var acc [4]uint64
	for i := range items {
		id := &items[i].ID
		var carry uint64
		for lane := 3; lane >= 0; lane-- {
			v := binary.BigEndian.Uint64(id[lane*8:])
			acc[lane], carry = bits.Add64(acc[lane], v, carry)
		}
	}
	var buf [40]byte
	for lane := range acc {
		binary.BigEndian.PutUint64(buf[lane*8:], acc[lane])
	}
	binary.BigEndian.PutUint64(buf[32:], uint64(len(items)))
	sum := sha256.Sum256(buf[:])
	var fp [16]byte
	copy(fp[:], sum[:16])
	return fp
}

// Reconciler tunes range-based set reconciliation.
type Reconciler struct {
	// Branch is how many sub-ranges a differing range splits into.
	Branch int
	// ListBelow: a side with at most this many items in a differing range
	// lists them instead of splitting.
	ListBelow int
}

// DefaultReconciler splits 16 ways and lists ranges of up to 64 items, so
// n differing items spread over the set take about log16(n/64)+2 round
// trips, and a peer lacking only the newest changes finds them in 2.
var DefaultReconciler = Reconciler{Branch: 16, ListBelow: 64}

// span returns the items of sorted in [lo, hi).
func span(sorted []Item, lo, hi Item) []Item {
	i, _ := slices.BinarySearchFunc(sorted, lo, Item.Compare)
	j, _ := slices.BinarySearchFunc(sorted, hi, Item.Compare)
	if j < i {
		return nil
	}
	return sorted[i:j]
}

// Initiate opens a reconciliation: fingerprints of a ladder of ranges
// from the newest items down, the top one holding the newest ListBelow
// items, each below it Branch times as many, the last one the rest. A
// peer that missed only recent changes (the usual catch-up: heights grow
// with time) finds them in a top range of about as many items as it
// lacks, whatever the size of the set, instead of descending from one
// fingerprint of everything a level per round trip. A set of at most
// ListBelow items is one range. Two sets that agree cost one round trip
// of about log_Branch(n/ListBelow)+1 ranges.
func (rc Reconciler) Initiate(mine []Item) []Range {
	var cuts []int // indices into mine where a range starts, newest first
	if rc.Branch >= 2 && rc.ListBelow >= 1 {
		for k := rc.ListBelow; k < len(mine); k *= rc.Branch {
			cuts = append(cuts, len(mine)-k)
		}
	}
	out := make([]Range, 0, len(cuts)+1)
	lo, a := Item{}, 0
	for i := len(cuts) - 1; i >= -1; i-- {
		hi, b := MaxItem, len(mine)
		if i >= 0 {
			hi, b = mine[cuts[i]], cuts[i]
		}
		out = append(out, Range{Lower: lo, Upper: hi, Mode: ModeFingerprint, Fingerprint: Fingerprint(mine[a:b]), Count: uint64(b - a)})
		lo, a = hi, b
	}
	return out
}

// describe answers a differing range [lo, hi) with mine in it: the list
// when small, else Branch fingerprinted sub-ranges.
func (rc Reconciler) describe(in []Item, lo, hi Item, listMode uint8) []Range {
	if len(in) <= rc.ListBelow {
		return []Range{{Lower: lo, Upper: hi, Mode: listMode, Count: uint64(len(in)), IDs: slices.Clone(in)}}
	}
	parts := min(rc.Branch, len(in))
	out := make([]Range, 0, parts)
	cur := lo
	for p := range parts {
		a, b := p*len(in)/parts, (p+1)*len(in)/parts
		upper := hi
		if p < parts-1 {
			upper = in[b]
		}
		out = append(out, Range{Lower: cur, Upper: upper, Mode: ModeFingerprint, Fingerprint: Fingerprint(in[a:b]), Count: uint64(b - a)})
		cur = upper
	}
	return out
}

// Respond is the serving side: given the initiator's ranges, it returns
// its answer. It keeps no state between rounds.
func (rc Reconciler) Respond(mine []Item, msg []Range) []Range {
	var out []Range
	for _, r := range msg {
		in := span(mine, r.Lower, r.Upper)
		switch r.Mode {
		case ModeFingerprint:
			if uint64(len(in)) == r.Count && Fingerprint(in) == r.Fingerprint {
				continue
			}
			out = append(out, rc.describe(in, r.Lower, r.Upper, ModeIDs)...)
		case ModeIDs:
			out = append(out, Range{Lower: r.Lower, Upper: r.Upper, Mode: ModeFinal, Count: uint64(len(in)), IDs: slices.Clone(in)})
		}
	}
	return out
}

// Step is the initiating side: it takes the responder's answer and returns
// the next message (empty when done), the items it has that the responder
// lacks (have) and the items the responder has that it lacks (need).
func (rc Reconciler) Step(mine []Item, msg []Range) (next []Range, have, need []Item) {
	for _, r := range msg {
		in := span(mine, r.Lower, r.Upper)
		switch r.Mode {
		case ModeFingerprint:
			if uint64(len(in)) == r.Count && Fingerprint(in) == r.Fingerprint {
				continue
			}
			next = append(next, rc.describe(in, r.Lower, r.Upper, ModeIDs)...)
		case ModeIDs, ModeFinal:
			h, n := diff(in, r.IDs)
			have, need = append(have, h...), append(need, n...)
		}
	}
	return next, have, need
}

// diff returns what mine has that theirs lacks, and the reverse. theirs
// need not be sorted or deduplicated (it came from a peer).
func diff(mine, theirs []Item) (have, need []Item) {
	t := slices.Clone(theirs)
	slices.SortFunc(t, Item.Compare)
	t = slices.Compact(t)
	i, j := 0, 0
	for i < len(mine) || j < len(t) {
		switch {
		case j == len(t) || i < len(mine) && mine[i].Compare(t[j]) < 0:
			have = append(have, mine[i])
			i++
		case i == len(mine) || mine[i].Compare(t[j]) > 0:
			need = append(need, t[j])
			j++
		default:
			i++
			j++
		}
	}
	return have, need
}
