package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
)

// clientEnv is a Client talking to the real handler over a loopback server.
type clientEnv struct {
	*env
	srv    *httptest.Server
	client *api.Client
}

func newClientEnv(t *testing.T, wrap func(http.Handler) http.Handler) *clientEnv {
	t.Helper()
	e := newEnv(t)
	var h http.Handler = e.handler
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	api.SetFollowRetry(c, 3, time.Millisecond)
	return &clientEnv{env: e, srv: srv, client: c}
}

// TestClientIsTransparent calls every Service method through the client
// and directly on an identical fake: results, errors and the arguments the
// service receives must be the same. The actor is "admin" throughout: through
// the API it is the name of the credential (the env's admin token).
func TestClientIsTransparent(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		method string // the Service method the call reaches ("" to skip comparing arguments)
		call   func(ctx context.Context, s api.Service) (any, error)
	}{
		{"pipelines", "Pipelines", func(ctx context.Context, s api.Service) (any, error) { return s.Pipelines(ctx) }},
		{"pipeline", "Pipeline", func(ctx context.Context, s api.Service) (any, error) { return s.Pipeline(ctx, "hello") }},
		{"pipeline unknown", "Pipeline", func(ctx context.Context, s api.Service) (any, error) { return s.Pipeline(ctx, "no/pe") }},
		{"pause", "SetPaused", func(ctx context.Context, s api.Service) (any, error) {
			return s.SetPaused(ctx, "hello", true, "admin")
		}},
		{"unpause", "SetPaused", func(ctx context.Context, s api.Service) (any, error) {
			return s.SetPaused(ctx, "nightly", false, "admin")
		}},
		{"trigger", "Trigger", func(ctx context.Context, s api.Service) (any, error) {
			return s.Trigger(ctx, "hello", map[string]string{"who": "bob \"b\"", "n": "42", "items": `["a","b"]`, "ok": "true"}, "admin")
		}},
		{"trigger bad param", "Trigger", func(ctx context.Context, s api.Service) (any, error) {
			return s.Trigger(ctx, "hello", map[string]string{"n": "x"}, "admin")
		}},
		{"runs", "Runs", func(ctx context.Context, s api.Service) (any, error) { return s.Runs(ctx, api.RunFilter{}) }},
		{"runs filtered", "Runs", func(ctx context.Context, s api.Service) (any, error) {
			return s.Runs(ctx, api.RunFilter{Pipeline: "hello", States: []engine.RunState{engine.RunRunning, engine.RunSucceeded}, Limit: 1})
		}},
		{"runs next page", "Runs", func(ctx context.Context, s api.Service) (any, error) {
			return s.Runs(ctx, api.RunFilter{Cursor: "3", Limit: 1})
		}},
		{"runs of a backfill", "Runs", func(ctx context.Context, s api.Service) (any, error) {
			return s.Runs(ctx, api.RunFilter{BackfillID: 1})
		}},
		{"run", "Run", func(ctx context.Context, s api.Service) (any, error) { return s.Run(ctx, 1) }},
		{"run unknown", "Run", func(ctx context.Context, s api.Service) (any, error) { return s.Run(ctx, 99) }},
		{"task", "Task", func(ctx context.Context, s api.Service) (any, error) { return s.Task(ctx, 2, "load") }},
		{"events", "Events", func(ctx context.Context, s api.Service) (any, error) { return s.Events(ctx, 1, 1, 2) }},
		{"cancel", "Cancel", func(ctx context.Context, s api.Service) (any, error) { return s.Cancel(ctx, 3, "admin") }},
		{"cancel finished", "Cancel", func(ctx context.Context, s api.Service) (any, error) { return s.Cancel(ctx, 1, "admin") }},
		{"retry", "RetryFailed", func(ctx context.Context, s api.Service) (any, error) { return s.RetryFailed(ctx, 2, "admin") }},
		{"rerun", "Rerun", func(ctx context.Context, s api.Service) (any, error) { return s.Rerun(ctx, 1, "admin") }},
		{"mark", "MarkTask", func(ctx context.Context, s api.Service) (any, error) {
			return s.MarkTask(ctx, 2, "load", engine.TaskSucceeded, "admin")
		}},
		{"create backfill", "CreateBackfill", func(ctx context.Context, s api.Service) (any, error) {
			return s.CreateBackfill(ctx, api.BackfillRequest{Pipeline: "nightly", From: from, To: from.AddDate(0, 0, 3), Parallel: 2,
				Params: map[string]string{"k": "v"}}, "admin")
		}},
		{"backfills", "Backfills", func(ctx context.Context, s api.Service) (any, error) { return s.Backfills(ctx, "nightly", "", 10) }},
		{"backfill", "Backfill", func(ctx context.Context, s api.Service) (any, error) { return s.Backfill(ctx, 1) }},
		{"cancel backfill", "CancelBackfill", func(ctx context.Context, s api.Service) (any, error) { return s.CancelBackfill(ctx, 1, "admin") }},
		{"log key latest", "", func(ctx context.Context, s api.Service) (any, error) { return s.LogKey(ctx, 2, "load", 0) }},
		{"log key", "", func(ctx context.Context, s api.Service) (any, error) { return s.LogKey(ctx, 2, "load", 1) }},
		{"log key unknown attempt", "", func(ctx context.Context, s api.Service) (any, error) { return s.LogKey(ctx, 2, "load", 3) }},
		{"ready", "Ready", func(ctx context.Context, s api.Service) (any, error) { return nil, s.Ready(ctx) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			ce := newClientEnv(t, nil)
			direct := apitest.NewSeeded()
			got, gotErr := c.call(ctx, ce.client)
			want, wantErr := c.call(ctx, direct)
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("client error %v, direct error %v", gotErr, wantErr)
			}
			if wantErr != nil {
				var ge *api.Error
				if !errors.As(gotErr, &ge) {
					t.Fatalf("client error %T %v is not an *api.Error", gotErr, gotErr)
				}
				if we := api.AsError(wantErr); !reflect.DeepEqual(ge, we) {
					t.Fatalf("client error %+v, want %+v", *ge, *we)
				}
				return
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			if !bytes.Equal(gj, wj) {
				t.Fatalf("through the client:\n%s\ndirect:\n%s", gj, wj)
			}
			if c.method != "" {
				gc, _ := ce.fake.LastCall(c.method)
				wc, _ := direct.LastCall(c.method)
				if !reflect.DeepEqual(gc.Args, wc.Args) {
					t.Fatalf("service got %#v through the client, %#v directly", gc.Args, wc.Args)
				}
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("not ready", func(t *testing.T) {
		ce := newClientEnv(t, nil)
		ce.fake.SetReady(errors.New("store unreachable"))
		var e *api.Error
		if err := ce.client.Ready(ctx); !errors.As(err, &e) || e.Status != 503 || e.Code != api.CodeUnavailable || !strings.Contains(e.Message, "store unreachable") {
			t.Fatalf("Ready = %v", err)
		}
		if err := ce.client.Health(ctx); err != nil {
			t.Fatalf("Health = %v", err)
		}
	})
	t.Run("internal", func(t *testing.T) {
		ce := newClientEnv(t, nil)
		ce.fake.Fail("Run", apitest.ErrBoom)
		var e *api.Error
		if _, err := ce.client.Run(ctx, 1); !errors.As(err, &e) || e.Code != api.CodeInternal || strings.Contains(e.Message, "boom") {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("not the API", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "upstream is down", http.StatusBadGateway)
		}))
		defer srv.Close()
		c, err := api.NewClient(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		var e *api.Error
		if _, err := c.Pipelines(ctx); !errors.As(err, &e) || e.Status != 502 || e.Code != api.CodeBadResponse || !strings.Contains(e.Message, "upstream is down") {
			t.Fatalf("Pipelines = %#v", err)
		}
	})
	t.Run("no server", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c, err := api.NewClient(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		var e *api.Error
		if _, err := c.Pipelines(ctx); err == nil || errors.As(err, &e) {
			t.Fatalf("Pipelines = %v, want a network error", err)
		}
		if err := c.FollowLog(ctx, 1, "greet", 0, &bytes.Buffer{}); err == nil {
			t.Fatal("FollowLog against no server succeeded")
		}
	})
}

func TestNewClient(t *testing.T) {
	for _, c := range []struct{ in, base, bad string }{
		{in: "http://127.0.0.1:8080", base: "http://127.0.0.1:8080/api/v1"},
		{in: "http://127.0.0.1:8080/", base: "http://127.0.0.1:8080/api/v1"},
		{in: "https://tasuki.example.com/api/v1/", base: "https://tasuki.example.com/api/v1"},
		{in: " http://h/tasuki ", base: "http://h/tasuki/api/v1"},
		{in: "localhost:8080", bad: "expected http"},
		{in: "127.0.0.1:8080", bad: "expected http"},
		{in: "http://127.0.0.1:99999", bad: "not a port number"},
		{in: "http://127.0.0.1:0", bad: "not a port number"},
		{in: "ftp://h", bad: "expected http"},
		{in: "http://", bad: "expected http"},
		{in: "http://h/?x=1", bad: "no query"},
		{in: "http://h/%zz", bad: "server URL"},
	} {
		cl, err := api.NewClient(c.in, nil)
		if c.bad != "" {
			if err == nil || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("NewClient(%q) = %v, want error with %q", c.in, err, c.bad)
			}
			continue
		}
		if err != nil || cl.BaseURL() != c.base {
			t.Errorf("NewClient(%q): %v, base %q, want %q", c.in, err, cl.BaseURL(), c.base)
		}
	}
}

func TestClientReadLog(t *testing.T) {
	ctx := context.Background()
	ce := newClientEnv(t, nil)
	log := string(ce.log)
	first := int64(strings.Index(log, "\n") + 1)
	for _, c := range []struct {
		offset int64
		want   string
	}{{0, log}, {first, log[first:]}, {int64(len(log)), ""}} {
		var b bytes.Buffer
		next, err := ce.client.ReadLog(ctx, 1, "greet", 0, c.offset, &b)
		if err != nil || b.String() != c.want || next != int64(len(log)) {
			t.Errorf("ReadLog from %d: %q, next %d, %v", c.offset, b.String(), next, err)
		}
	}
	var e *api.Error
	if _, err := ce.client.ReadLog(ctx, 1, "greet", 0, 1<<20, &bytes.Buffer{}); !errors.As(err, &e) || e.Status != 416 {
		t.Errorf("ReadLog past the end: %v", err)
	}
	// An attempt that printed nothing has no log file: its log is empty.
	var empty bytes.Buffer
	if next, err := ce.client.ReadLog(ctx, 2, "load", 0, 0, &empty); err != nil || next != 0 || empty.Len() != 0 {
		t.Errorf("ReadLog of an unwritten log: %q, next %d, %v", empty.String(), next, err)
	}
}

// lineSink collects what FollowLog writes and lets a test wait for lines.
type lineSink struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newLineSink() *lineSink { return &lineSink{changed: make(chan struct{}, 1)} }

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.b.Write(p)
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *lineSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLines waits until n lines have arrived.
func (s *lineSink) waitLines(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for strings.Count(s.String(), "\n") < n {
		select {
		case <-s.changed:
		case <-timeout:
			t.Fatalf("waited for %d lines, have %q", n, s.String())
		}
	}
}

// TestClientFollowLog follows a log being written, with the connection
// dropped in the middle: the client resumes from the last event id and the
// output is the log, every line once.
func TestClientFollowLog(t *testing.T) {
	var mu sync.Mutex
	var lastEventIDs []string
	ce := newClientEnv(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/logs") {
				mu.Lock()
				lastEventIDs = append(lastEventIDs, r.Header.Get("Last-Event-ID"))
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	key := logs.Key{RunID: 3, TaskID: "greet", Attempt: 1}
	w, err := ce.logs.Create(ctx, key, []string{"s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	sink := newLineSink()
	done := make(chan error, 1)
	go func() { done <- ce.client.FollowLog(ctx, 3, "greet", 0, sink) }()

	fmt.Fprintln(w.Stdout(), "one")
	fmt.Fprintln(w.Stderr(), "two s3cret")
	sink.waitLines(t, 2)
	size, _ := ce.logs.Size(ctx, key)
	ce.srv.CloseClientConnections() // the connection drops mid-follow

	fmt.Fprintln(w.Stdout(), "three\r\nfour")
	sink.waitLines(t, 4)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("FollowLog: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("FollowLog did not return after the log ended")
	}
	// A carriage return inside a log line cannot cross SSE (the format
	// takes it for a line break), so "three\r" arrives as "three".
	want := strings.ReplaceAll(string(readAll(t, ce.logs, key)), "\r\n", "\n")
	if got := sink.String(); got != want {
		t.Fatalf("followed %q, log is %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lastEventIDs) < 2 || lastEventIDs[0] != "" || lastEventIDs[1] != fmt.Sprint(size) {
		t.Fatalf("Last-Event-IDs sent: %q, want \"\" then %d", lastEventIDs, size)
	}
}

func TestClientFollowLogStops(t *testing.T) {
	t.Run("unknown run", func(t *testing.T) {
		ce := newClientEnv(t, nil)
		var e *api.Error
		if err := ce.client.FollowLog(context.Background(), 99, "greet", 0, &bytes.Buffer{}); !errors.As(err, &e) || e.Code != api.CodeNotFound {
			t.Fatalf("FollowLog = %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ce := newClientEnv(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := ce.logs.Create(ctx, logs.Key{RunID: 3, TaskID: "greet", Attempt: 1}, nil); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- ce.client.FollowLog(ctx, 3, "greet", 0, &bytes.Buffer{}) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("FollowLog = %v, want context.Canceled", err)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		// A server that accepts the stream and drops it at once, forever.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ": hello\n\n")
		}))
		defer srv.Close()
		c, err := api.NewClient(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		api.SetFollowRetry(c, 2, time.Millisecond)
		if err := c.FollowLog(context.Background(), 1, "a", 1, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "gave up") {
			t.Fatalf("FollowLog = %v", err)
		}
	})
	t.Run("error event", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: a\nid: 2\n\nevent: error\ndata: {\"code\":\"internal\"}\n\n")
		}))
		defer srv.Close()
		c, _ := api.NewClient(srv.URL, nil)
		var b bytes.Buffer
		if err := c.FollowLog(context.Background(), 1, "a", 1, &b); err == nil || !strings.Contains(err.Error(), "internal") || b.String() != "a\n" {
			t.Fatalf("FollowLog = %v, wrote %q", err, b.String())
		}
	})
	t.Run("CR line endings", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "retry: 5\r\rdata:a\r\ndata: b\r\nid: 4\r\n\r\n: c\revent: end\rdata: 4\r\r")
		}))
		defer srv.Close()
		c, _ := api.NewClient(srv.URL, nil)
		var b bytes.Buffer
		if err := c.FollowLog(context.Background(), 1, "a", 1, &b); err != nil || b.String() != "a\nb\n" {
			t.Fatalf("FollowLog = %v, wrote %q", err, b.String())
		}
	})
}

