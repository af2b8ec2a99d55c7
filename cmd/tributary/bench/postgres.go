package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgRows counts the rows of the bench collection's table in a sink's
// database (0 until the sink has mapped it).
func pgRows(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var tbl string
	err = conn.QueryRow(ctx, "SELECT tbl FROM tributary_tables WHERE collection = $1", collection).Scan(&tbl)
	if errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{tbl}.Sanitize()).Scan(&n)
	return n, err
}

func isUndefinedTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "SQLSTATE 42P01")
}

// rowWait is how long rows took to come: the first new one, and all.
type rowWait struct {
	first, all time.Duration
}

// waitRows polls until the sink's table holds want rows.
func (t *trial) waitRows(ctx context.Context, url string, want int, what string) (rowWait, error) {
	var w rowWait
	start := time.Now()
	deadline := start.Add(waitFor(want))
	last := -1
	for {
		n, err := pgRows(ctx, url)
		if err != nil {
			return w, fmt.Errorf("%s: count rows: %w", what, err)
		}
		if last >= 0 && n > last && w.first == 0 {
			w.first = time.Since(start)
		}
		if n >= want {
			w.all = time.Since(start)
			if w.first == 0 {
				w.first = w.all
			}
			return w, nil
		}
		if n != last {
			last, deadline = n, time.Now().Add(waitFor(want-n)) // progress moves the deadline
		}
		if time.Now().After(deadline) {
			return w, fmt.Errorf("%s: %d of %d rows in PostgreSQL, no progress for %s", what, n, want, waitFor(want-n))
		}
		select {
		case <-ctx.Done():
			return w, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitFor bounds a wait for n documents: a minute, and more for many.
func waitFor(n int) time.Duration {
	return time.Minute + time.Duration(n)*time.Millisecond
}

// rawUpsert is the baseline of every row figure: the rows of n generated
// documents (with the provenance columns a sink writes) upserted into a
// scratch table of the same database with one pgx unnest upsert and a
// checkpoint update per transaction of batch rows. It returns rows/s.
func rawUpsert(ctx context.Context, url string, seed uint64, prefix string, n, batch int) (float64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("raw pgx baseline: %w", err)
	}
	defer conn.Close(context.Background())
	const table = "bench_raw"
	if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %[1]s; DROP TABLE IF EXISTS %[1]s_ckpt;
		CREATE TABLE %[1]s (id text PRIMARY KEY, name text, n bigint, score double precision, note text,
			_lsn bigint NOT NULL, _change text, _author text, _hlc text);
		CREATE TABLE %[1]s_ckpt (sink text PRIMARY KEY, lsn bigint NOT NULL);
		INSERT INTO %[1]s_ckpt VALUES ('raw', 0)`, table)); err != nil {
		return 0, fmt.Errorf("raw pgx baseline: %w", err)
	}
	upsert := fmt.Sprintf(`INSERT INTO %s (id, name, n, score, note, _lsn, _change, _author, _hlc)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[])
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, n = EXCLUDED.n, score = EXCLUDED.score, note = EXCLUDED.note,
			_lsn = EXCLUDED._lsn, _change = EXCLUDED._change, _author = EXCLUDED._author, _hlc = EXCLUDED._hlc`, table)
	ckpt := fmt.Sprintf("UPDATE %s_ckpt SET lsn = $1 WHERE sink = 'raw'", table)
	// Provenance as long as a sink's: a CIDv1, an author key, an HLC.
	const change = "bafyreigklxkfvhwdkk74qqgqaeeinfknly7m35owlvonjkahvy2syxomuq"
	const author = "qx43m4tb5f6km5cemweh4pybbhp5kplbnzestdjk6ly7wuooucaq"
	var elapsed time.Duration
	for lo := 0; lo < n; lo += batch {
		k := min(batch, n-lo)
		ids, names, notes := make([]string, k), make([]string, k), make([]string, k)
		ns, lsns := make([]int64, k), make([]int64, k)
		scores := make([]float64, k)
		changes, authors, hlcs := make([]string, k), make([]string, k), make([]string, k)
		for j := range k {
			it := genItem(seed, prefix, lo+j)
			ids[j], names[j], ns[j], scores[j], notes[j] = it.ID, it.Name, it.N, it.Score, it.Note
			lsns[j], changes[j], authors[j] = int64(lo+j+1), change, author
			hlcs[j] = fmt.Sprintf("%016x-%04x", time.Now().UnixMilli(), j)
		}
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, upsert, ids, names, ns, scores, notes, lsns, changes, authors, hlcs); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, ckpt, int64(lo+k))
			return err
		})
		elapsed += time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("raw pgx baseline: %w", err)
		}
	}
	return perSecond(n, elapsed), nil
}
