package spec

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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

var update = flag.Bool("update", false, "regenerate spec/vectors/*.json from the generator")

const vectorDir = "vectors"

// TestVectors checks every vector file against this implementation; with
// -update it first rewrites them from the generator.
func TestVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < len(generators) {
		t.Fatalf("%d vector files in %s, the generator makes %d: run go test ./spec -run TestVectors -update", len(files), vectorDir, len(generators))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v Vector
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			checkVector(t, &v)
		})
	}
}

// checkVector checks a vector's bytes and runs every delivery order,
// comparing the outcome with Expect.
func checkVector(t *testing.T, v *Vector) {
	envs := checkChanges(t, v)
	if v.Bundle != nil {
		checkBundle(t, v, envs)
	}
	for _, c := range v.InviteCodes {
		checkInviteCode(t, v, envs, c)
	}
	if v.Reconcile != nil {
		if got := reconcile(t, v.Reconcile.A, v.Reconcile.B); canonicalAny(t, got) != canonicalAny(t, v.Reconcile) {
			t.Errorf("reconciliation differs from the vector\n%s", lineDiff(canonicalAny(t, v.Reconcile), canonicalAny(t, got)))
		}
	}
	want := canonical(t, v.Expect)
	for i, order := range v.Deliveries {
		got, err := run(v, envs, order)
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		if i > 0 {
			got.Receive = v.Expect.Receive // given for the first order only
		}
		if g := canonical(t, got); g != want {
			t.Errorf("delivery %d %v: the implementation's outcome differs from the vector\n%s", i, order, lineDiff(want, g))
		}
	}
}

// checkChanges decodes every envelope and checks what is given of it byte
// for byte: the CID, the encoding of the body, the signature.
func checkChanges(t *testing.T, v *Vector) map[string][]byte {
	keys := map[string]core.PrivateKey{}
	for _, k := range v.Keys {
		seed, err := hex.DecodeString(k.Seed)
		if err != nil {
			t.Fatalf("key %s: %v", k.Name, err)
		}
		pk, err := core.PrivateKeyFromSeed(seed)
		if err != nil {
			t.Fatalf("key %s: %v", k.Name, err)
		}
		if pk.Public().String() != k.Public {
			t.Errorf("key %s: seed gives public key %s, the vector says %s", k.Name, pk.Public(), k.Public)
		}
		keys[pk.Public().String()] = pk
	}
	envs := map[string][]byte{}
	for _, c := range v.Changes {
		env, err := envelopeBytes(c)
		if err != nil {
			t.Fatalf("change %s: %v", c.Name, err)
		}
		if len(env) != c.EnvelopeSize {
			t.Errorf("change %s: envelope of %d bytes, the vector says %d", c.Name, len(env), c.EnvelopeSize)
		}
		envs[c.Name] = env
		s, err := core.DecodeSigned(env)
		if err != nil {
			if c.ID != "" {
				t.Errorf("change %s: envelope does not decode (%v), the vector gives its ID %s", c.Name, err, c.ID)
			}
			continue
		}
		if got := s.ID().String(); got != c.ID {
			t.Errorf("change %s: ID %s, the vector says %s", c.Name, got, c.ID)
		}
		if c.Body == nil {
			continue
		}
		ch, err := bodyChange(c.Body)
		if err != nil {
			t.Fatalf("change %s: body: %v", c.Name, err)
		}
		body, err := ch.Encode()
		if err != nil {
			t.Fatalf("change %s: encode body: %v", c.Name, err)
		}
		if !bytes.Equal(body, s.Body) {
			t.Errorf("change %s: encoding the body gives\n%x\nthe envelope holds\n%x", c.Name, body, s.Body)
		}
		if got := hex.EncodeToString(s.Sig); got != c.Sig {
			t.Errorf("change %s: signature %s, the vector says %s", c.Name, got, c.Sig)
		}
		if k, ok := keys[ch.Author.String()]; ok {
			if again := hex.EncodeToString(k.SignID(core.IDOf(body))); again != c.Sig {
				t.Errorf("change %s: signing the ID with the author's seed gives %s, the vector says %s", c.Name, again, c.Sig)
			}
		}
		if !core.VerifyID(ch.Author, core.IDOf(body), s.Sig) {
			t.Errorf("change %s: the signature does not verify", c.Name)
		}
	}
	return envs
}

