package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a handler over a seeded fake and a real log store with one
// finished log (run 1, task greet, attempt 1).
type env struct {
	fake    *apitest.Fake
	logs    *logs.Files
	handler http.Handler // sends the admin API token unless a request carries another
	inner   http.Handler // the handler itself, without the token
	tokens  *apitest.Tokens
	logged  *syncBuffer
	log     []byte // the content of the finished log
}

func newEnv(t *testing.T, opts ...api.Option) *env {
	t.Helper()
	e := &env{fake: apitest.NewSeeded(), logs: logs.NewFiles(t.TempDir()), logged: &syncBuffer{}}
	e.log = writeLog(t, e.logs, logs.Key{RunID: 1, TaskID: "greet", Attempt: 1}, "hello", "from", "tasuki")
	e.tokens = apitest.NewTokens()
	admin := e.tokens.AddAPI("admin", api.RoleAdmin, "")
	opts = append([]api.Option{api.WithLogger(slog.New(slog.NewTextHandler(e.logged, nil))), api.WithTokens(e.tokens)}, opts...)
	e.inner = api.NewHandler(e.fake, e.logs, opts...)
	e.handler = asToken(e.inner, admin)
	return e
}

// asToken sends every request that carries no Authorization header with
// the API token secret, so tests of what routes do need not repeat it.
func asToken(h http.Handler, secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+secret)
		}
		h.ServeHTTP(w, r)
	})
}

