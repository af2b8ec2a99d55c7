package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/adapters/internal/naming"
	"github.com/tributary-sync/tributary/core/schema"
)

// enumComment starts the comment of an enum column's CHECK constraint; the
// values the constraint admits follow, separated by spaces. The comment,
// not the constraint's text, is what the sink reads back.
const enumComment = "tributary enum "

// enumConstraint is the name of the CHECK constraint of an enum column:
// unique within its table, which is all PostgreSQL asks of a CHECK's name.
func enumConstraint(col string) string {
	return naming.Fit(col+"_enum", col, MaxIdentifier)
}

// enumCheck is the CHECK expression admitting values (NULL passes, as
// for every CHECK): a value among them, or an array whose elements are.
func enumCheck(c column, values []string) string {
	lits := make([]string, len(values))
	for i, v := range values {
		lits[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	arr := "ARRAY[" + strings.Join(lits, ", ") + "]::text[]"
	if c.field.Kind == schema.List || c.field.Kind == schema.Set {
		return quote(c.name) + " <@ " + arr
	}
	return quote(c.name) + " = ANY (" + arr + ")"
}

// enumConstraints queues in b what keeps the CHECK constraint of every
// enum column up to date: created with the column, widened when an
// upgrade adds values. It never narrows: the constraint admits every
// value any schema it saw declared, since documents written before an
// upgrade that dropped a value (under an @existing policy) may hold it.
// The constraint is added NOT VALID: every row the sink writes is checked
// against it, and the rows already there (which the narrower constraint
// admitted) are not scanned again under the table's exclusive lock.
func (s *Sink) enumConstraints(ctx context.Context, tx pgx.Tx, l *layout, b *pgx.Batch) error {
	var tables []string
	for _, t := range l.order {
		for _, c := range t.fields {
			if c.field.Type != nil && c.field.Type.IsEnum() {
				tables = append(tables, t.name)
				break
			}
		}
	}
	if len(tables) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT t.relname::text, c.conname::text, coalesce(obj_description(c.oid, 'pg_constraint'), '')
		FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = $1 AND t.relname = ANY($2) AND c.contype = 'c'`, s.cfg.Schema, tables)
	if err != nil {
		return fmt.Errorf("read CHECK constraints: %w", err)
	}
	have := map[string]string{} // table "." constraint -> comment
	for rows.Next() {
		var tn, cn, comment string
		if err := rows.Scan(&tn, &cn, &comment); err != nil {
			rows.Close()
			return fmt.Errorf("read CHECK constraints: %w", err)
		}
		have[tn+"."+cn] = comment
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read CHECK constraints: %w", err)
	}
	for _, t := range l.order {
		for _, c := range t.fields {
			typ := c.field.Type
			if typ == nil || !typ.IsEnum() {
				continue
			}
			name := enumConstraint(c.name)
			values := slices.Clone(typ.Values)
			comment, exists := have[t.name+"."+name]
			if exists {
				old, ours := strings.CutPrefix(comment, enumComment+typ.Name+":")
				if !ours {
					return fmt.Errorf("%w: table %s has a CHECK constraint %s that the sink did not make (it names the constraint of enum column %s; drop or rename it)",
						errSchemaConflict, t.qualified(s.cfg.Schema), quote(name), quote(c.name))
				}
				for _, v := range strings.Fields(old) {
					if !slices.Contains(values, v) {
						values = append(values, v) // never narrowed
					}
				}
				if len(values) == len(strings.Fields(old)) {
					continue // admits what it must already
				}
			}
			tbl := t.qualified(s.cfg.Schema)
			b.Queue(fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s, ADD CONSTRAINT %s CHECK (%s) NOT VALID",
				tbl, quote(name), quote(name), enumCheck(c, values)))
			b.Queue(fmt.Sprintf("COMMENT ON CONSTRAINT %s ON %s IS '%s'", quote(name), tbl,
				strings.ReplaceAll(enumComment+typ.Name+": "+strings.Join(values, " "), "'", "''")))
		}
	}
	return nil
}
