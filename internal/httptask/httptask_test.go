package httptask_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/httptask"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// registry is the registry every test describes its attempts with.
func registry(t *testing.T) *attempt.Registry {
	t.Helper()
	reg, err := attempt.NewRegistry(httptask.Task{}, httptask.Wait{})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// describe builds the attempt of task with the given variables.
func describe(t *testing.T, task *spec.Task, env, secrets map[string]string) *attempt.Spec {
	t.Helper()
	s, err := registry(t).Describe(task, env, nil)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	s.Secrets = secrets
	return &s
}

// serve starts a loopback server for the test.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// blocking starts a server whose handler reports each request on arrived
// and answers only once the test ends (or the client goes away), so a test
// can stop an attempt while its request is in flight without sleeping.
func blocking(t *testing.T) (url string, arrived <-chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	got := make(chan struct{}, 16)
	url = serve(t, func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before the server's Close
	return url, got
}

// closedURL is the URL of a server that is gone: connections are refused.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// host is an attempt's host whose output the test reads.
type host struct {
	attempt.Host
	stdout, stderr bytes.Buffer
}

func newHost() *host {
	h := &host{}
	h.Stdout, h.Stderr = &h.stdout, &h.stderr
	return h
}

func httpTask(h *spec.HTTP) *spec.Task { return &spec.Task{ID: "call", HTTP: h} }

func waitTask(w *spec.Wait) *spec.Task { return &spec.Task{ID: "ready", Wait: w} }

// sequence answers each request with the next of answers, the last one
// again once they run out, and counts the requests.
func sequence(count *atomic.Int32, answers ...func(http.ResponseWriter)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := int(count.Add(1))
		answers[min(n, len(answers))-1](w)
	}
}

func status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

func jsonAnswer(code int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

// TestTaskRetriesUntilReady: two 503 answers are retried within the
// attempt, and the third answer's JSON body is the result.
func TestTaskRetriesUntilReady(t *testing.T) {
	t.Parallel()
	var count atomic.Int32
	url := serve(t, sequence(&count, status(503), status(503), jsonAnswer(200, `{ "status": "ready" }`)))
	reg := registry(t)
	s := describe(t, httpTask(&spec.HTTP{URL: url + "/health", Retries: spec.DefaultHTTPRetries}), nil, nil)
	h := newHost()
	res := reg.Run(context.Background(), s, &h.Host)
	if res.Outcome != attempt.Succeeded || string(res.Result) != `{"status":"ready"}` {
		t.Fatalf("Run = %+v (result %s); want succeeded with the body", res, res.Result)
	}
	if n := count.Load(); n != 3 {
		t.Errorf("the server saw %d requests, want 3", n)
	}
	log := h.stdout.String()
	for _, want := range []string{"GET " + url + "/health: HTTP 503", "(try 1 of 3)", "retrying in 500ms", "retrying in 1s", "HTTP 200", "(try 3 of 3)"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestTaskOnce: retries 0 sends the request once, whatever it answers
// (a POST that must not be repeated).
func TestTaskOnce(t *testing.T) {
	t.Parallel()
	var count atomic.Int32
	url := serve(t, sequence(&count, status(503)))
	s := describe(t, httpTask(&spec.HTTP{URL: url, Method: "POST", Body: "{}", Retries: 0}), nil, nil)
	res := httptask.Task{}.Run(context.Background(), s, &newHost().Host)
	if res.Outcome != attempt.Failed || count.Load() != 1 {
		t.Errorf("Run = %+v after %d requests; want failed after exactly 1", res, count.Load())
	}
}

// TestTaskGivesUp: an answer that stays 503 fails the attempt after the
// default tries, and says so.
func TestTaskGivesUp(t *testing.T) {
	t.Parallel()
	var count atomic.Int32
	url := serve(t, sequence(&count, status(503)))
	s := describe(t, httpTask(&spec.HTTP{URL: url, Retries: spec.DefaultHTTPRetries}), nil, nil)
	res := httptask.Task{}.Run(context.Background(), s, &newHost().Host)
	if res.Outcome != attempt.Failed || res.Message != "HTTP 503 (expected 2xx) after 3 tries" {
		t.Errorf("Run = %+v", res)
	}
	if n := count.Load(); n != 3 {
		t.Errorf("the server saw %d requests, want 3", n)
	}
}

// TestTaskConnectionRefused: a server that is not there is retried, then
// fails the attempt in plain words.
func TestTaskConnectionRefused(t *testing.T) {
	t.Parallel()
	s := describe(t, httpTask(&spec.HTTP{URL: closedURL(t), Retries: 1}), nil, nil)
	h := newHost()
	res := httptask.Task{}.Run(context.Background(), s, &h.Host)
	if res.Outcome != attempt.Failed || res.Message != "no answer after 2 tries: connection refused" {
		t.Errorf("Run = %+v", res)
	}
	if !strings.Contains(h.stderr.String(), "no answer: connection refused") {
		t.Errorf("stderr = %q", h.stderr.String())
	}
}

// TestTaskJudgesAnswer covers what counts as success and what becomes the
// result.
func TestTaskJudgesAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		answer  func(http.ResponseWriter)
		http    spec.HTTP
		outcome attempt.Outcome
		message string // exact, or a prefix ending in "..."
		result  string
		tries   int32
	}{
		{name: "404 is not retried", answer: status(404),
			outcome: attempt.Failed, message: "HTTP 404 (expected 2xx)", tries: 1},
		{name: "status outside expect", answer: jsonAnswer(200, `{}`), http: spec.HTTP{Expect: &spec.Expect{Status: []int{201, 202}}},
			outcome: attempt.Failed, message: "HTTP 200 (expected 201, 202)", tries: 1},
		{name: "status in expect", answer: jsonAnswer(201, `{"id":7}`), http: spec.HTTP{Expect: &spec.Expect{Status: []int{201}}},
			outcome: attempt.Succeeded, message: "HTTP 201", result: `{"id":7}`, tries: 1},
		{name: "expected 503 is not retried", answer: jsonAnswer(503, `"down"`), http: spec.HTTP{Expect: &spec.Expect{Status: []int{503}}},
			outcome: attempt.Succeeded, result: `"down"`, tries: 1},
		{name: "condition false", answer: jsonAnswer(200, `{"ok":false}`), http: spec.HTTP{Expect: &spec.Expect{JSON: "body.ok == true"}},
			outcome: attempt.Failed, message: "condition body.ok == true is false (HTTP 200)", tries: 1},
		{name: "condition true", answer: jsonAnswer(200, `{"ok":true}`), http: spec.HTTP{Expect: &spec.Expect{JSON: "body.ok == true"}},
			outcome: attempt.Succeeded, result: `{"ok":true}`, tries: 1},
		{name: "condition on a text body", answer: func(w http.ResponseWriter) { io.WriteString(w, "<html>ok</html>") }, http: spec.HTTP{Expect: &spec.Expect{JSON: "body.ok == true"}},
			outcome: attempt.Failed, message: "condition body.ok == true: body is not JSON (HTTP 200)", tries: 1},
		{name: "text body is a JSON string", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<b>done</b>\n")
		}, outcome: attempt.Succeeded, result: `"<b>done</b>\n"`, tries: 1},
		{name: "JSON labelled text/plain is JSON", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, `[1, 2]`)
		}, outcome: attempt.Succeeded, result: `[1,2]`, tries: 1},
		{name: "no content", answer: status(204), outcome: attempt.Succeeded, message: "HTTP 204", tries: 1},
		{name: "body over the bound", answer: func(w http.ResponseWriter) {
			io.WriteString(w, `"`+strings.Repeat("x", httptask.MaxBody)+`"`)
		}, outcome: attempt.Failed, message: "HTTP 200, but the response body is larger than 1048576 bytes (1 MiB)...", tries: 1},
		{name: "text over the bound once quoted", answer: func(w http.ResponseWriter) {
			io.WriteString(w, strings.Repeat(`"`, httptask.MaxBody-10))
		}, outcome: attempt.Failed, message: "HTTP 200, but the response body is larger than 1048576 bytes (1 MiB), the limit of a task's result, once written as a JSON string", tries: 1},
		{name: "body at the bound", answer: func(w http.ResponseWriter) {
			io.WriteString(w, `"`+strings.Repeat("x", httptask.MaxBody-2)+`"`)
		}, outcome: attempt.Succeeded, tries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var count atomic.Int32
			h := tt.http
			h.URL = serve(t, sequence(&count, tt.answer))
			s := describe(t, httpTask(&h), nil, nil)
			res := httptask.Task{}.Run(context.Background(), s, &newHost().Host)
			if res.Outcome != tt.outcome {
				t.Errorf("outcome = %s (%s), want %s", res.Outcome, res.Message, tt.outcome)
			}
			if prefix, ok := strings.CutSuffix(tt.message, "..."); ok {
				if !strings.HasPrefix(res.Message, prefix) {
					t.Errorf("message = %q, want it to start with %q", res.Message, prefix)
				}
			} else if tt.message != "" && res.Message != tt.message {
				t.Errorf("message = %q, want %q", res.Message, tt.message)
			}
			if tt.result != "" && string(res.Result) != tt.result {
				t.Errorf("result = %s, want %s", res.Result, tt.result)
			}
			if res.Outcome == attempt.Succeeded && len(res.Result) > 0 && !json.Valid(res.Result) {
				t.Errorf("result is not valid JSON: %.60s", res.Result)
			}
			if res.Outcome == attempt.Failed && res.Result != nil {
				t.Errorf("a failed attempt published %.60s", res.Result)
			}
			if n := count.Load(); n != tt.tries {
				t.Errorf("the server saw %d requests, want %d", n, tt.tries)
			}
		})
	}
}

