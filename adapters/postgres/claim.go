package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/checkpoint"
)

// The mapping tables, in Config.Schema beside the checkpoint table.
const (
	// TablesTable maps each claim's collections to tables: (space, node,
	// sink, collection) -> tbl, and tbl is unique, so a table belongs to
	// one claim.
	TablesTable = "tributary_tables"
	// ColumnsTable maps each table's fields to columns: (tbl, field) ->
	// col, col unique in its table.
	ColumnsTable = "tributary_columns"
)

// Claim is the sink's claim: (Config.Space, Config.Node, Config.Name).
func (s *Sink) Claim() checkpoint.Claim {
	return checkpoint.Claim{Space: s.cfg.Space, Node: s.cfg.Node, Sink: s.cfg.Name}
}

func (s *Sink) qualify(table string) string { return pgx.Identifier{s.cfg.Schema, table}.Sanitize() }

// claim makes the checkpoint row the sink's, or finds it another claim's,
// and takes a new fence: from now on only this instance writes.
func (s *Sink) claim(ctx context.Context, tx pgx.Tx) error {
	var space, node *string
	var fence int64
	err := tx.QueryRow(ctx, "SELECT space, node, fence FROM "+s.ckpt+" WHERE sink = $1 FOR UPDATE", s.cfg.Name).Scan(&space, &node, &fence)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		s.fence = 1
		_, err = tx.Exec(ctx, "INSERT INTO "+s.ckpt+" (sink, lsn, space, node, fence) VALUES ($1, 0, $2, $3, $4)", s.cfg.Name, s.cfg.Space, s.cfg.Node, s.fence)
		return err
	case err != nil:
		return err
	case space != nil && node != nil && (*space != s.cfg.Space || *node != s.cfg.Node):
		return &checkpoint.ClaimedError{
			What:  fmt.Sprintf("checkpoint row %q of %s", s.cfg.Name, s.ckpt),
			Owner: checkpoint.Claim{Space: *space, Node: *node, Sink: s.cfg.Name},
			By:    s.Claim(),
			Hint: fmt.Sprintf("name this sink otherwise or give it a schema of its own (option schema); to hand the target over, delete the row from %s and the owner's rows from %s",
				s.ckpt, s.qualify(TablesTable)),
		}
	}
	// Ours, or a row written before claims existed (no space): adopt it.
	s.fence = fence + 1
	_, err = tx.Exec(ctx, "UPDATE "+s.ckpt+" SET space = $2, node = $3, fence = $4 WHERE sink = $1", s.cfg.Name, s.cfg.Space, s.cfg.Node, s.fence)
	return err
}

// errFenced is the error of a sink whose fence the target no longer holds.
func (s *Sink) errFenced(held *int64) error {
	if held == nil {
		return fmt.Errorf("postgres sink %s: its checkpoint row is gone from %s: %w", s.cfg.Name, s.ckpt, checkpoint.ErrFenced)
	}
	return fmt.Errorf("postgres sink %s: fence %d, the checkpoint row holds %d: %w", s.cfg.Name, s.fence, *held, checkpoint.ErrFenced)
}

// checkFence locks the sink's checkpoint row in tx and returns its LSN,
// or ErrFenced when another instance took the row since New.
func (s *Sink) checkFence(ctx context.Context, tx pgx.Tx) (uint64, error) {
	var lsn, fence int64
	err := tx.QueryRow(ctx, "SELECT lsn, fence FROM "+s.ckpt+" WHERE sink = $1 FOR UPDATE", s.cfg.Name).Scan(&lsn, &fence)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, s.errFenced(nil)
	}
	if err != nil {
		return 0, fmt.Errorf("lock checkpoint: %w", err)
	}
	if fence != s.fence {
		return 0, s.errFenced(&fence)
	}
	return uint64(lsn), nil
}

// claimWhere selects the mapping rows (of table alias t) of the sink's
// claim, with its arguments numbered from n. A read-only sink without
// Space and Node reads the rows of its sink name, whichever claim holds
// them.
func (s *Sink) claimWhere(t string, n int) (string, []any) {
	if s.cfg.ReadOnly && s.cfg.Space == "" && s.cfg.Node == "" {
		return fmt.Sprintf("%s.sink = $%d", t, n), []any{s.cfg.Name}
	}
	return fmt.Sprintf("%[1]s.space = $%[2]d AND %[1]s.node = $%[3]d AND %[1]s.sink = $%[4]d", t, n, n+1, n+2), []any{s.cfg.Space, s.cfg.Node, s.cfg.Name}
}