// TestClientFollowLogPinsAttempt: following "the latest attempt" resolves
// it once; when the stream drops after a retry began, the reconnection
// resumes the same attempt instead of splicing the new attempt's log in at
// the old offset.
func TestClientFollowLogPinsAttempt(t *testing.T) {
	var mu sync.Mutex
	var asked []string // the attempt each log request named
	latest := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !strings.HasSuffix(r.URL.Path, "/logs") {
			fmt.Fprintf(w, `{"id":"a","state":"running","attempt":%d}`, latest)
			return
		}
		asked = append(asked, r.URL.Query().Get("attempt"))
		w.Header().Set("Content-Type", "text/event-stream")
		if len(asked) == 1 {
			fmt.Fprint(w, "data: one\nid: 4\n\n") // then the connection drops
			latest = 2                            // and a retry begins
			return
		}
		fmt.Fprint(w, "data: two\nid: 8\n\nevent: end\ndata: 8\n\n")
	}))
	defer srv.Close()
	c, _ := api.NewClient(srv.URL, nil)
	var b bytes.Buffer
	if err := c.FollowLog(context.Background(), 1, "a", 0, &b); err != nil || b.String() != "one\ntwo\n" {
		t.Fatalf("FollowLog = %v, wrote %q", err, b.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(asked) != "[1 1]" {
		t.Fatalf("log requests asked for attempts %q, want 1 both times", asked)
	}
}

// TestClientFollowAttemptWaitsForServer: FollowAttempt keeps trying while
// the server is unavailable, even for its first connection, and reports
// each failure.
func TestClientFollowAttemptWaitsForServer(t *testing.T) {
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n <= 3 {
			http.Error(w, `{"code":"unavailable","message":"starting"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: up\nid: 3\n\nevent: end\ndata: 3\n\n")
	}))
	defer srv.Close()
	c, _ := api.NewClient(srv.URL, nil)
	api.SetFollowRetry(c, 0, time.Millisecond) // FollowLog would give up at once
	var b bytes.Buffer
	var failures []int
	err := c.FollowAttempt(context.Background(), 1, "a", 1, &b, func(err error, n int) { failures = append(failures, n) })
	if err != nil || b.String() != "up\n" || fmt.Sprint(failures) != "[1 2 3]" {
		t.Fatalf("FollowAttempt = %v, wrote %q, failures reported %v", err, b.String(), failures)
	}
	if err := c.FollowAttempt(context.Background(), 1, "a", 0, &b, nil); err == nil {
		t.Fatal("FollowAttempt of attempt 0 succeeded")
	}
}
