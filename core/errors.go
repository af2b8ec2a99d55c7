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
	// ErrTooLarge: a change whose encoding passes MaxChangeBytes (always
	// wrapped together with ErrInvalidChange).
	ErrTooLarge = errors.New("change too large")
)
