package sqltask

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn     string
		dialect dialect
		display string
		key     string // a part of the pool key (the driver's DSN)
	}{
		{"postgres://u:pw@db.example:5432/app?sslmode=disable", postgres, "postgres://u:***@db.example:5432/app", "sslmode=disable"},
		{"postgresql://u@db/app", postgres, "postgresql://u@db/app", "postgresql://u@db/app"},
		{"mysql://u:p%40ss@db:3307/app?charset=utf8mb4", mysql, "mysql://u:***@db:3307/app", "u:p@ss@tcp(db:3307)/app?"},
		{"mysql://u@db/app", mysql, "mysql://u@db/app", "tcp(db:3306)/app?"},
		{"mysql://u@[::1]/app", mysql, "mysql://u@[::1]/app", "tcp([::1]:3306)/app?"},
		{"sqlite:///data/app.db", sqlite, "sqlite:///data/app.db", "file:///data/app.db?_pragma=busy_timeout%2810000%29"},
		{"sqlite:rel/app.db", sqlite, "sqlite:///work/rel/app.db", "file:///work/rel/app.db?"},
		{"sqlite:/abs/my db?.db", sqlite, "sqlite:///abs/my db", "file:///abs/my%20db?"},
		{"sqlite:///data/app.db?_pragma=foreign_keys(1)", sqlite, "sqlite:///data/app.db", "foreign_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			got, err := parseDSN(tt.dsn, "/work", false)
			if err != nil {
				t.Fatal(err)
			}
			if got.dialect != tt.dialect || got.display != tt.display || !strings.Contains(got.key, tt.key) {
				t.Errorf("got %s %q key %q, want %s %q key with %q", got.dialect, got.display, got.key, tt.dialect, tt.display, tt.key)
			}
		})
	}
	if got, _ := parseDSN("mysql://u@db/app", "", false); !strings.Contains(got.key, "parseTime=true") {
		t.Errorf("mysql key %q does not parse times", got.key)
	}
	if got, _ := parseDSN("sqlite:///data/app.db", "", true); !strings.Contains(got.key, "mode=ro") {
		t.Errorf("read-only sqlite key %q", got.key)
	}
}

func TestParseDSNErrors(t *testing.T) {
	const pw = "s3cret-pw"
	tests := []struct {
		dsn  string
		want string
	}{
		{"oracle://u:" + pw + "@db/x", `unsupported DSN scheme "oracle"; use postgres://`},
		{"host=db password=" + pw, "the DSN is not a URL"},
		{pw + "@db", "the DSN is not a URL"},
		{"", "the DSN is not a URL"},
		{"postgres://u:" + pw + "@db:notaport/x", "the postgres DSN is not a valid URL"},
		{"postgres://u:" + pw + "@db/x?sslmode=sometimes", "read the DSN postgres://u:***@db/x: "},
		{"postgres://u:" + pw + "@db/x?password=" + pw + "&connect_timeout=x", "read the DSN postgres://u:***@db/x"},
		{"postgres://u:" + pw + "@db/%zz", "the postgres DSN is not a valid URL"},
		{"postgres://u:a/" + pw + "@db/x", "must be URL-encoded, such as %2F for /"},
		{"mysql://u:a#" + pw + "@db/x", "must be URL-encoded"},
		{"mysql://u:" + pw + "@/x", "names no host (unix sockets are not supported)"},
		{"mysql://u:" + pw + "@db/x?parseTime=maybe", "read the DSN mysql://u:***@db/x"},
		{"mysql:u:" + pw + "@db", "the mysql DSN is not a valid URL"},
		{"sqlite://rel.db", "a path after sqlite:// must be absolute"},
		{"sqlite:", "names no file"},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			_, err := parseDSN(tt.dsn, "/work", false)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestUnreachableServer(t *testing.T) {
	const pw = "s3cret-pw"
	for _, scheme := range []string{"postgres", "mysql"} {
		t.Run(scheme, func(t *testing.T) {
			dsn := fmt.Sprintf("%s://u:%s@%s/db", scheme, pw, closedPort(t))
			res, _ := runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: dsn, Query: "SELECT 1"}, nil))
			if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "connection refused") || strings.Contains(res.Message, pw) {
				t.Errorf("task: %s %q", res.Outcome, res.Message)
			}
			// Two checks see the same thing, without ports.
			for range 2 {
				obs := Wait{}.Check(context.Background(), waitSpec(t, dsn, "SELECT 1", nil), &attempt.Host{}, nil)
				if obs.Met || obs.Fail != "" || obs.Seen != "cannot connect: connection refused" {
					t.Errorf("wait: %+v", obs)
				}
			}
		})
	}
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		obs := Wait{}.Check(context.Background(), waitSpec(t, "sqlite:later.db", "SELECT 1", nil), &attempt.Host{Dir: dir}, nil)
		if obs.Met || obs.Fail != "" || obs.Seen != "cannot connect: the database file does not exist" {
			t.Errorf("wait: %+v", obs)
		}
		if _, err := os.Stat(filepath.Join(dir, "later.db")); err == nil {
			t.Error("the wait created the database file")
		}
	})
}

