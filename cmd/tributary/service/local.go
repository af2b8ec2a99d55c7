package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
	"github.com/tributary-sync/tributary/mesh/bundle"
)

// Errors of the service.
var (
	// ErrInvalidInput: a request that cannot be understood (a malformed
	// key, change ID, role or value).
	ErrInvalidInput = errors.New("invalid input")
	// ErrNoNode: the operation needs a running node (sinks).
	ErrNoNode = errors.New("no node is running on this home: sinks run inside `tributary run --config FILE`")
	// ErrNoHistory: the space holds only a joiner's pending grant.
	ErrNoHistory = errors.New("space has no history here yet: sync first (tributary run, or import a bundle from a member)")
)

// Node is what a running node adds to the service: its mesh, its
// addresses and its sinks. Local works without one.
type Node interface {
	Mesh(space string) []MeshStatus
	// Addrs are the node's peer addresses, for invite codes.
	Addrs() []string
	Sinks(ctx context.Context) []SinkStatus
	ResetSink(ctx context.Context, name string) error
	ParkedEffects(ctx context.Context, name string) ([]checkpoint.Parked, error)
	RetrySink(ctx context.Context, name string) ([]checkpoint.Retried, error)
	// RotateToken makes the API accept only the new token.
	RotateToken(token string)
}

// Local serves the operations on a home in this process: the CLI when no
// node runs (opening each space for the call), or the running node
// (spaces kept open by its registry, Node set).
type Local struct {
	Home *node.Home
	// Open opens a space by ID; the caller closes it (a no-op for spaces
	// a registry keeps open).
	Open func(ctx context.Context, id string) (*node.Space, error)
	Node Node // nil without a running node
	// LastAddrs, when set, gives this node's addresses as it saved them
	// at its last run, for invite codes made while no node runs.
	LastAddrs func(space core.ID) []string
	Now       func() time.Time
	// PresentProof, when set, shows a joiner's use of its invite to the
	// code's peers right away (libp2p), so join can tell a used, expired
	// or revoked code at once; unset or unreachable, the use travels with
	// the first sync. Its errors wrap replica.ErrInvite* and mesh.ErrNoPeer.
	PresentProof func(ctx context.Context, key core.PrivateKey, space core.ID, proof []byte, addrs []string) error
}

var _ Service = (*Local)(nil)

func (l *Local) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Local) ms() uint64 { return uint64(l.now().UnixMilli()) }

// with runs fn on the named space; synced requires its history.
func (l *Local) with(ctx context.Context, space string, synced bool, fn func(sp *node.Space) error) error {
	id, err := l.Home.Resolve(space)
	if err != nil {
		return err
	}
	sp, err := l.Open(ctx, id)
	if err != nil {
		return err
	}
	defer sp.Close()
	if synced && !sp.Replica.HasGenesis() {
		return fmt.Errorf("space %s: %w", id, ErrNoHistory)
	}
	return fn(sp)
}

func (l *Local) Status(ctx context.Context, space string) (Status, error) {
	var st Status
	err := l.with(ctx, space, false, func(sp *node.Space) error {
		rs, err := sp.Replica.Status()
		if err != nil {
			return err
		}
		es, err := sp.Effects.Stats()
		if err != nil {
			return err
		}
		st = Status{Author: l.Home.Key.Public(), Space: rs, Effects: es}
		if l.Node != nil {
			st.Mesh = l.Node.Mesh(sp.Replica.Space().String())
		}
		return nil
	})
	return st, err
}

func (l *Local) Spaces(ctx context.Context) ([]node.SpaceInfo, error) {
	spaces, err := l.Home.Spaces()
	for i := range spaces {
		spaces[i].Proof = nil // a joiner's pending grant is not for display
	}
	return spaces, err
}

