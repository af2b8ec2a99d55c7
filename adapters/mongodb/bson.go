package mongodb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// Field names the sink adds to every document it writes. Schema field names
// never start with "_" (core/schema reserves them), so they cannot collide.
const (
	FieldID      = "_id"      // the document id
	FieldLSN     = "_lsn"     // LSN of the effect that wrote the document (int64)
	FieldChange  = "_change"  // CID of the change holding the newest write
	FieldAuthor  = "_author"  // author of the newest write
	FieldHLC     = "_hlc"     // its hybrid logical clock
	FieldDeleted = "_deleted" // true on a tombstone: the document was deleted
	// FieldNanos keeps what a BSON datetime cannot: the nanoseconds below
	// the millisecond of DateTime fields, by field name (int32 for a
	// DateTime, an array of int32 for a list or set of them). It is there
	// only when some value has them.
	FieldNanos = "_ns"
)

// NotDeleted is the filter that selects live documents, leaving out the
// tombstones the sink keeps for deleted ones. Readers of the target
// should add it to their queries.
var NotDeleted = bson.D{{Key: FieldDeleted, Value: bson.D{{Key: "$ne", Value: true}}}}

// encodeEffect builds the document an effect leaves in the target: its
// post-image, or a tombstone for a delete, with the provenance fields.
// coll may be nil (no schema): values are then mapped by their Go type, so
// DateTime and JSON fields stay strings. stored names the document field
// of each renamed field (nil: every field under its name).
func encodeEffect(e *eventstream.Effect, coll *schema.Collection, stored map[string]string) (bson.D, error) {
	d := make(bson.D, 0, len(e.Doc)+7)
	d = append(d, bson.E{Key: FieldID, Value: e.DocID})
	var nanos bson.D
	switch e.Kind {
	case eventstream.Upsert:
		for _, name := range fieldOrder(e.Doc, coll) {
			v := e.Doc[name]
			if v == nil {
				continue // absent and cleared fields are left out
			}
			var f *schema.Field
			if coll != nil {
				f, _ = coll.Field(name)
			}
			bv, ns, err := encodeValue(f, v)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", name, err)
			}
			key := name
			if n, ok := stored[name]; ok {
				key = n
			}
			d = append(d, bson.E{Key: key, Value: bv})
			if ns != nil {
				nanos = append(nanos, bson.E{Key: key, Value: ns})
			}
		}
	case eventstream.Delete:
		d = append(d, bson.E{Key: FieldDeleted, Value: true})
	default:
		return nil, fmt.Errorf("unknown effect kind %d", e.Kind)
	}
	if e.LSN > math.MaxInt64 {
		return nil, fmt.Errorf("LSN %d does not fit a BSON int64", e.LSN)
	}
	if nanos != nil {
		d = append(d, bson.E{Key: FieldNanos, Value: nanos})
	}
	return append(d,
		bson.E{Key: FieldLSN, Value: int64(e.LSN)},
		bson.E{Key: FieldChange, Value: e.LastChange},
		bson.E{Key: FieldAuthor, Value: e.Author},
		bson.E{Key: FieldHLC, Value: e.HLC},
	), nil
}

// fieldOrder lists doc's field names: the schema's declaration order first,
// then any the schema does not know, sorted.
func fieldOrder(doc map[string]any, coll *schema.Collection) []string {
	out := make([]string, 0, len(doc))
	seen := make(map[string]bool, len(doc))
	if coll != nil {
		for _, f := range coll.Fields {
			if _, ok := doc[f.Name]; ok {
				out = append(out, f.Name)
				seen[f.Name] = true
			}
		}
	}
	if len(out) == len(doc) {
		return out
	}
	rest := slices.Sorted(maps.Keys(doc))
	for _, k := range rest {
		if !seen[k] {
			out = append(out, k)
		}
	}
	return out
}

