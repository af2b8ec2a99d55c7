// Package bench measures tributary on its product path: the binary's own
// processes (`tributary run` on on-disk homes, `tributary load`), real
// HTTP with the API token, two nodes over libp2p on loopback, and a real
// PostgreSQL (started as the tests start one, with pgtest). Every figure
// stands beside a raw baseline measured in the same run (the HTTP floor,
// raw Badger and replica.Mutate, a pgx unnest upsert, a node's own
// stream), so a change in the product shows as a change in the ratio.
//
// `tributary bench` drives it:
//
//	cfg := bench.DefaultConfig()
//	cfg.Binary, _ = os.Executable()  // the nodes are children of this binary
//	cfg.Scenarios = []string{"http", "load"}
//	rep, err := bench.Run(ctx, cfg)  // rep holds what ran, even on error
//	rep.WriteTable(os.Stdout)
//	rep.WriteJSON(f)
//
// Each scenario starts its own homes and nodes in a temporary directory
// and stops them when it ends. With Config.CPUProfileDir, every node a
// scenario starts writes a CPU profile of the measured part of it
// (ServeProfileSignals is the node's side of that).
package bench
