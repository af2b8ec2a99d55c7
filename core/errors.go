package core

import "errors"

// Errors returned by core. Callers branch on them with errors.Is; every
// error is wrapped with context naming the change, op or field involved.
var (
	// ErrMalformed: bytes that do not decode as a change or envelope.
	ErrMalformed = errors.New("malformed change")
	// ErrBadSignature: the signature does not verify for the author key.
	ErrBadSignature = errors.New("bad signature")
	// ErrInvalidChange: a well-formed, signed change that breaks a structural
	// rule (height, clock, parents, sequence). Such a change is refused and
	// never stored.
	ErrInvalidChange = errors.New("invalid change")
	// ErrUnauthorized: the author is not a member (or lacks the role) at the
	// change. The change is kept in the DAG with no effect.
	ErrUnauthorized = errors.New("not authorized")
	// ErrSchemaViolation: an op breaks the space's schema. The change is kept
	// in the DAG with no effect.
	ErrSchemaViolation = errors.New("schema violation")
	// ErrRuleViolation: a rule of the schema (@create, @update, @delete)
	// is false at the change's causal past. The change is kept in the DAG
	// with no effect.
	ErrRuleViolation = errors.New("rule violation")
	// ErrRolledBack: the change passed its rules at its causal past but
	// cannot stand with a concurrent change, and lost to it by the winner
	// rule (docs/RULES.md). It is kept in the DAG with no effect.
	ErrRolledBack = errors.New("rolled back")
	// ErrTooLarge: a change whose encoding passes MaxChangeBytes (wrapped
	// together with ErrInvalidChange when its writer signs it, and with
	// ErrMalformed when it is received).
	ErrTooLarge = errors.New("change too large")
)
