// Package schema parses and checks a space's schema.
//
// A schema is GraphQL SDL text. Every object type is a collection (the
// @collection directive may mark it, and is optional); its fields are typed:
//
//	String Int Float Boolean DateTime Bytes JSON   scalars
//	Author                                         reference to a document of collection Author
//	[String!]                                      list
//	[String!] @set                                 add-wins set (a CRDT field)
//	Int @counter                                   counter (a CRDT field)
//
// Operator-defined types (types.go) name a scalar with rules or an enum,
// and serve as field types like the built-ins (also in lists and sets):
//
//	scalar Email @pattern(regex: "^[^@ ]+@[^@ ]+$") @length(max: 254)
//	scalar Percent @base(type: Float) @range(min: 0, max: 100)   base String unless @base says
//	enum LoanStatus { OPEN RETURNED LOST }                        values stored as strings
//
// "!" makes a field required at creation. Rules are directives:
// @length(min, max) on strings (characters), bytes and lists (elements);
// @range(min, max) on numbers (and list elements); @pattern(regex) on
// strings (RE2 syntax); @default(value) fills a field that was never set,
// which is how an upgrade supplies values for new fields.
//
// Roles and behavioural rules (docs/RULES.md) are directives too:
//
//	extend schema @roles(names: ["member", "librarian"])  roles besides admin, writer, reader
//	type Loan @write(roles: ["member", "librarian"])      who may write the collection
//	  @create(if: "exists(Book b where b.id == new.book)
//	               and not exists(Loan l where l.book == new.book and l.returned == false)")
//	  @update(if: "...") @delete(if: "...")                 conditions on each action
//
// A condition is a small language (rule_syntax.go) parsed and typed with
// the schema: unknown names, fields and collections and type mismatches are
// schema errors, and every exists must look its documents up by an
// equality on the id or an indexable field (Schema.Indexed lists those, so
// a replica indexes their values). Rule.Eval decides a condition, a pure
// function of an Env (author, role, clock, old and new document) and of
// what a Source (the replica's view of the change's causal past) returns:
//
//	coll, _ := s.Collection("Loan")
//	out, err := coll.Rule(schema.ActionCreate).Eval(schema.Env{Author: a, Role: r, Now: ms, New: doc}, view)
//	out.OK, out.Why, out.Relied  // verdict, what failed, the documents it rested on
//
// Schema.CheckWrite says whether a role may write a collection,
// Schema.CheckGrant whether a role may be granted or offered by an invite.
//
// Drive it with Parse, then look up Collection and Field. Field.Normalize
// turns user JSON into the canonical values of core (see core/codec.go) and
// Field.Check validates a canonical value; both are pure functions. A
// schema's ID is the CIDv1 (raw, SHA-256) of its text. CheckUpgrade decides
// whether a new schema may replace an old one (docs/SCHEMA.md, evolve.go):
// collections are only added; a field lives on under its name or renamed
// (@renamed(from: ["old", "older"]) lists every name it had, Field.Former),
// its kind never changes; a new required field needs a default; a field
// whose rules tighten declares @existing(policy: keep|flag); every refusal
// names the field and the reason (coll.FieldByAnyName finds the field
// values written under a former name belong to); types are only added, an enum only gains values and a named scalar's
// rules only loosen.
package schema
