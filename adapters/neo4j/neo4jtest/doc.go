// Package neo4jtest runs a real Neo4j for tests: Neo4j's own test harness
// (org.neo4j.test:neo4j-harness, an in-process Neo4j Community server),
// wrapped by the small Java program in integration/neo4jharness. Nothing
// needs to be running; Java (JDK 17) must be installed, and Maven too when
// the harness jar has not been built yet.
//
// One server per test binary, shared by its tests:
//
//	func TestMain(m *testing.M) { neo4jtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := neo4jtest.Shared(t) // bolt://127.0.0.1:PORT, no authentication
//		neo4jtest.Wipe(t, url)     // optional: start from an empty graph
//		...
//	}
//
// Start gives a test a server of its own instead, stopped when the test
// ends. A missing java or mvn, a failed build or a server that does not come
// up fails the test: it is never skipped.
//
// The harness jar is built with `mvn -q -B -f
// integration/neo4jharness/pom.xml package -DskipTests` when
// integration/neo4jharness/target/neo4jharness.jar is missing (once per
// test process; concurrent test processes take a lock file in the temporary
// directory). The server prints its Bolt URI on stdout and serves until its
// stdin closes, so it never outlives the test process: closing stdin is how
// it is stopped, and a test process that dies closes it too. Its database
// lives in a temporary directory removed when it stops.
package neo4jtest
