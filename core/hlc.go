package core

import (
	"fmt"
	"strconv"
	"strings"
)

// HLC is a hybrid logical clock: wall time in milliseconds since the Unix
// epoch plus a logical counter that orders events within one millisecond.
// Every change's HLC is greater than each of its parents', so LWW order
// agrees with causality.
type HLC struct {
	_       struct{} `cbor:",toarray"`
	Wall    uint64
	Logical uint32
}

// Compare orders clocks: wall time first, then the logical counter.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Wall < o.Wall:
		return -1
	case h.Wall > o.Wall:
		return 1
	case h.Logical < o.Logical:
		return -1
	case h.Logical > o.Logical:
		return 1
	}
	return 0
}

// String renders "wall.logical".
func (h HLC) String() string { return fmt.Sprintf("%d.%d", h.Wall, h.Logical) }

// ParseHLC parses the String form.
func ParseHLC(s string) (HLC, error) {
	w, l, ok := strings.Cut(s, ".")
	wall, err1 := strconv.ParseUint(w, 10, 64)
	logical, err2 := strconv.ParseUint(l, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return HLC{}, fmt.Errorf("parse clock %q: want WALL.LOGICAL", s)
	}
	return HLC{Wall: wall, Logical: uint32(logical)}, nil
}

// NextHLC returns the clock for a new change whose parents have the given
// maximum clock, at local time nowMillis. The wall part never runs more
// than maxAheadMillis past the parents' (the same bound Validate enforces),
// so a writer with a fast clock cannot future-date a win.
func NextHLC(parentMax HLC, nowMillis uint64, maxAheadMillis uint64) HLC {
	wall := nowMillis
	if limit := parentMax.Wall + maxAheadMillis; wall > limit {
		wall = limit
	}
	if wall <= parentMax.Wall {
		return HLC{Wall: parentMax.Wall, Logical: parentMax.Logical + 1}
	}
	return HLC{Wall: wall}
}
