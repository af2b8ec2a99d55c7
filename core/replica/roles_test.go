package replica

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/core"
)

// TestReaderSyncsButNeverWrites: a reader is a member (transports admit
// it) whose writes are refused locally and have no effect when received.
func TestReaderSyncsButNeverWrites(t *testing.T) {
	l := newLibrary(t)
	r := l.reps[0]
	if !r.IsMember(l.rita.Public()) || r.Role(l.rita.Public()) != core.RoleReader {
		t.Fatalf("reader: member %v, role %q; want a member with role reader", r.IsMember(l.rita.Public()), r.Role(l.rita.Public()))
	}
	mustWrite(t, r, l.lib, l.clk, book("b1", "Dune"))
	refused(t, r, l.rita, l.clk, core.ErrUnauthorized, "reads but never writes", loanOf("x", "b1", l.rita))
	env, id := signRaw(t, nextChange(t, r, l.rita, l.clk.now(), loanOf("x", "b1", l.rita)), l.rita)
	valid, why := everyReplicaAgrees(t, append(mustExport(t, r), env), id)
	if valid || !strings.Contains(why, "reads but never writes") {
		t.Fatalf("a reader's loan: valid=%v %q", valid, why)
	}
}

// TestGrantsAndInvitesNameDeclaredRoles: a grant or an invite names a role
// the schema declares (built-in or @roles); an invite never grants admin;
// an invite's use grants the role it names.
func TestGrantsAndInvitesNameDeclaredRoles(t *testing.T) {
	ctx := context.Background()
	l := newLibrary(t)
	r := l.reps[0]
	stranger := key(t, 40)
	refused(t, r, l.admin, l.clk, core.ErrSchemaViolation, `role "ghost" is not declared`, core.Op{Kind: core.OpGrant, Member: stranger.Public(), Role: "ghost"})
	if _, _, err := r.CreateRoleInvite(ctx, l.admin, core.RoleAdmin, l.clk.now()+1000, l.clk.now()); !errors.Is(err, core.ErrInvalidChange) {
		t.Fatalf("an invite for admin: %v, want refused as invalid", err)
	}
	if _, _, err := r.CreateRoleInvite(ctx, l.admin, "ghost", l.clk.now()+1000, l.clk.now()); !errors.Is(err, core.ErrSchemaViolation) {
		t.Fatalf("an invite for an undeclared role: %v, want refused", err)
	}
	now := l.clk.now()
	k, env, err := r.CreateRoleInvite(ctx, l.admin, "librarian", now+core.DefaultInviteTTL, now)
	if err != nil {
		t.Fatal(err)
	}
	c, inviteID, _, err := core.Open(env)
	if err != nil {
		t.Fatal(err)
	}
	joiner := key(t, 41)
	use := &core.Change{Version: core.ChangeVersion, Space: c.Space, Author: k.Public(), Seq: 1, Parents: []core.ID{inviteID},
		Height: c.Height + 1, HLC: core.HLC{Wall: c.HLC.Wall + 1}, Ops: []core.Op{{Kind: core.OpGrant, Member: joiner.Public(), Role: "librarian"}}}
	useEnv, _ := signRaw(t, use, k)
	if err := r.AdmitUse(ctx, useEnv, joiner.Public()); err != nil {
		t.Fatal(err)
	}
	if got := r.Role(joiner.Public()); got != "librarian" {
		t.Fatalf("the joiner's role is %q, want librarian", got)
	}
	mustWrite(t, r, joiner, l.clk, book("b7", "Joined"))
}

// TestOldChangesEncodeAsBefore: an op without an attestation encodes
// exactly as before the attestation existed, so old changes keep their
// bytes, IDs and signatures; a meta stored before rules still decodes.
func TestOldChangesEncodeAsBefore(t *testing.T) {
	type opV1 struct { // core.Op before Reads
		Kind          core.OpKind      `cbor:"1,keyasint"`
		Coll          string           `cbor:"2,keyasint,omitempty"`
		Doc           string           `cbor:"3,keyasint,omitempty"`
		Field         string           `cbor:"4,keyasint,omitempty"`
		Value         any              `cbor:"5,keyasint,omitempty"`
		Fields        map[string]any   `cbor:"6,keyasint,omitempty"`
		Delta         int64            `cbor:"7,keyasint,omitempty"`
		Member        core.PublicKey   `cbor:"8,keyasint,omitempty"`
		Role          string           `cbor:"9,keyasint,omitempty"`
		Schema        string           `cbor:"10,keyasint,omitempty"`
		Admins        []core.PublicKey `cbor:"11,keyasint,omitempty"`
		MaxClockAhead uint64           `cbor:"12,keyasint,omitempty"`
		Name          string           `cbor:"13,keyasint,omitempty"`
		Expires       uint64           `cbor:"14,keyasint,omitempty"`
	}
	op := core.Op{Kind: core.OpCreate, Coll: "Book", Doc: "b1", Fields: map[string]any{"title": "Dune", "year": int64(1965)}}
	now, err := core.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	before, err := core.Marshal(opV1{Kind: op.Kind, Coll: op.Coll, Doc: op.Doc, Fields: op.Fields})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, before) {
		t.Fatalf("an op without attestation encodes as %x, before as %x", now, before)
	}
	old, err := core.Marshal(metaV1{Height: 3, Seq: 2, Valid: false, Reason: "not authorized: x"})
	if err != nil {
		t.Fatal(err)
	}
	var m meta
	if err := core.Unmarshal(old, &m); err != nil {
		t.Fatalf("a meta stored before rules: %v", err)
	}
	if m.Height != 3 || m.Seq != 2 || m.Valid || m.AuthErr != "not authorized: x" || m.ok() {
		t.Fatalf("old meta read as %+v", m)
	}
}

// TestKeyPrefixesAreDistinct: the replica's keys share the store with the
// node's effect log (e/) and parked effects (p/).
func TestKeyPrefixesAreDistinct(t *testing.T) {
	seen := map[string]string{"e/": "effect log", "p/": "parked effects"}
	for _, p := range []string{pGenesis, pChange, pMeta, pVV, pAuthor, pHeight, pHead, pOrphan, pAuthorIx, pDoc, pDocIndex,
		pCreate, pConflict, pEquivoc, pSeq, pValue, pDocValue, pIndexed, pReader, pEdge} {
		p = p[:2]
		if other, dup := seen[p]; dup {
			t.Errorf("prefix %q is used twice (%s)", p, other)
		}
		seen[p] = "replica"
	}
}
