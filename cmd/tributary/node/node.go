package node

import (
	"errors"

	"github.com/dgraph-io/badger/v4"

	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// effectPrefix is where the effect log keeps its keys in the space's DB.
var effectPrefix = []byte("e/")

// Space is one open space: its replica and its effect log.
type Space struct {
	Replica *replica.Replica
	Effects *eventstream.Log
	Dir     string
	shared  bool // owned by a Registry: Close is a no-op
}

// OpenSpace opens (creating if needed) the space stored in dir. expect,
// when non-zero, is the only genesis the replica will accept.
func OpenSpaceDir(dir string, opts replica.Options) (*Space, error) {
	sp := &Space{Dir: dir}
	opts.Dir = dir
	opts.Effects = func(txn *badger.Txn, effects []replica.Effect) error {
		if sp.Effects == nil {
			return errors.New("effect log is not open yet")
		}
		_, err := sp.Effects.AppendTxn(txn, toEventEffects(effects))
		return err
	}
	opts.Committed = func() {
		if sp.Effects != nil {
			sp.Effects.Committed()
		}
	}
	r, err := replica.Open(opts)
	if err != nil {
		return nil, err
	}
	log, err := eventstream.Open(r.DB(), effectPrefix)
	if err != nil {
		r.Close()
		return nil, err
	}
	sp.Replica, sp.Effects = r, log
	return sp, nil
}

// Close closes the space's store, unless a Registry owns it (the running
// node keeps it open for every command).
func (s *Space) Close() error {
	if s.shared {
		return nil
	}
	return s.Replica.Close()
}

// Schema is the schema in force (checkpoint.SchemaSource).
func (s *Space) Schema() *schema.Schema { return s.Replica.Schema() }

func toEventEffects(in []replica.Effect) []eventstream.Effect {
	out := make([]eventstream.Effect, len(in))
	for i, e := range in {
		kind := eventstream.Upsert
		if e.Deleted {
			kind = eventstream.Delete
		}
		changes := make([]string, len(e.Changes))
		for j, c := range e.Changes {
			changes[j] = c.String()
		}
		out[i] = eventstream.Effect{
			Collection: e.Collection, DocID: e.DocID, Kind: kind, Doc: e.Doc,
			Changes: changes, Author: e.Last.Author.String(), HLC: e.Last.HLC.String(),
			LastChange: e.Last.Change.String(), SchemaID: e.SchemaID,
		}
	}
	return out
}
