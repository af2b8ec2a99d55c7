package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
)

// ErrNoPostgres: a scenario needs PostgreSQL and none could be started.
var ErrNoPostgres = errors.New("no PostgreSQL")

// scenarioRuns are the measurements, by name.
var scenarioRuns = map[string]func(ctx context.Context, t *trial) error{
	"http":            runHTTP,
	"load":            runLoad,
	"replicate":       runReplicate,
	"catchup":         runCatchup,
	"catchup-missing": runCatchupMissing,
	"backfill":        runBackfill,
	"rss":             runRSS,
	"visibility":      runVisibility,
}

// harness is one run of the bench.
type harness struct {
	cfg    Config
	dir    string
	schema string // the schema file the spaces are founded with
	pg     *pgtest.Cluster
}

func (h *harness) logf(format string, args ...any) {
	if h.cfg.Log != nil {
		fmt.Fprintf(h.cfg.Log, format+"\n", args...)
	}
}

// Run runs the configured scenarios in order and returns what they
// measured; the report holds every scenario that finished, also when an
// error (a scenario that failed, or PostgreSQL missing) is returned.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), Machine: ThisMachine(), Config: cfg, Results: []Result{}}
	defer func() { rep.Elapsed = time.Since(rep.Started).Seconds() }()
	h := &harness{cfg: cfg, dir: cfg.Dir}
	if h.dir == "" {
		d, err := os.MkdirTemp("", "tributary-bench-")
		if err != nil {
			return rep, err
		}
		defer os.RemoveAll(d)
		h.dir = d
	}
	if cfg.CPUProfileDir != "" {
		if err := os.MkdirAll(cfg.CPUProfileDir, 0o755); err != nil {
			return rep, fmt.Errorf("bench: --cpuprofile: %w", err)
		}
	}
	h.schema = filepath.Join(h.dir, "schema.graphql")
	if err := os.WriteFile(h.schema, []byte(schemaSDL), 0o644); err != nil {
		return rep, err
	}
	if pgNeeded := intersect(cfg.Scenarios, needsPostgres); len(pgNeeded) > 0 {
		h.logf("starting PostgreSQL (pgtest)")
		c, err := pgtest.StartCluster()
		if err != nil {
			return rep, fmt.Errorf("bench: %w: scenarios %s write into PostgreSQL, started as the tests start it (adapters/postgres/pgtest: the server binaries, and as root a postgres user to run them): %v; run the others with --scenarios %s",
				ErrNoPostgres, strings.Join(pgNeeded, ","), err, strings.Join(without(cfg.Scenarios, needsPostgres), ","))
		}
		h.pg = c
		defer c.Stop()
	}
	var failed []string
	for _, name := range cfg.Scenarios {
		if ctx.Err() != nil {
			break
		}
		h.logf("scenario %s", name)
		t := &trial{h: h, name: name, dir: filepath.Join(h.dir, name)}
		err := os.MkdirAll(t.dir, 0o755)
		if err == nil {
			err = scenarioRuns[name](ctx, t)
		}
		if ferr := t.finish(); err == nil {
			err = ferr
		}
		rep.Results = append(rep.Results, t.results...)
		rep.Profiles = append(rep.Profiles, t.profiles...)
		if err != nil {
			h.logf("scenario %s failed: %v", name, err)
			rep.Failures = append(rep.Failures, Failure{Scenario: name, Error: err.Error()})
			failed = append(failed, name)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("bench: scenario %s failed (see the report)", strings.Join(failed, ", "))
	}
	return rep, nil
}

func intersect(a, b []string) []string {
	var out []string
	for _, s := range a {
		if slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func without(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// trial is one scenario's run: its directory, the nodes it started
// (stopped when it ends), its results and profiles.
type trial struct {
	h        *harness
	name     string
	dir      string
	seq      int
	nodes    []*Node
	results  []Result
	profiles []string
}

// add records a result; base may be nil.
func (t *trial) add(r Result, base *Baseline) {
	r.Scenario = t.name
	if base != nil {
		r.Baseline = base
		if base.Value != 0 {
			r.Ratio = r.Value / base.Value
		}
	}
	t.results = append(t.results, r)
	t.h.logf("  %s %s %s: %s", t.name, r.Case, r.Metric, format(r.Value, r.Unit))
}

// measure starts the CPU profile of every running node: what follows is
// the part of the scenario being measured.
func (t *trial) measure() error {
	for _, n := range t.nodes {
		if err := n.startProfile(); err != nil {
			return err
		}
	}
	return nil
}

// stopNode writes the node's profile, then stops it.
func (t *trial) stopNode(n *Node) error {
	p, perr := n.stopProfile()
	if p != "" {
		t.profiles = append(t.profiles, p)
	}
	return errors.Join(perr, n.Stop())
}

// finish stops every node still running.
func (t *trial) finish() error {
	var errs []error
	for _, n := range t.nodes {
		errs = append(errs, t.stopNode(n))
	}
	t.nodes = nil
	return errors.Join(errs...)
}

// database is a new database on the bench's PostgreSQL.
func (t *trial) database(ctx context.Context) (string, error) {
	if t.h.pg == nil {
		return "", fmt.Errorf("%w: scenario %s needs it", ErrNoPostgres, t.name)
	}
	url, _, err := t.h.pg.CreateDatabase(ctx)
	return url, err
}