func (l *Local) CreateSpace(ctx context.Context, req CreateSpace) (SpaceCreated, error) {
	var extra []core.PublicKey
	for _, a := range req.Admins {
		k, err := core.ParsePublicKey(a)
		if err != nil {
			return SpaceCreated{}, fmt.Errorf("%w: admin: %v", ErrInvalidInput, err)
		}
		extra = append(extra, k)
	}
	if strings.TrimSpace(req.Schema) == "" {
		return SpaceCreated{}, fmt.Errorf("%w: a space needs a schema", ErrInvalidInput)
	}
	staging, sp, err := l.Home.CreateSpaceDir()
	if err != nil {
		return SpaceCreated{}, err
	}
	id, err := sp.Replica.Found(ctx, l.Home.Key, req.Name, req.Schema, extra, l.ms())
	sp.Close()
	if err != nil {
		os.RemoveAll(staging)
		return SpaceCreated{}, err
	}
	if err := l.Home.CommitSpace(staging, node.SpaceInfo{Space: id.String(), Name: req.Name}); err != nil {
		return SpaceCreated{}, err
	}
	if l.Node != nil { // the running node starts serving it
		if sp, err := l.Open(ctx, id.String()); err == nil {
			sp.Close()
		} else {
			return SpaceCreated{Space: id}, fmt.Errorf("space %s created, but the node could not start it: %w", id, err)
		}
	}
	return SpaceCreated{Space: id}, nil
}

func (l *Local) Join(ctx context.Context, code string) (Joined, error) {
	ic, terms, err := core.DecodeInviteCode(code)
	if err != nil {
		return Joined{}, err
	}
	if _, err := l.Home.Info(ic.Space.String()); err == nil {
		return Joined{}, fmt.Errorf("this home already holds space %s", ic.Space)
	}
	use, id, err := ic.InviteUseChange(terms, l.Home.Key.Public(), l.ms())
	if err != nil {
		return Joined{}, err
	}
	env, err := use.Encode()
	if err != nil {
		return Joined{}, err
	}
	if err := l.Home.WriteInfo(node.SpaceInfo{Space: ic.Space.String(), Name: ic.Name, Bootstrap: ic.Bootstrap, Proof: env}); err != nil {
		return Joined{}, err
	}
	sp, err := l.Open(ctx, ic.Space.String())
	if err != nil {
		return Joined{}, err
	}
	defer sp.Close()
	rep, err := sp.Replica.Receive(ctx, [][]byte{env})
	if err != nil {
		return Joined{}, err
	}
	if len(rep.Rejected) > 0 {
		return Joined{}, fmt.Errorf("join: %w", rep.Rejected[0].Err)
	}
	j := Joined{Space: ic.Space, Author: l.Home.Key.Public(), Grant: id, Bootstrap: ic.Bootstrap,
		Expires: time.UnixMilli(int64(terms.Expires)).UTC(), Checked: "offline: your grant is checked at your first sync"}
	if l.PresentProof != nil && len(ic.Bootstrap) > 0 {
		switch err := l.PresentProof(ctx, l.Home.Key, ic.Space, env, ic.Bootstrap); {
		case err == nil:
			j.Checked = "admitted by a peer of the space"
		case errors.Is(err, replica.ErrInviteUsed), errors.Is(err, replica.ErrInviteExpired), errors.Is(err, replica.ErrInviteRevoked), errors.Is(err, replica.ErrInviteUnknown):
			// A definite no: leave nothing of the space behind.
			sp.Close()
			if rerr := l.Home.RemoveSpace(ic.Space.String()); rerr != nil {
				return Joined{}, errors.Join(fmt.Errorf("join refused: %w", err), rerr)
			}
			return Joined{}, fmt.Errorf("join refused by the space's peer: %w", err)
		default:
			j.Checked = "no peer could be asked (" + err.Error() + "): your grant is checked at your first sync"
		}
	}
	return j, nil
}

func (l *Local) RotateToken(ctx context.Context) error {
	tok, err := l.Home.RotateToken()
	if err != nil {
		return err
	}
	if l.Node != nil {
		l.Node.RotateToken(tok)
	}
	return nil
}

