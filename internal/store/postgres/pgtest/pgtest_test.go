package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestDSN gets a schema, works in it, and finds it dropped afterwards.
func TestDSN(t *testing.T) {
	var schema string
	t.Run("use", func(t *testing.T) {
		dsn := DSN(t)
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(schema, SchemaPrefix) {
			t.Fatalf("current schema %q, want one starting with %q", schema, SchemaPrefix)
		}
		if _, err := conn.Exec(t.Context(), "CREATE TABLE t (id int)"); err != nil {
			t.Fatal(err)
		}
	})
	if schema == "" {
		return // skipped
	}
	conn, err := pgx.Connect(t.Context(), ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema %s still exists after the test (%d, %v)", schema, n, err)
	}
}

func TestWithSearchPath(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://u@h:5432/db", "postgres://u@h:5432/db?search_path=s"},
		{"postgres://u@h/db?sslmode=disable&search_path=old", "postgres://u@h/db?sslmode=disable&search_path=s"},
		{"postgresql://u@h/db?options=-c%20a%3Db", "postgresql://u@h/db?options=-c%20a%3Db&search_path=s"},
		{"host=h dbname=db", "host=h dbname=db search_path=s"},
	}
	for _, tt := range tests {
		if got := WithSearchPath(tt.dsn, "s"); got != tt.want {
			t.Errorf("WithSearchPath(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
	}
}

// TestUnreachable runs TestChildUnreachable in a child process against a
// server that is not there: skipped normally, failed under CI=true.
func TestUnreachable(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") != "" {
		t.Skip("in the child")
	}
	for _, ci := range []string{"", "true"} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestChildUnreachable$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", "CI="+ci,
			EnvDSN+"=postgres://nobody:pw-not-shown@127.0.0.1:1/none?connect_timeout=5")
		out, err := cmd.CombinedOutput()
		text := string(out)
		if !strings.Contains(text, "start PostgreSQL on 127.0.0.1:5432") || !strings.Contains(text, EnvDSN) {
			t.Errorf("CI=%q: output does not say how to enable the tests:\n%s", ci, text)
		}
		if strings.Contains(text, "pw-not-shown") {
			t.Errorf("CI=%q: output shows the password:\n%s", ci, text)
		}
		switch ci {
		case "true":
			if err == nil || !strings.Contains(text, "--- FAIL: TestChildUnreachable") {
				t.Errorf("CI=true: the test did not fail (%v):\n%s", err, text)
			}
		default:
			if err != nil || !strings.Contains(text, "--- SKIP: TestChildUnreachable") {
				t.Errorf("CI unset: the test was not skipped (%v):\n%s", err, text)
			}
		}
	}
}

func TestChildUnreachable(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "" {
		t.Skip("run by TestUnreachable")
	}
	DSN(t)
	t.Error("DSN returned for an unreachable server")
}
