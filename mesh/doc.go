// Package mesh moves changes between the peers of a space. Each transport
// lives in a subdirectory (bundle files today; libp2p, NATS and an
// in-memory network next). Every transport is an untrusted pipe: what it
// delivers goes through the same verification (replica.Receive) as
// anything else.
package mesh
