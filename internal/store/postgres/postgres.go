package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrNotTasuki is returned by Open when the schema the connection works in
// (the first schema of its search_path) holds tables but no tasuki schema, so
// tasuki does not add its tables to another program's schema. Give tasuki its
// own database, or its own schema with search_path in the DSN.
var ErrNotTasuki = errors.New("PostgreSQL schema is not a tasuki store (it has tables but no schema_version)")

// DB is a tasuki store in a PostgreSQL database. It is safe for concurrent
// use, also by several processes against the same database.
type DB struct {
	pool   *pgxpool.Pool
	target string // where the store is, without a password: for messages
	// setMin is how many rows of a table Apply writes with one set-based
	// statement (defaultSetMin; tests lower it to cover that path with
	// small batches).
	setMin int
}

var _ store.Store = (*DB)(nil)

// Open connects to the database at dsn (a postgres:// URL or a
// "host=... dbname=..." keyword string, as libpq and pgx accept them) and
// brings its schema up to date. The tables are created in the first schema
// of the connection's search_path (add search_path=NAME to the DSN to use a
// schema of one's own). Pool settings can be given in the DSN
// (pool_max_conns=N and the other pgxpool parameters).
//
// Open fails with a clear error when the server cannot be reached, when the
// schema belongs to another program (ErrNotTasuki) or when the schema is
// newer than this binary knows (migrate.ErrTooNew).
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the DSN, password included.
		return nil, fmt.Errorf("open store: parse PostgreSQL DSN: %s", redact(err.Error(), dsn))
	}
	db := &DB{target: describe(cfg.ConnConfig), setMin: defaultSetMin}
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.target, err)
	}
	db.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.target, err)
	}
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("open store %s: connect: %w", db.target, err)
	}
	if err := db.migrate(ctx, ms); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("open store %s: %w", db.target, err)
	}
	return db, nil
}

// describe names the database of cfg for messages: user@host:port/database.
func describe(cfg *pgx.ConnConfig) string {
	s := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	if sp := cfg.RuntimeParams["search_path"]; sp != "" {
		s += " (search_path " + sp + ")"
	}
	return s
}

// redact removes the password of dsn from msg.
func redact(msg, dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	if i := strings.Index(msg, "password="); i >= 0 {
		end := strings.IndexAny(msg[i:], " '\"")
		if end < 0 {
			end = len(msg) - i
		}
		msg = msg[:i] + "password=xxxxx" + msg[i+end:]
	}
	return msg
}

// Close closes the connection pool, waiting for connections in use to be
// returned.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// String names the database, without credentials.
func (db *DB) String() string { return db.target }

// Errors PostgreSQL reports by SQLSTATE that the driver turns into the
// store's errors.
const (
	sqlstateUniqueViolation     = "23505"
	sqlstateForeignKeyViolation = "23503"
)

// pgErr returns the PostgreSQL error inside err, or nil.
func pgErr(err error) *pgconn.PgError {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// isConstraint reports whether err is a violation (code) of constraint name.
func isConstraint(err error, code, name string) bool {
	e := pgErr(err)
	return e != nil && e.Code == code && e.ConstraintName == name
}

// rollback ends tx after a failure. Its error is not interesting: the
// transaction is gone either way, and the caller reports the first failure.
func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}