func TestMySQLWrongPasswordIsMasked(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		if b.name != "mysql" {
			t.Skip("only MySQL checks the password in the test setup")
		}
		const pw = "s3cret-pw"
		dsn := strings.Replace(b.dsn, "://root@", "://root:"+pw+"@", 1)
		res, _ := runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: dsn, Query: "SELECT 1"}, nil))
		if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "Access denied") || !strings.Contains(res.Message, "root:***@") || strings.Contains(res.Message, pw) {
			t.Errorf("task: %s %q", res.Outcome, res.Message)
		}
		obs := Wait{}.Check(context.Background(), waitSpec(t, dsn, "SELECT 1", nil), &attempt.Host{}, nil)
		if !strings.HasPrefix(obs.Seen, "cannot connect: Access denied") || strings.Contains(obs.Seen, pw) {
			t.Errorf("wait: %+v", obs)
		}
	})
}

func TestDSNExpansion(t *testing.T) {
	dir := t.TempDir()
	s := taskSpec(t, &spec.SQL{DSN: "sqlite:${DB_FILE}", Query: "SELECT :day AS d"}, map[string]string{"TASUKI_PARAM_DAY": "2026-01-01"})
	s.Secrets = attempt.SecretEnv{"DB_FILE": "from-a-secret.db"}
	out := &syncBuffer{}
	res := Task{}.Run(context.Background(), s, &attempt.Host{Dir: dir, Stdout: out})
	got := mustSucceed(t, res, out.String())
	if fmt.Sprint(got["rows"]) != "[[2026-01-01]]" {
		t.Errorf("result %s", res.Result)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-a-secret.db")); err != nil {
		t.Error(err)
	}

	s = taskSpec(t, &spec.SQL{DSN: "postgres://u:${NOPE}@db/x", Query: "SELECT 1"}, nil)
	res, _ = runTask(t, Task{}, s)
	if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "the task has no variable NOPE") {
		t.Errorf("unknown variable: %s %q", res.Outcome, res.Message)
	}
	obs := Wait{}.Check(context.Background(), waitSpec(t, "oracle://db", "SELECT 1", nil), &attempt.Host{}, nil)
	if !strings.Contains(obs.Fail, "unsupported DSN scheme") {
		t.Errorf("a wait on an unknown scheme fails: %+v", obs)
	}
}

func TestBody(t *testing.T) {
	tests := []struct {
		sql  *spec.SQL
		want string
	}{
		{&spec.SQL{DSN: "sqlite:x.db", Query: "SELECT 1"}, `{"dsn":"sqlite:x.db","query":"SELECT 1","max_rows":100}`},
		{&spec.SQL{DSN: "sqlite:x.db", File: "q.sql", MaxRows: 7}, `{"dsn":"sqlite:x.db","file":"q.sql","max_rows":7}`},
		{nil, "the task has no sql"},
		{&spec.SQL{Query: "SELECT 1"}, "dsn is required"},
		{&spec.SQL{DSN: "sqlite:x.db"}, "give query or file"},
		{&spec.SQL{DSN: "sqlite:x.db", Query: "SELECT 1", File: "q.sql"}, "not both"},
		{&spec.SQL{DSN: "sqlite:x.db", Query: "SELECT 1", MaxRows: 10001}, "max_rows must be between 0 and 10000"},
	}
	for _, tt := range tests {
		body, err := Task{}.Body(&spec.Task{ID: "t", SQL: tt.sql})
		got := string(body)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("Body(%+v) = %q, want %q", tt.sql, got, tt.want)
		}
	}
	if _, err := (Wait{}).Body(&spec.Task{ID: "w", Wait: &spec.Wait{SQL: "SELECT 1"}}); err == nil || !strings.Contains(err.Error(), "dsn") {
		t.Errorf("a wait without dsn: %v", err)
	}
	if (Task{}).Name() != (&spec.Task{SQL: &spec.SQL{}}).Kind() || (Wait{}).Name() != (&spec.Task{Wait: &spec.Wait{SQL: "x"}}).Kind() {
		t.Error("the names are not the kinds spec.Task.Kind gives")
	}
	if _, err := attempt.NewRegistry(Task{}, Wait{}); err != nil {
		t.Errorf("register: %v", err)
	}
}

