package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestTransient classifies errors as the drivers produce them: PostgreSQL's
// SQLSTATEs, a refused connection from a real dial, SQLite's busy from a
// real lock, and the store's own sentinels.
func TestTransient(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("apply: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"admin shutdown", pg("57P01"), true},
		{"cannot connect now", pg("57P03"), true},
		{"serialization failure", pg("40001"), true},
		{"deadlock", pg("40P01"), true},
		{"connection failure", pg("08006"), true},
		{"disk full on the server", pg("53100"), true},
		{"too many connections", pg("53300"), true},
		{"unique violation", pg("23505"), false},
		{"syntax error", pg("42601"), false},
		{"not found", fmt.Errorf("run 7: %w", store.ErrNotFound), false},
		{"conflict", store.ErrConflict, false},
		{"fenced", fmt.Errorf("apply: %w", store.ErrFenced), false},
		{"cancelled", fmt.Errorf("apply: %w", context.Canceled), false},
		{"deadline on a dead connection", fmt.Errorf("apply: %w", context.DeadlineExceeded), true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"disk full", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, true},
		{"outcome unknown", &store.OutcomeUnknownError{Err: errors.New("unexpected EOF")}, true},
		{"plain", errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := store.Transient(tt.err); got != tt.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestTransientRealErrors feeds Transient what the drivers return on a
// refused connection and on a locked SQLite file.
func TestTransientRealErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pgx.Connect(ctx, "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	if !store.Transient(err) {
		t.Errorf("refused connection: Transient(%v) = false", err)
	}

	path := filepath.Join(t.TempDir(), "busy.db")
	a, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Exec(`CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	tx, err := a.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	_, err = b.Exec(`INSERT INTO t VALUES (2)`)
	if err == nil {
		t.Fatal("a second writer was not refused")
	}
	if !store.Transient(err) {
		t.Errorf("SQLite busy: Transient(%v) = false", err)
	}
	_, err = b.Exec(`INSERT INTO nosuch VALUES (2)`)
	if err == nil || store.Transient(err) {
		t.Errorf("SQLite missing table: Transient(%v) = true, want a permanent error", err)
	}
}
