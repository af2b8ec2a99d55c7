package spec

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/bundle"
)

// The generator. Every key comes from a fixed seed and every clock is a
// constant, so -update writes the same bytes every time (Ed25519
// signatures are deterministic).

// notesSchema is the schema of the vectors that need no rules.
const notesSchema = `type Person @collection {
  name: String! @length(min: 1, max: 100)
}

type Note @collection {
  title: String! @length(min: 1, max: 200)
  body: String
  stars: Int @range(min: 0, max: 5)
  tags: [String!] @set
  views: Int @counter
  author: Person
}
`

// t0 is the clock of every genesis (ms since the epoch: 2024-01-01).
const t0 = 1_704_067_200_000

var generators = []struct {
	file string
	gen  func(g *gen)
}{
	{"valid-change", genValid},
	{"forged-signature", genForged},
	{"oversize", genOversize},
	{"invalid-text", genInvalidText},
	{"non-member", genNonMember},
	{"revoked-concurrent", genRevoked},
	{"invite-reuse", genInviteReuse},
	{"invite-contested", genInviteContested(false)},
	{"invite-settled", genInviteContested(true)},
	{"concurrent-writes", genConcurrentWrites},
	{"missing-reference", genMissingReference},
	{"rules-rollback", genRulesRollback},
	{"bundle-v2", genBundle},
	{"placement", genPlacement},
	{"invite-code", genInviteCode},
	{"reconcile", genReconcile},
	{"types", genTypes},
	{"evolve", genEvolve},
}

