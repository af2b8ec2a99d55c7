package mongodb

import (
	"bytes"
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tributary-sync/tributary/checkpoint"
)

// rewriteChunk is the most documents rewriteGroup replaces at once.
const rewriteChunk = 1000

// rewriteGroup is the write path on FerretDB. FerretDB's SQLite backend
// finds even a document by _id by scanning its table, so one guarded
// write per document costs a scan of the collection each. Instead, the
// sink reads the LSNs of the whole collection in one scan, inserts the
// documents that are new (inserts use the _id index), and replaces the
// ones that hold older effects by deleting them in one query and
// inserting them again; writes whose documents hold newer effects are
// dropped. The guard is the LSN read at the start, so this assumes one
// writer per database (the runner applies a sink's batches one at a
// time). A reader may miss a replaced document for a moment; if the sink
// dies between the delete and the insert, the checkpoint has not moved
// and the batch, applied again, inserts the documents.
func (s *Sink) rewriteGroup(ctx context.Context, coll *mongo.Collection, group []write) error {
	held, err := scanLSNs(ctx, coll)
	if err != nil {
		return s.failed(err)
	}
	var fresh, stale []write
	for _, w := range group {
		n, found := held[w.id]
		switch {
		case !found:
			fresh = append(fresh, w)
		case n <= w.lsn:
			stale = append(stale, w)
		}
	}
	if err := s.insertAll(ctx, coll, fresh, nil); err != nil {
		return err
	}
	for start := 0; start < len(stale); start += rewriteChunk {
		part := stale[start:min(start+rewriteChunk, len(stale))]
		ids := make(bson.A, len(part))
		for i, w := range part {
			ids[i] = w.id
		}
		in := bson.D{{Key: FieldID, Value: bson.D{{Key: "$in", Value: ids}}}}
		// The old documents, to put back one whose new state the server
		// refuses.
		old := make(map[string]bson.Raw, len(part))
		cur, err := coll.Find(ctx, in)
		if err != nil {
			return s.failed(err)
		}
		for cur.Next(ctx) {
			if id, ok := cur.Current.Lookup(FieldID).StringValueOK(); ok {
				old[id] = bytes.Clone(cur.Current)
			}
		}
		err = cur.Err()
		_ = cur.Close(ctx)
		if err != nil {
			return s.failed(err)
		}
		if _, err := coll.DeleteMany(ctx, in); err != nil {
			return s.failed(err)
		}
		if err := s.insertAll(ctx, coll, part, old); err != nil {
			return err
		}
	}
	return nil
}

// scanLSNs reads the _lsn of every document of coll.
func scanLSNs(ctx context.Context, coll *mongo.Collection) (map[string]int64, error) {
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: FieldLSN, Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	held := map[string]int64{}
	for cur.Next(ctx) {
		if id, ok := cur.Current.Lookup(FieldID).StringValueOK(); ok {
			held[id] = lsnOf(cur.Current)
		}
	}
	return held, cur.Err()
}

// insertAll inserts writes in ordered chunks; a chunk that fails is redone
// one document at a time. old holds the documents the writes replace.
func (s *Sink) insertAll(ctx context.Context, coll *mongo.Collection, writes []write, old map[string]bson.Raw) error {
	for start := 0; start < len(writes); start += s.cfg.ChunkSize {
		chunk := writes[start:min(start+s.cfg.ChunkSize, len(writes))]
		docs := make([]any, len(chunk))
		for i := range chunk {
			docs[i] = chunk[i].doc
		}
		_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
		if err == nil {
			continue
		}
		if isConnectionError(err) {
			return s.failed(err)
		}
		for i := range chunk {
			if err := s.insertOne(ctx, coll, &chunk[i], old[chunk[i].id]); err != nil {
				return err
			}
		}
	}
	return nil
}

// insertOne inserts one document. A duplicate id means the failed chunk
// inserted it already, or the document holds an effect (newer: done;
// older: replace it); a duplicate key on a missing document is a unique
// index of the user's. A refused document puts old back before the
// rejection is reported.
func (s *Sink) insertOne(ctx context.Context, coll *mongo.Collection, w *write, old bson.Raw) error {
	_, err := coll.InsertOne(ctx, w.doc)
	if err == nil {
		return nil
	}
	if mongo.IsDuplicateKeyError(err) {
		n, found, rerr := heldLSN(ctx, coll, w.id)
		switch {
		case rerr != nil:
			return s.failed(rerr)
		case found && n >= w.lsn:
			return nil
		case found:
			_, err = coll.ReplaceOne(ctx, bson.D{{Key: FieldID, Value: w.id}}, w.doc)
			if err == nil {
				return nil
			}
		}
	}
	if !isRejection(err) {
		return s.failed(err)
	}
	if old != nil {
		if _, rerr := coll.InsertOne(ctx, old); rerr != nil && !mongo.IsDuplicateKeyError(rerr) {
			return s.failed(fmt.Errorf("put back %s/%s after the server refused its new state (%v): %w", w.coll, w.id, err, rerr))
		}
	}
	return &checkpoint.RejectedError{Index: w.index, Reason: fmt.Sprintf("%s/%s: %v", w.coll, w.id, err)}
}
