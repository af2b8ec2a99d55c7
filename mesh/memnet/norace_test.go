//go:build !race

package memnet_test

const catchUp = 100_000