// encodeValue maps a field's value to BSON; nanos, for DateTime fields,
// holds the sub-millisecond nanoseconds (nil when all are zero).
func encodeValue(f *schema.Field, v any) (bv, nanos any, err error) {
	if f == nil {
		bv, err = encodeByType(v)
		return bv, nil, err
	}
	switch f.Kind {
	case schema.List, schema.Set:
		l, ok := v.([]any)
		if !ok {
			return nil, nil, fmt.Errorf("want a %s, got %T", f.Kind, v)
		}
		out := make(bson.A, len(l))
		var ns bson.A
		for i, e := range l {
			bv, n, err := encodeScalar(f.Elem, e, true)
			if err != nil {
				return nil, nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = bv
			if n != 0 && ns == nil {
				ns = make(bson.A, len(l))
				for j := range ns {
					ns[j] = int32(0)
				}
			}
			if ns != nil {
				ns[i] = n
			}
		}
		if ns != nil {
			return out, ns, nil
		}
		return out, nil, nil
	}
	bv, n, err := encodeScalar(f.ScalarKind(), v, false)
	if n != 0 {
		return bv, n, err
	}
	return bv, nil, err
}

// encodeScalar maps one value of kind k; inList says it is an element of
// a list or set.
func encodeScalar(k schema.Kind, v any, inList bool) (bv any, nanos int32, err error) {
	if k == schema.DateTime {
		s, ok := v.(string)
		if !ok {
			return nil, 0, fmt.Errorf("want %s, got %T", k, v)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, 0, fmt.Errorf("date-time %q: %v", s, err)
		}
		// A BSON datetime counts whole milliseconds (rounded down, also
		// before 1970); the rest goes to FieldNanos.
		return primitive.NewDateTimeFromTime(t), int32(t.Nanosecond() % 1e6), nil
	}
	if k == schema.JSON {
		s, ok := v.(string)
		if !ok {
			return nil, 0, fmt.Errorf("want %s, got %T", k, v)
		}
		bv, err := parseJSON(s)
		if err != nil {
			return nil, 0, err
		}
		if !portable(bv, inList) {
			return primitive.Binary{Subtype: JSONTextSubtype, Data: []byte(s)}, 0, nil
		}
		return bv, 0, nil
	}
	bv, err = encodeKind(k, v)
	return bv, 0, err
}

// JSONTextSubtype is the binary subtype (user defined) of a JSON value
// stored as its text, because not every server could store it as BSON.
const JSONTextSubtype byte = 0x80

// portable reports whether a parsed JSON value can be stored as BSON by
// MongoDB and FerretDB alike: no object key that is empty, starts with
// "$" or holds "." or NUL (update and replace refuse them, and BSON keys
// cannot hold NUL), and no array directly inside an array (FerretDB
// refuses them). inArray says v is an array element.
func portable(v any, inArray bool) bool {
	switch x := v.(type) {
	case bson.D:
		for _, e := range x {
			if e.Key == "" || strings.HasPrefix(e.Key, "$") || strings.ContainsAny(e.Key, ".\x00") || !portable(e.Value, false) {
				return false
			}
		}
	case bson.A:
		if inArray {
			return false
		}
		for _, e := range x {
			if !portable(e, true) {
				return false
			}
		}
	}
	return true
}

func encodeKind(k schema.Kind, v any) (any, error) {
	bad := func() error { return fmt.Errorf("want %s, got %T", k, v) }
	switch k {
	case schema.String, schema.Ref:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case schema.Int, schema.Counter:
		if n, ok := v.(int64); ok {
			return n, nil
		}
	case schema.Float:
		if x, ok := v.(float64); ok {
			return x, nil
		}
	case schema.Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case schema.Bytes:
		if b, ok := v.([]byte); ok {
			return primitive.Binary{Data: b}, nil
		}
	default:
		return encodeByType(v)
	}
	return nil, bad()
}

// encodeByType maps a canonical value by its Go type alone.
func encodeByType(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, int64, float64, bool:
		return x, nil
	case []byte:
		return primitive.Binary{Data: x}, nil
	case []any:
		out := make(bson.A, len(x))
		for i, e := range x {
			bv, err := encodeByType(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = bv
		}
		return out, nil
	}
	return nil, fmt.Errorf("%T is not a canonical value", v)
}

// parseJSON turns JSON text into the BSON value it describes: objects
// become embedded documents (keys sorted), arrays arrays, integers that
// fit int64 int64, other numbers doubles.
func parseJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("JSON text: %v", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("JSON text: more than one value")
	}
	return fromJSON(v)
}

