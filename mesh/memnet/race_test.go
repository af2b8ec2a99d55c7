//go:build race

package memnet_test

// The race detector slows ingest about tenfold: the 100k-change catch-up
// runs without it (see .ci/test), a 10k one with it.
const catchUp = 10_000
