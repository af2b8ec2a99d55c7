package replica

import (
	"slices"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/schema"
)

// view is what readers see without taking the writer's lock: the
// committed state's schema, membership and counters, published after
// every commit (and load) and never changed after. Document reads pair it
// with a Badger read transaction, which sees committed data only.
type view struct {
	genesisID core.ID
	space     core.ID // genesisID, or the space a joiner expects
	genesis   *core.Change
	schema    *schema.Schema
	members   *core.Membership
	heads     []core.ID // sorted by ID
	counts    counts
	orphans   int
	equivocal []core.PublicKey // sorted
}

// counts are kept as changes are stored and judged, so status costs
// nothing on a hot path (a /metrics scrape).
type counts struct {
	changes   int
	invalid   int
	maxHeight uint64
}

// publish makes the writer's current state the readers' view. Call it
// with r.mu held, once the state is committed.
func (r *Replica) publish() {
	v := &view{genesisID: r.genesisID, space: r.genesisID, genesis: r.genesis, schema: r.current,
		members: r.members, counts: r.counts, orphans: len(r.orphans)}
	if v.space.IsZero() {
		v.space = r.opts.Space
	}
	v.heads = make([]core.ID, 0, len(r.heads))
	for h := range r.heads {
		v.heads = append(v.heads, h)
	}
	core.SortIDs(v.heads)
	for a := range r.equivocal {
		v.equivocal = append(v.equivocal, a)
	}
	slices.SortFunc(v.equivocal, func(a, b core.PublicKey) int { return slices.Compare(a[:], b[:]) })
	r.view.Store(v)
}
