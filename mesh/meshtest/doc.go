// Package meshtest is the conformance suite every mesh transport passes:
// nodes over the transport converge after concurrent writes and a healed
// partition, an offline peer catches up within bounded round trips and
// bytes, forged data gets its sender cut off with nothing applied, a
// revoked member's concurrent writes lose their effect everywhere, and a
// newcomer holding only its signed use of an invite gets in with only the
// inviting admin online. Space.Invite, Use and Space.Newcomer make invites,
// proofs and joiners' replicas for transports' own tests.
//
// A transport's test calls Run with a Factory that builds n connected
// transports for n keys (and can isolate and heal one):
//
//	func TestConformance(t *testing.T) { meshtest.Run(t, meshtest.Options{}, newNetwork) }
package meshtest