// TestTaskTimeout: an attempt whose server never answers ends timed out
// when its time is up.
func TestTaskTimeout(t *testing.T) {
	t.Parallel()
	url, _ := blocking(t)
	s := describe(t, &spec.Task{ID: "slow", HTTP: &spec.HTTP{URL: url}, Timeout: spec.Duration(100 * time.Millisecond)}, nil, nil)
	res := httptask.Task{}.Run(context.Background(), s, &newHost().Host)
	if res.Outcome != attempt.TimedOut || res.Message != "timed out after 100ms; request abandoned" {
		t.Errorf("Run = %+v", res)
	}
}

// TestTaskStopped: an attempt stopped while its request is in flight ends
// as its cause says.
func TestTaskStopped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cause   error
		outcome attempt.Outcome
		message string
	}{
		{attempt.ErrCancelled, attempt.Cancelled, "cancelled; request abandoned"},
		{attempt.ErrPreempted, attempt.Preempted, "handed back: the executor is shutting down; request abandoned"},
		{attempt.ErrLost, attempt.Preempted, "lease lost; request abandoned"},
	}
	for _, tt := range tests {
		t.Run(string(tt.outcome)+" "+tt.cause.Error(), func(t *testing.T) {
			t.Parallel()
			url, arrived := blocking(t)
			s := describe(t, httpTask(&spec.HTTP{URL: url}), nil, nil)
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			done := make(chan attempt.Result, 1)
			go func() { done <- httptask.Task{}.Run(ctx, s, &newHost().Host) }()
			<-arrived
			cancel(tt.cause)
			res := <-done
			if res.Outcome != tt.outcome || res.Message != tt.message {
				t.Errorf("Run = %+v, want %s: %s", res, tt.outcome, tt.message)
			}
		})
	}
}

