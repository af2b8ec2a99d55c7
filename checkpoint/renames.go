package checkpoint

import (
	"context"

	"github.com/tributary-sync/tributary/core/schema"
	"github.com/tributary-sync/tributary/eventstream"
)

// underSchema gives the effects written under an earlier schema than sch
// the field names of sch: the value of a renamed field moves from its
// former name (schema.Collection.Rename), so a sink that lags behind an
// upgrade, or backfills after it, stores it where the field lives now.
// effects is returned as it is when nothing moves; it is never modified.
func underSchema(sch *schema.Schema, effects []eventstream.Effect) []eventstream.Effect {
	if sch == nil || !sch.HasRenames() {
		return effects
	}
	var out []eventstream.Effect
	for i := range effects {
		e := &effects[i]
		if e.SchemaID == sch.ID || e.Doc == nil {
			continue
		}
		c, ok := sch.Collection(e.Collection)
		if !ok {
			continue
		}
		doc, moved := c.Rename(e.Doc)
		if !moved {
			continue
		}
		if out == nil {
			out = append([]eventstream.Effect(nil), effects...)
		}
		out[i].Doc = doc
	}
	if out == nil {
		return effects
	}
	return out
}

// applyBatch hands b to the sink with its effects under b.Schema's names.
func (r *Runner) applyBatch(ctx context.Context, b Batch) error {
	b.Effects = underSchema(b.Schema, b.Effects)
	return r.sink.Apply(ctx, b)
}
