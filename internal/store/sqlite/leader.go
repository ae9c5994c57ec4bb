package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// The leadership lease: one row (id 1, created by migration 0003) that every
// method reads or changes with one statement on the writer connection.
// SQLite's single writer serialises them with each other and with
// ApplyFenced, so a compare-and-set needs no further locking.

const leaderCols = `holder, address, term, expires_at`

func scanLeader(row scanner) (store.Leadership, error) {
	var l store.Leadership
	err := row.Scan(&l.Holder, &l.Address, &l.Term, timeCol{&l.ExpiresAt})
	return l, err
}

// AcquireLeadership is one UPDATE ... RETURNING that takes, renews or leaves
// the lease; when it leaves it, the row is read back in the same
// transaction. The SET expressions read the row as it was, so the term moves
// on exactly when the holder changes.
func (db *DB) AcquireLeadership(ctx context.Context, holder, address string, ttl time.Duration, now time.Time) (store.Leadership, error) {
	if err := store.CheckAcquire(holder, address, ttl, now); err != nil {
		return store.Leadership{}, fmt.Errorf("acquire leadership as %q: %w", holder, err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Leadership{}, fmt.Errorf("acquire leadership as %q: %w", holder, err)
	}
	defer tx.Rollback()
	l, err := scanLeader(tx.QueryRowContext(ctx, `UPDATE leadership SET
		term       = CASE WHEN holder = ?1 THEN term ELSE term + 1 END,
		holder     = ?1,
		address    = ?2,
		expires_at = ?3
		WHERE id = 1 AND (holder = '' OR expires_at <= ?4 OR holder = ?1)
		RETURNING `+leaderCols, holder, address, now.Add(ttl).UnixMicro(), now.UnixMicro()))
	if errors.Is(err, sql.ErrNoRows) {
		l, err = scanLeader(tx.QueryRowContext(ctx, `SELECT `+leaderCols+` FROM leadership WHERE id = 1`))
	}
	if err != nil {
		return store.Leadership{}, fmt.Errorf("acquire leadership as %q: %w", holder, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Leadership{}, fmt.Errorf("acquire leadership as %q: commit: %w", holder, err)
	}
	return l, nil
}

// ResignLeadership clears the holder if holder still holds the lease in term.
func (db *DB) ResignLeadership(ctx context.Context, holder string, term int64) error {
	if holder == "" {
		return errors.New("resign leadership: empty holder")
	}
	_, err := db.w.ExecContext(ctx, `UPDATE leadership SET holder = '', address = '', expires_at = NULL
		WHERE id = 1 AND holder = ? AND term = ?`, holder, term)
	if err != nil {
		return fmt.Errorf("resign leadership of %q (term %d): %w", holder, term, err)
	}
	return nil
}

// Leader reads the leadership row.
func (db *DB) Leader(ctx context.Context) (store.Leadership, error) {
	l, err := scanLeader(db.r.QueryRowContext(ctx, `SELECT `+leaderCols+` FROM leadership WHERE id = 1`))
	if err != nil {
		return store.Leadership{}, fmt.Errorf("read leadership: %w", err)
	}
	return l, nil
}

// ApplyFenced is Apply after a check of the fence in the same transaction.
func (db *DB) ApplyFenced(ctx context.Context, fence store.Fence, changes ...store.Change) error {
	return db.applyChanges(ctx, &fence, changes)
}

// checkFence fails with ErrFenced unless the leadership row has the fence's
// holder and term.
func checkFence(ctx context.Context, tx *sql.Tx, f store.Fence) error {
	if f.Holder == "" {
		return fmt.Errorf("fence has no holder: %w", store.ErrFenced)
	}
	l, err := scanLeader(tx.QueryRowContext(ctx, `SELECT `+leaderCols+` FROM leadership WHERE id = 1`))
	if err != nil {
		return fmt.Errorf("check fence: read leadership: %w", err)
	}
	if l.Holder != f.Holder || l.Term != f.Term {
		return fenced(f, l)
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
