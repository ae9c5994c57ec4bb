package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"syscall"

	"github.com/tasuki-dev/tasuki/internal/store/migrate"
)

// ErrBackupExists is returned (wrapped) by Backup when the destination
// exists and Overwrite was not asked for: a backup never replaces a file by
// surprise, least of all the previous backup.
var ErrBackupExists = errors.New("the backup file already exists")

// BackupOptions are the choices of Backup.
type BackupOptions struct {
	// Overwrite replaces an existing destination. The replacement is a
	// rename of the finished, checked copy: until then the old file is
	// untouched, so a backup that fails leaves the previous one in place.
	Overwrite bool
}

// BackupInfo says what a backup holds.
type BackupInfo struct {
	Path          string // the backup file (absolute)
	Bytes         int64  // its size
	SchemaVersion int    // the schema version of the copy
	Known         int    // the newest schema version this binary knows
	Runs          int64  // runs in the copy
	NewestRun     int64  // the largest run id in the copy (0: none)
}

// Backup writes a consistent copy of the store at src to dst, while other
// processes may read and write the store, a server among them.
//
// The copy is made with SQLite's VACUUM INTO from a connection of its own,
// in one read transaction: it is the store as of one commit, every run with
// all of its tasks or not at all, and it does not wait for writers nor make
// them wait (in WAL mode a reader only keeps the WAL from being
// checkpointed past it meanwhile). Backup takes none of the store's locks
// (see Use) and never migrates the store nor changes what it holds, so a
// binary older or newer than the server's can take it.
//
// The copy is written to a private temporary file (0600) beside dst, synced,
// checked (PRAGMA quick_check) and only then given dst's name: without
// Overwrite by a link, which fails rather than replace a file created
// meanwhile; with it, by a rename. A failed backup leaves no file behind.
func Backup(ctx context.Context, src, dst string, opt BackupOptions) (BackupInfo, error) {
	info, err := backup(ctx, src, dst, opt)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("back up store %s to %s: %w", src, dst, err)
	}
	return info, nil
}

func backup(ctx context.Context, src, dst string, opt BackupOptions) (info BackupInfo, err error) {
	if src == "" || dst == "" {
		return info, errors.New("empty path")
	}
	srcAbs, err := filepath.Abs(src)
	if err != nil {
		return info, err
	}
	dstAbs, err := filepath.Abs(dst)
	if err != nil {
		return info, err
	}
	fi, err := os.Stat(srcAbs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return info, fmt.Errorf("there is no store at %s", srcAbs)
	case err != nil:
		return info, err
	case !fi.Mode().IsRegular():
		return info, fmt.Errorf("%s is not a database file", srcAbs)
	}
	for _, own := range []string{srcAbs, srcAbs + "-wal", srcAbs + "-shm", lockPath(srcAbs)} {
		if dstAbs == own {
			return info, errors.New("the backup would overwrite the store's own files")
		}
	}
	if di, err := os.Stat(dstAbs); err == nil {
		if di.IsDir() {
			return info, fmt.Errorf("%s is a directory; name the backup file", dstAbs)
		}
		if !opt.Overwrite {
			return info, fmt.Errorf("%w: %s", ErrBackupExists, dstAbs)
		}
		if os.SameFile(fi, di) {
			return info, errors.New("the backup would overwrite the store itself")
		}
	}
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		return info, err
	}
	info.Known = len(ms)

	// The source connection reads only; busy_timeout covers the moment a
	// writer holds the WAL index lock while a transaction starts.
	s, err := sql.Open("sqlite", dsn(srcAbs, url.Values{
		"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS)},
	}))
	if err != nil {
		return info, err
	}
	defer s.Close()
	s.SetMaxOpenConns(1)
	if err := ping(ctx, s); err != nil {
		return info, explain(srcAbs, err)
	}
	probe := &DB{path: srcAbs}
	v, err := probe.schemaVersion(ctx, s)
	if err != nil {
		return info, explain(srcAbs, err)
	}
	if v == 0 {
		return info, fmt.Errorf("%s holds no tasuki store yet: nothing to back up", srcAbs)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dstAbs), "."+filepath.Base(dstAbs)+".tmp-*")
	if err != nil {
		return info, fmt.Errorf("create the backup file: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	placed := false
	defer func() {
		if !placed {
			os.Remove(tmpName)
			// Left by the check's connection if it failed half way.
			os.Remove(tmpName + "-journal")
			os.Remove(tmpName + "-wal")
			os.Remove(tmpName + "-shm")
		}
	}()
	// CreateTemp made the file 0600 whatever the umask, and SQLite writes
	// into the existing empty file, so the copy is never readable by others.
	if _, err := s.ExecContext(ctx, "VACUUM INTO ?", tmpName); err != nil {
		return info, fmt.Errorf("copy: %w", explain(srcAbs, err))
	}
	if err := s.Close(); err != nil {
		return info, err
	}
	if err := checkCopy(ctx, tmpName, &info); err != nil {
		return info, err
	}
	if err := syncFile(tmpName); err != nil {
		return info, fmt.Errorf("sync the backup file: %w", err)
	}
	if err := place(tmpName, dstAbs, opt.Overwrite); err != nil {
		return info, err
	}
	placed = true
	if err := syncFile(filepath.Dir(dstAbs)); err != nil {
		return info, fmt.Errorf("sync the backup's directory: %w", err)
	}
	st, err := os.Stat(dstAbs)
	if err != nil {
		return info, err
	}
	info.Path, info.Bytes = dstAbs, st.Size()
	return info, nil
}

// checkCopy opens the copy, checks its structure and reads what it holds
// into info.
func checkCopy(ctx context.Context, path string, info *BackupInfo) error {
	c, err := sql.Open("sqlite", dsn(path, url.Values{}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	var ok string
	if err := c.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&ok); err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	if ok != "ok" {
		return fmt.Errorf("check the copy: %s", ok)
	}
	copyDB := &DB{path: path}
	if info.SchemaVersion, err = copyDB.schemaVersion(ctx, c); err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	if err := c.QueryRowContext(ctx, "SELECT count(*), coalesce(max(id), 0) FROM runs").Scan(&info.Runs, &info.NewestRun); err != nil {
		return fmt.Errorf("check the copy: count its runs: %w", err)
	}
	return c.Close()
}

// place gives the finished copy tmp the name dst: a link where dst must
// not exist (link(2) fails if it does, even if it appeared after Backup
// looked), a rename where it may be replaced.
func place(tmp, dst string, overwrite bool) error {
	if overwrite {
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("move the backup into place: %w", err)
		}
		return nil
	}
	err := os.Link(tmp, dst)
	switch {
	case err == nil:
		return os.Remove(tmp)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %s", ErrBackupExists, dst)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EOPNOTSUPP):
		// A file system without hard links: look, then rename.
		if _, serr := os.Lstat(dst); serr == nil {
			return fmt.Errorf("%w: %s", ErrBackupExists, dst)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("move the backup into place: %w", err)
		}
		return nil
	}
	return fmt.Errorf("move the backup into place: %w", err)
}

// syncFile flushes a file or a directory to stable storage.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
