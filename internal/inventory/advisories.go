package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasuki-dev/tasuki/internal/osv"
)

// AdvisoryPoll is how often a server looks for changes in the advisories
// directory unless told otherwise: a look is a stat of each directory and
// file, some 50 ms for the 50,000 files of a whole distribution's
// advisories.
const AdvisoryPoll = 15 * time.Second

// maxLoggedErrors bounds the files that did not load logged one by one;
// the rest are counted (all are in Status).
const maxLoggedErrors = 10

// Advisories is the advisory database of a directory of OSV JSON files,
// loaded again when the directory changes: a file added, removed, renamed,
// or written (its size or modification time changed). A load that cannot
// read the directory keeps the advisories loaded before and says why in
// Status. It is safe for concurrent use.
type Advisories struct {
	dir string
	log *slog.Logger

	mu  sync.Mutex // one load at a time
	cur atomic.Pointer[advisorySet]
}

// advisorySet is one load of the directory, never changed once made.
type advisorySet struct {
	db    *osv.DB
	bad   []*osv.LoadError
	at    time.Time // when db was loaded
	stamp string    // the directory's fingerprint when db was loaded
	err   error     // the last try could not read the directory
}

// Status says what the advisories are: where from, when loaded, how many,
// and what did not load.
type Status struct {
	Dir      string
	LoadedAt time.Time // zero: never loaded
	Count    int
	Errors   []*osv.LoadError
	// Err is why the directory could not be read at the last try.
	Err error
}

// NewAdvisories returns the advisories of dir, not loaded yet (see Load).
func NewAdvisories(dir string, log *slog.Logger) *Advisories {
	if log == nil {
		log = slog.Default()
	}
	a := &Advisories{dir: dir, log: log}
	a.cur.Store(&advisorySet{db: osv.New()})
	return a
}

// Current returns the loaded advisories (none before the first load) and
// their status.
func (a *Advisories) Current() (*osv.DB, Status) {
	s := a.cur.Load()
	return s.db, Status{Dir: a.dir, LoadedAt: s.at, Count: s.db.Len(), Errors: s.bad, Err: s.err}
}

// Load reads the directory when it changed since the last load (or was
// never loaded), and reports whether it did. An error means the directory
// could not be read: the advisories loaded before stay, and Status says
// why.
func (a *Advisories) Load(ctx context.Context) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := a.cur.Load()
	stamp, err := fingerprint(ctx, a.dir)
	if err == nil && stamp == prev.stamp && !prev.at.IsZero() {
		if prev.err != nil {
			a.cur.Store(&advisorySet{db: prev.db, bad: prev.bad, at: prev.at, stamp: prev.stamp})
		}
		return false, nil
	}
	var db *osv.DB
	var bad []*osv.LoadError
	if err == nil {
		db, bad, err = osv.Load(a.dir)
	}
	if err != nil {
		if prev.err == nil || prev.err.Error() != err.Error() {
			a.log.Error("advisories: the directory cannot be read; the advisories loaded before are kept", "dir", a.dir, "err", err,
				"advisories", prev.db.Len())
		}
		a.cur.Store(&advisorySet{db: prev.db, bad: prev.bad, at: prev.at, stamp: prev.stamp, err: err})
		return false, err
	}
	a.cur.Store(&advisorySet{db: db, bad: bad, at: time.Now(), stamp: stamp})
	a.log.Info("advisories loaded", "dir", a.dir, "advisories", db.Len(), "files_not_loaded", len(bad))
	for i, b := range bad {
		if i == maxLoggedErrors {
			a.log.Warn("advisories: more files did not load (tasuki hosts advisories lists them all)", "more", len(bad)-i)
			break
		}
		a.log.Warn("advisories: a file did not load", "path", b.Path, "err", b.Err)
	}
	return true, nil
}

// Watch loads the directory again whenever it changes, looking every
// `every` (AdvisoryPoll when 0), until ctx is done.
func (a *Advisories) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = AdvisoryPoll
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = a.Load(ctx) // Load logs what went wrong, once
		}
	}
}

// fingerprint sums the names, sizes and modification times of the
// directories and JSON files under dir: it changes when a file is added,
// removed, renamed or written.
func fingerprint(ctx context.Context, dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			fmt.Fprintf(h, "%s\x00error\x00%v\n", p, err) // osv.Load reports it
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.IsDir() && !strings.EqualFold(filepath.Ext(p), ".json") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			fmt.Fprintf(h, "%s\x00gone\n", p)
			return nil
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%v\n", p, fi.Size(), fi.ModTime().UnixNano(), fi.IsDir())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read advisories directory %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckDir checks the advisories setting when the server starts: it must
// name a directory.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("advisories %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("advisories %q: not a directory of OSV JSON files", dir)
	}
	return nil
}
