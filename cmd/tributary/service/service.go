package service

import (
	"context"
	"io"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/eventstream"
)

// Service is every operation a user can ask of a node, typed. The CLI
// calls it (Local on the home, or the HTTP client of the running node),
// and the HTTP API serves it; neither holds command logic of its own.
//
// Space-scoped calls take the space as the user names it: its ID, a
// unique suffix, its name, or "" when the home holds one space.
type Service interface {
	// Node-wide.
	Status(ctx context.Context, space string) (Status, error)
	Spaces(ctx context.Context) ([]node.SpaceInfo, error)
	CreateSpace(ctx context.Context, req CreateSpace) (SpaceCreated, error)
	Join(ctx context.Context, code string) (Joined, error)
	Import(ctx context.Context, bundle io.Reader) (Imported, error)
	RotateToken(ctx context.Context) error

	// Documents.
	Put(ctx context.Context, space, coll, id string, doc map[string]any) (Written, error)
	Delete(ctx context.Context, space, coll, id string) (Written, error)
	Batch(ctx context.Context, space string, muts []replica.Mutation) (BatchWritten, error)
	Get(ctx context.Context, space, coll, id, at string) (Doc, error)
	Query(ctx context.Context, space, coll string, where map[string]string) ([]Doc, error)
	History(ctx context.Context, space, coll, id string) ([]replica.Entry, error)

	// The space.
	Log(ctx context.Context, space string, limit int) ([]replica.Entry, error)
	Conflicts(ctx context.Context, space string) ([]replica.ConflictView, error)
	// Rollbacks lists the changes the rules rolled back (docs/RULES.md).
	Rollbacks(ctx context.Context, space string) ([]replica.Rollback, error)
	// Violations lists the documents that break a rule an upgrade
	// tightened with @existing(policy: flag) (docs/SCHEMA.md).
	Violations(ctx context.Context, space string) ([]replica.Violation, error)
	Effects(ctx context.Context, space string, from uint64, limit int) ([]eventstream.Effect, error)
	UpgradeSchema(ctx context.Context, space, schema string) (Written, error)
	Export(ctx context.Context, space string, since []string, w io.Writer) (Exported, error)

	// Membership.
	Members(ctx context.Context, space string) ([]core.Member, error)
	Grant(ctx context.Context, space, key, role string) (Written, error)
	Revoke(ctx context.Context, space, key string) (Written, error)
	Invite(ctx context.Context, space string, req InviteRequest) (Invitation, error)
	Invites(ctx context.Context, space string) ([]core.Invite, error)
	RevokeInvite(ctx context.Context, space, invite string) (Written, error)
	SettleInvite(ctx context.Context, space, invite, member string) (Written, error)

	// Sinks (only a running node has them).
	Sinks(ctx context.Context) ([]SinkStatus, error)
	ResetSink(ctx context.Context, name string) error
	ParkedEffects(ctx context.Context, name string) ([]checkpoint.Parked, error)
	RetrySink(ctx context.Context, name string) ([]checkpoint.Retried, error)
}

// Doc is a document as the API shows it: "id" and its fields, JSON
// fields embedded as JSON, bytes as base64.
type Doc map[string]any

// Written is the outcome of a write.
type Written struct {
	ID      string  `json:"id,omitempty"`    // the document (or member, invite) written
	Change  core.ID `json:"change,omitzero"` // the change that holds it; zero when nothing changed
	Created bool    `json:"created,omitempty"`
}

// BatchWritten is the outcome of an atomic batch.
type BatchWritten struct {
	Results []replica.MutationResult `json:"results"`
	Change  core.ID                  `json:"change,omitzero"` // the last change written
}

// CreateSpace founds a space.
type CreateSpace struct {
	Name   string   `json:"name,omitempty"`
	Schema string   `json:"schema"`           // GraphQL SDL text
	Admins []string `json:"admins,omitempty"` // further founding admin keys
}

// SpaceCreated names the new space.
type SpaceCreated struct {
	Space core.ID `json:"space"`
}

// Joined is what join did.
type Joined struct {
	Space     core.ID        `json:"space"`
	Author    core.PublicKey `json:"author"`
	Grant     core.ID        `json:"grant"`
	Bootstrap []string       `json:"bootstrap"`
	Expires   time.Time      `json:"expires"`
	Checked   string         `json:"checked"` // whether a peer admitted the use yet
}

// Imported is what an import did. Report.Rejected lists the first
// bundle.MaxRejections refusals; Refused counts them all.
type Imported struct {
	Space   core.ID        `json:"space"`
	Total   int            `json:"changes"`
	Report  replica.Report `json:"report"`
	Refused int            `json:"refused"`
}

// Exported is what an export wrote.
type Exported struct {
	Space   core.ID   `json:"space"`
	Changes int       `json:"changes"`
	Heads   []core.ID `json:"heads"`
}

// InviteRequest asks for an invite code.
type InviteRequest struct {
	TTL   time.Duration `json:"ttl"`             // how long the code stays usable
	Addrs []string      `json:"addrs,omitempty"` // peer addresses to put in the code besides the node's
	Role  string        `json:"role,omitempty"`  // role its use grants; default writer
}

// Invitation is a new invite code.
type Invitation struct {
	Code    string    `json:"code"`
	Invite  core.ID   `json:"invite"`
	Change  core.ID   `json:"change"` // the same as Invite (the change that made it)
	Expires time.Time `json:"expires"`
	Addrs   []string  `json:"addrs"`
	// Warning says what the joiner will lack (NoAddrWarning: the code
	// carries no address).
	Warning string `json:"warning,omitempty"`
}

// Status is a space's state, with the node's view of it.
type Status struct {
	Author  core.PublicKey    `json:"author"`
	Space   replica.Status    `json:"space"`
	Effects eventstream.Stats `json:"effects"`
	Mesh    []MeshStatus      `json:"mesh,omitempty"`
}

// MeshStatus is one transport of a running node for one space.
type MeshStatus struct {
	Transport string            `json:"transport"`
	Peers     []string          `json:"peers"`
	Banned    map[string]string `json:"banned,omitempty"`
	Metrics   map[string]uint64 `json:"metrics"`
}

// SinkStatus is one sink of a running node.
type SinkStatus struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Space string `json:"space"`
	// State is connecting, failing (its target cannot be opened: retried
	// with backoff), refused (another claim owns its target), running or
	// stopped (fenced out by a newer instance).
	State    string    `json:"state"`
	Error    string    `json:"error,omitempty"` // why it is failing, refused or stopped
	Attempts int       `json:"connect_attempts,omitempty"`
	RetryAt  time.Time `json:"retry_at,omitzero"` // next attempt of a failing sink
	checkpoint.Status
	Parked int `json:"parked_total"`
}