func envelopeBytes(c Change) ([]byte, error) {
	if c.EnvelopeGzip == "" {
		return hex.DecodeString(c.Envelope)
	}
	z, err := base64.StdEncoding.DecodeString(c.EnvelopeGzip)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, 16<<20))
}

var opKinds = map[string]core.OpKind{}

func init() {
	for k := core.OpGenesis; k <= core.OpInvite; k++ {
		opKinds[k.String()] = k
	}
}

// bodyChange builds the change a Body describes.
func bodyChange(b *Body) (*core.Change, error) {
	c := &core.Change{Version: b.Version, Seq: b.Seq, Height: b.Height}
	var err error
	parseID := func(s string) core.ID {
		if s == "" || err != nil {
			return core.ID{}
		}
		var id core.ID
		id, err = core.ParseID(s)
		return id
	}
	c.Space, c.Prev = parseID(b.Space), parseID(b.Prev)
	for _, p := range b.Parents {
		c.Parents = append(c.Parents, parseID(p))
	}
	if err != nil {
		return nil, err
	}
	if c.Author, err = core.ParsePublicKey(b.Author); err != nil {
		return nil, err
	}
	if c.HLC, err = core.ParseHLC(b.HLC); err != nil {
		return nil, err
	}
	for i, o := range b.Ops {
		kind, ok := opKinds[o.Kind]
		if !ok {
			return nil, fmt.Errorf("op %d: unknown kind %q", i, o.Kind)
		}
		op := core.Op{Kind: kind, Coll: o.Coll, Doc: o.Doc, Field: o.Field, Delta: o.Delta, Role: o.Role, Schema: o.Schema, Name: o.Name}
		if op.Value, err = jsonValue(o.Value); err != nil {
			return nil, err
		}
		for k, v := range o.Fields {
			if op.Fields == nil {
				op.Fields = map[string]any{}
			}
			if op.Fields[k], err = jsonValue(v); err != nil {
				return nil, err
			}
		}
		if o.Member != "" {
			if op.Member, err = core.ParsePublicKey(o.Member); err != nil {
				return nil, err
			}
		}
		c.Ops = append(c.Ops, op)
	}
	return c, nil
}

// jsonValue turns a JSON value of a Body (text, integers, lists) into a
// canonical value.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Int64()
	case float64:
		return int64(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = jsonValue(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v, nil
}

// run delivers the changes of order, one at a time, to a fresh replica
// and gathers what the vector expects.
func run(v *Vector, envs map[string][]byte, order []string) (Expect, error) {
	ctx := context.Background()
	// On disk: an in-memory Badger refuses values over 1 MiB, and a
	// change may be 4 MiB.
	dir, err := os.MkdirTemp("", "tributary-spec-")
	if err != nil {
		return Expect{}, err
	}
	defer os.RemoveAll(dir)
	r, err := replica.Open(replica.Options{Dir: dir})
	if err != nil {
		return Expect{}, err
	}
	defer r.Close()
	out := Expect{Receive: map[string]string{}, Verdicts: map[string]string{}}
	names := map[core.ID]string{}
	for _, c := range v.Changes {
		if s, err := core.DecodeSigned(envs[c.Name]); err == nil {
			if _, dup := names[s.ID()]; !dup {
				names[s.ID()] = c.Name
			}
		}
	}
	name := func(id core.ID) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id.String()
	}
	for _, n := range order {
		env, ok := envs[n]
		if !ok {
			return out, fmt.Errorf("delivery names unknown change %q", n)
		}
		rep, err := r.Receive(ctx, [][]byte{env})
		if err != nil {
			return out, fmt.Errorf("receive %s: %w", n, err)
		}
		out.Receive[n] = receiveOutcome(rep)
	}
	for _, c := range v.Changes {
		s, err := core.DecodeSigned(envs[c.Name])
		if err != nil || !r.Has(s.ID()) || names[s.ID()] != c.Name {
			continue // not stored, or a copy of another named change
		}
		valid, reason, err := r.Verdict(s.ID())
		if err != nil {
			return out, err
		}
		out.Verdicts[c.Name] = verdictClass(valid, reason)
	}
	for _, d := range v.Expect.Documents {
		doc, ok, err := r.Get(d.Collection, d.ID)
		if err != nil {
			return out, err
		}
		got := Document{Collection: d.Collection, ID: d.ID, Exists: ok}
		if ok {
			img, err := core.Marshal(doc.Fields)
			if err != nil {
				return out, err
			}
			if len(img) > 64<<10 {
				sum := sha256.Sum256(img)
				got.ImageSHA256 = hex.EncodeToString(sum[:])
			} else {
				got.ImageCBOR = hex.EncodeToString(img)
				if got.Fields, err = jsonRoundTrip(doc.Fields); err != nil {
					return out, err
				}
			}
		}
		out.Documents = append(out.Documents, got)
	}
	for _, k := range v.Keys {
		if !slices.ContainsFunc(v.Expect.Members, func(m Member) bool { return m.Key == k.Name }) {
			continue
		}
		pub, err := core.ParsePublicKey(k.Public)
		if err != nil {
			return out, err
		}
		out.Members = append(out.Members, Member{Key: k.Name, Role: r.Role(pub), Member: r.IsMember(pub)})
	}
	for _, inv := range r.Invites() {
		iv := Invite{Change: name(inv.Change), State: string(inv.State)}
		for _, u := range inv.Uses {
			iv.Uses = append(iv.Uses, InviteUse{Change: name(u.Change), Accepted: u.Accepted, Acknowledged: u.Acknowledged})
		}
		out.Invites = append(out.Invites, iv)
	}
	rbs, err := r.Rollbacks()
	if err != nil {
		return out, err
	}
	for _, rb := range rbs {
		w := ""
		if !rb.Winner.IsZero() {
			w = name(rb.Winner)
		}
		out.Rollbacks = append(out.Rollbacks, Rollback{Change: name(rb.Change), Winner: w})
	}
	cs, err := r.Conflicts()
	if err != nil {
		return out, err
	}
	for _, c := range cs {
		cv := Conflict{Collection: c.Collection, ID: c.ID, Field: c.Field, Winner: name(c.Winner.Change)}
		for _, l := range c.Losers {
			cv.Losers = append(cv.Losers, name(l.Change))
		}
		out.Conflicts = append(out.Conflicts, cv)
	}
	return out, nil
}