// stopAfter is a transport that reads each answer to its end and then
// stops the attempt, so the answer is complete before the stop.
type stopAfter struct {
	next http.RoundTripper
	stop func()
}

func (s stopAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	s.stop()
	return resp, nil
}

// TestTaskAnswerBeforeStop: an answer that arrived before the attempt was
// stopped is reported as what it was.
func TestTaskAnswerBeforeStop(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"done":true}`) })
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: stopAfter{next: tr, stop: func() { cancel(attempt.ErrPreempted) }}}
	s := describe(t, httpTask(&spec.HTTP{URL: url, Method: "POST"}), nil, nil)
	res := httptask.Task{Client: client}.Run(ctx, s, &newHost().Host)
	if res.Outcome != attempt.Succeeded || string(res.Result) != `{"done":true}` {
		t.Errorf("Run = %+v (result %s), want succeeded", res, res.Result)
	}
	if ctx.Err() == nil {
		t.Error("the transport did not stop the attempt")
	}
}

// TestSecretsStayOut: a secret reaches the server in a header and the URL,
// and appears in no log line and no message of the kind itself (without
// the registry's masking).
func TestSecretsStayOut(t *testing.T) {
	t.Parallel()
	const token = "tok-3f9a1c77e2"
	secrets := map[string]string{"API_TOKEN": token}
	var auth, key atomic.Value
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		key.Store(r.URL.Query().Get("key"))
		w.WriteHeader(http.StatusNotFound)
	})
	headers := map[string]string{"Authorization": "Bearer ${API_TOKEN}"}
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"answered", url + "/items?key=${API_TOKEN}", "HTTP 404 (expected 2xx)"},
		{"invalid once expanded", "http://127.0.0.1:${API_TOKEN}/", "url http://127.0.0.1:${API_TOKEN}/: not a valid http or https URL once its variables are replaced"},
		{"refused", closedURL(t) + "/?key=${API_TOKEN}", "no answer after 2 tries: connection refused"},
	}
	for _, tt := range tests { // in sequence: the checks below follow them
		t.Run(tt.name, func(t *testing.T) {
			s := describe(t, httpTask(&spec.HTTP{URL: tt.url, Headers: headers, Retries: 1}), nil, secrets)
			h := newHost()
			res := httptask.Task{}.Run(context.Background(), s, &h.Host)
			if res.Message != tt.want {
				t.Errorf("message = %q, want %q", res.Message, tt.want)
			}
			for what, text := range map[string]string{"message": res.Message, "stdout": h.stdout.String(), "stderr": h.stderr.String()} {
				if strings.Contains(text, token) {
					t.Errorf("the %s holds the secret: %q", what, text)
				}
			}
			if tt.name == "answered" && !strings.Contains(h.stdout.String(), "/items?key=${API_TOKEN}: HTTP 404") {
				t.Errorf("the log does not name the URL as written: %q", h.stdout.String())
			}
			w := describe(t, waitTask(&spec.Wait{HTTP: tt.url, Headers: headers}), nil, secrets)
			obs := httptask.Wait{}.Check(context.Background(), w, &newHost().Host, nil)
			if strings.Contains(obs.Seen+obs.Fail, token) {
				t.Errorf("the check's observation holds the secret: %+v", obs)
			}
		})
	}
	if got := auth.Load(); got != "Bearer "+token {
		t.Errorf("Authorization = %v, want the expanded secret", got)
	}
	if got := key.Load(); got != token {
		t.Errorf("key = %v, want the expanded secret", got)
	}
}

// TestUnknownVariable: a variable the task does not have fails the attempt
// (and the wait, for good) with a message naming it.
func TestUnknownVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		http spec.HTTP
		want string
	}{
		{"url", spec.HTTP{URL: "http://127.0.0.1/${NOPE}"}, "url http://127.0.0.1/${NOPE}: ${NOPE}: the task has no variable NOPE"},
		{"header", spec.HTTP{URL: "http://127.0.0.1/", Headers: map[string]string{"X-Key": "${NOPE}"}}, "header X-Key: ${NOPE}: the task has no variable NOPE"},
		{"body", spec.HTTP{URL: "http://127.0.0.1/", Body: `{"k":"${NOPE}"}`}, "body: ${NOPE}: the task has no variable NOPE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := describe(t, httpTask(&tt.http), map[string]string{"OTHER": "x"}, nil)
			res := httptask.Task{}.Run(context.Background(), s, &newHost().Host)
			if res.Outcome != attempt.Failed || !strings.HasPrefix(res.Message, tt.want) {
				t.Errorf("Run = %+v, want failed: %s...", res, tt.want)
			}
		})
	}
	w := describe(t, waitTask(&spec.Wait{HTTP: "http://127.0.0.1/${NOPE}"}), nil, nil)
	obs := httptask.Wait{}.Check(context.Background(), w, &newHost().Host, nil)
	if !strings.Contains(obs.Fail, "${NOPE}: the task has no variable NOPE") || obs.Met {
		t.Errorf("Check = %+v, want it failed naming NOPE", obs)
	}
}

// TestMethodAndBody: a body makes the default method POST, with its
// variables expanded and a JSON content type; without one it is GET.
func TestMethodAndBody(t *testing.T) {
	t.Parallel()
	type seen struct{ method, contentType, body string }
	got := make(chan seen, 1)
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Get("Content-Type"), string(b)}
	})
	tests := []struct {
		http spec.HTTP
		want seen
	}{
		{spec.HTTP{Body: `{"day":"${DAY}"}`}, seen{"POST", "application/json", `{"day":"2024-05-01"}`}},
		{spec.HTTP{Body: "day=${DAY}", Headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, seen{"POST", "application/x-www-form-urlencoded", "day=2024-05-01"}},
		{spec.HTTP{Body: "plain ${DAY}", Method: "put"}, seen{"PUT", "text/plain; charset=utf-8", "plain 2024-05-01"}},
		{spec.HTTP{}, seen{"GET", "", ""}},
		{spec.HTTP{Method: "DELETE"}, seen{"DELETE", "", ""}},
	}
	for _, tt := range tests {
		h := tt.http
		h.URL = url
		s := describe(t, httpTask(&h), map[string]string{"DAY": "2024-05-01"}, nil)
		res := httptask.Task{}.Run(context.Background(), s, &newHost().Host)
		if res.Outcome != attempt.Succeeded {
			t.Errorf("%+v: Run = %+v", tt.http, res)
			continue
		}
		if g := <-got; g != tt.want {
			t.Errorf("%+v: the server saw %+v, want %+v", tt.http, g, tt.want)
		}
	}
}

// TestDescribeRejects: what no variable can fix fails when the attempt is
// described.
func TestDescribeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		task *spec.Task
		want string
	}{
		{"bad condition", httpTask(&spec.HTTP{URL: "http://x/", Expect: &spec.Expect{JSON: "body.ok =="}}), "expect: condition"},
		{"condition not boolean", httpTask(&spec.HTTP{URL: "http://x/", Expect: &spec.Expect{JSON: "1 + 1"}}), "expect: condition"},
		{"ftp", httpTask(&spec.HTTP{URL: "ftp://x/file"}), "the scheme must be http or https"},
		{"ftp with a variable", httpTask(&spec.HTTP{URL: "ftp://${HOST}/file"}), "the scheme must be http or https"},
		{"no host", httpTask(&spec.HTTP{URL: "http:///path"}), "no host"},
		{"no url", httpTask(&spec.HTTP{}), "url: none given"},
		{"method", httpTask(&spec.HTTP{URL: "http://x/", Method: "BREW"}), `method "BREW"`},
		{"header name", httpTask(&spec.HTTP{URL: "http://x/", Headers: map[string]string{"Bad Name": "v"}}), `header "Bad Name"`},
		{"status", httpTask(&spec.HTTP{URL: "http://x/", Expect: &spec.Expect{Status: []int{42}}}), "status 42"},
		{"retries", httpTask(&spec.HTTP{URL: "http://x/", Retries: 11}), "retries 11"},
		{"wait condition", waitTask(&spec.Wait{HTTP: "http://x/", JSON: "body.status =="}), "json: condition"},
		{"wait scheme", waitTask(&spec.Wait{HTTP: "file:///etc/passwd"}), "the scheme must be http or https"},
		{"wait status", waitTask(&spec.Wait{HTTP: "http://x/", Status: []int{1000}}), "status 1000"},
	}
	reg := registry(t)
	for _, tt := range tests {
		_, err := reg.Describe(tt.task, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Describe error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// TestWaitSeesEachAnswer: successive checks through the registry see what
// each answer was, then the condition met, with the body as the result.
func TestWaitSeesEachAnswer(t *testing.T) {
	t.Parallel()
	var count atomic.Int32
	url := serve(t, sequence(&count,
		status(503), status(503),
		jsonAnswer(200, `{"status":"pending"}`),
		func(w http.ResponseWriter) { io.WriteString(w, "starting") },
		jsonAnswer(200, `{"status": "ready", "rows": 12}`)))
	reg := registry(t)
	s := describe(t, waitTask(&spec.Wait{HTTP: url + "/status", JSON: `body.status == "ready"`}), nil, nil)
	want := []string{"HTTP 503", "HTTP 503", `HTTP 200; body.status == "ready" is false`, "HTTP 200; body is not JSON", "HTTP 200"}
	for i, seen := range want {
		obs := reg.Check(context.Background(), s, &newHost().Host, nil)
		if obs.Seen != seen || obs.Fail != "" || obs.Met != (i == len(want)-1) {
			t.Fatalf("check %d = %+v, want seen %q", i+1, obs, seen)
		}
		if obs.Met && string(obs.Result) != `{"status":"ready","rows":12}` {
			t.Errorf("result = %s", obs.Result)
		}
		if !obs.Met && obs.Result != nil {
			t.Errorf("check %d: a result without the condition met: %s", i+1, obs.Result)
		}
	}
}

// TestWaitObservations covers the other things a check can see.
func TestWaitObservations(t *testing.T) {
	t.Parallel()
	text := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") })
	notFound := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", 404) })
	large := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, httptask.MaxBody+1)) })
	refused := closedURL(t)
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	plainSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	plainSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	plainSrv.Start()
	t.Cleanup(plainSrv.Close)
	tests := []struct {
		name   string
		wait   spec.Wait
		env    map[string]string
		met    bool
		seen   string
		fail   string
		result string
	}{
		{name: "text body", wait: spec.Wait{HTTP: text}, met: true, seen: "HTTP 200", result: `"up"`},
		{name: "status in the list", wait: spec.Wait{HTTP: notFound, Status: []int{404}}, met: true, seen: "HTTP 404", result: `"gone\n"`},
		{name: "status not in the list", wait: spec.Wait{HTTP: notFound}, seen: "HTTP 404"},
		{name: "body over the bound", wait: spec.Wait{HTTP: large}, seen: "HTTP 200; body is larger than 1048576 bytes (1 MiB)"},
		{name: "refused", wait: spec.Wait{HTTP: refused}, seen: "no answer: connection refused"},
		{name: "untrusted certificate", wait: spec.Wait{HTTP: tlsSrv.URL}, seen: "no answer: TLS certificate not accepted: x509: certificate signed by unknown authority"},
		{name: "https to a plain server", wait: spec.Wait{HTTP: strings.Replace(plainSrv.URL, "http:", "https:", 1)}, seen: "no answer: http: server gave HTTP response to HTTPS client"},
		{name: "URL from a variable", wait: spec.Wait{HTTP: "${BASE}/x"}, env: map[string]string{"BASE": text}, met: true, seen: "HTTP 200", result: `"up"`},
		{name: "scheme from a variable", wait: spec.Wait{HTTP: "${BASE}/x"}, env: map[string]string{"BASE": "ftp://host"},
			fail: "url ${BASE}/x: the scheme must be http or https once its variables are replaced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := describe(t, waitTask(&tt.wait), tt.env, nil)
			for range 2 { // the same situation is seen the same way each time
				obs := httptask.Wait{}.Check(context.Background(), s, &newHost().Host, nil)
				if obs.Met != tt.met || obs.Seen != tt.seen || obs.Fail != tt.fail || string(obs.Result) != tt.result {
					t.Fatalf("Check = %+v (result %s), want met %v seen %q fail %q result %s", obs, obs.Result, tt.met, tt.seen, tt.fail, tt.result)
				}
			}
		})
	}
}

// TestWaitDeadline: a check whose server does not answer returns when its
// poke's deadline passes.
func TestWaitDeadline(t *testing.T) {
	t.Parallel()
	url, _ := blocking(t)
	s := describe(t, waitTask(&spec.Wait{HTTP: url}), nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	obs := httptask.Wait{}.Check(ctx, s, &newHost().Host, nil)
	if obs.Met || obs.Fail != "" || obs.Seen != "no answer within the check's time" {
		t.Errorf("Check = %+v", obs)
	}
}

// TestRegistryMasksEcho: a server that echoes the secret gets it masked in
// the result by Registry.Run and Registry.Check.
func TestRegistryMasksEcho(t *testing.T) {
	t.Parallel()
	const token = "tok-echo-8d2b"
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"you_sent": r.Header.Get("X-Token")})
	})
	secrets := map[string]string{"API_TOKEN": token}
	headers := map[string]string{"X-Token": "${API_TOKEN}"}
	reg := registry(t)
	res := reg.Run(context.Background(), describe(t, httpTask(&spec.HTTP{URL: url, Headers: headers}), nil, secrets), &newHost().Host)
	obs := reg.Check(context.Background(), describe(t, waitTask(&spec.Wait{HTTP: url, Headers: headers}), nil, secrets), &newHost().Host, nil)
	for _, got := range []json.RawMessage{res.Result, obs.Result} {
		if len(got) == 0 || strings.Contains(string(got), token) || !json.Valid(got) {
			t.Errorf("result = %s, want valid JSON with the secret masked", got)
		}
	}
}
