package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// init keeps the tests hermetic: a $TASUKI_SERVER in the environment of
// whoever runs them would send the local commands' tests to that server.
func init() { os.Unsetenv(serverEnv) }

// testServer is the real API handler over a seeded fake service and a real
// log store, on a loopback port.
type testServer struct {
	fake *apitest.Fake
	logs *logs.Files
	url  string
	log  []byte // the finished log of run 1, task greet, attempt 1
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	s := &testServer{fake: apitest.NewSeeded(), logs: logs.NewFiles(t.TempDir())}
	ctx := context.Background()
	key := logs.Key{RunID: 1, TaskID: "greet", Attempt: 1}
	w, err := s.logs.Create(ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w.Stdout(), "hello world")
	fmt.Fprintln(w.Stderr(), "a warning")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s.log = s.read(t, key)
	tokens := apitest.NewTokens()
	admin := tokens.AddAPI("admin", api.RoleAdmin, "")
	h := api.NewHandler(s.fake, s.logs, api.WithLogger(slog.New(slog.DiscardHandler)), api.WithTokens(tokens))
	// The commands here are about what the server answers; which token the
	// CLI sends is TestTokenCommands' business. A request without one is
	// sent as the admin.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+admin)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *testServer) read(t *testing.T, key logs.Key) []byte {
	t.Helper()
	rc, err := s.logs.Open(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *testServer) lastArgs(t *testing.T, method string) []any {
	t.Helper()
	c, ok := s.fake.LastCall(method)
	if !ok {
		t.Fatalf("the server's %s was not called", method)
	}
	return c.Args
}

// TestRemoteCommands runs each command against the server and checks the
// exit status, what it prints, and what the service was asked.
func TestRemoteCommands(t *testing.T) {
	t.Setenv("USER", "tester")
	type tc struct {
		name   string
		args   []string
		setup  func(f *apitest.Fake)
		code   int
		stdout []string // substrings
		stderr []string
		check  func(t *testing.T, s *testServer, r result)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	cases := []tc{
		{name: "pipelines", args: []string{"pipelines"}, stdout: []string{"NAME", "hello", "nightly", "0 3 * * * Asia/Tokyo", " JST ", "ok"}},
		{name: "pipelines json", args: []string{"pipelines", "-o", "json"},
			check: func(t *testing.T, s *testServer, r result) {
				var l api.PipelineList
				mustDecode(t, r.stdout, &l)
				if len(l.Items) != 2 || l.Items[0].Name != "hello" || l.Problems == nil || len(l.Problems) != 0 {
					t.Errorf("pipelines = %+v", l)
				}
			}},
		{name: "pipelines with problems", args: []string{"pipelines"},
			setup: func(f *apitest.Fake) {
				p, _ := f.Pipeline(context.Background(), "nightly")
				p.Error = "p/nightly.yaml:2:1: unknown key \"shedule\"\np/nightly.yaml:3:1: second"
				f.AddPipeline(p)
				f.AddProblem(api.FileProblem{File: "p/needy.yaml", Pipeline: "needy", Errors: []string{`p/needy.yaml:3:30: task "x" needs "nope"`, "p/needy.yaml:4:1: other"}})
				f.AddProblem(api.FileProblem{File: "p/junk.yaml", Errors: []string{"p/junk.yaml:1:7: YAML syntax error"}})
			},
			stdout: []string{`last good version in use; file has errors: p/nightly.yaml:2:1: unknown key "shedule" (+1 more)`,
				"Pipeline files that do not load (2):\n  p/needy.yaml (pipeline needy, not loaded)\n    p/needy.yaml:3:30: task \"x\" needs \"nope\"\n    p/needy.yaml:4:1: other\n  p/junk.yaml\n    p/junk.yaml:1:7: YAML syntax error\n"}},
		{name: "pipelines json with problems", args: []string{"pipelines", "-o", "json"},
			setup: func(f *apitest.Fake) {
				f.AddProblem(api.FileProblem{File: "p/needy.yaml", Pipeline: "needy", Errors: []string{"p/needy.yaml:3:30: bad"}})
			},
			check: func(t *testing.T, s *testServer, r result) {
				var l api.PipelineList
				mustDecode(t, r.stdout, &l)
				if len(l.Problems) != 1 || l.Problems[0].Pipeline != "needy" || l.Problems[0].Errors[0] != "p/needy.yaml:3:30: bad" {
					t.Errorf("pipelines = %+v", l)
				}
			}},
		{name: "trigger of a broken pipeline", args: []string{"trigger", "needy"}, code: 2,
			setup: func(f *apitest.Fake) {
				f.Fail("Trigger", api.Errorf(409, api.CodePipelineInvalid, "pipeline \"needy\" cannot start runs: its file p/needy.yaml does not load:\np/needy.yaml:3:30: bad"))
			},
			stderr: []string{"p/needy.yaml does not load", "p/needy.yaml:3:30: bad"}},
		{name: "trigger param not UTF-8", args: []string{"trigger", "hello", "-p", "who=b\xffb"}, code: 2,
			stderr: []string{`--param "who": invalid UTF-8 at byte 2`}},
		{name: "trigger", args: []string{"trigger", "hello", "-p", "who=bob", "-p", "n=3"}, stdout: []string{"4\n"},
			check: func(t *testing.T, s *testServer, r result) {
				if r.stdout != "4\n" {
					t.Errorf("stdout %q, want the run id alone", r.stdout)
				}
				args := s.lastArgs(t, "Trigger")
				if args[0] != "hello" || !reflect.DeepEqual(args[1], map[string]string{"who": "bob", "n": "3"}) ||
					args[2] != "admin" { // the credential's name, not $USER@host
					t.Errorf("Trigger%v", args)
				}
			}},
		{name: "trigger json", args: []string{"trigger", "hello", "-o", "json"},
			check: func(t *testing.T, s *testServer, r result) {
				var run api.Run
				mustDecode(t, r.stdout, &run)
				if run.ID != 4 || run.State != engine.RunQueued {
					t.Errorf("run = %+v", run)
				}
			}},
		{name: "trigger bad param", args: []string{"trigger", "hello", "-p", "n=many"}, code: 2, stderr: []string{`param "n"`, "integer"}},
		{name: "trigger malformed param", args: []string{"trigger", "hello", "-p", "n"}, code: 2, stderr: []string{"name=value"}},
		{name: "trigger unknown pipeline", args: []string{"trigger", "nope"}, code: 2, stderr: []string{`no pipeline "nope"`}},
		{name: "trigger and wait", args: []string{"trigger", "hello", "--wait"}, setup: func(f *apitest.Fake) { f.TriggerState = engine.RunSucceeded },
			stdout: []string{"4\n"}, stderr: []string{"run finished", "run 4 of hello succeeded"}},
		{name: "trigger and wait json", args: []string{"trigger", "hello", "--wait", "-o", "json"},
			setup: func(f *apitest.Fake) { f.TriggerState = engine.RunSucceeded }, stdout: []string{`"state": "succeeded"`}},
		{name: "trigger and wait, failed", args: []string{"trigger", "hello", "-w"}, setup: func(f *apitest.Fake) { f.TriggerState = engine.RunFailed },
			code: 1, stderr: []string{"run 4 of hello failed"}},
		{name: "trigger and wait, cancelled", args: []string{"trigger", "hello", "-w"}, setup: func(f *apitest.Fake) { f.TriggerState = engine.RunCancelled },
			code: 130},

		{name: "runs", args: []string{"runs"}, stdout: []string{"ID", "3  ", "hello", "nightly", "failed", "2/2"}},
		{name: "runs filtered", args: []string{"runs", "--pipeline", "hello", "--state", "failed,running", "--state", "queued", "--limit", "7", "--backfill", "1", "--cursor", "9"},
			check: func(t *testing.T, s *testServer, r result) {
				want := api.RunFilter{Pipeline: "hello", States: []engine.RunState{"failed", "running", "queued"}, BackfillID: 1, Cursor: "9", Limit: 7}
				if got := s.lastArgs(t, "Runs")[0]; !reflect.DeepEqual(got, want) {
					t.Errorf("filter %+v, want %+v", got, want)
				}
			}},
		{name: "runs json", args: []string{"runs", "-o", "json"},
			check: func(t *testing.T, s *testServer, r result) {
				var runs []api.Run
				mustDecode(t, r.stdout, &runs)
				if len(runs) != 3 || runs[0].ID != 3 {
					t.Errorf("runs = %+v", runs)
				}
			}},
		{name: "runs paged", args: []string{"runs", "--limit", "2"}, stderr: []string{"more: tasuki runs --cursor 2"}},
		{name: "runs before", args: []string{"runs", "--before", "3"}, code: 2, stderr: []string{"--cursor"}},
		{name: "runs bad state", args: []string{"runs", "--state", "done"}, code: 2, stderr: []string{"expected queued, running"}},

		{name: "status", args: []string{"status", "1"}, stdout: []string{"run 1 of hello: succeeded", "greet", "after", `params: {"who":"world"}`}},
		{name: "status in the pipeline's zone", args: []string{"status", "2"}, stdout: []string{"run 2 of nightly: failed", " JST)", "exit status 2"}},
		{name: "status json", args: []string{"status", "2", "-o", "json"},
			check: func(t *testing.T, s *testServer, r result) {
				var run api.Run
				mustDecode(t, r.stdout, &run)
				if run.ID != 2 || run.State != engine.RunFailed || len(run.Tasks) != 1 || run.Tasks[0].ID != "load" {
					t.Errorf("run = %+v", run)
				}
			}},
		{name: "status unknown", args: []string{"status", "99"}, code: 2, stderr: []string{"no run 99"}},
		{name: "status bad id", args: []string{"status", "x"}, code: 2, stderr: []string{"positive number"}},

		{name: "logs", args: []string{"logs", "1", "greet"},
			check: func(t *testing.T, s *testServer, r result) {
				if r.stdout != string(s.log) {
					t.Errorf("logs printed %q, want %q", r.stdout, s.log)
				}
			}},
		{name: "logs follow finished", args: []string{"logs", "-f", "1", "greet"},
			check: func(t *testing.T, s *testServer, r result) {
				if r.stdout != string(s.log) {
					t.Errorf("logs -f printed %q, want %q", r.stdout, s.log)
				}
			}},
		// An attempt that printed nothing has an empty log.
		{name: "logs of a silent attempt", args: []string{"logs", "2", "load"}, code: 0},
		{name: "logs unknown attempt", args: []string{"logs", "1", "greet", "--attempt", "3"}, code: 2, stderr: []string{"no attempt 3"}},

		{name: "cancel", args: []string{"cancel", "3"}, stdout: []string{"run 3 of hello: cancelled"},
			check: func(t *testing.T, s *testServer, r result) {
				if args := s.lastArgs(t, "Cancel"); args[0] != int64(3) || args[1] != "admin" {
					t.Errorf("Cancel%v", args)
				}
			}},
		{name: "cancel finished", args: []string{"cancel", "1"}, code: 2, stderr: []string{"succeeded"}},
		{name: "cancel json", args: []string{"cancel", "3", "-o", "json"}, stdout: []string{`"state": "cancelled"`}},
		{name: "retry", args: []string{"retry", "2"}, stdout: []string{"run 2 of nightly: running"}},
		{name: "rerun", args: []string{"rerun", "1"}, stdout: []string{"4\n"}, stderr: []string{"rerun of run 1"}},
		{name: "mark", args: []string{"mark", "2", "load", "skipped"}, stdout: []string{"task load of run 2 marked skipped"},
			check: func(t *testing.T, s *testServer, r result) {
				if args := s.lastArgs(t, "MarkTask"); args[1] != "load" || args[2] != engine.TaskSkipped {
					t.Errorf("MarkTask%v", args)
				}
			}},
		{name: "mark bad state", args: []string{"mark", "2", "load", "failed"}, code: 2, stderr: []string{"expected succeeded or skipped"}},
		{name: "mark running", args: []string{"mark", "3", "greet", "succeeded"}, code: 2, stderr: []string{"running"}},
		{name: "pause", args: []string{"pause", "hello"}, stdout: []string{"pipeline hello paused"}},
		{name: "unpause", args: []string{"unpause", "nightly"}, stdout: []string{"pipeline nightly unpaused"}},
		{name: "pause unknown", args: []string{"pause", "nope"}, code: 2, stderr: []string{"nope"}},

		// A date alone as --to takes in that day: Jan 1 to 7 ends at Jan 8 00:00.
		{name: "backfill", args: []string{"backfill", "nightly", "--from", "2026-01-01", "--to", "2026-01-07", "--parallel", "2", "-p", "k=v"},
			stdout: []string{"backfill 2 of nightly: 7 runs from 2026-01-01T00:00:00+09:00 to 2026-01-08T00:00:00+09:00, 2 at once"},
			check: func(t *testing.T, s *testServer, r result) {
				req := s.lastArgs(t, "CreateBackfill")[0].(api.BackfillRequest)
				if !req.From.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, tokyo)) || !req.To.Equal(time.Date(2026, 1, 8, 0, 0, 0, 0, tokyo)) ||
					req.Parallel != 2 || req.Params["k"] != "v" {
					t.Errorf("request %+v", req)
				}
			}},
		{name: "backfill to a time", args: []string{"backfill", "nightly", "--from", "2026-01-01", "--to", "2026-01-08T00:00"},
			check: func(t *testing.T, s *testServer, r result) {
				if req := s.lastArgs(t, "CreateBackfill")[0].(api.BackfillRequest); !req.To.Equal(time.Date(2026, 1, 8, 0, 0, 0, 0, tokyo)) {
					t.Errorf("--to 2026-01-08T00:00 became %s; a time is the exact end", req.To)
				}
			}},
		{name: "backfill of one day", args: []string{"backfill", "nightly", "--from", "2026-01-05", "--to", "2026-01-05"},
			stdout: []string{": 1 run from 2026-01-05T00:00:00+09:00 to 2026-01-06T00:00:00+09:00"}},
		{name: "backfill create", args: []string{"backfill", "create", "nightly", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-03T00:00:00Z"},
			stdout: []string{"backfill 2 of nightly: 2 runs", "1 at once"}},
		{name: "backfill backwards", args: []string{"backfill", "nightly", "--from", "2026-01-08", "--to", "2026-01-01"}, code: 2, stderr: []string{"must be after"}},
		{name: "backfill bad time", args: []string{"backfill", "nightly", "--from", "yesterday", "--to", "2026-01-01"}, code: 2, stderr: []string{`--from "yesterday"`}},
		{name: "backfill without range", args: []string{"backfill", "nightly"}, code: 2, stderr: []string{"--from and --to"}},
		{name: "backfill without pipeline", args: []string{"backfill"}, code: 2, stderr: []string{"needs a PIPELINE"}},
		{name: "backfill unknown pipeline", args: []string{"backfill", "nope", "--from", "2026-01-01", "--to", "2026-01-02"}, code: 2, stderr: []string{"nope"}},
		{name: "backfill list", args: []string{"backfill", "list"}, stdout: []string{"nightly", "1 done of 3", "ops"}},
		{name: "backfill list json", args: []string{"backfill", "ls", "-o", "json", "--pipeline", "nightly"},
			check: func(t *testing.T, s *testServer, r result) {
				var bs []api.Backfill
				mustDecode(t, r.stdout, &bs)
				if len(bs) != 1 || bs[0].ID != 1 {
					t.Errorf("backfills = %+v", bs)
				}
			}},
		{name: "backfill show", args: []string{"backfill", "show", "1"}, stdout: []string{"backfill 1 of nightly: running", "queued 2, succeeded 1"}},
		{name: "backfill show unknown", args: []string{"backfill", "show", "9"}, code: 2, stderr: []string{"no backfill 9"}},
		{name: "backfill show bad id", args: []string{"backfill", "show", "x"}, code: 2, stderr: []string{"positive number"}},
		{name: "backfill cancel", args: []string{"backfill", "cancel", "1"}, stdout: []string{"backfill 1 of nightly: cancelled"}},

		{name: "server error", args: []string{"pipelines"}, setup: func(f *apitest.Fake) { f.Fail("Pipelines", apitest.ErrBoom) },
			code: 1, stderr: []string{"internal error"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t)
			if c.setup != nil {
				c.setup(s.fake)
			}
			r := call(append([]string{"--server", s.url}, c.args...)...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
			}
			for _, want := range c.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			for _, want := range c.stderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if c.check != nil {
				c.check(t, s, r)
			}
		})
	}
}

