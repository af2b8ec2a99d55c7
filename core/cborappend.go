package core

import (
	"encoding/binary"
	"slices"
	"strings"
)

// Hand-written canonical CBOR for the types the write path encodes for
// every document (DocState, Effect and the values inside them). They
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

func appendHLC(b []byte, h HLC) []byte {
	b = append(b, cborArray|2)
	b = appendHead(b, cborUint, h.Wall)
	return appendHead(b, cborUint, uint64(h.Logical))
}

func appendWriteKey(b []byte, k *WriteKey) []byte {
	b = append(b, cborArray|4)
	b = appendHLC(b, k.HLC)
	b = appendBytes(b, k.Author[:])
	b = appendBytes(b, k.Change[:])
	return appendHead(b, cborUint, uint64(k.Op))
}

func appendWriteKeys(b []byte, ks []WriteKey) []byte {
	b = appendHead(b, cborArray, uint64(len(ks)))
	for i := range ks {
		b = appendWriteKey(b, &ks[i])
	}
	return b
}

func appendRegister(b []byte, r *Register) ([]byte, error) {
	if r == nil {
		return append(b, cborNull), nil
	}
	b = append(b, cborArray|1)
	b = appendHead(b, cborArray, uint64(len(r.Writes)))
	var err error
	for i := range r.Writes {
		w := &r.Writes[i]
		b = append(b, cborArray|2)
		b = appendWriteKey(b, &w.Key)
		if b, err = appendValue(b, w.Value); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendIncrements(b []byte, incs []Increment) ([]byte, error) {
	b = appendHead(b, cborArray, uint64(len(incs)))
	for i := range incs {
		b = append(b, cborArray|2)
		b = appendWriteKey(b, &incs[i].Key)
		b = appendInt(b, incs[i].Delta)
	}
	return b, nil
}

func appendSetElements(b []byte, els []SetElement) ([]byte, error) {
	b = appendHead(b, cborArray, uint64(len(els)))
	var err error
	for i := range els {
		e := &els[i]
		b = append(b, cborArray|3)
		if b, err = appendValue(b, e.Value); err != nil {
			return nil, err
		}
		b = appendWriteKeys(b, e.Adds)
		b = appendWriteKeys(b, e.Removes)
	}
	return b, nil
}

// appendCBOR appends the state's canonical encoding.
func (d *DocState) appendCBOR(b []byte) ([]byte, error) {
	b = append(b, cborArray|6)
	var err error
	if b, err = appendRegister(b, &d.Exists); err != nil {
		return nil, err
	}
	b = appendWriteKey(b, &d.DeleteKey)
	if b, err = appendMap(b, d.Fields, appendRegister); err != nil {
		return nil, err
	}
	if b, err = appendMap(b, d.Counters, appendIncrements); err != nil {
		return nil, err
	}
	if b, err = appendMap(b, d.Sets, appendSetElements); err != nil {
		return nil, err
	}
	return appendWriteKey(b, &d.Last), nil
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