// receiveOutcome names what Receive did with one envelope.
func receiveOutcome(rep replica.Report) string {
	switch {
	case len(rep.Rejected) > 0:
		return "rejected:" + rejectClass(rep.Rejected[0].Err)
	case rep.Held > 0:
		return "held"
	case rep.Duplicates > 0:
		return "duplicate"
	case rep.Applied > 0:
		return "stored"
	}
	return "nothing"
}

// rejectClass is the class of a refusal (SPEC §6).
func rejectClass(err error) string {
	for _, c := range []struct {
		class string
		err   error
	}{
		{"bad-signature", core.ErrBadSignature},
		{"malformed", core.ErrMalformed},
		{"wrong-space", replica.ErrWrongSpace},
		{"schema-violation", core.ErrSchemaViolation},
		{"invalid-change", core.ErrInvalidChange},
		{"no-genesis", replica.ErrNoGenesis},
		{"orphan-limit", replica.ErrOrphanLimit},
	} {
		if errors.Is(err, c.err) {
			return c.class
		}
	}
	return "other: " + err.Error()
}

// verdictClass is the class of a stored change's verdict (SPEC §11).
func verdictClass(valid bool, reason string) string {
	if valid {
		return "valid"
	}
	for _, c := range []struct {
		class string
		err   error
	}{
		{"schema-violation", core.ErrSchemaViolation},
		{"unauthorized", core.ErrUnauthorized},
		{"rule-violation", core.ErrRuleViolation},
		{"rolled-back", core.ErrRolledBack},
	} {
		if strings.HasPrefix(reason, c.err.Error()) {
			return c.class
		}
	}
	return "invalid: " + reason
}

func jsonRoundTrip(m map[string]any) (map[string]any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// canonical renders an outcome as indented JSON, for comparison and diffs.
func canonical(t *testing.T, e Expect) string { return canonicalAny(t, e) }

func canonicalAny(t *testing.T, e any) string {
	t.Helper()
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineDiff shows the lines of want and got that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  vector: %s\n  got:    %s\n", i+1, a, c)
		}
	}
	return b.String()
}

