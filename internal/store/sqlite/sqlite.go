package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrNotDatabase is returned by Open when the file exists but is not a SQLite
// database (or its header is damaged beyond recognition).
var ErrNotDatabase = errors.New("file is not a SQLite database")

// ErrCorrupt is returned when SQLite reports that the database file is
// malformed. Restore from a backup; `PRAGMA integrity_check` tells more.
var ErrCorrupt = errors.New("database file is corrupt")

// ErrNotTasuki is returned by Open for a SQLite database that holds tables but
// no tasuki schema, so tasuki does not add its tables to another program's file.
var ErrNotTasuki = errors.New("SQLite database is not a tasuki store (it has tables but no schema_version)")

// busyTimeoutMS is how long a connection waits for a lock held by another
// process (another tasuki on the same file, a backup tool) before failing.
const busyTimeoutMS = 10000

// DB is a tasuki store in one SQLite file. It is safe for concurrent use.
type DB struct {
	path string
	w    *sql.DB  // the one writer connection
	r    *sql.DB  // read-only pool
	st   stmts    // prepared on w
	lock *os.File // the lock file, held until Close (nil for Inspect)
	use  Use
	durs pendingDurations // successes whose durations wait for a commit (deadlines.go)
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the store at path and brings its schema up
// to date. The directory must exist. It fails with a clear error when the
// directory is missing or not writable, when the file is not a SQLite
// database, when it is another program's database, or when its schema is
// newer than this binary knows (migrate.ErrTooNew).
//
// Open takes no lock (it is OpenFor with Inspect).
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenFor(ctx, path, Inspect)
}

// OpenFor is Open for a use: a server (Server) or a process executing runs
// (Local) locks the store first, and fails with an *InUseError (ErrInUse)
// that names the server when the lock is held by a process it may not run
// beside. Close releases the lock.
func OpenFor(ctx context.Context, path string, use Use) (*DB, error) {
	db, err := open(ctx, path, use)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

func open(ctx context.Context, path string, use Use) (db *DB, err error) {
	if path == "" {
		return nil, errors.New("empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := checkPath(abs); err != nil {
		return nil, err
	}
	if err := private(abs); err != nil {
		return nil, err
	}
	lf, err := lock(abs, use)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && lf != nil {
			lf.Close()
		}
	}()
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}

	w, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
			"foreign_keys(1)",
			"journal_mode(wal)",
			"synchronous(normal)",
			"temp_store(memory)",
		},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db = &DB{path: abs, w: w, lock: lf, use: use}
	if err := ping(ctx, w); err != nil {
		w.Close()
		return nil, explain(abs, err)
	}
	if err := db.migrate(ctx, ms); err != nil {
		w.Close()
		return nil, explain(abs, err)
	}
	if err := db.st.prepare(ctx, w); err != nil {
		db.st.close()
		w.Close()
		return nil, fmt.Errorf("prepare statements: %w", err)
	}

	r, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
			"query_only(1)",
		},
	}))
	if err != nil {
		db.st.close()
		w.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := ping(ctx, r); err != nil {
		r.Close()
		db.st.close()
		w.Close()
		return nil, explain(abs, err)
	}
	db.r = r
	return db, nil
}

// private creates the database file if it is missing, readable and writable
// by its owner only, before SQLite does (with 0644 less the umask): SQLite
// gives the -wal and -shm files it creates the database file's permissions,
// so they follow. Files of an older tasuki that are open to the group or
// others and belong to this user are made private.
func private(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	switch {
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		if _, serr := os.Stat(abs); serr == nil {
			return fmt.Errorf("cannot open %s for writing: %w", abs, err)
		}
		return fmt.Errorf("cannot write in directory %s (SQLite needs to create the database and its -wal and -shm files there): %w", filepath.Dir(abs), err)
	case err != nil:
		return err
	}
	f.Close()
	for _, name := range []string{abs, abs + "-wal", abs + "-shm", lockPath(abs)} {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm()&0o077 == 0 || !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		if err := os.Chmod(name, fi.Mode().Perm()&^0o077); err != nil {
			return fmt.Errorf("make %s private: %w", name, err)
		}
	}
	return nil
}

