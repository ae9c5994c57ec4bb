package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// wakeChannel is the LISTEN/NOTIFY channel of this store's schema: several
// tasuki stores (schemas) may share one database, and each must only wake
// its own servers.
func (db *DB) wakeChannel(ctx context.Context) (string, error) {
	var schema string
	if err := db.pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", fmt.Errorf("current schema: %w", err)
	}
	return "tasuki_wake:" + schema, nil
}

// Notify wakes the servers listening on this store (Listen): a server that
// created work another server must pick up (a run triggered through a
// follower) says so at once instead of waiting for the leader's next tick.
func (db *DB) Notify(ctx context.Context) error {
	ch, err := db.wakeChannel(ctx)
	if err != nil {
		return err
	}
	if _, err := db.pool.Exec(ctx, "SELECT pg_notify($1, '')", ch); err != nil {
		return fmt.Errorf("notify %s: %w", ch, err)
	}
	return nil
}

// Listen calls wake for every Notify on this store until ctx ends,
// reconnecting after a lost connection. It holds one connection of the pool.
func (db *DB) Listen(ctx context.Context, wake func()) error {
	ch, err := db.wakeChannel(ctx)
	if err != nil {
		return err
	}
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := db.listen(ctx, ch, wake)
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		_ = err // a lost connection: listen again; the caller polls meanwhile
	}
}

func (db *DB) listen(ctx context.Context, ch string, wake func()) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool: stop listening on it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		conn.Exec(cctx, "UNLISTEN *")
	}()
	wake() // anything notified while not listening
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}
