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
// "!" makes a field required at creation. Rules are directives:
// @length(min, max) on strings (characters), bytes and lists (elements);
// @range(min, max) on numbers (and list elements); @pattern(regex) on
// strings (RE2 syntax); @default(value) fills a field that was never set,
// which is how an upgrade supplies values for new fields.
//
// Drive it with Parse, then look up Collection and Field. Field.Normalize
// turns user JSON into the canonical values of core (see core/codec.go) and
// Field.Check validates a canonical value; both are pure functions. A
// schema's ID is the CIDv1 (raw, SHA-256) of its text. CheckUpgrade decides
// whether a new schema may replace an old one: fields and collections are
// only added, kinds never change, and a new required field needs a default.
package schema
