package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/bench"
)

// A node the bench starts writes a CPU profile when its environment asks
// (bench.ProfileEnv); without it this does nothing.
func init() { bench.ServeProfileSignals() }

func (c *cli) benchCmd() *cobra.Command {
	def := bench.DefaultConfig()
	var (
		scenarios, out, profDir, dir string
		full                         bool
		f                            = def
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the product path (nodes, HTTP, libp2p, PostgreSQL) beside raw baselines; print a table, write JSON",
		Long: `Measure tributary as users run it: nodes are child processes of this
binary (tributary run on on-disk homes, loopback ports, mDNS off), writes go
through the HTTP API with its token, A and B sync over libp2p, and the
postgres sink writes into a real PostgreSQL started as the tests start one
(adapters/postgres/pgtest: its server binaries, and as root the postgres
user). Each figure stands beside a raw baseline measured in the same run.

Scenarios (--scenarios, comma-separated; all by default):
  http        single-document PUTs at A by 1, 16, 64 clients: docs/s, p50/p99
              (baseline: the same client against a trivial net/http handler)
  load        tributary load into a running node: docs/s
              (baselines: replica.Mutate in process; raw Badger writes)
  replicate   load at A -> rows in B's Postgres over libp2p: rows/s
              (baseline: a pgx unnest upsert of the same rows)
  catchup     B offline while A writes N, then B starts: time to all rows,
              round trips, bytes received vs the missing changes' size
  catchup-missing  A and B hold N (--missing-held), B offline while A writes
              M more, one PUT each (--missing-docs), then B starts: the same
              figures for a small difference in a large set
  backfill    tributary sink reset: rows/s (baseline: pgx unnest upsert)
  rss         peak RSS (VmHWM) of a node holding N documents, with and
              without a postgres sink (baseline: the node holding none)
  visibility  p50/p99 write at A -> on B's effect stream (SSE) at a steady
              rate (baseline: on A's own stream)

The defaults finish in a few minutes on two cores; --full runs the large
sizes (1M documents). --cpuprofile DIR writes a CPU profile of each node
over the measured part of each scenario. It never asserts a speed: it
measures.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := bench.DefaultConfig()
			if full {
				cfg.Full()
			}
			fl := cmd.Flags()
			set := func(name string, apply func()) {
				if fl.Changed(name) {
					apply()
				}
			}
			set("http-clients", func() { cfg.HTTPClients = f.HTTPClients })
			set("http-writes", func() { cfg.HTTPWrites = f.HTTPWrites })
			set("load-docs", func() { cfg.LoadDocs = f.LoadDocs })
			set("load-batch", func() { cfg.LoadBatch = f.LoadBatch })
			set("replicate-docs", func() { cfg.ReplicateDocs = f.ReplicateDocs })
			set("catchup-docs", func() { cfg.CatchupDocs = f.CatchupDocs })
			set("missing-held", func() { cfg.MissingHeld = f.MissingHeld })
			set("missing-docs", func() { cfg.MissingDocs = f.MissingDocs })
			set("backfill-docs", func() { cfg.BackfillDocs = f.BackfillDocs })
			set("rss-docs", func() { cfg.RSSDocs = f.RSSDocs })
			set("visibility-rate", func() { cfg.VisibilityRate = f.VisibilityRate })
			set("visibility-time", func() { cfg.VisibilityTime = f.VisibilityTime })
			set("seed", func() { cfg.Seed = f.Seed })
			if scenarios != "" {
				cfg.Scenarios = strings.Split(scenarios, ",")
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench: the nodes run this binary, which cannot be found: %w", err)
			}
			cfg.Binary, cfg.Dir, cfg.CPUProfileDir = exe, dir, profDir
			if !c.json {
				cfg.Log = c.errOut
				fmt.Fprintf(c.errOut, "bench: seed %d (documents are generated from it)\n", cfg.Seed)
			}
			if dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("bench: --dir: %w", err)
				}
			}
			rep, err := bench.Run(cmd.Context(), cfg)
			if rep == nil || errors.Is(err, bench.ErrNoPostgres) {
				return err
			}
			if out != "" {
				if werr := writeReport(out, rep); werr != nil {
					return errors.Join(err, werr)
				}
			}
			if c.json {
				if perr := rep.WriteJSON(c.out); perr != nil {
					return errors.Join(err, perr)
				}
				return err
			}
			if terr := rep.WriteTable(c.out); terr != nil {
				return errors.Join(err, terr)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&scenarios, "scenarios", "", "scenarios to run, comma-separated (default: "+strings.Join(bench.Scenarios, ",")+")")
	fl.StringVar(&out, "out", "", "also write the report as JSON to this file")
	fl.StringVar(&profDir, "cpuprofile", "", "write a CPU profile of each node of each scenario into this directory")
	fl.StringVar(&dir, "dir", "", "keep the homes and logs here (default: a temporary directory, removed after)")
	fl.BoolVar(&full, "full", false, "the large sizes (1M documents); size flags given still win")
	fl.Uint64Var(&f.Seed, "seed", def.Seed, "seed the documents are generated from")
	fl.IntSliceVar(&f.HTTPClients, "http-clients", def.HTTPClients, "concurrent clients of the single-document writes")
	fl.IntVar(&f.HTTPWrites, "http-writes", def.HTTPWrites, "single-document writes per client count")
	fl.IntVar(&f.LoadDocs, "load-docs", def.LoadDocs, "documents of the bulk load")
	fl.IntVar(&f.LoadBatch, "load-batch", def.LoadBatch, "operations per batch of tributary load")
	fl.IntVar(&f.ReplicateDocs, "replicate-docs", def.ReplicateDocs, "documents written at A for B's Postgres")
	fl.IntSliceVar(&f.CatchupDocs, "catchup-docs", def.CatchupDocs, "documents written while B is offline (one catch-up per size)")
	fl.IntVar(&f.MissingHeld, "missing-held", def.MissingHeld, "documents A and B both hold before B goes offline (catchup-missing)")
	fl.IntVar(&f.MissingDocs, "missing-docs", def.MissingDocs, "documents A writes while B is offline, one PUT each (catchup-missing)")
	fl.IntVar(&f.BackfillDocs, "backfill-docs", def.BackfillDocs, "documents rewritten by the backfill")
	fl.IntVar(&f.RSSDocs, "rss-docs", def.RSSDocs, "documents the node holds when its memory is read")
	fl.IntVar(&f.VisibilityRate, "visibility-rate", def.VisibilityRate, "writes per second at A")
	fl.DurationVar(&f.VisibilityTime, "visibility-time", def.VisibilityTime, "how long A writes at that rate")
	return cmd
}

// writeReport writes the JSON report to path.
func writeReport(path string, rep *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: --out: %w", err)
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: --out: %w", err)
	}
	return f.Close()
}