func fromJSON(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		d := make(bson.D, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			bv, err := fromJSON(x[k])
			if err != nil {
				return nil, err
			}
			d = append(d, bson.E{Key: k, Value: bv})
		}
		return d, nil
	case []any:
		a := make(bson.A, len(x))
		for i, e := range x {
			bv, err := fromJSON(e)
			if err != nil {
				return nil, err
			}
			a[i] = bv
		}
		return a, nil
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return n, nil
			}
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("JSON number %s does not fit a double", x)
		}
		return f, nil
	}
	return v, nil // string, bool, nil
}

// DecodeDoc maps a document the sink wrote back to Tributary's canonical
// values (core/codec.go): it returns the document id, its fields (without
// the sink's "_" fields; null fields left out) and whether it is a
// tombstone. coll, the schema collection, tells DateTime, JSON, list and
// set fields apart; without it (nil, or a field it does not know) values
// are mapped by BSON type, embedded documents as JSON text. A field stored
// under a former name (the sink keeps a renamed field's document field)
// is returned under its name.
func DecodeDoc(coll *schema.Collection, raw bson.Raw) (id string, fields map[string]any, deleted bool, err error) {
	elems, err := raw.Elements()
	if err != nil {
		return "", nil, false, fmt.Errorf("decode document: %w", err)
	}
	var nanos bson.Raw
	if rv, err := raw.LookupErr(FieldNanos); err == nil {
		nanos, _ = rv.DocumentOK()
	}
	fields = make(map[string]any, len(elems))
	for _, el := range elems {
		key, rv := el.Key(), el.Value()
		switch key {
		case FieldID:
			s, ok := rv.StringValueOK()
			if !ok {
				return "", nil, false, fmt.Errorf("decode document: _id is %s, want a string", rv.Type)
			}
			id = s
			continue
		case FieldDeleted:
			deleted, _ = rv.BooleanOK()
			continue
		}
		if strings.HasPrefix(key, "_") {
			continue // provenance
		}
		var f *schema.Field
		name := key
		if coll != nil {
			if f, _ = coll.FieldByAnyName(key); f != nil {
				name = f.Name
			}
		}
		var ns bson.RawValue
		if nanos != nil {
			ns, _ = nanos.LookupErr(key)
		}
		v, err := decodeValue(f, rv, ns)
		if err != nil {
			return "", nil, false, fmt.Errorf("decode document %q field %s: %w", id, key, err)
		}
		if v != nil {
			fields[name] = v
		}
	}
	return id, fields, deleted, nil
}

// decodeValue maps a field's BSON value back; ns is its FieldNanos entry
// (zero when none).
func decodeValue(f *schema.Field, rv, ns bson.RawValue) (any, error) {
	if f == nil {
		return decodeByType(rv)
	}
	switch f.Kind {
	case schema.List, schema.Set:
		if rv.Type == bsontype.Null {
			return nil, nil
		}
		arr, ok := rv.ArrayOK()
		if !ok {
			return nil, fmt.Errorf("want an array for a %s, got %s", f.Kind, rv.Type)
		}
		vals, err := arr.Values()
		if err != nil {
			return nil, err
		}
		var nsVals []bson.RawValue
		if a, ok := ns.ArrayOK(); ok {
			nsVals, _ = a.Values()
		}
		out := make([]any, len(vals))
		for i, e := range vals {
			if f.Elem == schema.DateTime && i < len(nsVals) {
				out[i] = dateTime(e, nsVals[i])
				continue
			}
			if out[i], err = decodeScalar(f.Elem, e); err != nil {
				return nil, err
			}
		}
		if f.Kind == schema.Set {
			slices.SortFunc(out, core.CompareValues)
		}
		return out, nil
	}
	if f.Kind == schema.DateTime {
		return dateTime(rv, ns), nil
	}
	return decodeScalar(f.ScalarKind(), rv)
}

