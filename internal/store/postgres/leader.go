package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// The leadership lease: one row (id 1, created by migration 0003).
//
// AcquireLeadership is a single UPDATE whose WHERE is the compare-and-set. In
// READ COMMITTED, an UPDATE that waits for a concurrent one on the same row
// re-evaluates its WHERE and SET on the row version that committed, so of
// several servers racing for a free or expired lease exactly one takes it,
// and the others see that the lease is held.
//
// ApplyFenced reads the row FOR SHARE in its transaction: a concurrent
// AcquireLeadership (an UPDATE, which needs a conflicting lock) waits until
// the fenced batch commits, and a fenced batch that starts while a takeover
// is in flight waits for it and then sees the new holder. So a takeover is
// ordered before or after each fenced batch as a whole. Fenced batches do not
// wait for each other (share locks are compatible).

const leaderCols = `holder, address, term, expires_at`

func scanLeader(row pgx.Row) (store.Leadership, error) {
	var l store.Leadership
	err := row.Scan(&l.Holder, &l.Address, &l.Term, timeCol{&l.ExpiresAt})
	return l, err
}

// acquireSQL takes, renews or leaves the lease. The SET expressions read the
// row as it was, so the term moves on exactly when the holder changes.
const acquireSQL = `UPDATE leadership SET
	term       = CASE WHEN holder = $1 THEN term ELSE term + 1 END,
	holder     = $1,
	address    = $2,
	expires_at = $3
	WHERE id = 1 AND (holder = '' OR expires_at <= $4 OR holder = $1)
	RETURNING ` + leaderCols

// AcquireLeadership runs acquireSQL; when it leaves the lease alone, a second
// statement reads the row, which then shows the leader that kept it (a newer
// one, should it have changed in between: never the caller).
func (db *DB) AcquireLeadership(ctx context.Context, holder, address string, ttl time.Duration, now time.Time) (store.Leadership, error) {
	if err := store.CheckAcquire(holder, address, ttl, now); err != nil {
		return store.Leadership{}, fmt.Errorf("acquire leadership as %q: %w", holder, err)
	}
	l, err := scanLeader(db.pool.QueryRow(ctx, acquireSQL, holder, address, store.NormTime(now.Add(ttl)), store.NormTime(now)))
	if errors.Is(err, pgx.ErrNoRows) {
		l, err = scanLeader(db.pool.QueryRow(ctx, `SELECT `+leaderCols+` FROM leadership WHERE id = 1`))
	}
	if err != nil {
		return store.Leadership{}, fmt.Errorf("acquire leadership as %q: %w", holder, err)
	}
	return l, nil
}

// ResignLeadership clears the holder if holder still holds the lease in term.
func (db *DB) ResignLeadership(ctx context.Context, holder string, term int64) error {
	if holder == "" {
		return errors.New("resign leadership: empty holder")
	}
	_, err := db.pool.Exec(ctx, `UPDATE leadership SET holder = '', address = '', expires_at = NULL
		WHERE id = 1 AND holder = $1 AND term = $2`, holder, term)
	if err != nil {
		return fmt.Errorf("resign leadership of %q (term %d): %w", holder, term, err)
	}
	return nil
}

// Leader reads the leadership row.
func (db *DB) Leader(ctx context.Context) (store.Leadership, error) {
	l, err := scanLeader(db.pool.QueryRow(ctx, `SELECT `+leaderCols+` FROM leadership WHERE id = 1`))
	if err != nil {
		return store.Leadership{}, fmt.Errorf("read leadership: %w", err)
	}
	return l, nil
}

// ApplyFenced checks the fence with the leadership row locked FOR SHARE, then
// writes the batch as Apply does, in the same transaction: one round trip
// more than Apply.
func (db *DB) ApplyFenced(ctx context.Context, fence store.Fence, changes ...store.Change) error {
	for i := range changes {
		if err := store.CheckChange(&changes[i]); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", changes[i].RunID, err)
		}
	}
	if fence.Holder == "" {
		return fmt.Errorf("apply %d changes: fence has no holder: %w", len(changes), store.ErrFenced)
	}
	var p applyPlan
	if err := p.build(changes); err != nil {
		return err
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("apply %d changes: %w", len(changes), err)
	}
	defer rollback(tx)
	l, err := scanLeader(tx.QueryRow(ctx, `SELECT `+leaderCols+` FROM leadership WHERE id = 1 FOR SHARE`))
	if err != nil {
		return fmt.Errorf("apply %d changes: check fence: read leadership: %w", len(changes), err)
	}
	if l.Holder != fence.Holder || l.Term != fence.Term {
		return fmt.Errorf("apply %d changes: %w", len(changes), fenced(fence, l))
	}
	if len(p.runs) > 0 {
		if err := p.write(ctx, tx, db.setMin); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return db.commitFailed(fmt.Errorf("apply %d changes: commit: %w", len(changes), err), p.xid)
	}
	return nil
}

// fenced is the ErrFenced of fence f against leadership l.
func fenced(f store.Fence, l store.Leadership) error {
	if l.Holder == "" {
		return fmt.Errorf("fence %q term %d: nobody holds the leadership (term %d): %w", f.Holder, f.Term, l.Term, store.ErrFenced)
	}
	return fmt.Errorf("fence %q term %d: the leadership is %q's in term %d: %w", f.Holder, f.Term, l.Holder, l.Term, store.ErrFenced)
}