// writeLog writes lines to a new log, closes it and returns its content.
func writeLog(t *testing.T, st *logs.Files, k logs.Key, lines ...string) []byte {
	t.Helper()
	w, err := st.Create(context.Background(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if _, err := io.WriteString(w.Stdout(), l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return readAll(t, st, k)
}

func readAll(t *testing.T, st *logs.Files, k logs.Key) []byte {
	t.Helper()
	rc, err := st.Open(context.Background(), k, 0)
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

// do sends a request to the handler in process.
func (e *env) do(method, path, body string, header map[string]string) *http.Response {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if !strings.HasPrefix(path, "/api/") && path != "/" {
		path = api.Prefix + path
	}
	req := httptest.NewRequest(method, path, rd)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec.Result()
}

func args(t *testing.T, f *apitest.Fake, method string) []any {
	t.Helper()
	c, ok := f.LastCall(method)
	if !ok {
		t.Fatalf("%s was not called; calls: %v", method, f.Calls())
	}
	return c.Args
}

func wantArgs(t *testing.T, f *apitest.Fake, method string, want ...any) {
	t.Helper()
	if got := args(t, f, method); !reflect.DeepEqual(got, want) {
		t.Errorf("%s called with %#v, want %#v", method, got, want)
	}
}

const big = 2 << 20

// TestRoutes sends every route its successful request and every error it
// can answer, and checks the status, that the answer is JSON, and the
// error code.
func TestRoutes(t *testing.T) {
	type tc struct {
		name     string
		method   string
		path     string
		body     string
		header   map[string]string
		setup    func(f *apitest.Fake)
		status   int
		code     string   // error code; "" for a success
		contains []string // in the body
		check    func(t *testing.T, e *env, resp *http.Response, body []byte)
	}
	get, post := http.MethodGet, http.MethodPost
	boom := func(method string) func(f *apitest.Fake) {
		return func(f *apitest.Fake) { f.Fail(method, apitest.ErrBoom) }
	}
	sse := map[string]string{"Accept": "text/event-stream"}
	cases := []tc{
		// Service.
		{name: "health", method: get, path: "health", status: 200, contains: []string{`{"status":"ok"}`}},
		{name: "ready", method: get, path: "ready", status: 200, contains: []string{`"ready"`}},
		{name: "not ready", method: get, path: "ready", setup: func(f *apitest.Fake) { f.SetReady(errors.New("store unreachable")) },
			status: 503, code: api.CodeUnavailable, contains: []string{"store unreachable"}},
		{name: "openapi", method: get, path: "openapi.json", status: 200, contains: []string{`"3.1.0"`}},

		// Pipelines.
		{name: "pipelines", method: get, path: "pipelines", status: 200, contains: []string{`"items":[{"name":"hello"`, `"nightly"`}},
		{name: "pipelines failing", method: get, path: "pipelines", setup: boom("Pipelines"), status: 500, code: api.CodeInternal},
		{name: "pipelines without problems", method: get, path: "pipelines", status: 200, contains: []string{`"problems":[]`}},
		{name: "pipelines with a broken file", method: get, path: "pipelines", status: 200,
			setup: func(f *apitest.Fake) {
				f.AddProblem(api.FileProblem{File: "p/needy.yaml", Pipeline: "needy", Errors: []string{`p/needy.yaml:3:30: task "x" needs "nope"`}})
			},
			contains: []string{`"problems":[{"file":"p/needy.yaml","pipeline":"needy","errors":["p/needy.yaml:3:30: task \"x\" needs \"nope\""]}]`}},
		{name: "pipeline", method: get, path: "pipelines/nightly", status: 200, contains: []string{`"schedule":"0 3 * * *"`}},
		{name: "pipeline unknown", method: get, path: "pipelines/nope", status: 404, code: api.CodeNotFound, contains: []string{`nope`}},
		{name: "pause", method: post, path: "pipelines/hello/pause", header: map[string]string{api.ActorHeader: "alice@laptop"}, status: 200,
			contains: []string{`"paused":true`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "SetPaused", "hello", true, "admin") // the credential, not the header
			}},
		{name: "unpause", method: post, path: "pipelines/hello/unpause", status: 200, contains: []string{`"paused":false`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "SetPaused", "hello", false, "admin")
			}},
		{name: "pause unknown", method: post, path: "pipelines/nope/pause", status: 404, code: api.CodeNotFound},

		// Trigger.
		{name: "trigger", method: post, path: "pipelines/hello/runs", header: map[string]string{api.ActorHeader: "bob"},
			body:   `{"params": {"who": "bob", "n": -42, "ok": true, "items": ["a", "b c"]}}`,
			status: 201, contains: []string{`"id":4`, `"state":"queued"`},
			check: func(t *testing.T, e *env, resp *http.Response, _ []byte) {
				wantArgs(t, e.fake, "Trigger", "hello", map[string]string{"who": "bob", "n": "-42", "ok": "true", "items": `["a","b c"]`}, "admin")
				if loc := resp.Header.Get("Location"); loc != "/api/v1/runs/4" {
					t.Errorf("Location = %q", loc)
				}
			}},
		{name: "trigger without body", method: post, path: "pipelines/hello/runs", status: 201, contains: []string{`"id":4`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "Trigger", "hello", map[string]string{}, "admin")
			}},
		{name: "trigger empty object", method: post, path: "pipelines/hello/runs", body: `{}`, status: 201},
		{name: "trigger bad value", method: post, path: "pipelines/hello/runs", body: `{"params":{"n":"many"}}`,
			status: 400, code: api.CodeInvalidParams, contains: []string{`param \"n\"`, "integer", `"param":"n"`, `"params":[{"param":"n","message":"param \"n\": `}},
		{name: "trigger float for int", method: post, path: "pipelines/hello/runs", body: `{"params":{"n":4.5}}`,
			status: 400, code: api.CodeInvalidParams, contains: []string{`param \"n\"`, `4.5`}},
		{name: "trigger value not UTF-8", method: post, path: "pipelines/hello/runs", body: "{\"params\":{\"who\":\"b\xffb\"}}",
			status: 400, code: api.CodeInvalidParams, contains: []string{`param \"who\": invalid UTF-8 at byte 3`, `"param":"who"`}},
		{name: "trigger value with a lone surrogate", method: post, path: "pipelines/hello/runs", body: `{"params":{"who":"b\ud800b"}}`,
			status: 400, code: api.CodeInvalidParams, contains: []string{`param \"who\": invalid UTF-8 at byte 3`}},
		{name: "trigger value with a surrogate pair", method: post, path: "pipelines/hello/runs", body: `{"params":{"who":"\ud83d\ude00 \\ud800"}}`,
			status: 201, check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "Trigger", "hello", map[string]string{"who": "\U0001F600 \\ud800"}, "admin")
			}},
		{name: "trigger of a broken pipeline", method: post, path: "pipelines/hello/runs",
			setup: func(f *apitest.Fake) {
				f.Fail("Trigger", api.Errorf(http.StatusConflict, api.CodePipelineInvalid, "pipeline %q cannot start runs: its file p/hello.yaml does not load", "hello"))
			},
			status: 409, code: api.CodePipelineInvalid, contains: []string{"p/hello.yaml does not load"}},
		{name: "trigger undeclared param", method: post, path: "pipelines/hello/runs", body: `{"params":{"zzz":"1"}}`,
			status: 400, code: api.CodeInvalidParams, contains: []string{`zzz`, `"param":"zzz"`}},
		{name: "trigger object value", method: post, path: "pipelines/hello/runs", body: `{"params":{"who":{"a":1}}}`,
			status: 400, code: api.CodeInvalidParams, contains: []string{`param \"who\"`, "an object", `"param":"who"`}},
		{name: "trigger null value", method: post, path: "pipelines/hello/runs", body: `{"params":{"who":null}}`,
			status: 400, code: api.CodeInvalidParams, contains: []string{`param \"who\"`, "null"}},
		{name: "trigger truncated JSON", method: post, path: "pipelines/hello/runs", body: `{"params":`,
			status: 400, code: api.CodeInvalid, contains: []string{"malformed JSON"}},
		{name: "trigger JSON syntax", method: post, path: "pipelines/hello/runs", body: `{"params": x}`,
			status: 400, code: api.CodeInvalid, contains: []string{"malformed JSON body at byte"}},
		{name: "trigger unknown field", method: post, path: "pipelines/hello/runs", body: `{"parms":{}}`,
			status: 400, code: api.CodeInvalid, contains: []string{`unknown field \"parms\"`}},
		{name: "trigger trailing data", method: post, path: "pipelines/hello/runs", body: `{} {}`,
			status: 400, code: api.CodeInvalid, contains: []string{"after the JSON value"}},
		{name: "trigger params not an object", method: post, path: "pipelines/hello/runs", body: `{"params":[1]}`,
			status: 400, code: api.CodeInvalid, contains: []string{`field \"params\"`, "an object"}},
		{name: "trigger body not an object", method: post, path: "pipelines/hello/runs", body: `[]`,
			status: 400, code: api.CodeInvalid, contains: []string{"expected a JSON object"}},
		{name: "trigger body too large", method: post, path: "pipelines/hello/runs", body: `{"params":{"who":"` + strings.Repeat("a", big) + `"}}`,
			status: 413, code: api.CodeTooLarge},
		{name: "trigger unknown pipeline", method: post, path: "pipelines/nope/runs", status: 404, code: api.CodeNotFound},
		{name: "trigger stray query", method: post, path: "pipelines/hello/runs?wait=1", status: 400, code: api.CodeInvalid,
			contains: []string{`unknown query parameter \"wait\"`, "takes none"}},

		// Runs.
		{name: "runs", method: get, path: "runs", status: 200,
			check: func(t *testing.T, e *env, _ *http.Response, body []byte) {
				var p api.Page[api.Run]
				mustJSON(t, body, &p)
				if len(p.Items) != 3 || p.Items[0].ID != 3 || p.Items[2].ID != 1 || p.Next != "" {
					t.Errorf("runs page = %+v", p)
				}
			}},
		{name: "runs filtered", method: get, path: "runs?pipeline=hello&state=running,failed&state=queued&backfill=1&cursor=10&limit=5", status: 200,
			contains: []string{`"items":[]`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "Runs", api.RunFilter{Pipeline: "hello", States: []engine.RunState{"running", "failed", "queued"},
					BackfillID: 1, Cursor: "10", Limit: 5})
			}},
		{name: "runs paginated", method: get, path: "runs?limit=2", status: 200, contains: []string{`"next":"2"`}},
		{name: "runs second page", method: get, path: "runs?limit=2&cursor=2", status: 200,
			check: func(t *testing.T, e *env, _ *http.Response, body []byte) {
				var p api.Page[api.Run]
				mustJSON(t, body, &p)
				if len(p.Items) != 1 || p.Items[0].ID != 1 || p.Next != "" {
					t.Errorf("second page = %+v", p)
				}
			}},
		{name: "runs bad cursor", method: get, path: "runs?cursor=zz", status: 400, code: api.CodeInvalid, contains: []string{"cursor"}},
		{name: "runs bad state", method: get, path: "runs?state=running,done", status: 400, code: api.CodeInvalid,
			contains: []string{`state=\"done\"`, "queued, running, succeeded, failed, cancelled"}},
		{name: "runs limit zero", method: get, path: "runs?limit=0", status: 400, code: api.CodeInvalid, contains: []string{"from 1 to 1000"}},
		{name: "runs limit too big", method: get, path: "runs?limit=1001", status: 400, code: api.CodeInvalid},
		{name: "runs limit not a number", method: get, path: "runs?limit=ten", status: 400, code: api.CodeInvalid, contains: []string{`limit=\"ten\"`}},
		{name: "runs created range", method: get, path: "runs?pipeline=hello&created_from=2026-03-14T00:00:00%2B09:00&created_before=2026-03-15T00:00:00%2B09:00", status: 200,
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				c, _ := e.fake.LastCall("Runs")
				f := c.Args[0].(api.RunFilter)
				if !f.CreatedFrom.Equal(time.Date(2026, 3, 13, 15, 0, 0, 0, time.UTC)) || !f.CreatedBefore.Equal(time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)) {
					t.Errorf("filter %+v, want the 14th in JST", f)
				}
			}},
		{name: "runs created range without pipeline", method: get, path: "runs?created_from=2026-03-14T00:00:00Z", status: 400, code: api.CodeInvalid, contains: []string{"need pipeline"}},
		{name: "runs bad created_from", method: get, path: "runs?pipeline=hello&created_from=yesterday", status: 400, code: api.CodeInvalid, contains: []string{"created_from", "RFC 3339"}},
		{name: "runs bad backfill", method: get, path: "runs?backfill=x", status: 400, code: api.CodeInvalid, contains: []string{"backfill"}},
		{name: "runs unknown parameter", method: get, path: "runs?pipline=hello", status: 400, code: api.CodeInvalid,
			contains: []string{`\"pipline\"`, "pipeline, state, backfill, created_from, created_before, cursor, limit"}},
		{name: "runs parameter twice", method: get, path: "runs?pipeline=a&pipeline=b", status: 400, code: api.CodeInvalid, contains: []string{"2 times"}},
		{name: "runs malformed query", method: get, path: "runs?pipeline=%zz", status: 400, code: api.CodeInvalid, contains: []string{"malformed query"}},
		{name: "runs failing", method: get, path: "runs", setup: boom("Runs"), status: 500, code: api.CodeInternal,
			check: func(t *testing.T, e *env, _ *http.Response, body []byte) {
				if strings.Contains(string(body), "boom") {
					t.Errorf("internal detail leaked: %s", body)
				}
				if !strings.Contains(e.logged.String(), "boom") {
					t.Errorf("internal error not logged: %s", e.logged)
				}
			}},

		// One run.
		{name: "run", method: get, path: "runs/1", status: 200, contains: []string{`"id":1`, `"state":"succeeded"`, `"tasks":[{"id":"greet"`},
			check: func(t *testing.T, e *env, _ *http.Response, body []byte) {
				if strings.Contains(string(body), "attempts") {
					t.Errorf("run detail has attempts: %s", body)
				}
			}},
		{name: "run id not a number", method: get, path: "runs/abc", status: 400, code: api.CodeInvalid, contains: []string{`run id \"abc\"`}},
		{name: "run id zero", method: get, path: "runs/0", status: 400, code: api.CodeInvalid},
		{name: "run id negative", method: get, path: "runs/-1", status: 400, code: api.CodeInvalid},
		{name: "run id overflow", method: get, path: "runs/99999999999999999999", status: 400, code: api.CodeInvalid},
		{name: "run unknown", method: get, path: "runs/99", status: 404, code: api.CodeNotFound, contains: []string{"no run 99"}},
		{name: "run store not found", method: get, path: "runs/1", status: 404, code: api.CodeNotFound,
			setup: func(f *apitest.Fake) { f.Fail("Run", fmt.Errorf("load run 1: %w", store.ErrNotFound)) }},
		{name: "run wrapped api error", method: get, path: "runs/1", status: 422, code: "custom_code", contains: []string{`"message":"custom message"`},
			setup: func(f *apitest.Fake) {
				f.Fail("Run", fmt.Errorf("wrapped: %w", api.Errorf(422, "custom_code", "custom message")))
			}},
		{name: "run store conflict", method: get, path: "runs/1", status: 409, code: api.CodeConflict,
			setup: func(f *apitest.Fake) { f.Fail("Run", fmt.Errorf("x: %w", store.ErrConflict)) }},
		{name: "run engine rejected", method: get, path: "runs/1", status: 409, code: api.CodeConflict,
			setup: func(f *apitest.Fake) { f.Fail("Run", fmt.Errorf("x: %w", engine.ErrRejected)) }},

		// Events.
		{name: "events", method: get, path: "runs/1/events", status: 200, contains: []string{`"seq":1`, `"kind":"run_finished"`}},
		{name: "events page", method: get, path: "runs/1/events?after=2&limit=1", status: 200, contains: []string{`"seq":3`, `"next":"3"`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "Events", int64(1), int64(2), 1)
			}},
		{name: "events bad after", method: get, path: "runs/1/events?after=-1", status: 400, code: api.CodeInvalid, contains: []string{"after"}},
		{name: "events bad limit", method: get, path: "runs/1/events?limit=x", status: 400, code: api.CodeInvalid},
		{name: "events bad id", method: get, path: "runs/x/events", status: 400, code: api.CodeInvalid},
		{name: "events unknown run", method: get, path: "runs/99/events", status: 404, code: api.CodeNotFound},

		// Tasks.
		{name: "task", method: get, path: "runs/2/tasks/load", status: 200, contains: []string{`"id":"load"`, `"attempts":[{"attempt":1`}},
		{name: "task unknown", method: get, path: "runs/2/tasks/nope", status: 404, code: api.CodeNotFound},
		{name: "task bad run id", method: get, path: "runs/x/tasks/load", status: 400, code: api.CodeInvalid},
		{name: "task with a slash", method: get, path: "runs/2/tasks/a%2Fb", status: 400, code: api.CodeInvalid, contains: []string{"task id"}},

		// Log errors (the log itself is tested in logstream_test.go).
		{name: "log bad attempt", method: get, path: "runs/1/tasks/greet/logs?attempt=x", status: 400, code: api.CodeInvalid, contains: []string{"attempt"}},
		{name: "log unknown attempt", method: get, path: "runs/1/tasks/greet/logs?attempt=5", status: 404, code: api.CodeNotFound},
		{name: "log task not started", method: get, path: "runs/3/tasks/after/logs", status: 404, code: api.CodeNotFound},
		{name: "log unknown run", method: get, path: "runs/99/tasks/greet/logs", status: 404, code: api.CodeNotFound},
		{name: "log bad offset", method: get, path: "runs/1/tasks/greet/logs?offset=-1", status: 400, code: api.CodeInvalid, contains: []string{"offset"}},
		{name: "log offset past end", method: get, path: "runs/1/tasks/greet/logs?offset=100000", status: 416, code: api.CodeRangeNotSatisfiable,
			check: func(t *testing.T, e *env, resp *http.Response, _ []byte) {
				if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", len(e.log)) {
					t.Errorf("Content-Range = %q", cr)
				}
			}},
		{name: "log range past end", method: get, path: "runs/1/tasks/greet/logs", header: map[string]string{"Range": "bytes=100000-"},
			status: 416, code: api.CodeRangeNotSatisfiable},
		{name: "log range other unit", method: get, path: "runs/1/tasks/greet/logs", header: map[string]string{"Range": "lines=1-"},
			status: 400, code: api.CodeInvalid, contains: []string{"Range"}},
		{name: "log range reversed", method: get, path: "runs/1/tasks/greet/logs", header: map[string]string{"Range": "bytes=9-2"},
			status: 400, code: api.CodeInvalid},
		{name: "log several ranges", method: get, path: "runs/1/tasks/greet/logs", header: map[string]string{"Range": "bytes=0-1,4-5"},
			status: 400, code: api.CodeInvalid, contains: []string{"one range"}},
		{name: "log range and offset", method: get, path: "runs/1/tasks/greet/logs?offset=1", header: map[string]string{"Range": "bytes=0-"},
			status: 400, code: api.CodeInvalid, contains: []string{"not both"}},
		{name: "log bad follow", method: get, path: "runs/1/tasks/greet/logs?follow=maybe", status: 400, code: api.CodeInvalid, contains: []string{"follow"}},
		{name: "log bad Last-Event-ID", method: get, path: "runs/1/tasks/greet/logs",
			header: map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "x"}, status: 400, code: api.CodeInvalid, contains: []string{"Last-Event-ID"}},
		{name: "log follow unknown run", method: get, path: "runs/99/tasks/greet/logs", header: sse, status: 404, code: api.CodeNotFound},
		{name: "log stray query", method: get, path: "runs/1/tasks/greet/logs?tail=5", status: 400, code: api.CodeInvalid,
			contains: []string{"attempt, offset, follow"}},

		// Operator actions.
		{name: "cancel", method: post, path: "runs/3/cancel", status: 200, contains: []string{`"state":"cancelled"`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "Cancel", int64(3), "admin")
			}},
		{name: "cancel finished", method: post, path: "runs/1/cancel", status: 409, code: api.CodeConflict, contains: []string{"succeeded"}},
		{name: "cancel unknown", method: post, path: "runs/99/cancel", status: 404, code: api.CodeNotFound},
		{name: "cancel bad id", method: post, path: "runs/x/cancel", status: 400, code: api.CodeInvalid},
		{name: "cancel failing", method: post, path: "runs/3/cancel", setup: boom("Cancel"), status: 500, code: api.CodeInternal},
		{name: "retry", method: post, path: "runs/2/retry", header: map[string]string{api.ActorHeader: "carol"}, status: 200,
			contains: []string{`"state":"running"`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "RetryFailed", int64(2), "admin")
			}},
		{name: "retry not failed", method: post, path: "runs/1/retry", status: 409, code: api.CodeConflict},
		{name: "retry bad id", method: post, path: "runs/0/retry", status: 400, code: api.CodeInvalid},
		{name: "rerun", method: post, path: "runs/1/rerun", status: 201, contains: []string{`"id":4`, `"trigger":"rerun"`},
			check: func(t *testing.T, e *env, resp *http.Response, _ []byte) {
				if loc := resp.Header.Get("Location"); loc != "/api/v1/runs/4" {
					t.Errorf("Location = %q", loc)
				}
			}},
		{name: "rerun unknown", method: post, path: "runs/99/rerun", status: 404, code: api.CodeNotFound},
		{name: "mark", method: post, path: "runs/2/tasks/load/mark", body: `{"state":"skipped"}`, header: map[string]string{api.ActorHeader: "dan"},
			status: 200, contains: []string{`"state":"skipped"`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "MarkTask", int64(2), "load", engine.TaskSkipped, "admin")
			}},
		{name: "mark bad state", method: post, path: "runs/2/tasks/load/mark", body: `{"state":"failed"}`, status: 400, code: api.CodeInvalid,
			contains: []string{`\"succeeded\" or \"skipped\"`}},
		{name: "mark without body", method: post, path: "runs/2/tasks/load/mark", status: 400, code: api.CodeInvalid, contains: []string{"missing JSON"}},
		{name: "mark unknown field", method: post, path: "runs/2/tasks/load/mark", body: `{"state":"skipped","why":"x"}`, status: 400, code: api.CodeInvalid},
		{name: "mark too large", method: post, path: "runs/2/tasks/load/mark", body: `{"state":"` + strings.Repeat("s", big) + `"}`,
			status: 413, code: api.CodeTooLarge},
		{name: "mark running task", method: post, path: "runs/3/tasks/greet/mark", body: `{"state":"succeeded"}`, status: 409, code: api.CodeConflict},
		{name: "mark unknown task", method: post, path: "runs/2/tasks/nope/mark", body: `{"state":"succeeded"}`, status: 404, code: api.CodeNotFound},
		{name: "mark bad id", method: post, path: "runs/x/tasks/load/mark", body: `{"state":"succeeded"}`, status: 400, code: api.CodeInvalid},

		// Backfills.
		{name: "create backfill", method: post, path: "backfills", header: map[string]string{api.ActorHeader: "erin"},
			body:   `{"pipeline":"nightly","from":"2026-01-01T00:00:00Z","to":"2026-01-08T00:00:00Z","parallel":2,"params":{"a":"b"}}`,
			status: 201, contains: []string{`"id":2`, `"runs":7`, `"parallel":2`},
			check: func(t *testing.T, e *env, resp *http.Response, _ []byte) {
				req := args(t, e.fake, "CreateBackfill")[0].(api.BackfillRequest)
				if req.Pipeline != "nightly" || req.Parallel != 2 || req.Params["a"] != "b" || req.To.Sub(req.From).Hours() != 7*24 {
					t.Errorf("request = %+v", req)
				}
				if loc := resp.Header.Get("Location"); loc != "/api/v1/backfills/2" {
					t.Errorf("Location = %q", loc)
				}
			}},
		{name: "backfill param not UTF-8", method: post, path: "backfills",
			body:   "{\"pipeline\":\"nightly\",\"from\":\"2026-01-01T00:00:00Z\",\"to\":\"2026-01-08T00:00:00Z\",\"params\":{\"day\":\"\xc0\"}}",
			status: 400, code: api.CodeInvalid, contains: []string{"request body: invalid UTF-8 at byte 98"}},
		{name: "backfill without pipeline", method: post, path: "backfills", body: `{"from":"2026-01-01T00:00:00Z","to":"2026-01-08T00:00:00Z"}`,
			status: 400, code: api.CodeInvalid, contains: []string{`\"pipeline\"`}},
		{name: "backfill without from", method: post, path: "backfills", body: `{"pipeline":"nightly","to":"2026-01-08T00:00:00Z"}`,
			status: 400, code: api.CodeInvalid, contains: []string{`\"from\"`}},
		{name: "backfill without to", method: post, path: "backfills", body: `{"pipeline":"nightly","from":"2026-01-08T00:00:00Z"}`,
			status: 400, code: api.CodeInvalid, contains: []string{`\"to\"`}},
		{name: "backfill backwards", method: post, path: "backfills", body: `{"pipeline":"nightly","from":"2026-01-08T00:00:00Z","to":"2026-01-01T00:00:00Z"}`,
			status: 400, code: api.CodeInvalid, contains: []string{"must be after"}},
		{name: "backfill bad time", method: post, path: "backfills", body: `{"pipeline":"nightly","from":"yesterday","to":"2026-01-01T00:00:00Z"}`,
			status: 400, code: api.CodeInvalid},
		{name: "backfill negative parallel", method: post, path: "backfills", body: `{"pipeline":"nightly","from":"2026-01-01T00:00:00Z","to":"2026-01-08T00:00:00Z","parallel":-1}`,
			status: 400, code: api.CodeInvalid, contains: []string{"parallel"}},
		{name: "backfill param not text", method: post, path: "backfills", body: `{"pipeline":"nightly","from":"2026-01-01T00:00:00Z","to":"2026-01-08T00:00:00Z","params":{"a":1}}`,
			status: 400, code: api.CodeInvalid, contains: []string{"params"}},
		{name: "backfill missing body", method: post, path: "backfills", status: 400, code: api.CodeInvalid},
		{name: "backfill unknown pipeline", method: post, path: "backfills", body: `{"pipeline":"nope","from":"2026-01-01T00:00:00Z","to":"2026-01-08T00:00:00Z"}`,
			status: 404, code: api.CodeNotFound},
		{name: "backfills", method: get, path: "backfills?pipeline=nightly&limit=10", status: 200, contains: []string{`"items":[{"id":1`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				wantArgs(t, e.fake, "Backfills", "nightly", "", 10)
			}},
		{name: "backfills empty", method: get, path: "backfills?pipeline=hello", status: 200, contains: []string{`"items":[]`}},
		{name: "backfills bad limit", method: get, path: "backfills?limit=-3", status: 400, code: api.CodeInvalid},
		{name: "backfills unknown parameter", method: get, path: "backfills?state=running", status: 400, code: api.CodeInvalid},
		{name: "backfill", method: get, path: "backfills/1", status: 200, contains: []string{`"counts":{`}},
		{name: "backfill unknown", method: get, path: "backfills/9", status: 404, code: api.CodeNotFound},
		{name: "backfill bad id", method: get, path: "backfills/x", status: 400, code: api.CodeInvalid, contains: []string{"backfill id"}},
		{name: "cancel backfill", method: post, path: "backfills/1/cancel", status: 200, contains: []string{`"state":"cancelled"`}},
		{name: "cancel backfill twice", method: post, path: "backfills/2/cancel", status: 409, code: api.CodeConflict,
			setup: func(f *apitest.Fake) { f.AddBackfill(api.Backfill{ID: 2, Pipeline: "nightly", State: "cancelled"}) }},
		{name: "cancel backfill unknown", method: post, path: "backfills/9/cancel", status: 404, code: api.CodeNotFound},
		{name: "cancel backfill bad id", method: post, path: "backfills/-2/cancel", status: 400, code: api.CodeInvalid},

		// Routing and robustness.
		{name: "unknown route", method: get, path: "nope", status: 404, code: api.CodeNotFound, contains: []string{"no such route", "openapi.json"}},
		{name: "trailing slash", method: get, path: "runs/", status: 404, code: api.CodeNotFound},
		{name: "outside the API", method: get, path: "/", status: 404, code: api.CodeNotFound},
		{name: "wrong method", method: http.MethodDelete, path: "runs/1", status: 405, code: api.CodeMethodNotAllowed,
			check: func(t *testing.T, _ *env, resp *http.Response, _ []byte) {
				if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") {
					t.Errorf("Allow = %q", allow)
				}
			}},
		{name: "get an action", method: get, path: "runs/1/cancel", status: 405, code: api.CodeMethodNotAllowed,
			check: func(t *testing.T, _ *env, resp *http.Response, _ []byte) {
				if allow := resp.Header.Get("Allow"); allow != "POST" {
					t.Errorf("Allow = %q", allow)
				}
			}},
		{name: "put a list", method: http.MethodPut, path: "backfills", status: 405, code: api.CodeMethodNotAllowed},
		{name: "panic", method: get, path: "pipelines", setup: func(f *apitest.Fake) { f.Panic("Pipelines") },
			status: 500, code: api.CodeInternal, contains: []string{`"message":"internal error"`},
			check: func(t *testing.T, e *env, _ *http.Response, _ []byte) {
				if !strings.Contains(e.logged.String(), "panicked") {
					t.Errorf("panic not logged: %s", e.logged)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if c.setup != nil {
				c.setup(e.fake)
			}
			resp := e.do(c.method, c.path, c.body, c.header)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if !json.Valid(body) {
				t.Fatalf("answer is not JSON: %s", body)
			}
			if c.code != "" {
				var eb api.ErrorBody
				mustJSON(t, body, &eb)
				if eb.Error.Code != c.code || eb.Error.Message == "" {
					t.Errorf("error %+v, want code %q and a message", eb.Error, c.code)
				}
			}
			for _, s := range c.contains {
				if !strings.Contains(string(body), s) {
					t.Errorf("answer lacks %s:\n%s", s, body)
				}
			}
			if c.check != nil {
				c.check(t, e, resp, body)
			}
		})
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// TestParamText checks the conversion of JSON parameter values to the text
// Service.Trigger takes.
func TestParamText(t *testing.T) {
	cases := []struct {
		raw, want string
		bad       string // part of the error
	}{
		{raw: `"x y"`, want: "x y"},
		{raw: `""`, want: ""},
		{raw: `"\u00e9\n"`, want: "é\n"},
		{raw: `42`, want: "42"},
		{raw: `-0.5`, want: "-0.5"},
		{raw: `1e3`, want: "1e3"},
		{raw: `12345678901234567890`, want: "12345678901234567890"},
		{raw: `true`, want: "true"},
		{raw: `false`, want: "false"},
		{raw: ` [ "a" , 1 ] `, want: `["a",1]`},
		{raw: `[]`, want: `[]`},
		{raw: `null`, bad: "null"},
		{raw: `{"a":1}`, bad: "an object"},
	}
	for _, c := range cases {
		got, err := api.ParamText("p", json.RawMessage(c.raw))
		if c.bad != "" {
			var e *api.Error
			if !errors.As(err, &e) || e.Code != api.CodeInvalidParams || !strings.Contains(e.Message, c.bad) || !strings.Contains(e.Message, `"p"`) {
				t.Errorf("%s: err %v, want an invalid_params error naming p and %q", c.raw, err, c.bad)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.raw, got, err, c.want)
		}
	}
}
