package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/adapters/memory"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	"github.com/tributary-sync/tributary/mesh/bundle"
	meshlibp2p "github.com/tributary-sync/tributary/mesh/libp2p"
)

//go:embed demo_schema.graphql
var demoSchema string

// demoCmd runs the main job end to end on embedded defaults: two peers, a
// space, an invite, concurrent writes carried by bundle files, a conflict,
// and the effect stream applied by the checkpointed runner into an
// in-memory view; then both go online over libp2p on loopback and bob's
// writes flow live into alice's view. Nothing external is needed.
func (c *cli) demoCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run two peers, a shared space and a sink end to end in a scratch directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "tributary-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			return c.runDemo(cmd.Context(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "keep the peers' homes here (default: a temporary directory, removed after)")
	return cmd
}

type demoPeer struct {
	name string
	home *node.Home
	sp   *node.Space
}

func (c *cli) runDemo(ctx context.Context, dir string) error {
	step := func(format string, args ...any) { fmt.Fprintf(c.out, "==> "+format+"\n", args...) }
	now := func() uint64 { return uint64(time.Now().UnixMilli()) }

	step("alice founds a space with the library schema")
	aliceHome, _, err := node.InitHome(filepath.Join(dir, "alice"))
	if err != nil {
		return err
	}
	staging, sp, err := aliceHome.CreateSpaceDir()
	if err != nil {
		return err
	}
	space, err := sp.Replica.Found(ctx, aliceHome.Key, "library", demoSchema, nil, now())
	sp.Close()
	if err != nil {
		return err
	}
	if err := aliceHome.CommitSpace(staging, node.SpaceInfo{Space: space.String(), Name: "library"}); err != nil {
		return err
	}
	alice := &demoPeer{name: "alice", home: aliceHome}
	if alice.sp, err = aliceHome.OpenSpace(ctx, space.String()); err != nil {
		return err
	}
	defer alice.sp.Close()
	fmt.Fprintf(c.out, "    space %s\n", space)

	step("bob joins with an invite code, offline; his grant travels by bundle")
	inviteKey, inviteEnv, err := alice.sp.Replica.CreateInvite(ctx, aliceHome.Key, now()+uint64((24*time.Hour).Milliseconds()), now())
	if err != nil {
		return err
	}
	code, err := core.InviteCode{Space: space, Name: "library", Seed: inviteKey.Seed(), Invite: inviteEnv}.Encode()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "    invite code %s...\n", code[:32])
	bobCLI := &cli{home: filepath.Join(dir, "bob"), json: true, out: devNull(), nowFunc: time.Now, wait: time.Minute}
	join := bobCLI.joinCmd()
	join.SetArgs([]string{code})
	join.SetContext(ctx)
	if err := join.ExecuteContext(ctx); err != nil {
		return fmt.Errorf("bob joins: %w", err)
	}
	bobHome, err := node.OpenHome(bobCLI.home)
	if err != nil {
		return err
	}
	bob := &demoPeer{name: "bob", home: bobHome}
	if bob.sp, err = bobHome.OpenSpace(ctx, space.String()); err != nil {
		return err
	}
	defer bob.sp.Close()
	exchange := func(from, to *demoPeer) error {
		path := filepath.Join(dir, from.name+"-to-"+to.name+".trb")
		envs, err := from.sp.Replica.Export(nil)
		if err != nil {
			return err
		}
		if err := bundle.WriteFile(path, bundle.Bundle{Space: space, Changes: envs}); err != nil {
			return err
		}
		b, err := bundle.ReadFile(path)
		if err != nil {
			return err
		}
		rep, err := to.sp.Replica.Receive(ctx, b.Changes)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.out, "    %s -> %s: %d changes in the bundle, %d new, %d already held\n", from.name, to.name, len(envs), rep.Applied, rep.Duplicates)
		return nil
	}
	if err := exchange(bob, alice); err != nil {
		return err
	}
	if err := exchange(alice, bob); err != nil {
		return err
	}

	step("both write; alice and bob retitle the same book concurrently")
	write := func(p *demoPeer, ops ...core.Op) error {
		_, err := p.sp.Replica.Write(ctx, p.home.Key, ops, now())
		if err != nil {
			return fmt.Errorf("%s writes: %w", p.name, err)
		}
		return nil
	}
	if err := write(alice,
		core.Op{Kind: core.OpCreate, Coll: "Author", Doc: "herbert", Fields: map[string]any{"name": "Frank Herbert"}},
		core.Op{Kind: core.OpCreate, Coll: "Book", Doc: "dune", Fields: map[string]any{"title": "Dune", "year": int64(1965), "author": "herbert", "tags": []any{"classic"}}},
	); err != nil {
		return err
	}
	if err := exchange(alice, bob); err != nil {
		return err
	}
	if err := write(alice, core.Op{Kind: core.OpSet, Coll: "Book", Doc: "dune", Field: "title", Value: "Dune (1965)"}, core.Op{Kind: core.OpIncrement, Coll: "Book", Doc: "dune", Field: "likes", Delta: 2}); err != nil {
		return err
	}
	if err := write(bob, core.Op{Kind: core.OpSet, Coll: "Book", Doc: "dune", Field: "title", Value: "Dune, first edition"}, core.Op{Kind: core.OpIncrement, Coll: "Book", Doc: "dune", Field: "likes", Delta: 1}, core.Op{Kind: core.OpAdd, Coll: "Book", Doc: "dune", Field: "tags", Value: "sci-fi"}); err != nil {
		return err
	}
	if err := exchange(bob, alice); err != nil {
		return err
	}
	if err := exchange(alice, bob); err != nil {
		return err
	}
	da, _, _ := alice.sp.Replica.Get("Book", "dune")
	db, _, _ := bob.sp.Replica.Get("Book", "dune")
	fmt.Fprintf(c.out, "    alice sees %v\n    bob   sees %v\n", da.Fields, db.Fields)
	conflicts, err := alice.sp.Replica.Conflicts()
	if err != nil {
		return err
	}
	for _, cf := range conflicts {
		fmt.Fprintf(c.out, "    conflict on %s/%s.%s: winner %v, concurrent %v\n", cf.Collection, cf.ID, cf.Field, cf.Winner.Value, cf.Losers[0].Value)
	}

	step("alice's effect stream runs into an in-memory view through the checkpointed runner")
	view := memory.New("demo-view", memory.Options{})
	runner, err := checkpoint.New(checkpoint.DefaultConfig(), alice.sp.Effects, view, alice.sp.Replica, checkpoint.NewMemoryParking())
	if err != nil {
		return err
	}
	if err := runner.CatchUp(ctx); err != nil {
		return err
	}
	st := runner.Status()
	fmt.Fprintf(c.out, "    sink %s: checkpoint %d of %d, lag %d\n", st.Sink, st.Checkpoint, st.LastLSN, st.Lag)
	for _, coll := range []string{"Author", "Book"} {
		for _, d := range view.Query(coll, nil) {
			fmt.Fprintf(c.out, "    view %s/%s %v\n", coll, d.ID, d.Fields)
		}
	}
	step("alice and bob go online: libp2p on loopback; bob writes 2000 books, alice's view follows live")
	if err := demoOnline(ctx, c, alice, bob, runner, view); err != nil {
		return err
	}

	step("done: same state on both peers, one open conflict, sink caught up")
	return nil
}