func (l *Local) Put(ctx context.Context, space, coll, id string, doc map[string]any) (Written, error) {
	var w Written
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		res, change, err := mutate(ctx, sp, l.Home.Key, []replica.Mutation{{Op: replica.MutPut, Collection: coll, ID: id, Fields: doc}}, l.ms())
		if err != nil {
			return err
		}
		w = Written{ID: res[0].ID, Change: change, Created: res[0].Created}
		return nil
	})
	return w, err
}

func (l *Local) Delete(ctx context.Context, space, coll, id string) (Written, error) {
	var w Written
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		_, change, err := mutate(ctx, sp, l.Home.Key, []replica.Mutation{{Op: replica.MutDelete, Collection: coll, ID: id}}, l.ms())
		w = Written{ID: id, Change: change}
		return err
	})
	return w, err
}

// mutate writes one or more mutations; a single one's error is returned
// unwrapped (there is no batch position to name).
func mutate(ctx context.Context, sp *node.Space, key core.PrivateKey, muts []replica.Mutation, now uint64) ([]replica.MutationResult, core.ID, error) {
	res, change, err := sp.Replica.Mutate(ctx, key, muts, now)
	var me *replica.MutationError
	if len(muts) == 1 && errors.As(err, &me) {
		err = me.Err
	}
	return res, change, err
}

func (l *Local) Batch(ctx context.Context, space string, muts []replica.Mutation) (BatchWritten, error) {
	var b BatchWritten
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		res, change, err := sp.Replica.Mutate(ctx, l.Home.Key, muts, l.ms())
		b = BatchWritten{Results: res, Change: change}
		return err
	})
	return b, err
}

func (l *Local) Get(ctx context.Context, space, coll, id, at string) (Doc, error) {
	var out Doc
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		s := sp.Replica.Schema()
		if _, ok := s.Collection(coll); !ok {
			return fmt.Errorf("%w: unknown collection %q", replica.ErrNotFound, coll)
		}
		var d replica.Document
		var ok bool
		var err error
		if at != "" {
			cid, err := core.ParseID(at)
			if err != nil {
				return fmt.Errorf("%w: --at: %v", ErrInvalidInput, err)
			}
			if d, err = sp.Replica.At(coll, id, cid); err != nil {
				return err
			}
			ok = !d.Deleted && d.Fields != nil
		} else if d, ok, err = sp.Replica.Get(coll, id); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s/%s: %w", coll, id, replica.ErrNotFound)
		}
		out = RenderDoc(s, d)
		return nil
	})
	return out, err
}

func (l *Local) Query(ctx context.Context, space, collName string, where map[string]string) ([]Doc, error) {
	var out []Doc
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		s := sp.Replica.Schema()
		coll, ok := s.Collection(collName)
		if !ok {
			return fmt.Errorf("%w: unknown collection %q", replica.ErrNotFound, collName)
		}
		filter := map[string]any{}
		for name, raw := range where {
			v, err := whereValue(coll, name, raw)
			if err != nil {
				return fmt.Errorf("%w: where: %v", ErrInvalidInput, err)
			}
			filter[name] = v
		}
		docs, err := sp.Replica.Query(coll.Name, filter)
		if err != nil {
			return err
		}
		out = make([]Doc, len(docs))
		for i, d := range docs {
			out[i] = RenderDoc(s, d)
		}
		return nil
	})
	return out, err
}

