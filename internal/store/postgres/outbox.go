package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Notifications: the outbox and incidents tables of migration 0009.
//
// The incident step of Publish is one statement whose row lock decides:
// opening is INSERT ... ON CONFLICT DO UPDATE ... WHERE closed, so of two
// servers opening the same problem of a run at once one inserts (or
// reopens) and the other, waiting for that row, finds it open and changes
// nothing; closing and repairing are UPDATEs whose WHERE is re-checked on
// the row another transaction committed. A claim takes due rows with FOR
// UPDATE SKIP LOCKED, so two servers claiming at once take different rows,
// and a row claimed and committed no longer matches the claim's WHERE.

const deliveryCols = `id, run_id, pipeline, kind, payload::text, destination::text, label, state, attempts, created_at,
	next_at, last_error, finished_at, claimed_by, claimed_until`

func scanDelivery(row pgx.Row) (store.Delivery, error) {
	var d store.Delivery
	var run pgtype.Int8
	err := row.Scan(&d.ID, &run, &d.Pipeline, &d.Kind, jsonCol{&d.Payload}, jsonCol{&d.Destination}, &d.Label,
		&d.State, &d.Attempts, timeCol{&d.CreatedAt}, timeCol{&d.NextAt}, &d.LastError, timeCol{&d.FinishedAt},
		&d.ClaimedBy, timeCol{&d.ClaimedUntil})
	d.RunID = run.Int64
	return d, err
}

