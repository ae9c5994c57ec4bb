package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN is the environment variable that points the tests at a PostgreSQL
// server (a postgres:// URL or a keyword/value DSN).
const EnvDSN = "TASUKI_TEST_POSTGRES"

// DefaultDSN is the server the tests use when EnvDSN is not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// SchemaPrefix starts the name of every schema DSN creates, so leftovers of
// a killed test run are easy to find and drop.
const SchemaPrefix = "tasuki_test_"

// ServerDSN returns the DSN of the test server, without a schema of the
// test's own. Most tests want DSN.
func ServerDSN() string {
	if s := os.Getenv(EnvDSN); s != "" {
		return s
	}
	return DefaultDSN
}

// DSN creates a new, empty schema for the test in the test server and
// returns a DSN whose connections work in it (search_path set to it). The
// schema and everything in it is dropped when the test and its subtests end
// (register the cleanup of anything that connects with this DSN after
// calling DSN, so it runs first, or close it before the test returns).
//
// When the server is unreachable, DSN skips the test, or fails it when the
// environment variable CI is "true".
func DSN(t testing.TB) string {
	t.Helper()
	base := ServerDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL is not reachable at %s: %v\n"+
			"To run the PostgreSQL tests, start PostgreSQL on 127.0.0.1:5432 with a database %q that user %q may use "+
			"without a password, or set %s to the DSN of a server to use.",
			redact(base), err, "test", "postgres", EnvDSN)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s\n(CI=true: the PostgreSQL tests must run, not be skipped.)", msg)
		}
		t.Skip(msg)
	}
	defer conn.Close(context.Background())
	schema := SchemaPrefix + randomHex(8)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(base, schema)
}

// WithSearchPath returns dsn with its search_path set to schema, for a URL
// (query parameter) or a keyword/value DSN alike.
func WithSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			// Edit the raw query rather than re-encode it: url.Values would
			// write spaces as '+', which pgx reads literally.
			var kept []string
			for _, kv := range strings.Split(u.RawQuery, "&") {
				if kv != "" && !strings.HasPrefix(kv, "search_path=") {
					kept = append(kept, kv)
				}
			}
			u.RawQuery = strings.Join(append(kept, "search_path="+url.QueryEscape(schema)), "&")
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// redact hides the password of a URL DSN for messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return u.String()
	}
	if strings.Contains(dsn, "password=") {
		return "(a DSN with a password)"
	}
	return dsn
}