// whereValue turns the text of an equality filter into the field's
// canonical value: JSON when it parses as JSON (so 1974 is a number and
// "1974" a string), else the text itself.
func whereValue(coll *schema.Collection, name, raw string) (any, error) {
	f, ok := coll.Field(name)
	if !ok {
		return nil, fmt.Errorf("unknown field %s.%s", coll.Name, name)
	}
	var v any = raw
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var parsed any
	if dec.Decode(&parsed) == nil && !dec.More() {
		if _, isStr := parsed.(string); isStr || f.Kind != schema.String {
			v = parsed
		}
	}
	nv, err := f.Normalize(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return nv, nil
}

func (l *Local) History(ctx context.Context, space, coll, id string) ([]replica.Entry, error) {
	var out []replica.Entry
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		if _, ok := sp.Replica.Schema().Collection(coll); !ok {
			return fmt.Errorf("%w: unknown collection %q", replica.ErrNotFound, coll)
		}
		var err error
		out, err = sp.Replica.History(coll, id)
		if err == nil && len(out) == 0 {
			err = fmt.Errorf("%s/%s: %w", coll, id, replica.ErrNotFound)
		}
		return err
	})
	return out, err
}

func (l *Local) Log(ctx context.Context, space string, limit int) ([]replica.Entry, error) {
	var out []replica.Entry
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		var err error
		out, err = sp.Replica.Log(limit)
		return err
	})
	return out, err
}

func (l *Local) Conflicts(ctx context.Context, space string) ([]replica.ConflictView, error) {
	out := []replica.ConflictView{}
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		cs, err := sp.Replica.Conflicts()
		if cs != nil {
			out = cs
		}
		return err
	})
	return out, err
}

func (l *Local) Rollbacks(ctx context.Context, space string) ([]replica.Rollback, error) {
	var out []replica.Rollback
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		var err error
		out, err = sp.Replica.Rollbacks()
		return err
	})
	return out, err
}

func (l *Local) Violations(ctx context.Context, space string) ([]replica.Violation, error) {
	var out []replica.Violation
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		var err error
		out, err = sp.Replica.Violations()
		return err
	})
	return out, err
}

func (l *Local) Effects(ctx context.Context, space string, from uint64, limit int) ([]eventstream.Effect, error) {
	var out []eventstream.Effect
	err := l.with(ctx, space, false, func(sp *node.Space) error {
		var err error
		out, err = sp.Effects.Read(ctx, max(from, 1), limit)
		return err
	})
	return out, err
}

func (l *Local) UpgradeSchema(ctx context.Context, space, text string) (Written, error) {
	var w Written
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		id, err := sp.Replica.Write(ctx, l.Home.Key, []core.Op{{Kind: core.OpSchema, Schema: text}}, l.ms())
		w = Written{ID: sp.Replica.Schema().ID, Change: id}
		return err
	})
	return w, err
}

func (l *Local) Export(ctx context.Context, space string, since []string, out io.Writer) (Exported, error) {
	var ex Exported
	var heads []core.ID
	for _, s := range since {
		id, err := core.ParseID(s)
		if err != nil {
			return ex, fmt.Errorf("%w: since: %v", ErrInvalidInput, err)
		}
		heads = append(heads, id)
	}
	err := l.with(ctx, space, false, func(sp *node.Space) error {
		ex.Space = sp.Replica.Space()
		n, err := bundle.Export(ctx, out, bundle.Header{Space: ex.Space, Since: heads}, sp.Replica)
		ex.Changes, ex.Heads = int(n), sp.Replica.Heads()
		return err
	})
	return ex, err
}

// Import verifies the whole bundle (a stream is spooled into the home
// first) before anything is applied, then applies it in bounded batches.
func (l *Local) Import(ctx context.Context, in io.Reader) (Imported, error) {
	f, err := bundle.OpenReader(ctx, in, l.Home.Dir, bundle.MaxSize)
	if err != nil {
		return Imported{}, err
	}
	defer f.Close()
	space := f.Header().Space
	if _, err := l.Home.Info(space.String()); err != nil {
		return Imported{}, fmt.Errorf("bundle is for space %s, which this home does not hold (join it first): %w", space, node.ErrUnknownSpace)
	}
	im := Imported{Space: space, Total: int(f.Verified().Changes)}
	err = l.with(ctx, space.String(), false, func(sp *node.Space) error {
		res, err := f.Import(ctx, sp.Replica, nil)
		if err != nil {
			return err
		}
		im.Report = replica.Report{Applied: res.Applied, Invalid: res.Invalid, Duplicates: res.Duplicates, Held: res.Held, Released: res.Released, Rejected: res.Rejected}
		im.Refused = res.Refused
		// An admin who imports a member's use of an invite vouches for it
		// (a later reuse of the code can then never displace the member).
		if _, err := sp.Replica.Acknowledge(ctx, l.Home.Key, l.ms()); err != nil {
			return fmt.Errorf("acknowledge invite uses: %w", err)
		}
		return nil
	})
	return im, err
}