func mustDecode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, s)
	}
}

// TestNeedsServer checks the commands that only work with a server say so.
func TestNeedsServer(t *testing.T) {
	t.Setenv(serverEnv, "")
	for _, args := range [][]string{
		{"pipelines"}, {"trigger", "hello"}, {"cancel", "1"}, {"mark", "1", "a", "skipped"},
		{"pause", "hello"}, {"unpause", "hello"}, {"backfill", "hello", "--from", "2026-01-01", "--to", "2026-01-02"},
		{"backfill", "list"}, {"backfill", "show", "1"}, {"backfill", "cancel", "1"},
	} {
		r := call(args...)
		want := "needs a server: pass --server URL or set TASUKI_SERVER (start one with 'tasuki server')"
		if r.code != 2 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "tasuki "+args[0]) {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

// TestServerSelection covers $TASUKI_SERVER, bad URLs, an absent server,
// and server-only flags on local commands.
func TestServerSelection(t *testing.T) {
	s := newTestServer(t)
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv(serverEnv, s.url)
		if r := call("pipelines"); r.code != 0 || !strings.Contains(r.stdout, "nightly") {
			t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("flag wins", func(t *testing.T) {
		t.Setenv(serverEnv, "http://127.0.0.1:1")
		if r := call("--server", s.url, "pipelines"); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		if r := call("--server", "localhost:8080", "pipelines"); r.code != 2 || !strings.Contains(r.stderr, "--server") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("no server there", func(t *testing.T) {
		srv := httptest.NewServer(nil)
		srv.Close()
		if r := call("--server", srv.URL, "runs"); r.code != 1 || !strings.Contains(r.stderr, "talk to the server at "+srv.URL) {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("server-only flag without a server", func(t *testing.T) {
		t.Setenv(serverEnv, "")
		r := call("--home", t.TempDir(), "runs", "--cursor", "9")
		if r.code != 2 || !strings.Contains(r.stderr, "--cursor works with a server") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("local without a server", func(t *testing.T) {
		t.Setenv(serverEnv, "")
		if r := call("--home", t.TempDir(), "runs"); r.code != 0 {
			t.Fatalf("local runs: exit %d: %s", r.code, r.stderr)
		}
	})
}

// lockedBuffer is a bytes.Buffer a command and a test can share; changed
// signals each write.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	n, err := l.b.Write(p)
	l.mu.Unlock()
	if l.changed != nil {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
	return n, err
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsFollowLive follows a log that a task is still writing.
func TestLogsFollowLive(t *testing.T) {
	s := newTestServer(t)
	key := logs.Key{RunID: 3, TaskID: "greet", Attempt: 1}
	w, err := s.logs.Create(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var errb lockedBuffer
	out := lockedBuffer{changed: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"--server", s.url, "logs", "-f", "3", "greet"}, IO{In: strings.NewReader(""), Out: &out, Err: &errb}, "test")
	}()
	timeout := time.After(20 * time.Second)
	for i := range 3 {
		fmt.Fprintf(w.Stdout(), "step %d\n", i)
		for !strings.Contains(out.String(), fmt.Sprintf("out step %d\n", i)) {
			select {
			case <-out.changed:
			case <-timeout:
				t.Fatalf("line %d never arrived; have %q", i, out.String())
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Following ends with the task, not with one attempt's log.
	r, err := s.fake.Run(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	r.Tasks[0].State = engine.TaskSucceeded
	s.fake.AddRun(r)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("logs -f did not end with the task")
	}
	if got, want := out.String(), string(s.read(t, key)); got != want {
		t.Fatalf("followed %q, log is %q", got, want)
	}
}

// TestCompletion checks shell completion asks the server for names.
func TestCompletion(t *testing.T) {
	s := newTestServer(t)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"trigger", ""}, []string{"hello\tsay hello", "nightly"}},
		{[]string{"cancel", ""}, []string{"3\thello running", "1\thello succeeded"}},
		{[]string{"status", ""}, []string{"2\tnightly failed"}},
		{[]string{"logs", "2", ""}, []string{"load\tfailed"}},
		{[]string{"mark", "2", ""}, []string{"load\tfailed"}},
		{[]string{"mark", "2", "load", ""}, []string{"succeeded", "skipped"}},
		{[]string{"backfill", ""}, []string{"nightly"}},
	} {
		r := call(append([]string{"--server", s.url, "__complete"}, c.args...)...)
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("completing %v: %q lacks %q", c.args, r.stdout, w)
			}
		}
	}
	if r := call("--server", s.url, "__complete", "runs", ""); strings.Contains(r.stdout, "hello") {
		t.Errorf("runs takes no argument, yet completes %q", r.stdout)
	}
	if r := call("completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "bash completion") {
		t.Errorf("completion bash: exit %d", r.code)
	}
}
