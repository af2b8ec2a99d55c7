package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func query(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDatabasesAreSeparate(t *testing.T) {
	start := time.Now()
	a := Database(t)
	b := Database(t)
	t.Logf("two databases in %v", time.Since(start))
	if a == b {
		t.Fatalf("same database twice: %s", a)
	}
	if got := query(t, a, "SELECT current_database()"); got == query(t, b, "SELECT current_database()") {
		t.Fatalf("both URLs reach %s", got)
	}
	if v := query(t, a, "SHOW fsync"); v != "off" {
		t.Fatalf("fsync = %s", v)
	}
}

func TestStartAndStop(t *testing.T) {
	c, err := StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	if got := query(t, c.URL, "SELECT current_user"); got != "postgres" {
		t.Fatalf("current_user %s", got)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s left behind: %v", c.dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, c.URL); err == nil {
		conn.Close(ctx)
		t.Fatal("the server still answers after Stop")
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
