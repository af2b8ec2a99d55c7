package node

import (
	"errors"

	"github.com/tributary-sync/tributary/core"
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

// OpenSpaceDir opens (creating if needed) the space stored in dir.
// opts.Space, when non-zero, is the only genesis the replica will accept.
func OpenSpaceDir(dir string, opts replica.Options) (*Space, error) {
	sp := &Space{Dir: dir}
	effects := &effectLog{}
	opts.Dir = dir
	opts.Effects = effects
	r, err := replica.Open(opts)
	if err != nil {
		return nil, err
	}
	log, err := eventstream.Open(r.DB(), effectPrefix)
	if err != nil {
		r.Close()
		return nil, err
	}
	effects.log = log
	sp.Replica, sp.Effects = r, log
	return sp, nil
}

// effectLog hands the replica's effects to the space's log, which opens
// on the replica's store, after it.
type effectLog struct{ log *eventstream.Log }

func (e *effectLog) AppendTx(tx replica.Tx, effects []core.Effect) error {
	if e.log == nil {
		return errors.New("effect log is not open yet")
	}
	return e.log.AppendTx(tx, effects)
}

func (e *effectLog) Committed() {
	if e.log != nil {
		e.log.Committed()
	}
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