// Publish applies the incident step and writes the deliveries it allows.
func (db *DB) Publish(ctx context.Context, n store.Notification) ([]store.Delivery, error) {
	if err := store.PrepareNotification(&n); err != nil {
		return nil, err
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, err)
	}
	defer rollback(tx)
	var run any
	if n.RunID != 0 {
		run = n.RunID
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM runs WHERE id = $1`, n.RunID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, err)
		}
		tell, err := incidentStep(ctx, tx, n)
		if err != nil {
			return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, notFoundRun(err))
		}
		if !tell {
			if err := tx.Commit(ctx); err != nil {
				return nil, fmt.Errorf("publish %s of run %d: commit: %w", n.Kind, n.RunID, err)
			}
			return nil, nil
		}
	}
	out := make([]store.Delivery, 0, len(n.Targets))
	for _, t := range n.Targets {
		d, err := scanDelivery(tx.QueryRow(ctx, `INSERT INTO outbox (run_id, pipeline, kind, payload, destination, label,
			state, created_at, next_at) VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6, 'pending', $7, $7)
			RETURNING `+deliveryCols,
			run, n.Pipeline, n.Kind, string(n.Payload), string(t.Destination), t.Label, n.At))
		if err != nil {
			return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, notFoundRun(err))
		}
		out = append(out, d)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("publish %s of run %d: commit: %w", n.Kind, n.RunID, notFoundRun(err))
	}
	return out, nil
}

// notFoundRun turns the foreign key violation of a run deleted meanwhile
// into ErrNotFound.
func notFoundRun(err error) error {
	if e := pgErr(err); e != nil && e.Code == sqlstateForeignKeyViolation {
		return fmt.Errorf("run: %w", store.ErrNotFound)
	}
	return err
}

// incidentStep changes the run's incidents as n says and reports whether
// n is to be told.
func incidentStep(ctx context.Context, tx pgx.Tx, n store.Notification) (bool, error) {
	var q string
	var args []any
	switch n.Incident {
	case store.IncidentNone:
		return true, nil
	case store.IncidentOpen:
		q = `INSERT INTO incidents AS i (run_id, problem, opened_at) VALUES ($1, $2, $3)
			ON CONFLICT (run_id, problem) DO UPDATE SET opened_at = excluded.opened_at, closed_at = NULL,
			repaired_at = NULL, opened = i.opened + 1
			WHERE i.closed_at IS NOT NULL RETURNING problem`
		args = []any{n.RunID, n.Kind, n.At}
	case store.IncidentRepair:
		q = `UPDATE incidents SET repaired_at = $1 WHERE run_id = $2 AND closed_at IS NULL AND repaired_at IS NULL RETURNING problem`
		args = []any{n.At, n.RunID}
	case store.IncidentClose:
		q = `UPDATE incidents SET closed_at = $1 WHERE run_id = $2 AND closed_at IS NULL RETURNING problem`
		args = []any{n.At, n.RunID}
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("incident: %w", err)
	}
	changed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("incident: %w", err)
	}
	return len(changed) > 0, nil
}

// ClaimDeliveries claims due deliveries with one UPDATE over the rows a
// FOR UPDATE SKIP LOCKED subquery picked.
func (db *DB) ClaimDeliveries(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	limit, err := store.CheckClaim(holder, now, lease, limit)
	if err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `UPDATE outbox o SET claimed_by = $1, claimed_until = $2, attempts = o.attempts + 1
		FROM (SELECT id FROM outbox WHERE state = 'pending' AND next_at <= $3
			AND (claimed_until IS NULL OR claimed_until <= $3)
			ORDER BY next_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) c
		WHERE o.id = c.id
		RETURNING `+prefixed("o.", deliveryCols), holder, store.NormTime(now.Add(lease)), store.NormTime(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries for %q: %w", holder, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Delivery, error) { return scanDelivery(row) })
	if err != nil {
		return nil, fmt.Errorf("claim deliveries for %q: %w", holder, err)
	}
	slices.SortFunc(out, func(a, b store.Delivery) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// prefixed qualifies every column of a column list with a table alias.
func prefixed(alias, cols string) string {
	var b []byte
	start := true
	for i := 0; i < len(cols); i++ {
		c := cols[i]
		if start && c != ' ' && c != '\t' && c != '\n' {
			b = append(b, alias...)
			start = false
		}
		b = append(b, c)
		if c == ',' {
			start = true
		}
	}
	return string(b)
}

// FinishDelivery records a try's end if the claim still holds. A record
// is written after the delivery's run is locked as Apply locks it, so the
// run's events still commit in seq order.
func (db *DB) FinishDelivery(ctx context.Context, o store.DeliveryOutcome) error {
	if err := store.PrepareOutcome(&o); err != nil {
		return err
	}
	state, next, finished := store.DeliverySent, any(nil), timeArg(o.At)
	switch {
	case o.Error != "" && !o.RetryAt.IsZero():
		state, next, finished = store.DeliveryPending, o.RetryAt, nil
	case o.Error != "":
		state = store.DeliveryFailed
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("finish delivery %d: %w", o.ID, err)
	}
	defer rollback(tx)
	var run pgtype.Int8
	if o.Record != nil {
		// Lock the run first, as Apply does, then the delivery.
		err := tx.QueryRow(ctx, `SELECT run_id FROM outbox WHERE id = $1`, o.ID).Scan(&run)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("finish delivery %d: %w", o.ID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("finish delivery %d: %w", o.ID, err)
		}
		if run.Valid {
			if _, err := tx.Exec(ctx, `SELECT id FROM runs WHERE id = $1 FOR NO KEY UPDATE`, run.Int64); err != nil {
				return fmt.Errorf("finish delivery %d: lock run %d: %w", o.ID, run.Int64, err)
			}
		}
	}
	err = tx.QueryRow(ctx, `UPDATE outbox SET state = $1, next_at = coalesce($2, next_at), last_error = $3,
		finished_at = $4, claimed_by = '', claimed_until = NULL
		WHERE id = $5 AND claimed_by = $6 AND attempts = $7 AND state = 'pending' RETURNING run_id`,
		state, next, o.Error, finished, o.ID, o.Holder, o.Attempt).Scan(&run)
	if errors.Is(err, pgx.ErrNoRows) {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM outbox WHERE id = $1`, o.ID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("finish delivery %d: %w", o.ID, store.ErrNotFound)
		}
		return fmt.Errorf("finish delivery %d: not claimed by %q for attempt %d: %w", o.ID, o.Holder, o.Attempt, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("finish delivery %d: %w", o.ID, err)
	}
	if r := o.Record; r != nil && run.Valid {
		var data any
		if len(r.Data) > 0 {
			data = string(r.Data)
		}
		if _, err := tx.Exec(ctx, insertEventSQL, run.Int64, r.Task, timeArg(r.Time), string(r.Kind), r.Attempt,
			intPtrArg(r.ExitCode), store.Text(r.Message), store.Text(r.Actor), data); err != nil {
			return fmt.Errorf("finish delivery %d: record %s: %w", o.ID, r.Kind, notFoundRun(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("finish delivery %d: commit: %w", o.ID, err)
	}
	return nil
}

// RunDeliveries reads a run's deliveries from outbox_by_run.
func (db *DB) RunDeliveries(ctx context.Context, runID int64) ([]store.Delivery, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryCols+` FROM outbox WHERE run_id = $1 ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("deliveries of run %d: %w", runID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Delivery, error) { return scanDelivery(row) })
	if err != nil {
		return nil, fmt.Errorf("deliveries of run %d: %w", runID, err)
	}
	if len(out) == 0 {
		var one int
		err := db.pool.QueryRow(ctx, `SELECT 1 FROM runs WHERE id = $1`, runID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("deliveries of run %d: %w", runID, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("deliveries of run %d: %w", runID, err)
		}
	}
	return out, nil
}

// Incidents reads a run's incidents.
func (db *DB) Incidents(ctx context.Context, runID int64) ([]store.Incident, error) {
	rows, err := db.pool.Query(ctx, `SELECT run_id, problem, opened_at, closed_at, repaired_at, opened
		FROM incidents WHERE run_id = $1 ORDER BY problem`, runID)
	if err != nil {
		return nil, fmt.Errorf("incidents of run %d: %w", runID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Incident, error) {
		var in store.Incident
		err := row.Scan(&in.RunID, &in.Problem, timeCol{&in.OpenedAt}, timeCol{&in.ClosedAt}, timeCol{&in.RepairedAt}, &in.Opened)
		return in, err
	})
	if err != nil {
		return nil, fmt.Errorf("incidents of run %d: %w", runID, err)
	}
	return out, nil
}

var _ store.Notifications = (*DB)(nil)