func (l *Local) Members(ctx context.Context, space string) ([]core.Member, error) {
	var out []core.Member
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		st, err := sp.Replica.Status()
		out = st.Members
		return err
	})
	return out, err
}

func (l *Local) Grant(ctx context.Context, space, key, role string) (Written, error) {
	if err := core.CheckRoleName(role); err != nil { // the space's schema decides the rest
		return Written{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	return l.memberOp(ctx, space, key, core.Op{Kind: core.OpGrant, Role: role})
}

func (l *Local) Revoke(ctx context.Context, space, key string) (Written, error) {
	return l.memberOp(ctx, space, key, core.Op{Kind: core.OpRevoke})
}

func (l *Local) memberOp(ctx context.Context, space, key string, op core.Op) (Written, error) {
	member, err := core.ParsePublicKey(key)
	if err != nil {
		return Written{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	op.Member = member
	var w Written
	err = l.with(ctx, space, true, func(sp *node.Space) error {
		id, err := sp.Replica.Write(ctx, l.Home.Key, []core.Op{op}, l.ms())
		w = Written{ID: member.String(), Change: id}
		return err
	})
	return w, err
}

func (l *Local) Invite(ctx context.Context, space string, req InviteRequest) (Invitation, error) {
	if req.TTL <= 0 {
		return Invitation{}, fmt.Errorf("%w: ttl %s: want a positive duration", ErrInvalidInput, req.TTL)
	}
	var inv Invitation
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		info, _ := l.Home.Info(sp.Replica.Space().String())
		addrs := l.inviteAddrs(sp.Replica.Space(), req.Addrs, info.Bootstrap)
		now := l.ms()
		role := req.Role
		if role == "" {
			role = core.RoleWriter
		}
		key, env, err := sp.Replica.CreateRoleInvite(ctx, l.Home.Key, role, now+uint64(req.TTL.Milliseconds()), now)
		if err != nil {
			return err
		}
		code, err := core.InviteCode{Space: sp.Replica.Space(), Name: info.Name, Seed: key.Seed(), Invite: env, Bootstrap: addrs}.Encode()
		if err != nil {
			return err
		}
		_, terms, err := core.DecodeInviteCode(code)
		if err != nil {
			return err
		}
		inv = Invitation{Code: code, Invite: terms.Change, Change: terms.Change, Expires: time.UnixMilli(int64(terms.Expires)).UTC(), Addrs: slices.Clone(addrs)}
		if len(addrs) == 0 {
			inv.Addrs = []string{}
			inv.Warning = NoAddrWarning
		}
		return nil
	})
	return inv, err
}

// NoAddrWarning is Invitation.Warning for a code that carries no address.
const NoAddrWarning = "this code carries no peer address: start the node (tributary run) before inviting, pass --addr, or carry bundles by hand"

// inviteAddrs are the addresses an invite code carries: the running
// node's (else those it had at its last run), then extra; when that is
// none, the addresses this node joined by.
func (l *Local) inviteAddrs(space core.ID, extra, joinedBy []string) []string {
	var addrs []string
	if l.Node != nil {
		addrs = append(addrs, l.Node.Addrs()...)
	} else if l.LastAddrs != nil {
		addrs = append(addrs, l.LastAddrs(space)...)
	}
	addrs = append(addrs, extra...)
	if len(addrs) == 0 {
		addrs = append(addrs, joinedBy...)
	}
	seen := map[string]bool{}
	return slices.DeleteFunc(addrs, func(a string) bool {
		dup := seen[a]
		seen[a] = true
		return dup
	})
}

func (l *Local) Invites(ctx context.Context, space string) ([]core.Invite, error) {
	out := []core.Invite{}
	err := l.with(ctx, space, true, func(sp *node.Space) error {
		if invs := sp.Replica.Invites(); invs != nil {
			out = invs
		}
		return nil
	})
	return out, err
}

func (l *Local) RevokeInvite(ctx context.Context, space, invite string) (Written, error) {
	id, err := core.ParseID(invite)
	if err != nil {
		return Written{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	var w Written
	err = l.with(ctx, space, true, func(sp *node.Space) error {
		change, err := sp.Replica.RevokeInvite(ctx, l.Home.Key, id, l.ms())
		w = Written{ID: id.String(), Change: change}
		return err
	})
	return w, err
}

func (l *Local) SettleInvite(ctx context.Context, space, invite, member string) (Written, error) {
	id, err := core.ParseID(invite)
	if err != nil {
		return Written{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	k, err := core.ParsePublicKey(member)
	if err != nil {
		return Written{}, fmt.Errorf("%w: member: %v", ErrInvalidInput, err)
	}
	var w Written
	err = l.with(ctx, space, true, func(sp *node.Space) error {
		change, err := sp.Replica.SettleInvite(ctx, l.Home.Key, id, k, l.ms())
		w = Written{ID: k.String(), Change: change}
		return err
	})
	return w, err
}

func (l *Local) Sinks(ctx context.Context) ([]SinkStatus, error) {
	if l.Node == nil {
		return nil, ErrNoNode
	}
	out := l.Node.Sinks(ctx)
	if out == nil {
		out = []SinkStatus{}
	}
	return out, nil
}

func (l *Local) ResetSink(ctx context.Context, name string) error {
	if l.Node == nil {
		return ErrNoNode
	}
	return l.Node.ResetSink(ctx, name)
}

func (l *Local) ParkedEffects(ctx context.Context, name string) ([]checkpoint.Parked, error) {
	if l.Node == nil {
		return nil, ErrNoNode
	}
	return l.Node.ParkedEffects(ctx, name)
}

func (l *Local) RetrySink(ctx context.Context, name string) ([]checkpoint.Retried, error) {
	if l.Node == nil {
		return nil, ErrNoNode
	}
	return l.Node.RetrySink(ctx, name)
}

// RenderDoc shows a document as JSON: "id", then its fields, with JSON
// fields embedded as JSON values (not as the text they are stored as).
func RenderDoc(s *schema.Schema, d replica.Document) Doc {
	out := Doc{"id": d.ID}
	coll, _ := s.Collection(d.Collection)
	for k, v := range d.Fields {
		if coll != nil {
			if f, ok := coll.Field(k); ok && f.Kind == schema.JSON {
				if text, ok := v.(string); ok && json.Valid([]byte(text)) {
					out[k] = json.RawMessage(text)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// Follow streams the space's effect log from from on: fn gets each run
// of effects as it is committed, until ctx ends or fn fails.
func (l *Local) Follow(ctx context.Context, space string, from uint64, fn func([]eventstream.Effect) error) error {
	return l.with(ctx, space, false, func(sp *node.Space) error {
		from = max(from, 1)
		for {
			effs, err := sp.Effects.Read(ctx, from, 500)
			if err != nil {
				return err
			}
			if len(effs) > 0 {
				if err := fn(effs); err != nil {
					return err
				}
				from = effs[len(effs)-1].LSN + 1
				continue
			}
			if err := sp.Effects.Wait(ctx, from-1); err != nil {
				return err
			}
		}
	})
}