// dateTime turns a BSON datetime and its sub-millisecond nanoseconds back
// into canonical RFC 3339 text.
func dateTime(rv, ns bson.RawValue) any {
	ms, ok := rv.DateTimeOK()
	if !ok {
		v, _ := decodeByType(rv)
		return v
	}
	n, _ := ns.AsInt64OK()
	if n < 0 || n >= 1e6 {
		n = 0
	}
	return time.UnixMilli(ms).Add(time.Duration(n)).UTC().Format(time.RFC3339Nano)
}

func decodeScalar(k schema.Kind, rv bson.RawValue) (any, error) {
	switch k {
	case schema.Int, schema.Counter:
		switch rv.Type {
		case bsontype.Int32:
			return int64(rv.Int32()), nil
		case bsontype.Int64:
			return rv.Int64(), nil
		case bsontype.Double:
			if x := rv.Double(); x == math.Trunc(x) && math.Abs(x) < 1<<63 {
				return int64(x), nil
			}
		}
	case schema.Float:
		switch rv.Type {
		case bsontype.Double:
			return rv.Double(), nil
		case bsontype.Int32:
			return float64(rv.Int32()), nil
		case bsontype.Int64:
			return float64(rv.Int64()), nil
		}
	case schema.JSON:
		if st, data, ok := rv.BinaryOK(); ok && st == JSONTextSubtype {
			return string(data), nil
		}
		v, err := jsonValue(rv)
		if err != nil || v == nil {
			return nil, err
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // as core/schema writes JSON text
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		return string(bytes.TrimRight(buf.Bytes(), "\n")), nil
	}
	return decodeByType(rv)
}

// decodeByType maps a BSON value by its type: the inverse of the encoding
// for every kind but JSON.
func decodeByType(rv bson.RawValue) (any, error) {
	switch rv.Type {
	case bsontype.Null, bsontype.Undefined:
		return nil, nil
	case bsontype.String:
		return rv.StringValue(), nil
	case bsontype.Int32:
		return int64(rv.Int32()), nil
	case bsontype.Int64:
		return rv.Int64(), nil
	case bsontype.Double:
		return rv.Double(), nil
	case bsontype.Boolean:
		return rv.Boolean(), nil
	case bsontype.Binary:
		_, data := rv.Binary()
		return bytes.Clone(data), nil
	case bsontype.DateTime:
		return time.UnixMilli(rv.DateTime()).UTC().Format(time.RFC3339Nano), nil
	case bsontype.Array:
		vals, err := rv.Array().Values()
		if err != nil {
			return nil, err
		}
		out := make([]any, len(vals))
		for i, e := range vals {
			if out[i], err = decodeByType(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case bsontype.EmbeddedDocument:
		return decodeScalar(schema.JSON, rv)
	}
	return nil, fmt.Errorf("BSON %s has no canonical value", rv.Type)
}

// jsonValue turns a BSON value back into the value encoding/json writes.
func jsonValue(rv bson.RawValue) (any, error) {
	switch rv.Type {
	case bsontype.EmbeddedDocument:
		elems, err := rv.Document().Elements()
		if err != nil {
			return nil, err
		}
		m := make(map[string]any, len(elems))
		for _, el := range elems {
			if m[el.Key()], err = jsonValue(el.Value()); err != nil {
				return nil, err
			}
		}
		return m, nil
	case bsontype.Array:
		vals, err := rv.Array().Values()
		if err != nil {
			return nil, err
		}
		out := make([]any, len(vals))
		for i, e := range vals {
			if out[i], err = jsonValue(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case bsontype.Null:
		return nil, nil
	case bsontype.String, bsontype.Int32, bsontype.Int64, bsontype.Double, bsontype.Boolean, bsontype.DateTime:
		return decodeByType(rv)
	}
	return nil, fmt.Errorf("BSON %s in a JSON value", rv.Type)
}