// ping opens the first connection of a pool, which runs the connection
// pragmas. Switching a new file to WAL mode takes an exclusive lock, and
// SQLite does not call the busy handler for every lock it meets on the way,
// so processes opening the same new file at once can see SQLITE_BUSY here
// despite busy_timeout. ping retries that, within the same busy timeout.
func ping(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeoutMS * time.Millisecond)
	wait := 5 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || code(err)&0xff != sqlite3.SQLITE_BUSY || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// dsn builds a file: URI so that any path (spaces, '?', '#') reaches SQLite
// intact, plus the driver's connection parameters.
func dsn(abs string, q url.Values) string {
	q.Set("_error_rc", "1") // do not append unrelated error text to open errors
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), OmitHost: true}
	return u.String() + "?" + q.Encode()
}

// checkPath reports, before SQLite gets a chance to say "unable to open
// database file", the common mistakes in a store path.
func checkPath(abs string) error {
	dir := filepath.Dir(abs)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		// ENOTDIR: some ancestor is a regular file.
		return fmt.Errorf("directory %s is not usable: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a database file", abs)
	}
	return nil
}

// explain turns SQLite's terse result codes met while opening into errors that
// say what is wrong with the file.
func explain(abs string, err error) error {
	switch code(err) & 0xff {
	case sqlite3.SQLITE_NOTADB:
		return ErrNotDatabase
	case sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM:
		// SQLite needs to create the file and its -wal and -shm companions
		// next to it; ask the OS why that fails, which is more useful than
		// SQLite's "unable to open database file".
		dir := filepath.Dir(abs)
		f, perr := os.CreateTemp(dir, ".tasuki-write-test-*")
		if perr != nil {
			return fmt.Errorf("cannot write in directory %s (SQLite needs to create the database and its -wal and -shm files there): %w", dir, perr)
		}
		name := f.Name()
		f.Close()
		os.Remove(name)
		return fmt.Errorf("cannot open %s for writing: %w", abs, err)
	}
	return err
}

// code returns the (extended) SQLite result code of err, or 0.
func code(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Check runs SQLite's quick_check over the whole file and reports corruption
// as ErrCorrupt. It reads every page, so its cost grows with the file; Open
// does not run it. Use it from a "doctor" command or after a crash.
func (db *DB) Check(ctx context.Context) error {
	rows, err := db.r.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		if code(err)&0xff == sqlite3.SQLITE_CORRUPT || code(err)&0xff == sqlite3.SQLITE_NOTADB {
			return fmt.Errorf("check store %s: %w: %w", db.path, ErrCorrupt, err)
		}
		return fmt.Errorf("check store %s: %w", db.path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("check store %s: %w", db.path, err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		if code(err)&0xff == sqlite3.SQLITE_CORRUPT {
			return fmt.Errorf("check store %s: %w: %w", db.path, ErrCorrupt, err)
		}
		return fmt.Errorf("check store %s: %w", db.path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("check store %s: %w: %s", db.path, ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// Close closes the reader pool and then the writer; closing the last
// connection checkpoints the WAL into the main file. Before that it lets
// SQLite refresh its query planner statistics where they are stale (PRAGMA
// optimize, bounded by analysis_limit so it stays fast on large files).
func (db *DB) Close() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The durations still waiting for a commit, while the writer is open.
	errs = append(errs, db.flushDurations(ctx))
	// Statistics only: never a reason to fail Close.
	_, _ = db.w.ExecContext(ctx, "PRAGMA analysis_limit = 400; PRAGMA optimize")
	errs = append(errs, db.st.close(), db.w.Close())
	if db.lock != nil {
		if db.use == Server {
			// Nobody holds the store now: forget this server's name.
			errs = append(errs, db.lock.Truncate(0))
		}
		errs = append(errs, db.lock.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %s: %w", db.path, err)
	}
	return nil
}
