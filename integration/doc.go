// Package integration holds tests that span packages: the dependency
// rules of the layout, multi-node scenarios and real-database runs. It has
// no non-test code of its own.
package integration