func writeVectors(t *testing.T) {
	if err := os.MkdirAll(vectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, g := range generators {
		v := &Vector{Name: g.file}
		gn := &gen{t: t, v: v, keys: map[string]core.PrivateKey{}, envs: map[string][]byte{}}
		g.gen(gn)
		// The expected outcome is what this implementation reaches in the
		// first order; checkVector then requires every order to agree.
		var got Expect
		if len(v.Deliveries) > 0 {
			var err error
			if got, err = run(v, gn.envs, v.Deliveries[0]); err != nil {
				t.Fatalf("%s: %v", g.file, err)
			}
		}
		docs := v.Expect.Documents
		v.Expect = got
		if len(docs) == 0 {
			v.Expect.Documents = nil
		}
		members := gn.members
		v.Expect.Members = nil
		for _, m := range got.Members {
			if slices.Contains(members, m.Key) {
				v.Expect.Members = append(v.Expect.Members, m)
			}
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vectorDir, g.file+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// gen builds one vector.
type gen struct {
	t       *testing.T
	v       *Vector
	keys    map[string]core.PrivateKey
	envs    map[string][]byte
	members []string // keys whose standing the vector expects
}

func (g *gen) describe(desc string, sections ...string) {
	g.v.Description, g.v.Sections = desc, sections
}

// key makes a named key from a seed of 32 bytes of b.
func (g *gen) key(name string, b byte) core.PrivateKey {
	seed := bytes.Repeat([]byte{b}, 32)
	k, err := core.PrivateKeyFromSeed(seed)
	if err != nil {
		g.t.Fatal(err)
	}
	g.keys[name] = k
	g.v.Keys = append(g.v.Keys, Key{Name: name, Seed: hex.EncodeToString(seed), Public: k.Public().String()})
	return k
}

// expectMember asks the vector to pin the standing of these keys.
func (g *gen) expectMember(names ...string) {
	g.members = append(g.members, names...)
	for _, n := range names {
		g.v.Expect.Members = append(g.v.Expect.Members, Member{Key: n})
	}
}

// expectDoc asks the vector to pin a document's final state.
func (g *gen) expectDoc(coll, id string) {
	g.v.Expect.Documents = append(g.v.Expect.Documents, Document{Collection: coll, ID: id})
}

func (g *gen) replica() *replica.Replica {
	r, err := replica.Open(replica.Options{Dir: g.t.TempDir()})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { r.Close() })
	return r
}

// record adds a named envelope to the vector.
func (g *gen) record(name, note string, env []byte) {
	if _, dup := g.envs[name]; dup {
		g.t.Fatalf("change %s recorded twice", name)
	}
	g.envs[name] = env
	c := Change{Name: name, Note: note, EnvelopeSize: len(env)}
	if len(env) > 64<<10 {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		zw.Write(env)
		zw.Close()
		c.EnvelopeGzip = base64.StdEncoding.EncodeToString(z.Bytes())
	} else {
		c.Envelope = hex.EncodeToString(env)
	}
	if s, err := core.DecodeSigned(env); err == nil {
		c.ID = s.ID().String()
	}
	g.v.Changes = append(g.v.Changes, c)
}

// found makes the space on r: the genesis, founded by admin.
func (g *gen) found(r *replica.Replica, admin, schemaText string) core.ID {
	g.v.Schema = schemaText
	id, err := r.Found(context.Background(), g.keys[admin], "spec", schemaText, nil, t0)
	if err != nil {
		g.t.Fatal(err)
	}
	g.record("genesis", "the genesis: founded by "+admin, g.envelope(r, id))
	return id
}

func (g *gen) envelope(r *replica.Replica, id core.ID) []byte {
	env, err := r.Envelope(id)
	if err != nil {
		g.t.Fatal(err)
	}
	return env
}

// write writes ops by key on r at clock now and records the change.
func (g *gen) write(r *replica.Replica, name, key, note string, now uint64, ops ...core.Op) core.ID {
	id := g.store(r, name, key, now, ops...)
	g.record(name, note, g.envelope(r, id))
	return id
}

// store writes ops by key on r without recording the change.
func (g *gen) store(r *replica.Replica, name, key string, now uint64, ops ...core.Op) core.ID {
	id, err := r.Write(context.Background(), g.keys[key], ops, now)
	if err != nil {
		g.t.Fatalf("%s: %v", name, err)
	}
	return id
}

// receive hands r recorded changes.
func (g *gen) receive(r *replica.Replica, names ...string) {
	var envs [][]byte
	for _, n := range names {
		envs = append(envs, g.envs[n])
	}
	rep, err := r.Receive(context.Background(), envs)
	if err != nil {
		g.t.Fatal(err)
	}
	if len(rep.Rejected) > 0 {
		g.t.Fatalf("receive %v: %v", names, rep.Rejected[0].Err)
	}
}

// id is the ID of a recorded change.
func (g *gen) id(name string) core.ID { return core.IDOf(mustBody(g, name)) }

// sync hands dst every change src holds.
func (g *gen) sync(dst, src *replica.Replica) {
	envs, err := src.Export(nil)
	if err != nil {
		g.t.Fatal(err)
	}
	rep, err := dst.Receive(context.Background(), envs)
	if err != nil {
		g.t.Fatal(err)
	}
	if len(rep.Rejected) > 0 {
		g.t.Fatalf("sync: %v", rep.Rejected[0].Err)
	}
}

// clone is a new replica holding everything r holds.
func (g *gen) clone(r *replica.Replica) *replica.Replica {
	c := g.replica()
	g.sync(c, r)
	return c
}

// build makes, without storing it, a change by key on top of r's heads
// (placement computed as a writer would), with the author's seq and prev.
func (g *gen) build(r *replica.Replica, key string, seq uint64, prev core.ID, now uint64, ops ...core.Op) *core.Change {
	heads := core.SortIDs(r.Heads())
	var h uint64
	var clk core.HLC
	for _, p := range heads {
		c, _, _, err := core.Open(g.envelope(r, p))
		if err != nil {
			g.t.Fatal(err)
		}
		h = max(h, c.Height)
		if c.HLC.Compare(clk) > 0 {
			clk = c.HLC
		}
	}
	return &core.Change{Version: core.ChangeVersion, Space: r.Space(), Author: g.keys[key].Public(), Seq: seq, Prev: prev,
		Parents: heads, Height: h + 1, HLC: core.NextHLC(clk, now, core.DefaultMaxClockAhead), Ops: ops}
}

// sign signs c with key, whatever its size or content, and returns the
// envelope.
func (g *gen) sign(c *core.Change, key string) []byte {
	body, err := c.Encode()
	if err != nil {
		g.t.Fatal(err)
	}
	env, err := core.Marshal(core.Signed{Body: body, Sig: g.keys[key].SignID(core.IDOf(body))})
	if err != nil {
		g.t.Fatal(err)
	}
	return env
}

// deliver sets the delivery orders; with none, the recording order.
func (g *gen) deliver(orders ...[]string) {
	if len(orders) == 0 {
		var all []string
		for _, c := range g.v.Changes {
			all = append(all, c.Name)
		}
		orders = [][]string{all}
	}
	g.v.Deliveries = orders
}

// deliverBothWays delivers in the recording order and in its reverse
// (everything held until the genesis arrives).
func (g *gen) deliverBothWays() {
	var all []string
	for _, c := range g.v.Changes {
		all = append(all, c.Name)
	}
	back := slices.Clone(all)
	slices.Reverse(back)
	g.deliver(all, back)
}

// withBody adds the decoded body and signature of a recorded change, so
// the vector pins its encoding byte for byte.
func (g *gen) withBody(name string) {
	i := slices.IndexFunc(g.v.Changes, func(c Change) bool { return c.Name == name })
	s, err := core.DecodeSigned(g.envs[name])
	if err != nil {
		g.t.Fatal(err)
	}
	c, err := s.Decode()
	if err != nil {
		g.t.Fatal(err)
	}
	text := func(id core.ID) string { return id.String() }
	b := &Body{Version: c.Version, Space: text(c.Space), Author: c.Author.String(), Seq: c.Seq, Prev: text(c.Prev),
		Parents: []string{}, Height: c.Height, HLC: c.HLC.String()}
	for _, p := range c.Parents {
		b.Parents = append(b.Parents, p.String())
	}
	for _, o := range c.Ops {
		op := Op{Kind: o.Kind.String(), Coll: o.Coll, Doc: o.Doc, Field: o.Field, Value: o.Value, Fields: o.Fields,
			Delta: o.Delta, Role: o.Role, Schema: o.Schema, Name: o.Name}
		if !o.Member.IsZero() {
			op.Member = o.Member.String()
		}
		if len(o.Reads) > 0 || len(o.Admins) > 0 || o.MaxClockAhead != 0 || o.Expires != 0 {
			g.t.Fatalf("%s: Body does not carry reads, admins, clock bounds or expiries", name)
		}
		b.Ops = append(b.Ops, op)
	}
	g.v.Changes[i].Body = b
	g.v.Changes[i].Sig = hex.EncodeToString(s.Sig)
}

func create(coll, id string, fields map[string]any) core.Op {
	return core.Op{Kind: core.OpCreate, Coll: coll, Doc: id, Fields: fields}
}

func set(coll, id, field string, v any) core.Op {
	return core.Op{Kind: core.OpSet, Coll: coll, Doc: id, Field: field, Value: v}
}

func grant(k core.PrivateKey, role string) core.Op {
	return core.Op{Kind: core.OpGrant, Member: k.Public(), Role: role}
}

// genValid: a genesis and a valid create, with their bodies, IDs and
// signatures pinned byte for byte.
func genValid(g *gen) {
	g.describe("A genesis and one valid create by the founder: the bodies encode byte for byte as SPEC §3 says, the IDs are the CIDs of SHA-256 of the bodies, the signatures are Ed25519 over the domain-separated ID, and the document holds the create's fields.",
		"§1.2", "§2", "§3", "§4", "§11", "§12.6")
	g.key("admin", 1)
	g.expectMember("admin")
	r := g.replica()
	g.found(r, "admin", notesSchema)
	g.write(r, "create", "admin", "create Note/n1 with a title, stars and tags", t0+1000,
		create("Note", "n1", map[string]any{"title": "Hello", "stars": int64(4), "tags": []any{"a", "b"}}))
	g.withBody("genesis")
	g.withBody("create")
	g.expectDoc("Note", "n1")
	g.deliver([]string{"genesis", "create"}, []string{"create", "genesis"})
}

// genForged: signatures that do not verify are refused.
func genForged(g *gen) {
	g.describe("A change whose signature has one bit flipped, and a change signed by a key other than its author, are refused (bad-signature) and store nothing; the genuine change is then stored.",
		"§4", "§6.2")
	g.key("admin", 1)
	g.key("mallory", 9)
	r := g.replica()
	g.found(r, "admin", notesSchema)
	genuine := g.store(r, "genuine", "admin", t0+1000, create("Note", "n1", map[string]any{"title": "Real"}))
	env := g.envelope(r, genuine)
	s, _ := core.DecodeSigned(env)
	s.Sig = slices.Clone(s.Sig)
	s.Sig[0] ^= 1
	flipped, _ := s.Encode()
	c := g.build(r, "admin", 3, genuine, t0+2000, create("Note", "n2", map[string]any{"title": "Forged"}))
	body, _ := c.Encode()
	other, _ := core.Marshal(core.Signed{Body: body, Sig: g.keys["mallory"].SignID(core.IDOf(body))})
	// The flipped copy has the genuine body, so it comes first: once the
	// body is stored, a copy is a duplicate whatever its signature.
	g.record("genuine", "a valid create by admin", env)
	g.record("flipped", "the genuine change with bit 0 of its signature flipped (same body, so same ID)", flipped)
	g.record("wrong-signer", "a change by admin signed by mallory's key", other)
	g.expectDoc("Note", "n1")
	g.expectDoc("Note", "n2")
	g.deliver([]string{"genesis", "flipped", "wrong-signer", "genuine"})
}

// genOversize: a change of exactly MaxChangeBytes is stored, one byte
// more is refused.
func genOversize(g *gen) {
	g.describe("A change whose body is exactly 4 MiB (4194304 bytes) is stored and valid; the same change with a body one byte longer is refused as malformed. Envelopes are given gzipped.",
		"§5", "§6.1")
	g.key("admin", 1)
	r := g.replica()
	g.found(r, "admin", notesSchema)
	sized := func(doc string, size int) []byte {
		mk := func(n int) *core.Change {
			return g.build(r, "admin", 2, g.id("genesis"), t0+1000, create("Note", doc, map[string]any{"title": "big", "body": strings.Repeat("x", n)}))
		}
		b0, _ := mk(100_000).Encode()
		c := mk(100_000 + size - len(b0))
		if b, _ := c.Encode(); len(b) != size {
			g.t.Fatalf("body of %d bytes, want %d", len(b), size)
		}
		return g.sign(c, "admin")
	}
	g.record("at-limit", "a create whose body is exactly 4194304 bytes", sized("big", core.MaxChangeBytes))
	g.record("over-limit", "a create whose body is 4194305 bytes", sized("big2", core.MaxChangeBytes+1))
	g.expectDoc("Note", "big")
	g.expectDoc("Note", "big2")
	g.deliver([]string{"genesis", "over-limit", "at-limit"})
}

// genInvalidText: invalid UTF-8 anywhere, and a bad document id.
func genInvalidText(g *gen) {
	g.describe("Invalid UTF-8 in a document id, in a field value, and in a field name make a change malformed (refused); a document id that is valid UTF-8 but breaks the id syntax ('/', control characters, '..', over 256 bytes) is an invalid change (refused); a valid id of exactly 256 bytes is stored.",
		"§2.2", "§6.1", "§6.3")
	g.key("admin", 1)
	r := g.replica()
	g.found(r, "admin", notesSchema)
	bad := func(name, note string, op core.Op) {
		g.record(name, note, g.sign(g.build(r, "admin", 2, g.id("genesis"), t0+1000, op), "admin"))
	}
	bad("id-utf8", `document id "bad\xffid"`, create("Note", "bad\xffid", map[string]any{"title": "t"}))
	bad("value-utf8", `title "bad\xfftitle"`, create("Note", "n1", map[string]any{"title": "bad\xfftitle"}))
	bad("set-value-utf8", `a set op's value "x\xc3"`, set("Note", "n1", "body", "x\xc3"))
	bad("field-name-utf8", `field name "ti\xfftle"`, create("Note", "n1", map[string]any{"ti\xfftle": "t"}))
	bad("id-slash", `document id "a/b"`, create("Note", "a/b", map[string]any{"title": "t"}))
	bad("id-control", `document id "a\x07b"`, create("Note", "a\x07b", map[string]any{"title": "t"}))
	bad("id-c1-control", `document id "a\u0085b" (U+0085)`, create("Note", "a\u0085b", map[string]any{"title": "t"}))
	bad("id-dotdot", `document id ".."`, create("Note", "..", map[string]any{"title": "t"}))
	bad("id-257", "a document id of 257 bytes", create("Note", strings.Repeat("é", 128)+"x", map[string]any{"title": "t"}))
	bad("id-256", "a document id of 256 bytes (é is two bytes): the longest allowed", create("Note", strings.Repeat("é", 128), map[string]any{"title": "t"}))
	g.expectDoc("Note", strings.Repeat("é", 128))
	g.deliverBothWays()
}

// genNonMember: a change by a key without a grant is stored without
// effect.
func genNonMember(g *gen) {
	g.describe("A well-formed change by a key that holds no grant is stored but invalid (unauthorized) and has no effect; so is a grant signed by a writer; the founder's change is valid.",
		"§8.2", "§10.3", "§11")
	g.key("admin", 1)
	g.key("stranger", 7)
	g.key("writer", 2)
	g.expectMember("admin", "stranger", "writer")
	r := g.replica()
	g.found(r, "admin", notesSchema)
	g.write(r, "grant-writer", "admin", "admin grants writer the role writer", t0+1000, grant(g.keys["writer"], core.RoleWriter))
	g.record("stranger-create", "stranger creates Note/s1", g.sign(g.build(r, "stranger", 1, core.ID{}, t0+2000, create("Note", "s1", map[string]any{"title": "Mine"})), "stranger"))
	g.record("writer-grants", "writer grants stranger the role writer", g.sign(g.build(r, "writer", 1, core.ID{}, t0+2000, grant(g.keys["stranger"], core.RoleWriter)), "writer"))
	g.write(r, "admin-create", "admin", "admin creates Note/a1", t0+3000, create("Note", "a1", map[string]any{"title": "Ours"}))
	g.expectDoc("Note", "s1")
	g.expectDoc("Note", "a1")
	g.deliverBothWays()
}

// genRevoked: a revoked member's concurrent write loses its effect.
func genRevoked(g *gen) {
	g.describe("Admin grants bob writer; bob writes before the revocation (in its past: stays valid); admin revokes bob while bob, not having seen it, writes again (concurrent with the revocation: unauthorized). Whichever arrives first, every order ends with the same verdicts and documents: the concurrent write has no effect.",
		"§8.1", "§8.2", "§8.3", "§11")
	g.key("admin", 1)
	g.key("bob", 2)
	g.expectMember("admin", "bob")
	a := g.replica()
	g.found(a, "admin", notesSchema)
	g.write(a, "grant-bob", "admin", "admin grants bob writer", t0+1000, grant(g.keys["bob"], core.RoleWriter))
	b := g.clone(a)
	g.write(b, "bob-before", "bob", "bob creates Note/b1", t0+2000, create("Note", "b1", map[string]any{"title": "Early"}))
	g.sync(a, b)
	g.write(a, "revoke-bob", "admin", "admin revokes bob, having seen bob-before", t0+3000, core.Op{Kind: core.OpRevoke, Member: g.keys["bob"].Public()})
	g.write(b, "bob-concurrent", "bob", "bob sets Note/b1 title and creates Note/b2, concurrent with the revocation", t0+3500,
		set("Note", "b1", "title", "Late"), create("Note", "b2", map[string]any{"title": "Late"}))
	g.expectDoc("Note", "b1")
	g.expectDoc("Note", "b2")
	g.deliver(
		[]string{"genesis", "grant-bob", "bob-before", "revoke-bob", "bob-concurrent"},
		[]string{"genesis", "grant-bob", "bob-before", "bob-concurrent", "revoke-bob"},
	)
}

// invite makes an invite by admin for a throwaway key from seed b.
func (g *gen) invite(r *replica.Replica, name, keyName string, b byte, now, expires uint64) core.ID {
	k := g.key(keyName, b)
	return g.write(r, name, "admin", "admin makes an invite for the throwaway key "+keyName+", role writer", now,
		core.Op{Kind: core.OpInvite, Member: k.Public(), Role: core.RoleWriter, Expires: expires})
}

// use is the use of the invite made by change inv, signed offline by
// the invite key, granting member.
func (g *gen) use(r *replica.Replica, name, inviteKey string, inv core.ID, member string, now uint64) {
	ic, _, _, err := core.Open(g.envelope(r, inv))
	if err != nil {
		g.t.Fatal(err)
	}
	terms, ok := core.InviteIn(core.MemberView(ic, inv), g.keys[inviteKey].Public())
	if !ok {
		g.t.Fatal("no invite")
	}
	code := core.InviteCode{Space: r.Space(), Seed: g.keys[inviteKey].Seed(), Invite: g.envelope(r, inv)}
	s, _, err := code.InviteUseChange(terms, g.keys[member].Public(), now)
	if err != nil {
		g.t.Fatal(err)
	}
	env, _ := s.Encode()
	g.record(name, "the invite key grants "+member+" the invite's role, on top of the invite", env)
}

// genInviteReuse: a second use after an acknowledged first one loses.
func genInviteReuse(g *gen) {
	expires := uint64(t0 + 86_400_000)
	g.describe("Admin makes an invite (expiring one day after genesis). Ann uses it; admin's node acknowledges the use (an admin grant naming ann, with the use in its past). A second use of the same code, by carl, arrives later: it loses (unauthorized, 'already used by an acknowledged grant') in every order, and carl is no member. A use dated after the expiry is refused outright (invalid-change).",
		"§7.1", "§8.5", "§11", "§14.4")
	g.key("admin", 1)
	g.key("ann", 3)
	g.key("carl", 4)
	g.expectMember("admin", "ann", "carl", "invite-key")
	r := g.replica()
	g.found(r, "admin", notesSchema)
	inv := g.invite(r, "invite", "invite-key", 0x20, t0+1000, expires)
	g.use(r, "use-ann", "invite-key", inv, "ann", t0+5000)
	g.use(r, "use-carl", "invite-key", inv, "carl", t0+6000)
	ic, _, _, _ := core.Open(g.envelope(r, inv))
	late := &core.Change{Version: core.ChangeVersion, Space: r.Space(), Author: g.keys["invite-key"].Public(), Seq: 1,
		Parents: []core.ID{inv}, Height: ic.Height + 1, HLC: core.HLC{Wall: expires + 1},
		Ops: []core.Op{{Kind: core.OpGrant, Member: g.keys["carl"].Public(), Role: core.RoleWriter}}}
	g.record("use-expired", "a use by carl dated 1 ms after the invite's expiry", g.sign(late, "invite-key"))
	g.receive(r, "use-ann")
	g.write(r, "ack-ann", "admin", "admin acknowledges ann's use: a grant of writer to ann with the use in its past", t0+7000, grant(g.keys["ann"], core.RoleWriter))
	g.write(r, "ann-create", "ann", "ann, now a member, creates Note/a1", t0+8000, create("Note", "a1", map[string]any{"title": "Ann's"}))
	g.record("carl-create", "carl creates Note/c1 on top of its use", g.sign(&core.Change{Version: core.ChangeVersion, Space: r.Space(),
		Author: g.keys["carl"].Public(), Seq: 1, Parents: []core.ID{g.id("use-carl")}, Height: ic.Height + 2,
		HLC: core.HLC{Wall: t0 + 6500}, Ops: []core.Op{create("Note", "c1", map[string]any{"title": "Carl's"})}}, "carl"))
	g.expectDoc("Note", "a1")
	g.expectDoc("Note", "c1")
	g.deliver(
		[]string{"genesis", "invite", "use-ann", "ack-ann", "ann-create", "use-carl", "carl-create", "use-expired"},
		[]string{"genesis", "invite", "use-carl", "carl-create", "use-ann", "ack-ann", "ann-create", "use-expired"},
	)
}

func mustBody(g *gen, name string) []byte {
	s, err := core.DecodeSigned(g.envs[name])
	if err != nil {
		g.t.Fatal(err)
	}
	return s.Body
}

// genInviteContested: two unacknowledged uses; with settle, an admin
// settles the contest.
func genInviteContested(settle bool) func(g *gen) {
	return func(g *gen) {
		if settle {
			g.describe("Two uses of one invite, by ann and by carl, neither acknowledged (invite-contested), then an admin settles it with a grant naming carl, written with both uses in its past: carl's use stands (acknowledged), ann's loses, in either order of the uses.",
				"§8.5", "§11")
		} else {
			g.describe("Two uses of one invite, by ann and by carl, neither acknowledged: the invite is contested, both uses are unauthorized, neither is a member, in either order.",
				"§8.5", "§11")
		}
		expires := uint64(t0 + 86_400_000)
		g.key("admin", 1)
		g.key("ann", 3)
		g.key("carl", 4)
		g.expectMember("ann", "carl")
		r := g.replica()
		g.found(r, "admin", notesSchema)
		inv := g.invite(r, "invite", "invite-key", 0x21, t0+1000, expires)
		g.use(r, "use-ann", "invite-key", inv, "ann", t0+5000)
		g.use(r, "use-carl", "invite-key", inv, "carl", t0+6000)
		if !settle {
			g.deliver([]string{"genesis", "invite", "use-ann", "use-carl"}, []string{"genesis", "invite", "use-carl", "use-ann"})
			return
		}
		g.receive(r, "use-ann", "use-carl")
		g.write(r, "settle-carl", "admin", "admin settles the contest: a grant of writer to carl with both uses in its past", t0+9000, grant(g.keys["carl"], core.RoleWriter))
		g.deliver([]string{"genesis", "invite", "use-ann", "use-carl", "settle-carl"}, []string{"genesis", "invite", "use-carl", "use-ann", "settle-carl"})
	}
}

// genConcurrentWrites: concurrent field writes, counters and sets merge.
func genConcurrentWrites(g *gen) {
	g.describe("Ann and bob, from the same past, write Note/n1 concurrently: both set title (bob's clock is later: bob wins; the conflict stays open, listed with its winner and loser), ann sets stars and bob clears body (different fields: both apply), both increment views (counters add: 3+4 on 1), ann adds tag z and removes tag a while bob adds tag a again (add-wins: a survives, z added). A later write by ann that has both in its past resolves nothing else but replaces stars.",
		"§12")
	g.key("admin", 1)
	g.key("ann", 3)
	g.key("bob", 4)
	a := g.replica()
	g.found(a, "admin", notesSchema)
	g.write(a, "grants", "admin", "admin grants ann and bob writer", t0+1000, grant(g.keys["ann"], core.RoleWriter), grant(g.keys["bob"], core.RoleWriter))
	g.write(a, "create", "ann", "ann creates Note/n1", t0+2000,
		create("Note", "n1", map[string]any{"title": "First", "body": "text", "views": int64(1), "tags": []any{"a", "b"}}))
	b := g.clone(a)
	inc := func(n int64) core.Op {
		return core.Op{Kind: core.OpIncrement, Coll: "Note", Doc: "n1", Field: "views", Delta: n}
	}
	tag := func(kind core.OpKind, v string) core.Op {
		return core.Op{Kind: kind, Coll: "Note", Doc: "n1", Field: "tags", Value: v}
	}
	g.write(a, "ann-writes", "ann", "ann: title Ann, stars 3, views +3, add z, remove a", t0+3000,
		set("Note", "n1", "title", "Ann"), set("Note", "n1", "stars", int64(3)), inc(3), tag(core.OpAdd, "z"), tag(core.OpRemove, "a"))
	g.write(b, "bob-writes", "bob", "bob (clock 1 s later): title Bob, body cleared, views +4, add a", t0+4000,
		set("Note", "n1", "title", "Bob"), set("Note", "n1", "body", nil), inc(4), tag(core.OpAdd, "a"))
	g.sync(a, b)
	g.write(a, "ann-after", "ann", "ann, having both in its past, sets stars 5", t0+5000, set("Note", "n1", "stars", int64(5)))
	g.expectDoc("Note", "n1")
	g.deliver(
		[]string{"genesis", "grants", "create", "ann-writes", "bob-writes", "ann-after"},
		[]string{"genesis", "grants", "create", "bob-writes", "ann-writes", "ann-after"},
		[]string{"ann-after", "bob-writes", "ann-writes", "create", "grants", "genesis"},
	)
}

// genMissingReference: references must exist in the causal past.
func genMissingReference(g *gen) {
	g.describe("Note.author references a Person. A note naming a person never created is a schema violation; so is one naming a person created by a concurrent change (not in its past); one naming a person in its past is valid, and so is one naming a person created by an earlier op of the same change. The reference stays satisfied after the person is deleted.",
		"§10.2", "§11")
	g.key("admin", 1)
	g.key("ann", 3)
	a := g.replica()
	g.found(a, "admin", notesSchema)
	g.write(a, "grant-ann", "admin", "admin grants ann writer", t0+500, grant(g.keys["ann"], core.RoleWriter))
	g.write(a, "person-p1", "admin", "create Person/p1", t0+1000, create("Person", "p1", map[string]any{"name": "P1"}))
	b := g.clone(a)
	g.write(b, "person-p2", "ann", "ann creates Person/p2 (on another replica: concurrent with what follows)", t0+1500, create("Person", "p2", map[string]any{"name": "P2"}))
	g.write(a, "ref-ok", "admin", "Note/n1 by Person/p1 (in its past), then delete Person/p1", t0+2000,
		create("Note", "n1", map[string]any{"title": "ok", "author": "p1"}), core.Op{Kind: core.OpDelete, Coll: "Person", Doc: "p1"})
	g.write(a, "ref-same-change", "admin", "create Person/p3 and Note/n2 by it in one change", t0+2500,
		create("Person", "p3", map[string]any{"name": "P3"}), create("Note", "n2", map[string]any{"title": "same", "author": "p3"}))
	g.record("ref-missing", "Note/n3 by Person/nobody, never created",
		g.sign(g.build(a, "admin", 6, g.id("ref-same-change"), t0+3000, create("Note", "n3", map[string]any{"title": "missing", "author": "nobody"})), "admin"))
	g.receive(a, "ref-missing")
	g.record("ref-concurrent", "Note/n4 by Person/p2, created by a change not in its past",
		g.sign(g.build(a, "admin", 7, g.id("ref-missing"), t0+3500, create("Note", "n4", map[string]any{"title": "concurrent", "author": "p2"})), "admin"))
	for _, d := range []string{"n1", "n2", "n3", "n4"} {
		g.expectDoc("Note", d)
	}
	g.expectDoc("Person", "p1")
	g.deliver(
		[]string{"genesis", "grant-ann", "person-p1", "ref-ok", "ref-same-change", "ref-missing", "person-p2", "ref-concurrent"},
		[]string{"genesis", "grant-ann", "person-p1", "person-p2", "ref-ok", "ref-same-change", "ref-missing", "ref-concurrent"},
	)
}

// genRulesRollback: the lending library's offline loans.
func genRulesRollback(g *gen) {
	g.describe("The lending library (core/replica/testdata/lending.graphql). The librarian adds Book/b1. Offline, ann (granted before bob) borrows b1 (Loan/la) and bob borrows b1 (Loan/lb), returns it and reviews it. When the branches meet, lb cannot stand with la (each one's @create rule is false given the other): by the winner rule bob's loan is rolled back; bob's return and review relied on it and are rolled back with it. A loan of b1 by bob written on top of la (hand-built: a node refuses it locally) breaks the @create rule at its own past: rule-violation. In every order the same changes are rolled back and the same documents remain.",
		"§10.4", "§11", "RULES.md Precise semantics")
	lending, err := os.ReadFile("../core/replica/testdata/lending.graphql")
	if err != nil {
		g.t.Fatal(err)
	}
	g.key("admin", 1)
	g.key("librarian", 2)
	g.key("ann", 3)
	g.key("bob", 4)
	g.expectMember("librarian", "ann", "bob")
	a := g.replica()
	g.found(a, "admin", string(lending))
	g.write(a, "grants", "admin", "admin grants librarian, then ann, then bob (ann is senior to bob)", t0+1000,
		grant(g.keys["librarian"], "librarian"), grant(g.keys["ann"], "member"), grant(g.keys["bob"], "member"))
	g.write(a, "book", "librarian", "the librarian adds Book/b1", t0+2000, create("Book", "b1", map[string]any{"title": "Dune"}))
	b := g.clone(a)
	loan := func(id, who string) core.Op {
		return create("Loan", id, map[string]any{"book": "b1", "borrower": g.keys[who].Public().String()})
	}
	g.write(a, "loan-ann", "ann", "ann borrows b1 (Loan/la), offline", t0+3000, loan("la", "ann"))
	g.write(b, "loan-bob", "bob", "bob borrows b1 (Loan/lb), offline", t0+3100, loan("lb", "bob"))
	g.write(b, "return-bob", "bob", "bob returns lb", t0+3200, set("Loan", "lb", "returned", true))
	g.write(b, "review-bob", "bob", "bob reviews b1: his returned loan makes the @create rule of Review true", t0+3300,
		create("Review", "rb", map[string]any{"book": "b1", "stars": int64(4)}))
	g.sync(a, b) // a now holds both branches: la and bob's three changes
	late := g.build(a, "bob", 4, g.id("review-bob"), t0+3400, loan("lc", "bob"))
	g.record("loan-bob-late", "bob borrows b1 again (Loan/lc) with la, still open, in its past", g.sign(late, "bob"))
	for _, d := range [][2]string{{"Loan", "la"}, {"Loan", "lb"}, {"Loan", "lc"}, {"Review", "rb"}, {"Book", "b1"}} {
		g.expectDoc(d[0], d[1])
	}
	g.deliver(
		[]string{"genesis", "grants", "book", "loan-ann", "loan-bob", "return-bob", "review-bob", "loan-bob-late"},
		[]string{"genesis", "grants", "book", "loan-bob", "return-bob", "review-bob", "loan-ann", "loan-bob-late"},
		[]string{"loan-bob-late", "review-bob", "return-bob", "loan-bob", "loan-ann", "book", "grants", "genesis"},
	)
}

// genBundle: a bundle file's bytes.
func genBundle(g *gen) {
	g.describe("A version 2 bundle file holding a genesis, a grant and a create, exported from a replica with no since heads: its bytes are pinned (magic, header, frames, trailer, SHA-256); decoding gives the envelopes, encoding them gives the file again; the same file with one byte of a change altered is refused as corrupt.",
		"§16.1")
	g.key("admin", 1)
	g.key("ann", 3)
	r := g.replica()
	space := g.found(r, "admin", notesSchema)
	g.write(r, "grant-ann", "admin", "admin grants ann writer", t0+1000, grant(g.keys["ann"], core.RoleWriter))
	g.write(r, "ann-create", "ann", "ann creates Note/n1", t0+2000, create("Note", "n1", map[string]any{"title": "Bundled"}))
	var file bytes.Buffer
	if _, err := bundle.Export(context.Background(), &file, bundle.Header{Space: space}, r); err != nil {
		g.t.Fatal(err)
	}
	raw := file.Bytes()
	corrupt := slices.Clone(raw)
	at := len(raw) - 60 // inside the last envelope, before the trailer
	corrupt[at] ^= 0x01
	g.v.Bundle = &Bundle{File: hex.EncodeToString(raw), Space: space.String(), Since: nil,
		Changes: []string{"genesis", "grant-ann", "ann-create"}, Corrupt: hex.EncodeToString(corrupt), CorruptByte: at}
	g.expectDoc("Note", "n1")
	g.deliverBothWays()
}

// genPlacement: changes refused for their structure or placement, a
// change held for a missing parent, and equivocation.
func genPlacement(g *gen) {
	g.describe("A genesis whose schema does not parse is refused (schema-violation); then, on a good genesis, changes by a stranger (seq 1, so placement is what fails): wrong height, a clock not after its parent, a clock one millisecond past the one-hour bound (and one exactly at it: stored, unauthorized), duplicate parents, 17 parents, a sequence gap, seq 1 with a prev, no ops, an unknown op kind, version 2, another space, a non-shortest integer in the body (not canonical: malformed). A change whose parent is unknown is held. Two changes by admin with one sequence number (equivocation) are both stored and valid.",
		"§2.2", "§6", "§7")
	g.key("admin", 1)
	g.key("stranger", 7)
	r := g.replica()
	bad := &core.Change{Version: core.ChangeVersion, Author: g.keys["admin"].Public(), Seq: 1, Height: 1, HLC: core.HLC{Wall: t0},
		Ops: []core.Op{{Kind: core.OpGenesis, Schema: "type {"}}}
	g.record("genesis-bad-schema", "a genesis whose schema text does not parse", g.sign(bad, "admin"))
	g.found(r, "admin", notesSchema)
	gid := g.id("genesis")
	base := func() *core.Change {
		return &core.Change{Version: core.ChangeVersion, Space: gid, Author: g.keys["stranger"].Public(), Seq: 1,
			Parents: []core.ID{gid}, Height: 2, HLC: core.HLC{Wall: t0 + 1000},
			Ops: []core.Op{create("Note", "s1", map[string]any{"title": "x"})}}
	}
	rec := func(name, note string, edit func(c *core.Change)) {
		c := base()
		edit(c)
		g.record(name, note, g.sign(c, "stranger"))
	}
	rec("height", "height 3 on a parent of height 1", func(c *core.Change) { c.Height = 3 })
	rec("clock-not-after", "the clock equals the parent's", func(c *core.Change) { c.HLC = core.HLC{Wall: t0} })
	rec("clock-ahead", "the clock 3600001 ms past the parent's", func(c *core.Change) { c.HLC = core.HLC{Wall: t0 + 3_600_001} })
	rec("clock-at-bound", "the clock exactly 3600000 ms past the parent's: placed; the stranger is no member", func(c *core.Change) { c.HLC = core.HLC{Wall: t0 + 3_600_000} })
	rec("duplicate-parents", "the same parent twice", func(c *core.Change) { c.Parents = []core.ID{gid, gid} })
	rec("parents-17", "17 parents", func(c *core.Change) {
		c.Parents = nil
		for i := range 17 {
			c.Parents = append(c.Parents, core.ID{byte(i + 1)})
		}
	})
	rec("seq-gap", "seq 2 (with a prev) as the author's first change", func(c *core.Change) { c.Seq, c.Prev = 2, gid })
	rec("seq1-prev", "seq 1 with a prev", func(c *core.Change) { c.Prev = gid })
	rec("no-ops", "no ops", func(c *core.Change) { c.Ops = nil })
	rec("unknown-kind", "an op of kind 12", func(c *core.Change) { c.Ops[0].Kind = 12 })
	rec("version-2", "version 2", func(c *core.Change) { c.Version = 2 })
	rec("other-space", "space is another ID", func(c *core.Change) { c.Space = core.ID{9} })
	rec("missing-parent", "its parent is unknown: held", func(c *core.Change) { c.Parents = []core.ID{{7}} })
	// Not canonical: the version (1) as a two-byte integer 0x18 0x01.
	c := base()
	body, err := c.Encode()
	if err != nil || body[0] != 0x89 || body[1] != 0x01 {
		g.t.Fatalf("unexpected body start %x", body[:2])
	}
	long := append([]byte{0x89, 0x18, 0x01}, body[2:]...)
	env, _ := core.Marshal(core.Signed{Body: long, Sig: g.keys["stranger"].SignID(core.IDOf(long))})
	g.record("non-canonical", "the body with version 1 encoded as 0x18 0x01", env)
	g.record("equivocation-a", "admin's seq 2 on the genesis",
		g.sign(g.build(r, "admin", 2, gid, t0+2000, create("Note", "e1", map[string]any{"title": "A"})), "admin"))
	g.record("equivocation-b", "another admin seq 2 on the genesis",
		g.sign(g.build(r, "admin", 2, gid, t0+2000, create("Note", "e2", map[string]any{"title": "B"})), "admin"))
	g.expectDoc("Note", "s1")
	g.expectDoc("Note", "e1")
	g.expectDoc("Note", "e2")
	g.deliverBothWays()
}

// genInviteCode: trib2 codes, decoded offline.
func genInviteCode(g *gen) {
	g.describe("An invite code (trib2): the text, and what decoding it offline gives (space, name, bootstrap, the invite key, the invite change, the role and expiry). Altered codes: a trib1 code (old), a wrong prefix, broken base64, a seed of 31 bytes (damaged), an invite change with a flipped signature bit, an invite change of another space, a code whose seed is not the invite's key (forged).",
		"§16.3", "§8.5")
	g.key("admin", 1)
	r := g.replica()
	g.found(r, "admin", notesSchema)
	expires := uint64(t0 + 86_400_000)
	inv := g.invite(r, "invite", "invite-key", 0x22, t0+1000, expires)
	invEnv := g.envelope(r, inv)
	g.deliverBothWays()
	code := core.InviteCode{Space: r.Space(), Name: "spec", Seed: g.keys["invite-key"].Seed(), Invite: invEnv,
		Bootstrap: []string{"/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", "nats://192.0.2.2:4222"}}
	text := func(c core.InviteCode) string {
		s, err := c.Encode()
		if err != nil {
			g.t.Fatal(err)
		}
		return s
	}
	good := text(code)
	s, _ := core.DecodeSigned(invEnv)
	s.Sig = slices.Clone(s.Sig)
	s.Sig[5] ^= 0x10
	flipped, _ := s.Encode()
	other := g.replica()
	otherSpace, err := other.Found(context.Background(), g.keys["admin"], "other", notesSchema, nil, t0+1)
	if err != nil {
		g.t.Fatal(err)
	}
	otherInv, err := other.Write(context.Background(), g.keys["admin"], []core.Op{{Kind: core.OpInvite, Member: g.keys["invite-key"].Public(), Role: core.RoleWriter, Expires: expires}}, t0+1000)
	if err != nil {
		g.t.Fatal(err)
	}
	_ = otherSpace
	cases := []struct{ name, text string }{
		{"good", good},
		{"old", "trib1" + good[len("trib2"):]},
		{"wrong-prefix", "trib3" + good[len("trib2"):]},
		{"bad-base64", good[:len(good)-3] + "!!!"},
		{"short-seed", text(core.InviteCode{Space: code.Space, Name: code.Name, Seed: code.Seed[:31], Invite: invEnv})},
		{"flipped-invite", text(core.InviteCode{Space: code.Space, Name: code.Name, Seed: code.Seed, Invite: flipped})},
		{"other-space", text(core.InviteCode{Space: code.Space, Name: code.Name, Seed: code.Seed, Invite: g.envelope(other, otherInv)})},
		{"wrong-seed", text(core.InviteCode{Space: code.Space, Name: code.Name, Seed: bytes.Repeat([]byte{0x23}, 32), Invite: invEnv})},
	}
	for _, c := range cases {
		g.v.InviteCodes = append(g.v.InviteCodes, decodeInviteCode(g.v, g.envs, c.name, c.text))
	}
}

// genReconcile: a reconciliation run's messages byte for byte.
func genReconcile(g *gen) {
	item := func(n uint64) Item {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], n)
		sum := sha256.Sum256(b[:])
		return Item{Height: n/7 + 1, ID: hex.EncodeToString(sum[:])}
	}
	var a, b []mesh.Item
	for n := uint64(0); n < 409; n++ {
		switch {
		case n%34 == 5 && n < 12*34: // 12 only the initiator holds
			a = append(a, meshItems(g.t, []Item{item(n)})...)
		case n%45 == 7 && n < 9*45: // 9 only the responder holds
			b = append(b, meshItems(g.t, []Item{item(n)})...)
		default:
			a = append(a, meshItems(g.t, []Item{item(n)})...)
			b = append(b, meshItems(g.t, []Item{item(n)})...)
		}
	}
	slices.SortFunc(a, mesh.Item.Compare)
	slices.SortFunc(b, mesh.Item.Compare)
	g.v.Reconcile = reconcile(g.t, specItems(a), specItems(b))
	g.describe(fmt.Sprintf("Range-based reconciliation with the default parameters (16 branches, lists of up to 64 items) between an initiator holding %d items and a responder holding %d, %d held by the initiator only and %d by the responder only: the fingerprints of both sets, every message (canonical CBOR of its ranges) in order, and what each side lacks. Item n is (n/7+1, SHA-256 of n as 8 bytes big-endian).",
		len(a), len(b), len(g.v.Reconcile.Have), len(g.v.Reconcile.Need)),
		"§14.1", "§14.2")
}

// typesSchema declares a named scalar and an enum.
const typesSchema = `scalar Email @pattern(regex: "^[^@ ]+@[^@ ]+$") @length(max: 40)
scalar Copies @base(type: Int) @range(min: 1, max: 9)
enum Status { OPEN RETURNED }

type Item @collection {
  status: Status! @default(value: OPEN)
  history: [Status!]
  flags: [Status!] @set
  contact: Email
  copies: Copies
}
`

// genTypes: named scalars and enums.
func genTypes(g *gen) {
	g.describe("Operator-defined types: a named scalar (pattern and length), a scalar based on Int (range) and an enum, in fields, lists and sets. Valid values are stored (an enum value is its name as text; the default shows in the post-image); a value outside the enum, in a list or a set, a string breaking the scalar's pattern or length and an integer outside its range are schema violations. An upgrade adding an enum value admits it from the changes that have the upgrade in their past.",
		"§9.2", "§9.6", "§10.2")
	g.key("admin", 1)
	r := g.replica()
	g.found(r, "admin", typesSchema)
	g.write(r, "valid", "admin", "Item/i1 with a contact, copies, a history and a flag", t0+1000,
		create("Item", "i1", map[string]any{"contact": "a@b", "copies": int64(2), "history": []any{"OPEN", "RETURNED"}, "flags": []any{"OPEN"}}))
	seq := uint64(3)
	prev := g.id("valid")
	bad := func(name, note string, op core.Op) {
		c := g.build(r, "admin", seq, prev, t0+2000+seq, op)
		g.record(name, note, g.sign(c, "admin"))
		g.receive(r, name)
		seq, prev = seq+1, g.id(name)
	}
	bad("enum-value", `status "LOST", not a value of Status`, set("Item", "i1", "status", "LOST"))
	bad("enum-case", `status "open": values are case-sensitive`, set("Item", "i1", "status", "open"))
	bad("enum-list", `history ["OPEN", "GONE"]`, set("Item", "i1", "history", []any{"OPEN", "GONE"}))
	bad("enum-set", `add "MAYBE" to flags`, core.Op{Kind: core.OpAdd, Coll: "Item", Doc: "i1", Field: "flags", Value: "MAYBE"})
	bad("scalar-pattern", `contact "nobody"`, set("Item", "i1", "contact", "nobody"))
	bad("scalar-length", "contact of 42 characters", set("Item", "i1", "contact", strings.Repeat("a", 40)+"@b"))
	bad("scalar-range", "copies 10", set("Item", "i1", "copies", int64(10)))
	bad("early-lost", `status "LOST" before the upgrade that adds it is in its past`, set("Item", "i1", "history", []any{"LOST"}))
	up := strings.Replace(typesSchema, "enum Status { OPEN RETURNED }", "enum Status { OPEN RETURNED LOST }", 1)
	g.write(r, "upgrade", "admin", "upgrade: Status gains LOST", t0+3000, core.Op{Kind: core.OpSchema, Schema: up})
	g.write(r, "lost", "admin", `status "LOST" after the upgrade`, t0+4000, set("Item", "i1", "status", "LOST"))
	g.expectDoc("Item", "i1")
	g.deliverBothWays()
}

// genEvolve: an upgrade that renames a field, adds one with a default and
// tightens a rule under a policy.
func genEvolve(g *gen) {
	g.describe("Schema evolution: Note.body is written, then an upgrade renames it to text (@renamed(from: \"body\")), adds a field with a default, and narrows stars' range under @existing(policy: keep). The post-image shows the old value under the new name; a write under the new name wins over it; a write naming the old name after the upgrade is a schema violation, before it is valid; stars 5 written before stays, written after is a schema violation; the new field's default shows on the old document.",
		"§9.4", "§9.6", "§10.1", "§12.6")
	g.key("admin", 1)
	g.key("ann", 3)
	r := g.replica()
	g.found(r, "admin", notesSchema)
	g.write(r, "grant-ann", "admin", "admin grants ann writer", t0+500, grant(g.keys["ann"], core.RoleWriter))
	g.write(r, "create", "admin", "Note/n1 with body and stars 5", t0+1000, create("Note", "n1", map[string]any{"title": "t", "body": "old body", "stars": int64(5)}))
	b := g.clone(r)
	up := strings.Replace(notesSchema, "  body: String\n", "  text: String @renamed(from: \"body\")\n  lang: String! @default(value: \"en\")\n", 1)
	up = strings.Replace(up, "stars: Int @range(min: 0, max: 5)", "stars: Int @range(min: 0, max: 4) @existing(policy: keep)", 1)
	if up == notesSchema {
		g.t.Fatal("upgrade text unchanged")
	}
	g.write(r, "upgrade", "admin", "upgrade: body renamed text, lang added (default en), stars at most 4 (keep)", t0+2000, core.Op{Kind: core.OpSchema, Schema: up})
	g.write(b, "old-name-before", "ann", "ann creates Note/n2 with body, without the upgrade in her past: valid", t0+2500, create("Note", "n2", map[string]any{"title": "t2", "body": "b2"}))
	g.sync(r, b)
	seq := uint64(5)
	prev := g.id("upgrade")
	hand := func(name, note string, op core.Op) {
		c := g.build(r, "admin", seq, prev, t0+3000+seq, op)
		g.record(name, note, g.sign(c, "admin"))
		g.receive(r, name)
		seq, prev = seq+1, g.id(name)
	}
	hand("old-name-after", "set body on Note/n1 after the upgrade: the field is now text", set("Note", "n1", "body", "late"))
	hand("stars-after", "stars 5 after the upgrade narrowed the range", set("Note", "n1", "stars", int64(5)))
	g.write(r, "new-name", "admin", "set text on Note/n2 after the upgrade", t0+4000, set("Note", "n2", "text", "new text"))
	g.expectDoc("Note", "n1")
	g.expectDoc("Note", "n2")
	g.deliverBothWays()
}