func TestJSONValue(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	tests := []struct {
		v    any
		typ  string
		want string
	}{
		{nil, "", "null"},
		{true, "BOOL", "true"},
		{int64(-3), "INT8", "-3"},
		{1.25, "FLOAT8", "1.25"},
		{math.NaN(), "FLOAT8", `"NaN"`},
		{math.Inf(-1), "FLOAT8", `"-Infinity"`},
		{"text", "TEXT", `"text"`},
		{[]byte("héllo"), "VARCHAR", `"héllo"`},
		{[]byte{0xff, 0x00}, "BLOB", `"/wA="`},
		{[]byte("12.50"), "DECIMAL", "12.50"},
		{"123456789012345678901234567890.5", "NUMERIC", "123456789012345678901234567890.5"},
		{"NaN", "NUMERIC", `"NaN"`},
		{[]byte("12.50"), "VARCHAR", `"12.50"`},
		{when, "TIMESTAMPTZ", `"2026-01-02T03:04:05.0000006Z"`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(jsonValue(tt.v, tt.typ))
		if err != nil || string(got) != tt.want {
			t.Errorf("jsonValue(%#v, %s) = %s (%v), want %s", tt.v, tt.typ, got, err, tt.want)
		}
	}
}

func TestTruthy(t *testing.T) {
	for _, v := range []any{true, int64(1), int64(-2), 0.5, "t", "TRUE", " 1 ", []byte("true"), []byte("3"), "2.5"} {
		if !truthy(v) {
			t.Errorf("truthy(%#v) = false", v)
		}
	}
	for _, v := range []any{false, int64(0), 0.0, math.NaN(), "f", "false", "0", "", "yes please", []byte("0.0"), time.Now()} {
		if truthy(v) {
			t.Errorf("truthy(%#v) = true", v)
		}
	}
}

func TestPoolSweepsAndCloses(t *testing.T) {
	p := NewPool()
	now := time.Now()
	p.now = func() time.Time { return now }
	dir := t.TempDir()
	a, _ := parseDSN("sqlite:a.db", dir, false)
	b, _ := parseDSN("sqlite:b.db", dir, false)

	dbA, releaseA, err := p.get(a)
	if err != nil {
		t.Fatal(err)
	}
	again, releaseAgain, _ := p.get(a)
	if again != dbA {
		t.Error("the same DSN got a second *sql.DB")
	}
	releaseA()
	releaseA() // twice is once
	now = now.Add(poolUnusedAfter + time.Second)
	if _, releaseB, _ := p.get(b); releaseB != nil {
		releaseB()
	}
	if _, ok := p.dbs[a.key]; !ok {
		t.Error("a database in use was closed")
	}
	releaseAgain()
	now = now.Add(poolUnusedAfter + time.Second)
	p.get(b)
	if _, ok := p.dbs[a.key]; ok {
		t.Error("an unused database was kept")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.get(a); err == nil {
		t.Error("a closed pool opened a database")
	}
	res, _ := runTask(t, Task{Pool: p}, taskSpec(t, &spec.SQL{DSN: "sqlite:c.db", Query: "SELECT 1"}, nil))
	if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "pool is closed") {
		t.Errorf("task on a closed pool: %s %q", res.Outcome, res.Message)
	}
}

func TestTaskRefusesTransactionControl(t *testing.T) {
	res, _ := runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: "sqlite:x.db", Query: "CREATE TABLE t (x INT);\nCOMMIT;\nINSERT INTO t VALUES (1)"}, nil))
	if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "statement 2 (line 2: COMMIT): the task runs its statements in one transaction") {
		t.Errorf("%s %q", res.Outcome, res.Message)
	}
}
