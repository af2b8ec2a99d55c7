package core

import (
	"errors"
	"fmt"
)

// OpKind says what an op does.
type OpKind uint8

// Op kinds. Data ops name a collection and document; admin ops change the
// space itself.
const (
	OpGenesis   OpKind = 1  // found the space: schema, admins, clock bound
	OpCreate    OpKind = 2  // create (or re-create) a document with fields
	OpSet       OpKind = 3  // set one field (LWW register); nil clears it
	OpIncrement OpKind = 4  // add Delta to a counter field
	OpAdd       OpKind = 5  // add Value to a set field (add-wins)
	OpRemove    OpKind = 6  // remove Value from a set field (observed adds only)
	OpDelete    OpKind = 7  // delete the document
	OpGrant     OpKind = 8  // admin: give Member a Role
	OpRevoke    OpKind = 9  // admin: revoke every role of Member
	OpSchema    OpKind = 10 // admin: upgrade the schema to Schema
	// OpInvite (admin) makes an invite: Member is the invite's throwaway
	// key, Role the role its one use grants, Expires (wall-clock ms) the
	// last instant a use may be dated. The invite key may then sign exactly
	// one change: a grant of Role to one new member (see CheckInviteUse).
	OpInvite OpKind = 11
)

var opNames = map[OpKind]string{
	OpGenesis: "genesis", OpCreate: "create", OpSet: "set", OpIncrement: "increment",
	OpAdd: "add", OpRemove: "remove", OpDelete: "delete", OpGrant: "grant",
	OpRevoke: "revoke", OpSchema: "schema", OpInvite: "invite",
}

