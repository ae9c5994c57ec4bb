package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ErrTooNew is returned (wrapped in a *TooNewError) when a database's schema
// version is newer than the newest migration this binary knows. Opening such a
// database could silently misread or damage data written by a newer tasuki.
var ErrTooNew = errors.New("database schema is newer than this tasuki supports")

// TooNewError reports a database schema newer than the binary's migrations.
type TooNewError struct {
	Database int // schema version found in the database
	Known    int // newest version this binary knows
}

func (e *TooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this tasuki supports (%d); use a newer tasuki binary", e.Database, e.Known)
}

// Unwrap lets errors.Is(err, ErrTooNew) match.
func (e *TooNewError) Unwrap() error { return ErrTooNew }

// Migration is one numbered SQL script.
type Migration struct {
	Version int    // 1, 2, 3, ... from the file name's leading number
	Name    string // file name, for messages and the schema_version table
	SQL     string
}

// Load reads every *.sql file in dir of fsys. Names must start with a
// positive number followed by '_' (0001_init.sql); versions must be 1..N with
// no gaps or duplicates, so a missing or mis-numbered file is caught at
// startup and not in production data. Migrations are returned in order.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("load migrations from %s: %w", dir, err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("load migrations from %s: %s: name must be NNNN_description.sql with NNNN > 0", dir, e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load migration %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("load migrations from %s: expected version %d, found %s (versions must be 1..N without gaps or duplicates)", dir, i+1, m.Name)
		}
	}
	return ms, nil
}

// Pending returns the migrations after version current, in order. It fails
// with a *TooNewError when current is newer than the last known migration.
func Pending(ms []Migration, current int) ([]Migration, error) {
	if current < 0 {
		return nil, fmt.Errorf("invalid schema version %d", current)
	}
	if current > len(ms) {
		return nil, &TooNewError{Database: current, Known: len(ms)}
	}
	return ms[current:], nil
}