// checkBundle checks the bundle file byte for byte: it decodes to the
// changes listed, encoding them gives the same bytes, and the corrupt
// copy is refused.
func checkBundle(t *testing.T, v *Vector, envs map[string][]byte) {
	file, err := hex.DecodeString(v.Bundle.File)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Decode(file)
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	if b.Space.String() != v.Bundle.Space {
		t.Errorf("bundle space %s, the vector says %s", b.Space, v.Bundle.Space)
	}
	var since []string
	for _, s := range b.Since {
		since = append(since, s.String())
	}
	if !slices.Equal(since, v.Bundle.Since) {
		t.Errorf("bundle since %v, the vector says %v", since, v.Bundle.Since)
	}
	if len(b.Changes) != len(v.Bundle.Changes) {
		t.Fatalf("bundle holds %d changes, the vector lists %d", len(b.Changes), len(v.Bundle.Changes))
	}
	for i, n := range v.Bundle.Changes {
		if !bytes.Equal(b.Changes[i], envs[n]) {
			t.Errorf("bundle change %d is not %s", i, n)
		}
	}
	again, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, file) {
		t.Errorf("encoding the bundle's content gives other bytes:\n%x\nthe vector's file:\n%x", again, file)
	}
	corrupt, err := hex.DecodeString(v.Bundle.Corrupt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Decode(corrupt); !errors.Is(err, bundle.ErrCorrupt) {
		t.Errorf("the corrupt bundle: error %v, want %v", err, bundle.ErrCorrupt)
	}
}

// decodeInviteCode decodes a code as `join` does and names the outcome.
func decodeInviteCode(v *Vector, envs map[string][]byte, name, text string) InviteCodeCase {
	got := InviteCodeCase{Name: name, Text: text}
	code, terms, err := core.DecodeInviteCode(text)
	switch {
	case errors.Is(err, core.ErrCodeDamaged):
		got.Outcome = "damaged"
	case errors.Is(err, core.ErrCodeForged):
		got.Outcome = "forged"
	case errors.Is(err, core.ErrCodeOld):
		got.Outcome = "old"
	case err != nil:
		got.Outcome = "other: " + err.Error()
	default:
		got.Outcome = "ok"
		got.Space, got.SpaceName, got.Bootstrap = code.Space.String(), code.Name, code.Bootstrap
		got.Key = terms.Key.String()
		got.Role, got.Expires = terms.Role, terms.Expires
		for _, c := range v.Changes {
			if bytes.Equal(envs[c.Name], code.Invite) {
				got.Invite = c.Name
			}
		}
	}
	return got
}

func checkInviteCode(t *testing.T, v *Vector, envs map[string][]byte, want InviteCodeCase) {
	if got := decodeInviteCode(v, envs, want.Name, want.Text); canonicalAny(t, got) != canonicalAny(t, want) {
		t.Errorf("invite code %s: decoding differs from the vector\n%s", want.Name, lineDiff(canonicalAny(t, want), canonicalAny(t, got)))
	}
}

func meshItems(t *testing.T, xs []Item) []mesh.Item {
	out := make([]mesh.Item, len(xs))
	for i, x := range xs {
		b, err := hex.DecodeString(x.ID)
		if err != nil || len(b) != 32 {
			t.Fatalf("item %d: id %q is not 32 bytes of hex", i, x.ID)
		}
		out[i] = mesh.Item{Height: x.Height}
		copy(out[i].ID[:], b)
	}
	return out
}

func specItems(xs []mesh.Item) []Item {
	out := []Item{}
	for _, x := range xs {
		out = append(out, Item{Height: x.Height, ID: hex.EncodeToString(x.ID[:])})
	}
	return out
}

// reconcile runs a reconciliation of a (initiator) with b and records
// every message.
func reconcile(t *testing.T, a, b []Item) *Reconcile {
	ma, mb := meshItems(t, a), meshItems(t, b)
	fa, fb := mesh.Fingerprint(ma), mesh.Fingerprint(mb)
	out := &Reconcile{A: a, B: b, FingerprintA: hex.EncodeToString(fa[:]), FingerprintB: hex.EncodeToString(fb[:])}
	enc := func(rs []mesh.Range) string {
		bs, err := core.Marshal(rs)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(bs)
	}
	rc := mesh.DefaultReconciler
	msg := rc.Initiate(ma)
	var have, need []mesh.Item
	for round := 0; ; round++ {
		out.Messages = append(out.Messages, enc(msg))
		if len(msg) == 0 {
			break
		}
		if round == 32 {
			t.Fatal("reconciliation did not end in 32 rounds")
		}
		resp := rc.Respond(mb, msg)
		out.Messages = append(out.Messages, enc(resp))
		var h, n []mesh.Item
		msg, h, n = rc.Step(ma, resp)
		have, need = append(have, h...), append(need, n...)
	}
	out.Have, out.Need = specItems(have), specItems(need)
	return out
}
