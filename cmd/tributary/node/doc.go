// Package node wires one space's concrete parts together on one machine:
// the replica (Badger op-log and documents) and the effect log in the same
// Badger database, so every committed change and its effects land in one
// transaction. The CLI, the bridge process and integration tests open
// spaces through it.
//
//	home, _ := node.OpenHome(dir)
//	sp, _ := home.OpenSpace(ctx, spaceID)
//	defer sp.Close()
//	id, _ := sp.Replica.Write(ctx, home.Key, ops, nowMillis)
//	effects, _ := sp.Effects.Read(ctx, 1, 100)
package node
