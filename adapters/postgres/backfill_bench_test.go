package postgres

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/adapters/adaptertest"
	"github.com/tributary-sync/tributary/adapters/postgres/pgtest"
	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

type fixedSchema struct{ s *schema.Schema }

func (f fixedSchema) Schema() *schema.Schema { return f.s }

// BenchmarkBackfill is `tributary sink reset` on 50,000 documents through
// the runner: over intact tables (every row already holds its effect's
// values), over drifted ones (every row edited by hand, so every row is
// written again) and over emptied ones (every row inserted), in batches
// of 1000 and with catch-up batches of 3000 (the node's default) and
// 5000. Besides rows/s it reports the CPU it cost per row: PostgreSQL's
// (every server process, from /proc) and this process's (the runner and
// the sink), which a loaded machine disturbs far less than the wall
// clock.
func BenchmarkBackfill(b *testing.B) {
	const docs = 50_000
	url := pgtest.Database(b)
	ctx := context.Background()
	sch := mustSchema(b, adaptertest.BenchSchema)
	l, closeLog, err := eventstream.OpenMemory()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { closeLog() })
	for n := 0; n < docs; n += adaptertest.BenchBatch {
		es := adaptertest.BenchEffects(0)
		for i := range es {
			es[i].DocID = fmt.Sprintf("c%d", n+i)
		}
		for lo := 0; lo < len(es); lo += 1000 {
			if _, err := l.Append(es[lo:min(lo+1000, len(es))]); err != nil {
				b.Fatal(err)
			}
		}
	}
	s := open(b, Config{URL: url, Name: "backfill"})
	catchUp := func(cfg checkpoint.Config) {
		r, err := checkpoint.New(cfg, l, s, fixedSchema{sch}, checkpoint.NewMemoryParking())
		if err != nil {
			b.Fatal(err)
		}
		if err := r.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
	}
	catchUp(checkpoint.DefaultConfig())
	conn := connect(b, url)
	table := pgTable(b, s, adaptertest.BenchCollection)
	before := map[string]string{
		"intact":  "",
		"drifted": "UPDATE " + table + " SET _hlc = 'by hand'",
		"emptied": "TRUNCATE " + table,
	}
	for _, state := range []string{"intact", "drifted", "emptied"} {
		for _, batch := range []int{1000, 3000, 5000} {
			b.Run(fmt.Sprintf("%s/catch-up=%d", state, batch), func(b *testing.B) {
				var wall time.Duration
				var pg, self float64
				for range b.N {
					if sql := before[state]; sql != "" {
						if _, err := conn.Exec(ctx, sql); err != nil {
							b.Fatal(err)
						}
					}
					if err := s.Reset(ctx); err != nil {
						b.Fatal(err)
					}
					cfg := checkpoint.DefaultConfig()
					cfg.CatchUpBatch = batch
					pg0, self0, start := serverCPU(b, conn), processCPU(), time.Now()
					catchUp(cfg)
					wall += time.Since(start)
					pg += serverCPU(b, conn) - pg0
					self += processCPU() - self0
					var n int
					if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE _hlc <> 'by hand'").Scan(&n); err != nil || n != docs {
						b.Fatalf("%d rows hold their effect's values after the backfill (%v), want %d", n, err, docs)
					}
				}
				rows := float64(b.N * docs)
				b.ReportMetric(rows/wall.Seconds(), "rows/s")
				b.ReportMetric(pg/rows*1e6, "pg-µs/row")
				b.ReportMetric(self/rows*1e6, "go-µs/row")
			})
		}
	}
}

func pgTable(b *testing.B, s *Sink, collection string) string {
	name, err := s.TableName(context.Background(), collection)
	if err != nil {
		b.Fatalf("table of %s: %v", collection, err)
	}
	return quote(name)
}

// serverCPU is the CPU time, in seconds, that PostgreSQL's processes
// (every one pg_stat_activity lists: backends, WAL writer, checkpointer)
// have used so far.
func serverCPU(b *testing.B, conn *pgx.Conn) float64 {
	rows, err := conn.Query(context.Background(), "SELECT pid FROM pg_stat_activity")
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	var ticks float64
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // ended meanwhile
		}
		// Fields after the command (in parentheses): state is field 3,
		// utime and stime are fields 14 and 15.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		for _, k := range []int{11, 12} {
			v, err := strconv.ParseFloat(f[k], 64)
			if err != nil {
				b.Fatalf("/proc/%d/stat: %v", pid, err)
			}
			ticks += v
		}
	}
	return ticks / 100 // USER_HZ
}

// processCPU is the CPU time, in seconds, this process has used so far.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
