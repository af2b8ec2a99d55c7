package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Scenarios, in the order they run.
var Scenarios = []string{"http", "load", "replicate", "catchup", "catchup-missing", "backfill", "rss", "visibility"}

// needsPostgres are the scenarios that write into PostgreSQL.
var needsPostgres = []string{"replicate", "catchup", "catchup-missing", "backfill", "rss"}

// Config says what to run and how large.
type Config struct {
	// Binary is the tributary binary the nodes run (os.Executable()).
	Binary string `json:"-"`
	// Dir holds the homes; default a temporary directory, removed after.
	Dir string `json:"-"`
	// Log gets a line per step (nil: none).
	Log io.Writer `json:"-"`
	// CPUProfileDir gets one CPU profile per node of each scenario.
	CPUProfileDir string `json:"cpuprofile_dir,omitempty"`

	Scenarios []string `json:"scenarios"`
	Seed      uint64   `json:"seed"` // documents are generated from it

	HTTPClients []int `json:"http_clients"` // concurrent clients of the single-document writes
	HTTPWrites  int   `json:"http_writes"`  // writes per client count
	LoadDocs    int   `json:"load_docs"`    // documents of the bulk load
	LoadBatch   int   `json:"load_batch"`   // operations per batch of `tributary load`
	// ReplicateDocs are written at A for B's Postgres.
	ReplicateDocs int `json:"replicate_docs"`
	// CatchupDocs: one catch-up per size, of documents written while B is offline.
	CatchupDocs []int `json:"catchup_docs"`
	// MissingHeld documents are held by A and B when B goes offline and
	// A writes MissingDocs more (catchup-missing).
	MissingHeld  int `json:"missing_held"`
	MissingDocs  int `json:"missing_docs"`
	BackfillDocs int `json:"backfill_docs"`
	RSSDocs      int `json:"rss_docs"`
	// VisibilityRate writes per second for VisibilityTime.
	VisibilityRate int           `json:"visibility_rate"`
	VisibilityTime time.Duration `json:"visibility_time_ns"`
	// PGBatch is the raw pgx baseline's rows per transaction (the sink's
	// default batch).
	PGBatch int `json:"pg_batch"`
}

// DefaultConfig is sized to finish in a few minutes on two cores.
func DefaultConfig() Config {
	return Config{
		Scenarios:   slices.Clone(Scenarios),
		Seed:        1,
		HTTPClients: []int{1, 16, 64}, HTTPWrites: 2000,
		LoadDocs: 50_000, LoadBatch: 2000,
		ReplicateDocs: 20_000,
		CatchupDocs:   []int{10_000},
		MissingHeld:   100_000, MissingDocs: 1000,
		BackfillDocs:   20_000,
		RSSDocs:        50_000,
		VisibilityRate: 1000, VisibilityTime: 10 * time.Second,
		PGBatch: 1000,
	}
}

// Full sets the large sizes.
func (c *Config) Full() {
	c.HTTPWrites = 10_000
	c.LoadDocs = 1_000_000
	c.ReplicateDocs = 200_000
	c.CatchupDocs = []int{100_000, 1_000_000}
	c.MissingHeld = 1_000_000
	c.BackfillDocs = 1_000_000
	c.RSSDocs = 1_000_000
	c.VisibilityTime = time.Minute
}

// Validate reports the first setting that cannot run.
func (c *Config) Validate() error {
	if c.Binary == "" {
		return fmt.Errorf("bench: no tributary binary to run the nodes")
	}
	if len(c.Scenarios) == 0 {
		return fmt.Errorf("bench: no scenario selected (known: %s)", strings.Join(Scenarios, ", "))
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("bench: unknown scenario %q (known: %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	if len(c.CatchupDocs) == 0 || len(c.HTTPClients) == 0 {
		return fmt.Errorf("bench: catch-up sizes and HTTP client counts need at least one value each")
	}
	check := func(name string, ns ...int) error {
		for _, n := range ns {
			if n < 1 {
				return fmt.Errorf("bench: %s %d: want at least 1", name, n)
			}
		}
		return nil
	}
	for _, err := range []error{
		check("http clients", c.HTTPClients...), check("http writes", c.HTTPWrites),
		check("load docs", c.LoadDocs), check("load batch", c.LoadBatch),
		check("replicate docs", c.ReplicateDocs), check("catch-up docs", c.CatchupDocs...),
		check("missing held", c.MissingHeld), check("missing docs", c.MissingDocs),
		check("backfill docs", c.BackfillDocs), check("rss docs", c.RSSDocs),
		check("visibility rate", c.VisibilityRate), check("pg batch", c.PGBatch),
	} {
		if err != nil {
			return err
		}
	}
	if c.VisibilityTime < 100*time.Millisecond {
		return fmt.Errorf("bench: visibility time %s: want at least 100ms", c.VisibilityTime)
	}
	return nil
}
