package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tributary-sync/tributary/checkpoint"
)

// Claim is the sink's claim: (Config.Space, Config.Node, Config.Name).
func (s *Sink) Claim() checkpoint.Claim {
	return checkpoint.Claim{Space: s.cfg.Space, Node: s.cfg.Node, Sink: s.cfg.Name}
}

// checkpointDoc is the sink's document of _tributary_checkpoints.
type checkpointDoc struct {
	LSN   int64   `bson:"lsn"`
	Space *string `bson:"space"`
	Node  *string `bson:"node"`
	Fence *int64  `bson:"fence"`
}

func (s *Sink) readCheckpoint(ctx context.Context) (*checkpointDoc, error) {
	var d checkpointDoc
	err := s.ckpts.FindOne(ctx, bson.D{{Key: FieldID, Value: s.cfg.Name}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if d.LSN < 0 {
		return nil, fmt.Errorf("checkpoint document %s holds LSN %d", s.cfg.Name, d.LSN)
	}
	return &d, nil
}

// claim makes the checkpoint document the sink's, or finds it another
// claim's, and takes a new fence with a write guarded by the fence it
// read (a racing start makes it read again).
func (s *Sink) claim(ctx context.Context) error {
	for attempt := 0; attempt < 10; attempt++ {
		d, err := s.readCheckpoint(ctx)
		if err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
		if d == nil {
			_, err := s.ckpts.InsertOne(ctx, bson.D{{Key: FieldID, Value: s.cfg.Name}, {Key: "lsn", Value: int64(0)},
				{Key: "space", Value: s.cfg.Space}, {Key: "node", Value: s.cfg.Node}, {Key: "fence", Value: int64(1)}, {Key: "updated", Value: time.Now()}})
			if mongo.IsDuplicateKeyError(err) {
				continue // another instance created it meanwhile
			}
			if err != nil {
				return fmt.Errorf("claim checkpoint: %w", err)
			}
			s.fence = 1
			return nil
		}
		if d.Space != nil && d.Node != nil && (*d.Space != s.cfg.Space || *d.Node != s.cfg.Node) {
			return &checkpoint.ClaimedError{
				What:  fmt.Sprintf("checkpoint %q of database %s", s.cfg.Name, s.db.Name()),
				Owner: checkpoint.Claim{Space: *d.Space, Node: *d.Node, Sink: s.cfg.Name},
				By:    s.Claim(),
				Hint: fmt.Sprintf("name this sink otherwise or give it a database of its own; to hand the target over, delete the document %q from %s and the owner's documents from %s",
					s.cfg.Name, CheckpointCollection, NamesCollection),
			}
		}
		// Ours, or written before claims existed: take the next fence.
		filter := bson.D{{Key: FieldID, Value: s.cfg.Name}, {Key: "fence", Value: bson.D{{Key: "$exists", Value: false}}}}
		next := int64(1)
		if d.Fence != nil {
			filter = bson.D{{Key: FieldID, Value: s.cfg.Name}, {Key: "fence", Value: *d.Fence}}
			next = *d.Fence + 1
		}
		res, err := s.ckpts.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
			{Key: "space", Value: s.cfg.Space}, {Key: "node", Value: s.cfg.Node}, {Key: "fence", Value: next}, {Key: "updated", Value: time.Now()}}}})
		if err != nil {
			return fmt.Errorf("claim checkpoint: %w", err)
		}
		if res.MatchedCount == 1 {
			s.fence = next
			return nil
		}
	}
	return errors.New("claim checkpoint: other instances keep starting at the same time")
}

// errFenced is the error of a sink whose fence the target no longer
// holds; held is nil when the checkpoint document is gone.
func (s *Sink) errFenced(held *int64) error {
	if held == nil {
		return fmt.Errorf("mongodb sink %s: its checkpoint is gone from %s: %w", s.cfg.Name, CheckpointCollection, checkpoint.ErrFenced)
	}
	return fmt.Errorf("mongodb sink %s: fence %d, the checkpoint holds %d: %w", s.cfg.Name, s.fence, *held, checkpoint.ErrFenced)
}

// checkFence reads the checkpoint and returns ErrFenced unless it holds
// the sink's fence.
func (s *Sink) checkFence(ctx context.Context) (uint64, error) {
	d, err := s.readCheckpoint(ctx)
	if err != nil {
		return 0, s.failed(fmt.Errorf("read checkpoint: %w", err))
	}
	if d == nil {
		return 0, s.errFenced(nil)
	}
	if d.Fence == nil || *d.Fence != s.fence {
		var held int64
		if d.Fence != nil {
			held = *d.Fence
		}
		return 0, s.errFenced(&held)
	}
	return uint64(d.LSN), nil
}

// saveCheckpoint raises the checkpoint to through ($max: never lowers it),
// guarded by the sink's fence: a fenced-out instance matches nothing.
func (s *Sink) saveCheckpoint(ctx context.Context, through int64) error {
	res, err := s.ckpts.UpdateOne(ctx, bson.D{{Key: FieldID, Value: s.cfg.Name}, {Key: "fence", Value: s.fence}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "lsn", Value: through}}}, {Key: "$set", Value: bson.D{{Key: "updated", Value: time.Now()}}}})
	if err != nil {
		return fmt.Errorf("mongodb sink %s: save checkpoint %d: %w", s.cfg.Name, through, err)
	}
	if res.MatchedCount == 0 {
		_, err := s.checkFence(ctx)
		if err == nil {
			err = fmt.Errorf("mongodb sink %s: save checkpoint %d: the checkpoint document did not match", s.cfg.Name, through)
		}
		return err
	}
	return nil
}

// owns tells whether mapping documents of claim c are the sink's.
func (s *Sink) owns(c checkpoint.Claim) bool {
	if s.cfg.ReadOnly && s.cfg.Space == "" && s.cfg.Node == "" {
		return c.Sink == s.cfg.Name
	}
	return c == s.Claim()
}
