package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// Transient reports whether err is a failure of the database that waiting
// and trying again may cure, with nothing of the failed call written: the
// connection was refused, reset or closed, the server is shutting down or
// starting up (PostgreSQL's 57P01 admin_shutdown, 57P03 cannot_connect_now),
// a serialization failure or deadlock, too many connections, a disk full or
// an I/O error (both drivers roll the transaction back), SQLite's busy and
// locked, a deadline that ran out on a connection that stopped answering;
// and an OutcomeUnknownError, which says how to find out.
//
// Everything else is permanent: a missing row, a lost race (ErrConflict),
// a fenced write (ErrFenced: another server leads), a constraint, a bad
// statement, a cancelled context (the caller gave up). Callers retry a
// transient error with a bounded backoff and give up on a permanent one.
//
// Both drivers' errors go through this one function, told apart by what
// they offer rather than by their types, so that this package imports no
// driver: PostgreSQL's errors carry a SQLSTATE (SQLState), SQLite's a
// result code (Code), and pgx marks an error whose request never reached
// the server (SafeToRetry).
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, ErrFenced) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return false
	}
	if _, ok := errors.AsType[*OutcomeUnknownError](err); ok {
		return true
	}
	if e, ok := errors.AsType[interface {
		error
		SQLState() string
	}](err); ok {
		return transientSQLState(e.SQLState())
	}
	if e, ok := errors.AsType[interface {
		error
		Code() int
	}](err); ok {
		switch e.Code() & 0xff { // the primary result code of an extended one
		case sqliteBusy, sqliteLocked, sqliteIOErr, sqliteFull, sqliteProtocol, sqliteNoMem:
			return true
		}
		// Not SQLite's: an error of another kind with a Code method
		// falls through to the checks below.
	}
	if e, ok := errors.AsType[interface {
		error
		SafeToRetry() bool
	}](err); ok && e.SafeToRetry() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.ETIMEDOUT, syscall.ENOSPC, syscall.EIO} {
		if errors.Is(err, errno) {
			return true
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if e, ok := errors.AsType[net.Error](err); ok && e.Timeout() {
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true // dial, read or write of the connection to the database
	}
	// pgx's closed connection, wrapped in text by some paths.
	return strings.Contains(err.Error(), "conn closed")
}

// SQLite's primary result codes that Transient counts (sqlite3.h).
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteNoMem    = 7
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteProtocol = 15
)

// transientSQLState reports whether a PostgreSQL SQLSTATE is worth trying
// again: the server's connection and resource classes, and the
// transaction rollbacks that concurrency causes.
func transientSQLState(code string) bool {
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03", // lock_not_available
		"57P01", // admin_shutdown (pg_ctl stop/restart -m fast)
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now (starting up, shutting down, in recovery)
		"57P05", // idle_session_timeout
		"25006", // read_only_sql_transaction (a standby during a failover)
		"58030": // io_error
		return true
	}
	return strings.HasPrefix(code, "08") || // connection_exception
		strings.HasPrefix(code, "53") // insufficient_resources (disk full, out of memory, too many connections)
}

// OutcomeUnknownError is returned by a write whose COMMIT was sent but
// whose answer never came (the connection broke meanwhile): it may or may
// not have been committed. Trying the write again blindly could apply it
// twice (a timeline record, an attempt's end or a dataset update written
// twice), so the caller asks Committed first, once the database answers
// again, and writes again only when it says no.
type OutcomeUnknownError struct {
	Err error
	// Committed tells whether the write was committed. It fails with a
	// transient error while the database cannot be reached; the caller
	// retries it.
	Committed func(ctx context.Context) (bool, error)
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("outcome unknown (the connection broke after COMMIT was sent): %v", e.Err)
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Err }
