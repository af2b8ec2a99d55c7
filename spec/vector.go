package spec

// Vector is one test vector file (docs/SPEC.md §17).
type Vector struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Sections    []string `json:"sections"` // of docs/SPEC.md (and RULES.md) it exercises
	Keys        []Key    `json:"keys"`
	Schema      string   `json:"schema,omitempty"` // the genesis schema text
	Changes     []Change `json:"changes"`
	// Deliveries are orders in which to hand the changes, one at a time,
	// to a fresh replica; every order must give the same Expect (but
	// Receive, which is for the first order).
	Deliveries  [][]string       `json:"deliveries"`
	Bundle      *Bundle          `json:"bundle,omitempty"`
	InviteCodes []InviteCodeCase `json:"invite_codes,omitempty"`
	Reconcile   *Reconcile       `json:"reconcile,omitempty"`
	Expect      Expect           `json:"expect"`
}

// InviteCodeCase is an invite code's text and what decoding it gives
// (SPEC §16.3).
type InviteCodeCase struct {
	Name string `json:"name"`
	Text string `json:"text"`
	// Outcome is "ok", or the refusal: "damaged", "forged" or "old".
	Outcome string `json:"outcome"`
	// For "ok": what the code carries and the invite's terms.
	Space     string   `json:"space,omitempty"`
	SpaceName string   `json:"space_name,omitempty"`
	Key       string   `json:"key,omitempty"`    // the invite key's public key
	Invite    string   `json:"invite,omitempty"` // name of the change making the invite
	Bootstrap []string `json:"bootstrap,omitempty"`
	Role      string   `json:"role,omitempty"`
	Expires   uint64   `json:"expires,omitempty"`
}

// Reconcile is a run of range-based reconciliation (SPEC §14.2) between
// an initiator holding A and a responder holding B, with the default
// parameters (16 branches, lists of up to 64 items).
type Reconcile struct {
	A []Item `json:"a"`
	B []Item `json:"b"`
	// Fingerprints of A and of B (SPEC §14.1), hex.
	FingerprintA string `json:"fingerprint_a"`
	FingerprintB string `json:"fingerprint_b"`
	// Messages alternate initiator, responder, initiator, ...: each the
	// hex of the canonical CBOR array of its ranges; the last initiator
	// message is empty (the run is over).
	Messages []string `json:"messages"`
	Have     []Item   `json:"have"` // what A has that B lacks, in the order found
	Need     []Item   `json:"need"` // what B has that A lacks, in the order found
}

// Item is a reconciliation item: height and change ID (hex).
type Item struct {
	Height uint64 `json:"height"`
	ID     string `json:"id"`
}

// Key is a named Ed25519 key.
type Key struct {
	Name   string `json:"name"`
	Seed   string `json:"seed"`   // hex, 32 bytes
	Public string `json:"public"` // SPEC §1.1 text form
}

// Change is a named signed change.
type Change struct {
	Name     string `json:"name"`
	Note     string `json:"note,omitempty"`
	Envelope string `json:"envelope,omitempty"` // hex of the envelope bytes
	// EnvelopeGzip is the gzip of the envelope, base64 (standard, padded),
	// for envelopes too large to keep as hex.
	EnvelopeGzip string `json:"envelope_gzip_base64,omitempty"`
	EnvelopeSize int    `json:"envelope_size"`
	ID           string `json:"id,omitempty"` // CID text; absent when the envelope does not decode
	// Body, when given, is the change's content; encoding it (SPEC §3)
	// gives the body bytes exactly. Values are text and integers only.
	Body *Body  `json:"body,omitempty"`
	Sig  string `json:"sig,omitempty"` // hex; given with Body
}

