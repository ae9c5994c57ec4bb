package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupCommand(t *testing.T) {
	home, dir, out := t.TempDir(), t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "p.yaml", "name: p\ntasks: [{id: a, run: 'echo hi'}]\n")
	for range 2 {
		if r := call("--home", home, "run", file, "-q"); r.code != 0 {
			t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
		}
	}
	dst := filepath.Join(out, "tasuki-backup.db")
	r := call("--home", home, "backup", dst)
	if r.code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "2 runs (newest run 2)") || !strings.Contains(r.stdout, "to restore: stop the server") {
		t.Errorf("backup printed:\n%s", r.stdout)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}

	// The copy is a data directory's store: restored, it lists the runs.
	restored := t.TempDir()
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "tasuki.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := call("--home", restored, "runs"); r.code != 0 || strings.Count(r.stdout, "succeeded") != 2 {
		t.Errorf("runs of the restored store: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	if r := call("--home", home, "backup", dst); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("backup onto an existing file: exit %d, want 1 pointing at --force\n%s", r.code, r.stderr)
	}
	if r := call("--home", home, "backup", "--force", dst); r.code != 0 {
		t.Errorf("backup --force: exit %d\n%s", r.code, r.stderr)
	}
	if r := call("--home", t.TempDir(), "backup", filepath.Join(out, "none.db")); r.code != 1 || !strings.Contains(r.stderr, "there is no store at") {
		t.Errorf("backup of an empty data directory: exit %d\n%s", r.code, r.stderr)
	}

	// PostgreSQL: pg_dump, whichever way the store is named, and the URL
	// (with its password) is not repeated.
	url := "postgres://tasuki:hunter2@db.internal/tasuki"
	cfg := writeFile(t, dir, "server.yaml", "db: "+url+"\n")
	for name, args := range map[string][]string{
		"--db":     {"backup", "--db", url, filepath.Join(out, "pg.db")},
		"--config": {"backup", "--config", cfg, filepath.Join(out, "pg.db")},
	} {
		r := call(append([]string{"--home", home}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "pg_dump") || strings.Contains(r.stderr, "hunter2") {
			t.Errorf("%s: exit %d, want 1 saying pg_dump without the password\n%s", name, r.code, r.stderr)
		}
	}
	t.Setenv("TASUKI_DB", url)
	if r := call("--home", home, "backup", filepath.Join(out, "pg.db")); r.code != 1 || !strings.Contains(r.stderr, "pg_dump") {
		t.Errorf("$TASUKI_DB: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "pg.db")); err == nil {
		t.Error("a backup of a PostgreSQL store wrote a file")
	}
}
