package core

import (
	"encoding/binary"
	"slices"
	"strings"
)

// Hand-written canonical CBOR for what the write path encodes for every
// document (the Effect and the values inside it; the DocState's compact
// encoding in statecodec.go is built from the same pieces). They
// produce exactly the bytes encMode.Marshal produces (RFC 8949 core
// deterministic encoding with Tributary's options); cborappend_test.go
// checks that byte for byte on seeded random states. Anything they do not
// know (floats, which take the shortest exact width, and any other type)
// goes through encMode, so the rules stay in one place.

// CBOR major types, shifted into the initial byte.
const (
	cborUint  = 0 << 5
	cborNeg   = 1 << 5
	cborBytes = 2 << 5
	cborText  = 3 << 5
	cborArray = 4 << 5
	cborMap   = 5 << 5

	cborFalse = 0xf4
	cborTrue  = 0xf5
	cborNull  = 0xf6
)

// appendHead appends an initial byte of major type mt with argument n in
// its shortest form.
func appendHead(b []byte, mt byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, mt|byte(n))
	case n <= 0xff:
		return append(b, mt|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, mt|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, mt|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, mt|27), n)
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, cborText, uint64(len(s))), s...)
}

func appendBytes(b []byte, p []byte) []byte {
	return append(appendHead(b, cborBytes, uint64(len(p))), p...)
}

func appendInt(b []byte, n int64) []byte {
	if n >= 0 {
		return appendHead(b, cborUint, uint64(n))
	}
	return appendHead(b, cborNeg, uint64(-(n + 1)))
}

// appendValue appends a canonical value (see codec.go).
func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, cborNull), nil
	case string:
		return appendText(b, v), nil
	case int64:
		return appendInt(b, v), nil
	case int:
		return appendInt(b, int64(v)), nil
	case bool:
		if v {
			return append(b, cborTrue), nil
		}
		return append(b, cborFalse), nil
	case []byte:
		return appendBytes(b, v), nil
	case []any:
		b = appendHead(b, cborArray, uint64(len(v)))
		var err error
		for _, e := range v {
			if b, err = appendValue(b, e); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]any:
		return appendMap(b, v, appendValue)
	}
	enc, err := encMode.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, enc...), nil
}

// appendMap appends a map with text keys in core deterministic order:
// the keys' encodings compared bytewise, which for text is shorter first,
// then bytewise (the head grows with the length).
func appendMap[V any](b []byte, m map[string]V, value func([]byte, V) ([]byte, error)) ([]byte, error) {
	b = appendHead(b, cborMap, uint64(len(m)))
	if len(m) == 0 {
		return b, nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int {
		if len(x) != len(y) {
			return len(x) - len(y)
		}
		return strings.Compare(x, y)
	})
	var err error
	for _, k := range keys {
		b = appendText(b, k)
		if b, err = value(b, m[k]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendCBOR appends the effect's canonical encoding.
func (e *Effect) appendCBOR(b []byte) ([]byte, error) {
	b = append(b, cborArray|10)
	b = appendHead(b, cborUint, e.LSN)
	b = appendText(b, e.Collection)
	b = appendText(b, e.DocID)
	b = appendHead(b, cborUint, uint64(e.Kind))
	var err error
	if b, err = appendMap(b, e.Doc, appendValue); err != nil {
		return nil, err
	}
	b = appendHead(b, cborArray, uint64(len(e.Changes)))
	for _, c := range e.Changes {
		b = appendText(b, c)
	}
	b = appendText(b, e.Author)
	b = appendText(b, e.HLC)
	b = appendText(b, e.LastChange)
	return appendText(b, e.SchemaID), nil
}

// appendCBOR appends the change's canonical encoding: its body, whose
// SHA-256 is its ID. An op carrying an attestation (rare) goes through
// the reflective encoder.
func (c *Change) appendCBOR(b []byte) ([]byte, error) {
	b = append(b, cborArray|9)
	b = appendHead(b, cborUint, uint64(c.Version))
	b = appendBytes(b, c.Space[:])
	b = appendBytes(b, c.Author[:])
	b = appendHead(b, cborUint, c.Seq)
	b = appendBytes(b, c.Prev[:])
	b = appendHead(b, cborArray, uint64(len(c.Parents)))
	for i := range c.Parents {
		b = appendBytes(b, c.Parents[i][:])
	}
	b = appendHead(b, cborUint, c.Height)
	b = append(b, cborArray|2)
	b = appendHead(b, cborUint, c.HLC.Wall)
	b = appendHead(b, cborUint, uint64(c.HLC.Logical))
	b = appendHead(b, cborArray, uint64(len(c.Ops)))
	var err error
	for i := range c.Ops {
		if b, err = c.Ops[i].appendCBOR(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendCBOR appends the op as a map keyed by small integers, in key
// order, leaving out the empty fields the struct tags mark omitempty.
func (o *Op) appendCBOR(b []byte) ([]byte, error) {
	if len(o.Reads) > 0 {
		enc, err := encMode.Marshal(o)
		if err != nil {
			return nil, err
		}
		return append(b, enc...), nil
	}
	n := 2 // Kind and Member are always there
	for _, present := range [...]bool{o.Coll != "", o.Doc != "", o.Field != "", o.Value != nil, len(o.Fields) > 0,
		o.Delta != 0, o.Role != "", o.Schema != "", len(o.Admins) > 0, o.MaxClockAhead != 0, o.Name != "", o.Expires != 0} {
		if present {
			n++
		}
	}
	b = appendHead(b, cborMap, uint64(n))
	b = append(b, 1)
	b = appendHead(b, cborUint, uint64(o.Kind))
	text := func(b []byte, key byte, s string) []byte {
		if s == "" {
			return b
		}
		return appendText(append(b, key), s)
	}
	b = text(b, 2, o.Coll)
	b = text(b, 3, o.Doc)
	b = text(b, 4, o.Field)
	var err error
	if o.Value != nil {
		if b, err = appendValue(append(b, 5), o.Value); err != nil {
			return nil, err
		}
	}
	if len(o.Fields) > 0 {
		if b, err = appendMap(append(b, 6), o.Fields, appendValue); err != nil {
			return nil, err
		}
	}
	if o.Delta != 0 {
		b = appendInt(append(b, 7), o.Delta)
	}
	b = appendBytes(append(b, 8), o.Member[:])
	b = text(b, 9, o.Role)
	b = text(b, 10, o.Schema)
	if len(o.Admins) > 0 {
		b = appendHead(append(b, 11), cborArray, uint64(len(o.Admins)))
		for i := range o.Admins {
			b = appendBytes(b, o.Admins[i][:])
		}
	}
	if o.MaxClockAhead != 0 {
		b = appendHead(append(b, 12), cborUint, o.MaxClockAhead)
	}
	b = text(b, 13, o.Name)
	if o.Expires != 0 {
		b = appendHead(append(b, 14), cborUint, o.Expires)
	}
	return b, nil
}
