package mongotest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Start starts FerretDB over a fresh SQLite directory in t.TempDir, stops
// it when t ends, and returns its MongoDB URI (with the path "/"). It
// fails t if FerretDB cannot start or does not answer.
func Start(t testing.TB) string {
	t.Helper()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + t.TempDir() + "/",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("mongotest: start FerretDB (SQLite backend): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	uri := f.MongoDBURI()

	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	client, err := mongo.Connect(pctx, options.Client().ApplyURI(uri))
	if err == nil {
		err = client.Ping(pctx, nil)
		_ = client.Disconnect(context.Background())
	}
	if err != nil {
		t.Fatalf("mongotest: FerretDB at %s does not answer: %v", uri, err)
	}
	return uri
}
