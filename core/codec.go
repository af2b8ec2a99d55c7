package core

import (
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Canonical values.
//
// Every field value that travels in an op, lives in a document state or is
// carried in an effect's post-image is one of these Go types, so that its
// CBOR encoding is deterministic and a decode gives back the same type:
//
//	String, Ref, DateTime (RFC 3339, UTC, nanoseconds trimmed), JSON (compact
//	canonical JSON text)                      -> string
//	Int, Counter                              -> int64
//	Float                                     -> float64
//	Boolean                                   -> bool
//	Bytes                                     -> []byte
//	List, Set (sets sorted canonically)       -> []any of the above
//	absent / cleared                          -> nil
//
// core/schema converts user JSON into these values (schema.Field.Normalize)
// and checks them (schema.Field.Check).

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	opts := cbor.CoreDetEncOptions() // RFC 8949 core deterministic encoding
	opts.Time = cbor.TimeRFC3339Nano
	// nil and empty slices and maps encode alike, so equal states give
	// equal bytes however they were built.
	opts.NilContainers = cbor.NilContainerAsEmpty
	encMode, err = opts.EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		IntDec:                cbor.IntDecConvertSigned,
		DefaultMapType:        reflect.TypeOf(map[string]any(nil)),
		DefaultByteStringType: reflect.TypeOf([]byte(nil)),
		DupMapKey:             cbor.DupMapKeyEnforcedAPF,
		IndefLength:           cbor.IndefLengthForbidden,
		MaxNestedLevels:       32,
		MaxArrayElements:      1 << 20,
		MaxMapPairs:           1 << 16,
		UTF8:                  cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v in Tributary's canonical CBOR (RFC 8949 core
// deterministic encoding). Equal values always give equal bytes.
func Marshal(v any) ([]byte, error) {
	var b []byte
	var err error
	switch v := v.(type) { // the hot types, encoded by hand (cborappend.go)
	case *DocState: // stored compact (statecodec.go)
		if v == nil {
			return []byte{cborNull}, nil
		}
		b, err = v.appendCompact(make([]byte, 0, 256))
	case *Change:
		if v == nil {
			return []byte{cborNull}, nil
		}
		b, err = v.appendCBOR(make([]byte, 0, 512))
	case *Effect:
		if v == nil {
			return []byte{cborNull}, nil
		}
		b, err = v.appendCBOR(make([]byte, 0, 256))
	default:
		b, err = encMode.Marshal(v)
	}
	if err != nil {
		return nil, fmt.Errorf("encode cbor: %w", err)
	}
	return b, nil
}

// Unmarshal decodes canonical CBOR into v. Integers decode as int64, maps as
// map[string]any and byte strings as []byte, so canonical values round-trip.
func Unmarshal(data []byte, v any) error {
	var err error
	switch v := v.(type) { // the hot types, decoded by hand where they can be
	case *DocState:
		err = decodeState(data, v) // either of its encodings
	case *Effect:
		err = decodeEffect(data, v)
	default:
		err = decMode.Unmarshal(data, v)
	}
	if err != nil {
		return fmt.Errorf("decode cbor: %w", err)
	}
	return nil
}
