package core

import "fmt"

// EffectKind says what an effect does to its document.
type EffectKind uint8

// Effect kinds.
const (
	Upsert EffectKind = 1 // the document exists with the post-image Doc
	Delete EffectKind = 2 // the document no longer exists
)

func (k EffectKind) String() string {
	switch k {
	case Upsert:
		return "upsert"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalJSON writes the kind as its name.
func (k EffectKind) MarshalJSON() ([]byte, error) { return []byte(`"` + k.String() + `"`), nil }

// UnmarshalJSON reads a kind name.
func (k *EffectKind) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"upsert"`:
		*k = Upsert
	case `"delete"`:
		*k = Delete
	default:
		return fmt.Errorf("effect kind %s: want \"upsert\" or \"delete\"", b)
	}
	return nil
}

// Effect is one document's new state after a committed transaction: what
// the materializer produces, the effect log numbers (LSN) and stores, and
// every sink applies. The post-image makes applying it idempotent.
type Effect struct {
	_          struct{}       `cbor:",toarray"`
	LSN        uint64         `json:"lsn"` // set by the effect log
	Collection string         `json:"collection"`
	DocID      string         `json:"id"`
	Kind       EffectKind     `json:"kind"`
	Doc        map[string]any `json:"doc,omitempty"` // post-image in canonical values; nil for Delete
	Changes    []string       `json:"changes"`       // CIDs of the changes that produced this state
	Author     string         `json:"author"`        // author of the newest write (provenance)
	HLC        string         `json:"hlc"`           // its hybrid logical clock
	LastChange string         `json:"last_change"`   // CID of the change holding the newest write
	SchemaID   string         `json:"schema"`        // schema in force for the post-image
}

// Key identifies the effect's document.
func (e *Effect) Key() string { return e.Collection + "\x00" + e.DocID }
