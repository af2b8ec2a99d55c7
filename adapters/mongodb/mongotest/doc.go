// Package mongotest runs FerretDB (v1, SQLite backend) inside the test
// process, so the MongoDB sink's tests need no server:
//
//	uri := mongotest.Start(t) // mongodb://127.0.0.1:PORT/ ; append a database name
//
// FerretDB speaks MongoDB's wire protocol but has no transactions, and its
// SQLite backend scans a collection for every query (even on _id): keep
// test data small.
package mongotest