// Body is a change's fields in JSON (SPEC §3.1).
type Body struct {
	Version uint8    `json:"version"`
	Space   string   `json:"space"`  // CID text, "" in a genesis
	Author  string   `json:"author"` // key text
	Seq     uint64   `json:"seq"`
	Prev    string   `json:"prev"`
	Parents []string `json:"parents"`
	Height  uint64   `json:"height"`
	HLC     string   `json:"hlc"` // "wall.logical"
	Ops     []Op     `json:"ops"`
}

// Op is an op in JSON (SPEC §3.2); kind by name.
type Op struct {
	Kind   string         `json:"kind"`
	Coll   string         `json:"coll,omitempty"`
	Doc    string         `json:"doc,omitempty"`
	Field  string         `json:"field,omitempty"`
	Value  any            `json:"value,omitempty"`
	Fields map[string]any `json:"fields,omitempty"`
	Delta  int64          `json:"delta,omitempty"`
	Member string         `json:"member,omitempty"`
	Role   string         `json:"role,omitempty"`
	Schema string         `json:"schema,omitempty"`
	Name   string         `json:"name,omitempty"`
}

// Bundle is a bundle file (SPEC §16.1) and what it holds.
type Bundle struct {
	File    string   `json:"file"`    // hex of the file bytes
	Space   string   `json:"space"`   // header: CID text
	Since   []string `json:"since"`   // header: CID texts
	Changes []string `json:"changes"` // names of the changes it holds, in file order
	// Corrupt is the file with one byte of a change altered: readers must
	// refuse it as corrupt (its checksum fails) and apply nothing.
	Corrupt     string `json:"corrupt"`
	CorruptByte int    `json:"corrupt_byte"` // offset of the altered byte
}

// Expect is what every implementation must reach.
type Expect struct {
	// Receive is, per change name, the outcome of handing it over in the
	// first delivery order: "stored", "held", "duplicate", or
	// "rejected:<class>" (SPEC §6).
	Receive map[string]string `json:"receive"`
	// Verdicts is, per stored change, its class (SPEC §11).
	Verdicts  map[string]string `json:"verdicts"`
	Documents []Document        `json:"documents,omitempty"`
	Members   []Member          `json:"members,omitempty"`
	Invites   []Invite          `json:"invites,omitempty"`
	Rollbacks []Rollback        `json:"rollbacks,omitempty"`
	Conflicts []Conflict        `json:"conflicts,omitempty"`
}

// Document is a document's final state.
type Document struct {
	Collection string         `json:"collection"`
	ID         string         `json:"id"`
	Exists     bool           `json:"exists"`
	Fields     map[string]any `json:"fields,omitempty"`     // the post-image in JSON
	ImageCBOR  string         `json:"image_cbor,omitempty"` // hex of the post-image's canonical CBOR
	// ImageSHA256 replaces Fields and ImageCBOR for a post-image of more
	// than 64 KiB: hex of the SHA-256 of its canonical CBOR.
	ImageSHA256 string `json:"image_sha256,omitempty"`
}

// Member is a named key's standing (SPEC §8.3).
type Member struct {
	Key    string `json:"key"`
	Role   string `json:"role"`
	Member bool   `json:"member"`
}

// Invite is an invite and its uses (SPEC §8.5).
type Invite struct {
	Change string      `json:"change"`
	State  string      `json:"state"`
	Uses   []InviteUse `json:"uses,omitempty"`
}

// InviteUse is one use of an invite.
type InviteUse struct {
	Change       string `json:"change"`
	Accepted     bool   `json:"accepted"`
	Acknowledged bool   `json:"acknowledged"`
}

// Rollback is a change rolled back, and the change it lost to ("" when
// undone by a rollback in its past).
type Rollback struct {
	Change string `json:"change"`
	Winner string `json:"winner,omitempty"`
}

// Conflict is an open concurrent overwrite of one field.
type Conflict struct {
	Collection string   `json:"collection"`
	ID         string   `json:"id"`
	Field      string   `json:"field"`
	Winner     string   `json:"winner"`
	Losers     []string `json:"losers"`
}
