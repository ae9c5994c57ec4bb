package sqltask

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	sqlitedriver "modernc.org/sqlite"
)

// endTimeout bounds a ROLLBACK (and MySQL's KILL) made after the attempt's
// context is done, so that ending a transaction on a server that stopped
// answering does not hang the executor.
const endTimeout = 10 * time.Second

// session is one connection of an attempt, with the transaction it runs.
// Transactions are begun and ended with statements on a *sql.Conn rather
// than with database/sql's Tx, whose COMMIT the attempt's context could
// interrupt: a COMMIT is the point of no return, and once sent it is
// waited for, so that an attempt reported as stopped did not commit.
type session struct {
	t    *target
	db   *sql.DB
	conn *sql.Conn
	// mysqlID is the MySQL connection's id, to KILL a statement the
	// driver abandoned when its context ended.
	mysqlID int64
	inTx    bool
}

// connect takes a connection of db for target t.
func connect(ctx context.Context, t *target, db *sql.DB) (*session, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{t: t, db: db, conn: conn}
	if t.dialect == mysql {
		if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&s.mysqlID); err != nil {
			s.close(false)
			return nil, err
		}
	}
	return s, nil
}

// begin starts the transaction; readOnly where the database has such
// transactions (SQLite is opened read-only instead).
func (s *session) begin(ctx context.Context, readOnly bool) error {
	var q string
	switch {
	case s.t.dialect == postgres && readOnly:
		q = "BEGIN READ ONLY"
	case s.t.dialect == postgres:
		q = "BEGIN"
	case s.t.dialect == mysql && readOnly:
		q = "START TRANSACTION READ ONLY"
	case s.t.dialect == mysql:
		q = "START TRANSACTION"
	case readOnly:
		q = "BEGIN"
	default:
		// Take the write lock at once: a deferred transaction that reads
		// and then writes can fail when another writer came in between.
		q = "BEGIN IMMEDIATE"
	}
	if _, err := s.conn.ExecContext(ctx, q); err != nil {
		return err
	}
	s.inTx = true
	return nil
}

// commit commits. It is not interrupted by the attempt's context: a COMMIT
// sent is waited for.
func (s *session) commit(ctx context.Context) error {
	_, err := s.conn.ExecContext(context.WithoutCancel(ctx), "COMMIT")
	if err == nil {
		s.inTx = false
	}
	return err
}

// close ends the session: a transaction still open is rolled back, a
// statement the driver abandoned is killed (MySQL), and the connection goes
// back to the pool, or is discarded when it may not be clean. stopped says
// the attempt's context ended, so the connection may be in any state.
func (s *session) close(stopped bool) {
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	if stopped && s.mysqlID != 0 {
		// The driver closed the socket of the interrupted statement; the
		// server would run it to its end. KILL stops it and rolls back
		// now (a connection may always kill its own user's threads).
		if k, err := s.db.Conn(ctx); err == nil {
			k.ExecContext(ctx, fmt.Sprintf("KILL %d", s.mysqlID))
			k.Close()
		}
	}
	clean := true
	if s.inTx {
		if _, err := s.conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			clean = false
		}
	}
	if !clean || (stopped && s.t.dialect == mysql) {
		// Discard the connection: a failed ROLLBACK leaves it in an
		// unknown state. The server rolls back when it goes.
		s.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	s.conn.Close()
}

// sqlError describes an error a database returned for a statement: its
// own message (with the SQLSTATE or error number), without the driver's
// wrapping.
func (t *target) sqlError(err error) string {
	var pg *pgconn.PgError
	var my *mysqldriver.MySQLError
	var lite *sqlitedriver.Error
	switch {
	case errors.As(err, &pg):
		msg := pg.Message
		if pg.Detail != "" {
			msg += " (" + pg.Detail + ")"
		}
		return t.mask(fmt.Sprintf("%s (SQLSTATE %s)", msg, pg.Code))
	case errors.As(err, &my):
		return t.mask(fmt.Sprintf("%s (error %d)", my.Message, my.Number))
	case errors.As(err, &lite):
		return t.mask(lite.Error())
	}
	return t.connError(err)
}

// isSyntaxError reports whether the database rejected a statement as
// malformed: a wait whose query cannot be read will never hold.
func isSyntaxError(err error) bool {
	var pg *pgconn.PgError
	var my *mysqldriver.MySQLError
	var lite *sqlitedriver.Error
	switch {
	case errors.As(err, &pg):
		return pg.Code == "42601" // syntax_error
	case errors.As(err, &my):
		return my.Number == 1064 // ER_PARSE_ERROR
	case errors.As(err, &lite):
		return strings.Contains(lite.Error(), "syntax error") || strings.Contains(lite.Error(), "incomplete input")
	}
	return false
}

// addrPair matches the local and remote addresses of a socket in a network
// error ("127.0.0.1:50412->127.0.0.1:5432"): the local port changes with
// every connection.
var addrPair = regexp.MustCompile(`\S+:\d+->`)

// connError says in a few stable words why a database could not be reached
// or a connection failed: the same cause gives the same text each time
// (no local ports), and never the password.
func (t *target) connError(err error) string {
	var pg *pgconn.PgError
	var my *mysqldriver.MySQLError
	var dns *net.DNSError
	switch {
	case errors.As(err, &pg):
		return t.mask(pg.Message)
	case errors.As(err, &my):
		return t.mask(my.Message)
	case errors.As(err, &dns):
		return "cannot resolve the host " + t.mask(dns.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "stopped"
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysqldriver.ErrInvalidConn):
		return "the connection was lost"
	case errors.Is(err, errPoolClosed):
		return errPoolClosed.Error()
	}
	if t.dialect == sqlite && t.path != "" {
		if _, serr := os.Stat(t.path); errors.Is(serr, fs.ErrNotExist) {
			return "the database file does not exist"
		}
	}
	return t.mask(addrPair.ReplaceAllString(err.Error(), ""))
}
