package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// createRuns commits n runs of tasks tasks each, half of them running, and
// returns the last one's id.
func createRuns(ctx context.Context, t testing.TB, db *DB, n, tasks int) int64 {
	t.Helper()
	var last int64
	for i := range n {
		id, err := writeRun(ctx, db, fmt.Sprintf("p%d", i%5), tasks, i%2 == 0)
		if err != nil {
			t.Fatal(err)
		}
		last = id
	}
	return last
}

// writeRun creates a run and, when start is set, starts its first task in a
// second commit.
func writeRun(ctx context.Context, db *DB, pipeline string, tasks int, start bool) (int64, error) {
	rows := make([]store.TaskRow, tasks)
	for j := range rows {
		rows[j] = store.TaskRow{Index: j, TaskID: fmt.Sprintf("t%03d", j)}
	}
	r, err := db.CreateRun(ctx, store.NewRun{Run: store.Run{Pipeline: pipeline, Trigger: "manual"}, Tasks: rows})
	if err != nil {
		return 0, err
	}
	if !start {
		return r.ID, nil
	}
	err = db.Apply(ctx, store.Change{RunID: r.ID, Transition: engine.Transition{
		Run:   &engine.Run{State: engine.RunRunning, Remaining: tasks},
		Tasks: []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskRunning, Attempt: 1}}},
	}})
	return r.ID, err
}

// TestBackupWhileWriting takes a backup of a store that a server holds and
// writes to all the while: the copy opens, passes integrity_check, holds
// every run committed before the backup began, and holds each run whole.
func TestBackupWhileWriting(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "tasuki.db")
	db, err := OpenFor(ctx, path, Server) // the exclusive lock a server holds
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := createRuns(ctx, t, db, 200, 20)
	want := map[int64]store.Run{}
	for id := int64(1); id <= before; id++ {
		r, err := db.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = r
	}

	// A writer that goes on creating and starting runs until the backup is
	// over; the backup starts once it has committed its first.
	stop := make(chan struct{})
	writing := make(chan struct{})
	done := make(chan error, 1)
	var wrote atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := writeRun(ctx, db, "live", 50, true); err != nil {
				done <- err
				return
			}
			if wrote.Add(1) == 1 {
				close(writing)
			}
		}
	}()
	<-writing
	dst := filepath.Join(t.TempDir(), "backup.db")
	at := wrote.Load()
	info, err := Backup(ctx, path, dst, BackupOptions{})
	during := wrote.Load() - at
	close(stop)
	if werr := <-done; werr != nil {
		t.Fatalf("the writer failed beside the backup: %v", werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the writer committed %d runs while the backup ran; the copy has %d runs", during, info.Runs)

	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	if info.Path != dst || info.Bytes != fi.Size() || info.SchemaVersion != info.Known || info.SchemaVersion == 0 {
		t.Errorf("info = %+v (file of %d bytes)", info, fi.Size())
	}
	if info.NewestRun < before || info.Runs < before {
		t.Errorf("info = %+v, want at least the %d runs committed before", info, before)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".backup.db.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	cp, err := Open(ctx, dst)
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer cp.Close()
	var check string
	if err := cp.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of the copy: %q, %v", check, err)
	}
	for id, w := range want {
		r, err := cp.Run(ctx, id)
		if err != nil {
			t.Fatalf("run %d, committed before the backup: %v", id, err)
		}
		if r.Pipeline != w.Pipeline || r.State != w.State || r.TaskCount != w.TaskCount {
			t.Errorf("run %d in the copy = %+v, want %+v", id, r, w)
		}
	}
	// Each run of the copy is whole: its tasks came in its commit.
	for id := int64(1); id <= info.NewestRun; id++ {
		r, err := cp.Run(ctx, id)
		if err != nil {
			t.Fatalf("run %d: %v", id, err)
		}
		tasks, err := cp.Tasks(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != r.TaskCount {
			t.Errorf("run %d has %d of its %d tasks in the copy", id, len(tasks), r.TaskCount)
		}
		if r.State == engine.RunRunning && tasks[0].State != engine.TaskRunning {
			t.Errorf("run %d is running in the copy but its first task is %s", id, tasks[0].State)
		}
	}
}

// TestBackupDoesNotWaitForWriters takes a backup while another connection
// holds the store's write lock in an open transaction: the backup neither
// waits for it nor sees what it has not committed.
func TestBackupDoesNotWaitForWriters(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasuki.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	createRuns(ctx, t, db, 3, 2)
	tx, err := db.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE runs SET pipeline = 'uncommitted'"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "b.db")
	info, err := Backup(ctx, path, dst, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	cp, err := Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	r, err := cp.Run(ctx, 1)
	if err != nil || r.Pipeline != "p0" || info.Runs != 3 {
		t.Errorf("run 1 of the copy = %+v, %v (info %+v); want p0 of 3 runs, without the uncommitted change", r, err, info)
	}
}

func TestBackupRefusals(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "tasuki.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	createRuns(ctx, t, db, 2, 1)
	db.Close()

	out := t.TempDir()
	dst := filepath.Join(out, "b.db")
	if err := os.WriteFile(dst, []byte("the previous backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Backup(ctx, path, dst, BackupOptions{})
	if !errors.Is(err, ErrBackupExists) {
		t.Errorf("backup over an existing file: %v, want ErrBackupExists", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "the previous backup" {
		t.Errorf("the existing file was changed: %q", b)
	}
	info, err := Backup(ctx, path, dst, BackupOptions{Overwrite: true})
	if err != nil {
		t.Fatalf("backup with Overwrite: %v", err)
	}
	if info.Runs != 2 {
		t.Errorf("info = %+v, want 2 runs", info)
	}

	notTasuki := filepath.Join(dir, "other.db")
	if err := os.WriteFile(notTasuki, []byte("not a database at all, just text long enough to have a header......"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, src, dst string
		want           string
	}{
		{"no store", filepath.Join(dir, "missing.db"), filepath.Join(out, "x.db"), "there is no store at"},
		{"not a database", notTasuki, filepath.Join(out, "y.db"), "not a SQLite database"},
		{"empty file", empty, filepath.Join(out, "z.db"), "no tasuki store yet"},
		{"onto the store", path, path, "store's own files"},
		{"onto its WAL", path, path + "-wal", "store's own files"},
		{"a directory", path, out, "is a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Backup(ctx, c.src, c.dst, BackupOptions{Overwrite: true})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one saying %q", err, c.want)
			}
		})
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) > 0 {
		t.Errorf("files left behind by failed backups: %v", left)
	}
}
