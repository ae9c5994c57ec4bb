package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Notifications: the outbox and incidents tables of migration 0009. Every
// write is one transaction on the writer connection, which serialises it
// with every other write: the incident step and the deliveries it allows
// commit together, and a claim is a compare-and-set no other claim can
// come between.

const deliveryCols = `id, run_id, pipeline, kind, payload, destination, label, state, attempts, created_at,
	next_at, last_error, finished_at, claimed_by, claimed_until`

func scanDelivery(row scanner) (store.Delivery, error) {
	var d store.Delivery
	var run sql.NullInt64
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
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, err)
	}
	defer tx.Rollback()
	if n.RunID != 0 {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, n.RunID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, err)
		}
		tell, err := incidentStep(ctx, tx, n)
		if err != nil {
			return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, err)
		}
		if !tell {
			return nil, tx.Commit()
		}
	}
	var run any
	if n.RunID != 0 {
		run = n.RunID
	}
	out := make([]store.Delivery, 0, len(n.Targets))
	for _, t := range n.Targets {
		d, err := scanDelivery(tx.QueryRowContext(ctx, `INSERT INTO outbox (run_id, pipeline, kind, payload, destination, label,
			state, created_at, next_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) RETURNING `+deliveryCols,
			run, n.Pipeline, n.Kind, jsonArg(n.Payload), jsonArg(t.Destination), t.Label, timeArg(n.At), timeArg(n.At)))
		if err != nil {
			return nil, fmt.Errorf("publish %s of run %d: %w", n.Kind, n.RunID, err)
		}
		out = append(out, d)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("publish %s of run %d: commit: %w", n.Kind, n.RunID, err)
	}
	return out, nil
}

// incidentStep changes the run's incidents as n says and reports whether
// n is to be told.
func incidentStep(ctx context.Context, tx *sql.Tx, n store.Notification) (bool, error) {
	var q string
	var args []any
	switch n.Incident {
	case store.IncidentNone:
		return true, nil
	case store.IncidentOpen:
		q = `INSERT INTO incidents (run_id, problem, opened_at) VALUES (?, ?, ?)
			ON CONFLICT (run_id, problem) DO UPDATE SET opened_at = excluded.opened_at, closed_at = NULL,
			repaired_at = NULL, opened = incidents.opened + 1
			WHERE incidents.closed_at IS NOT NULL RETURNING problem`
		args = []any{n.RunID, n.Kind, timeArg(n.At)}
	case store.IncidentRepair:
		q = `UPDATE incidents SET repaired_at = ? WHERE run_id = ? AND closed_at IS NULL AND repaired_at IS NULL RETURNING problem`
		args = []any{timeArg(n.At), n.RunID}
	case store.IncidentClose:
		q = `UPDATE incidents SET closed_at = ? WHERE run_id = ? AND closed_at IS NULL RETURNING problem`
		args = []any{timeArg(n.At), n.RunID}
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("incident: %w", err)
	}
	changed, err := collect(rows, "incident", func(r scanner) (string, error) {
		var p string
		return p, r.Scan(&p)
	})
	return len(changed) > 0, err
}

// ClaimDeliveries claims due deliveries with one UPDATE ... RETURNING.
func (db *DB) ClaimDeliveries(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	limit, err := store.CheckClaim(holder, now, lease, limit)
	if err != nil {
		return nil, err
	}
	rows, err := db.w.QueryContext(ctx, `UPDATE outbox SET claimed_by = ?1, claimed_until = ?2, attempts = attempts + 1
		WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_at <= ?3
			AND (claimed_until IS NULL OR claimed_until <= ?3) ORDER BY next_at, id LIMIT ?4)
		RETURNING `+deliveryCols, holder, timeArg(now.Add(lease)), timeArg(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries for %q: %w", holder, err)
	}
	out, err := collect(rows, "claim deliveries", scanDelivery)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.Delivery) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// FinishDelivery records a try's end if the claim still holds.
func (db *DB) FinishDelivery(ctx context.Context, o store.DeliveryOutcome) error {
	if err := store.PrepareOutcome(&o); err != nil {
		return err
	}
	state, next, finished := store.DeliverySent, any(nil), timeArg(o.At)
	switch {
	case o.Error != "" && !o.RetryAt.IsZero():
		state, next, finished = store.DeliveryPending, timeArg(o.RetryAt), nil
	case o.Error != "":
		state = store.DeliveryFailed
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("finish delivery %d: %w", o.ID, err)
	}
	defer tx.Rollback()
	var run sql.NullInt64
	err = tx.QueryRowContext(ctx, `UPDATE outbox SET state = ?, next_at = coalesce(?, next_at), last_error = ?,
		finished_at = ?, claimed_by = '', claimed_until = NULL
		WHERE id = ? AND claimed_by = ? AND attempts = ? AND state = 'pending' RETURNING run_id`,
		state, next, o.Error, finished, o.ID, o.Holder, o.Attempt).Scan(&run)
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM outbox WHERE id = ?`, o.ID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("finish delivery %d: %w", o.ID, store.ErrNotFound)
		}
		return fmt.Errorf("finish delivery %d: not claimed by %q for attempt %d: %w", o.ID, o.Holder, o.Attempt, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("finish delivery %d: %w", o.ID, err)
	}
	if o.Record != nil && run.Valid {
		r := o.Record
		_, err := tx.StmtContext(ctx, db.st.insertEvent).ExecContext(ctx, run.Int64, r.Task, timeArg(r.Time), string(r.Kind),
			r.Attempt, intPtrArg(r.ExitCode), store.Text(r.Message), store.Text(r.Actor), jsonArg(r.Data))
		if err != nil {
			if code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
				err = fmt.Errorf("run: %w", store.ErrNotFound)
			}
			return fmt.Errorf("finish delivery %d: record %s: %w", o.ID, r.Kind, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("finish delivery %d: commit: %w", o.ID, err)
	}
	return nil
}

// RunDeliveries reads a run's deliveries from outbox_by_run.
func (db *DB) RunDeliveries(ctx context.Context, runID int64) ([]store.Delivery, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+deliveryCols+` FROM outbox WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("deliveries of run %d: %w", runID, err)
	}
	out, err := collect(rows, fmt.Sprintf("deliveries of run %d", runID), scanDelivery)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		if err := db.runMissing(ctx, runID); err != nil {
			return nil, fmt.Errorf("deliveries of run %d: %w", runID, err)
		}
	}
	return out, nil
}

// Incidents reads a run's incidents.
func (db *DB) Incidents(ctx context.Context, runID int64) ([]store.Incident, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT run_id, problem, opened_at, closed_at, repaired_at, opened
		FROM incidents WHERE run_id = ? ORDER BY problem`, runID)
	if err != nil {
		return nil, fmt.Errorf("incidents of run %d: %w", runID, err)
	}
	return collect(rows, fmt.Sprintf("incidents of run %d", runID), func(r scanner) (store.Incident, error) {
		var in store.Incident
		err := r.Scan(&in.RunID, &in.Problem, timeCol{&in.OpenedAt}, timeCol{&in.ClosedAt}, timeCol{&in.RepairedAt}, &in.Opened)
		return in, err
	})
}

var _ store.Notifications = (*DB)(nil)
