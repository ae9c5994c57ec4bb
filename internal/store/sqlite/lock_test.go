package sqlite

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

func TestOwnershipLocks(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasuki.db")
	open := func(use Use) (*DB, error) { return OpenFor(ctx, path, use) }
	must := func(use Use) *DB {
		t.Helper()
		db, err := open(use)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	refused := func(use Use, server bool, says ...string) {
		t.Helper()
		db, err := open(use)
		if err == nil {
			db.Close()
			t.Fatal("OpenFor succeeded beside an owner that excludes it")
		}
		var e *InUseError
		if !errors.As(err, &e) || !errors.Is(err, ErrInUse) || e.Server != server {
			t.Fatalf("OpenFor: %v, want an InUseError with Server=%t", err, server)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	}

	// Local runs share the store, and keep a server out.
	a, b := must(Local), must(Local)
	refused(Server, false, "'tasuki run'", path+".lock")
	inspect := must(Inspect) // inspecting needs no lock
	inspect.Close()
	a.Close()
	refused(Server, false)
	b.Close()

	// A server owns it alone, and says who it is.
	srv := must(Server)
	pid := strings.TrimSpace(strings.SplitN(readFile(t, path+".lock"), "\n", 2)[0])
	if pid != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file names process %q, want %d", pid, os.Getpid())
	}
	for _, use := range []Use{Local, Server} {
		refused(use, true, "process "+pid, os.Args[0])
	}
	var e *InUseError
	if _, err := open(Local); !errors.As(err, &e) || e.PID != os.Getpid() {
		t.Fatalf("InUseError %+v, want PID %d", e, os.Getpid())
	}
	inspect = must(Inspect)
	if _, err := inspect.ListRuns(ctx, store.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	inspect.Close()
	srv.Close()
	if s := readFile(t, path+".lock"); s != "" {
		t.Fatalf("a closed server left %q in the lock file", s)
	}

	// Once it has closed, anyone may open the store again.
	must(Local).Close()
	must(Server).Close()
}

// TestStoreFilesArePrivate checks that the database and the files SQLite
// creates beside it are readable by their owner only under a usual umask,
// and that a database an older tasuki left readable by others is made
// private.
func TestStoreFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "tasuki.db")
	if err := os.WriteFile(filepath.Join(dir, "old.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Join(dir, "old.db")} {
		db, err := OpenFor(t.Context(), p, Server)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateRun(t.Context(), store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual"}}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{p, p + "-wal", p + "-shm", p + ".lock"} {
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %v, want no access for group and others", filepath.Base(name), perm)
			}
		}
		db.Close()
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLockOfDeadServer: the lock file names a server that is gone, but its
// lock is still held for a moment (a child it forked holds the open file
// until it execs or dies): the next server waits for the release rather
// than refusing. A lock held under a live process is refused at once.
func TestLockOfDeadServer(t *testing.T) {
	for _, c := range []struct {
		name   string
		holder func(t *testing.T) int
		wantOK bool
	}{
		{"dead holder", func(t *testing.T) int {
			cmd := exec.Command("true")
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			return cmd.Process.Pid // reaped: no such process now
		}, true},
		{"live holder", func(t *testing.T) int {
			cmd := exec.Command("sleep", "60")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			return cmd.Process.Pid
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			abs := filepath.Join(t.TempDir(), "tasuki.db")
			held, err := os.OpenFile(lockPath(abs), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			if err := flock(held, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				t.Fatal(err)
			}
			if _, err := held.WriteString(strconv.Itoa(c.holder(t)) + "\ntasuki server\n"); err != nil {
				t.Fatal(err)
			}
			if c.wantOK {
				// The dead server's child lets go a moment later: whether
				// before lock's first try or during its wait, lock gets it.
				time.AfterFunc(100*time.Millisecond, func() { held.Close() })
			}
			f, err := lock(abs, Server)
			if c.wantOK {
				if err != nil {
					t.Fatalf("lock after its holder died = %v, want it once released", err)
				}
				f.Close()
				return
			}
			if !errors.Is(err, ErrInUse) {
				t.Fatalf("lock held by a live server = %v, %v; want ErrInUse", f, err)
			}
		})
	}
}