func (k OpKind) String() string {
	if n, ok := opNames[k]; ok {
		return n
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// IsData reports whether the op writes a document.
func (k OpKind) IsData() bool { return k >= OpCreate && k <= OpDelete }

// IsMembership reports whether the op changes who may write.
func (k OpKind) IsMembership() bool { return k == OpGrant || k == OpRevoke || k == OpInvite }

// Roles a grant can give. Besides these built-in roles a grant may name
// any role the schema declares (extend schema @roles(names: [...])); what
// a role may write is the schema's to say (core/schema.Schema.CheckWrite),
// judged at each data change. Only admin may make admin ops.
const (
	RoleAdmin  = "admin"  // may grant, revoke, upgrade the schema and write
	RoleWriter = "writer" // may write every collection that does not restrict its writers
	RoleReader = "reader" // a member that syncs and reads but never writes
	// RoleInvite is held by an invite's throwaway key: it may sign one
	// change holding one grant, once (see CheckInviteUse). It is never a
	// member's role: an invite key is not admitted at any transport gate.
	// A grant of RoleInvite is the legacy form of OpInvite (role writer,
	// expiring LegacyInviteTTL after the grant's clock).
	RoleInvite = "invite"
)

// Op is one operation inside a change. Fields not used by a kind are empty.
type Op struct {
	Kind   OpKind         `cbor:"1,keyasint"`
	Coll   string         `cbor:"2,keyasint,omitempty"`
	Doc    string         `cbor:"3,keyasint,omitempty"`
	Field  string         `cbor:"4,keyasint,omitempty"`
	Value  any            `cbor:"5,keyasint,omitempty"` // canonical value (see codec.go); nil clears
	Fields map[string]any `cbor:"6,keyasint,omitempty"` // OpCreate: initial fields
	Delta  int64          `cbor:"7,keyasint,omitempty"` // OpIncrement
	Member PublicKey      `cbor:"8,keyasint,omitempty"` // OpGrant, OpRevoke
	Role   string         `cbor:"9,keyasint,omitempty"` // OpGrant
	Schema string         `cbor:"10,keyasint,omitempty"`
	Admins []PublicKey    `cbor:"11,keyasint,omitempty"` // OpGenesis: founding admins besides the author
	// MaxClockAhead bounds, in ms, how far a change's clock may run past
	// its parents' (OpGenesis; 0 means DefaultMaxClockAhead).
	MaxClockAhead uint64 `cbor:"12,keyasint,omitempty"`
	Name          string `cbor:"13,keyasint,omitempty"` // OpGenesis: human name of the space
	// Expires is the wall-clock millisecond after which a use of the
	// invite is refused (OpInvite).
	Expires uint64 `cbor:"14,keyasint,omitempty"`
	// Reads is the attestation of a data op that starts an action a rule
	// guards: the facts the author's replica relied on when it judged the
	// rule (see Fact). Replicas re-judge the rule themselves; the
	// attestation records what the author saw. Absent in older changes.
	Reads []Fact `cbor:"15,keyasint,omitempty"`
}

// Fact is one thing a rule relied on: a document read by id and the
// version seen (Doc set; Version is the change of the document's newest
// write, zero when it did not exist), or the set of documents of Coll
// whose Field equals Value (Field set).
type Fact struct {
	Coll    string `cbor:"1,keyasint,omitempty" json:"collection"`
	Doc     string `cbor:"2,keyasint,omitempty" json:"id,omitempty"`
	Field   string `cbor:"3,keyasint,omitempty" json:"field,omitempty"`
	Value   any    `cbor:"4,keyasint,omitempty" json:"value,omitempty"`
	Version ID     `cbor:"5,keyasint,omitzero" json:"version,omitzero"`
}

// MaxFacts bounds the facts of one op's attestation.
const MaxFacts = 1024

func (f *Fact) checkShape() error {
	if f.Coll == "" || len(f.Coll) > maxNameLen || len(f.Field) > maxNameLen {
		return errors.New("a fact names a collection (and at most 256 bytes of names)")
	}
	if (f.Doc == "") == (f.Field == "") {
		return errors.New("a fact names a document or a field, not both")
	}
	if f.Doc != "" {
		if f.Value != nil {
			return errors.New("a document fact holds no value")
		}
		return CheckDocID(f.Doc)
	}
	if f.Value == nil || !f.Version.IsZero() {
		return errors.New("a field fact holds a value and no version")
	}
	return nil
}

// MaxRoleLen bounds a role name.
const MaxRoleLen = 32

// CheckRoleName enforces the role name syntax: 1 to 32 bytes, a lowercase
// ASCII letter then lowercase letters, digits, '_' or '-'. Grants and
// invites carry role names; the schema declares them.
func CheckRoleName(role string) error {
	if role == "" || len(role) > MaxRoleLen {
		return fmt.Errorf("role %q: want 1 to %d characters", truncate(role), MaxRoleLen)
	}
	for i := 0; i < len(role); i++ {
		c := role[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '-')) {
			return fmt.Errorf("role %q: want a lowercase letter, then lowercase letters, digits, '_' or '-'", truncate(role))
		}
	}
	return nil
}

// DefaultMaxClockAhead is the clock bound when genesis names none: one hour.
const DefaultMaxClockAhead = uint64(60 * 60 * 1000)

const maxNameLen = 256

func (o *Op) checkShape() error {
	if err := o.checkText(); err != nil {
		return err
	}
	if len(o.Reads) > 0 && !o.Kind.IsData() {
		return fmt.Errorf("%s carries an attestation: only data ops do", o.Kind)
	}
	if len(o.Reads) > MaxFacts {
		return fmt.Errorf("attestation of %d facts, limit %d", len(o.Reads), MaxFacts)
	}
	for i := range o.Reads {
		if err := o.Reads[i].checkShape(); err != nil {
			return fmt.Errorf("attestation fact %d: %v", i, err)
		}
	}
	needDoc := func() error {
		if o.Coll == "" || o.Doc == "" {
			return errors.New(o.Kind.String() + " needs a collection and a document id")
		}
		if len(o.Coll) > maxNameLen || len(o.Field) > maxNameLen {
			return fmt.Errorf("%s: name longer than %d bytes", o.Kind, maxNameLen)
		}
		return CheckDocID(o.Doc)
	}
	switch o.Kind {
	case OpGenesis:
		if o.Schema == "" {
			return errors.New("genesis needs a schema")
		}
	case OpCreate, OpDelete:
		return needDoc()
	case OpSet, OpIncrement, OpAdd, OpRemove:
		if err := needDoc(); err != nil {
			return err
		}
		if o.Field == "" {
			return fmt.Errorf("%s needs a field", o.Kind)
		}
	case OpGrant:
		if o.Member.IsZero() {
			return errors.New("grant needs a member key")
		}
		if err := CheckRoleName(o.Role); err != nil {
			return fmt.Errorf("grant: %w", err)
		}
	case OpInvite:
		if o.Member.IsZero() {
			return errors.New("invite needs the invite key")
		}
		if err := CheckRoleName(o.Role); err != nil {
			return fmt.Errorf("invite: %w", err)
		}
		if o.Role == RoleAdmin || o.Role == RoleInvite {
			return fmt.Errorf("invite for role %q: an invite grants a role that is neither %q nor %q", o.Role, RoleAdmin, RoleInvite)
		}
		if o.Expires == 0 {
			return errors.New("invite needs an expiry")
		}
	case OpRevoke:
		if o.Member.IsZero() {
			return errors.New("revoke needs a member key")
		}
	case OpSchema:
		if o.Schema == "" {
			return errors.New("schema upgrade needs a schema")
		}
	default:
		return fmt.Errorf("unknown op kind %d", o.Kind)
	}
	return nil
}
