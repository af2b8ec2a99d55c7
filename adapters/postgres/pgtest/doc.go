// Package pgtest runs throwaway PostgreSQL servers for tests, from the
// PostgreSQL binaries installed on the machine (initdb and postgres, found
// in PATH or /usr/lib/postgresql/*/bin). Nothing needs to be running and
// nothing outside a temporary directory is touched.
//
// One server per test package, one database per test:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.Database(t) // a fresh database, dropped after the test
//		...
//	}
//
// Start gives a test a server of its own instead. A missing PostgreSQL
// installation fails the test (it is never skipped).
//
// The server runs as a child of the test process with fsync off, listening
// on a free loopback port and on a unix socket in its directory. When run
// as root (initdb and postgres refuse root), the directory is handed to the
// postgres user and the server runs as that user. The server is told to
// shut down (immediately) if the test process dies, so none outlives it;
// its directory is removed when it is stopped normally.
package pgtest