func devNull() *os.File {
	f, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	return f
}

// demoOnline connects the two peers over libp2p on loopback, keeps
// alice's runner feeding the view, and times bob's writes arriving in it.
func demoOnline(ctx context.Context, c *cli, alice, bob *demoPeer, runner *checkpoint.Runner, view *memory.View) error {
	listen := []string{"/ip4/127.0.0.1/tcp/0"}
	ta, err := meshlibp2p.New(ctx, meshlibp2p.Config{Key: alice.home.Key, Listen: listen, DisableNATPortMap: true})
	if err != nil {
		return err
	}
	defer ta.Close()
	tb, err := meshlibp2p.New(ctx, meshlibp2p.Config{Key: bob.home.Key, Listen: listen, Bootstrap: ta.Addrs(), DisableNATPortMap: true})
	if err != nil {
		return err
	}
	defer tb.Close()
	cfg := mesh.Config{SyncInterval: 500 * time.Millisecond}
	na, nb := mesh.NewNode(alice.sp.Replica, ta, cfg), mesh.NewNode(bob.sp.Replica, tb, cfg)
	for _, n := range []*mesh.Node{na, nb} {
		if err := n.Start(ctx); err != nil {
			return err
		}
		defer n.Close()
	}
	runner.Start(ctx)
	defer runner.Close()
	fmt.Fprintf(c.out, "    alice listens on %s\n", ta.Addrs()[0])
	start := time.Now()
	const books, perChange = 2000, 16
	for i := 0; i < books; i += perChange {
		ops := make([]core.Op, 0, perChange)
		for j := i; j < i+perChange && j < books; j++ {
			ops = append(ops, core.Op{Kind: core.OpCreate, Coll: "Book", Doc: fmt.Sprintf("bulk-%04d", j), Fields: map[string]any{"title": fmt.Sprintf("Volume %d", j), "year": int64(2000 + j%25)}})
		}
		if _, err := bob.sp.Replica.Write(ctx, bob.home.Key, ops, uint64(time.Now().UnixMilli())); err != nil {
			return err
		}
	}
	wrote := time.Since(start)
	deadline := time.Now().Add(60 * time.Second)
	for view.Count("Book") < books+1 {
		if time.Now().After(deadline) {
			return fmt.Errorf("alice's view holds %d books after 60s, want %d", view.Count("Book"), books+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	st := runner.Status()
	fmt.Fprintf(c.out, "    bob wrote %d books in %s; all in alice's view after %s (%.0f docs/s end to end), sink checkpoint %d of %d\n",
		books, wrote.Round(time.Millisecond), took.Round(time.Millisecond), float64(books)/took.Seconds(), st.Checkpoint, st.LastLSN)
	return nil
}
