// Package spec holds the test vectors of the Tributary protocol
// (docs/SPEC.md, §17): changes as bytes, delivered in given orders, and
// the verdicts, documents, membership and rollbacks every implementation
// must reach. The vectors are JSON files in spec/vectors; their shape is
// Vector. This package's tests load every file and check that this
// implementation (core, core/replica, mesh/bundle) reaches each expected
// result, byte for byte where the spec says so (CIDs, encodings,
// signatures, post-images, bundle files).
//
// A second implementation uses them like this, for each vector file:
//
//	for each change:  decode the envelope (hex, or gzip+base64); if it
//	                  decodes, its ID must be the CID given; if a body is
//	                  given, encoding it must give the envelope's body bytes,
//	                  and signing with the author's seed the signature given
//	for each delivery order: start an empty replica; hand it the changes
//	                  one at a time, in that order; the first order's
//	                  outcomes must match expect.receive
//	then, after every order: the verdict class of every stored change, the
//	                  documents (fields and canonical CBOR of the
//	                  post-image), the members, invites, rollbacks and
//	                  conflicts must match expect
//	bundle vectors:   the file bytes must decode to the changes listed, and
//	                  encoding them must give the same bytes
//
// The files are written by a deterministic generator (fixed key seeds,
// fixed clocks) in generate_test.go, run with
//
//	go test ./spec -run TestVectors -update
//
// Do that only when the protocol is meant to change: a vector whose
// expected result no longer holds fails TestVectors, which is the point.
package spec
