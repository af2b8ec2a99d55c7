package api

import (
	"errors"
	"net/http"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh/bundle"
)

// Errors of the API itself.
var (
	ErrUnauthenticated = errors.New("missing or wrong API token")
	ErrForbidden       = errors.New("request refused")
	ErrBusy            = errors.New("node busy")
	ErrTooLarge        = errors.New("request body too large")
)

// errorKind pairs a sentinel with its wire code and HTTP status. The
// client turns a code back into its sentinel, so errors.Is works the same
// on both sides of the API.
type errorKind struct {
	err    error
	code   string
	status int
}

// kinds, most specific first.
var kinds = []errorKind{
	{ErrUnauthenticated, "unauthenticated", http.StatusUnauthorized},
	{ErrForbidden, "forbidden", http.StatusForbidden},
	{ErrBusy, "busy", http.StatusServiceUnavailable},
	{ErrTooLarge, "too_large", http.StatusRequestEntityTooLarge},
	{node.ErrDiskFull, "disk_full", http.StatusInsufficientStorage},
	{replica.ErrBatchTooLarge, "batch_too_large", http.StatusRequestEntityTooLarge},
	{node.ErrUnknownSpace, "unknown_space", http.StatusNotFound},
	{node.ErrNoSpace, "no_space", http.StatusNotFound},
	{node.ErrManySpaces, "many_spaces", http.StatusBadRequest},
	{replica.ErrNotFound, "not_found", http.StatusNotFound},
	{service.ErrNoNode, "no_node", http.StatusConflict},
	{service.ErrNoHistory, "no_history", http.StatusConflict},
	{replica.ErrInviteUnknown, "invite_unknown", http.StatusNotFound},
	{replica.ErrInviteUsed, "invite_used", http.StatusConflict},
	{replica.ErrInviteExpired, "invite_expired", http.StatusConflict},
	{replica.ErrInviteRevoked, "invite_revoked", http.StatusConflict},
	{replica.ErrInviteContested, "invite_contested", http.StatusConflict},
	{core.ErrCodeDamaged, "code_damaged", http.StatusBadRequest},
	{core.ErrCodeForged, "code_forged", http.StatusBadRequest},
	{core.ErrCodeExpired, "code_expired", http.StatusBadRequest},
	{core.ErrCodeOld, "code_old", http.StatusBadRequest},
	{bundle.ErrNotBundle, "not_bundle", http.StatusBadRequest},
	{bundle.ErrCorrupt, "bundle_corrupt", http.StatusBadRequest},
	{bundle.ErrBadChange, "bundle_bad_change", http.StatusBadRequest},
	{core.ErrTooLarge, "change_too_large", http.StatusUnprocessableEntity},
	{core.ErrSchemaViolation, "schema_violation", http.StatusUnprocessableEntity},
	{core.ErrRuleViolation, "rule_violation", http.StatusUnprocessableEntity},
	{core.ErrRolledBack, "rolled_back", http.StatusConflict},
	{core.ErrUnauthorized, "not_authorized", http.StatusUnprocessableEntity},
	{core.ErrInvalidChange, "invalid_change", http.StatusUnprocessableEntity},
	{core.ErrMalformed, "malformed", http.StatusBadRequest},
	{service.ErrInvalidInput, "invalid_input", http.StatusBadRequest},
}

// classify finds err's kind; unknown errors are the node's (500).
func classify(err error) errorKind {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k
		}
	}
	return errorKind{code: "internal", status: http.StatusInternalServerError}
}

// wireError is an error as the API sends it.
type wireError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// Operation is the position (from 1) of the failing operation of a
	// batch, or of the line of an NDJSON body.
	Operation int `json:"operation,omitempty"`
}

// RemoteError is an error the node answered with.
type RemoteError struct {
	Status  int
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap gives the sentinel the code stands for.
func (e *RemoteError) Unwrap() error {
	for _, k := range kinds {
		if k.code == e.Code {
			return k.err
		}
	}
	return nil
}
