package httptask

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/cond"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// DefaultRetries is how many further tries an http task makes within one
// attempt after a 5xx or 429 answer or a connection error when its file
// gives none (spec.DefaultHTTPRetries, filled in by the parser); an
// explicit 0 sends the request once.
const DefaultRetries = spec.DefaultHTTPRetries

// MaxRetries bounds spec.HTTP.Retries: more belongs to the task's retry
// policy, whose attempts are recorded and spaced further apart.
const MaxRetries = 10

// FirstBackoff is the pause before the second try of an attempt; it
// doubles before each further one.
const FirstBackoff = 500 * time.Millisecond

// Task is the kind of tasks with an http: key: one HTTP request made
// in-process, retried within the attempt on 5xx, 429 and connection
// errors. Its result is the response body.
type Task struct {
	// Client sends the requests. Nil: a client of the package's own, with
	// time limits on connecting and on the TLS handshake, that follows up
	// to 10 redirects but not from https to http; each attempt gets its
	// own transport, closed when the attempt ends.
	Client *http.Client
}

// taskBody is the Spec.Body of an http attempt: the request as the file
// wrote it and what its answer must satisfy.
type taskBody struct {
	URL     string            `json:"url"`
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	Status  []int             `json:"status,omitempty"`
	JSON    string            `json:"json,omitempty"`
	Retries int               `json:"retries,omitempty"`
}

func (b *taskBody) template() template {
	return template{URL: b.URL, Method: b.Method, Headers: b.Headers, Body: b.Body}
}

// Name implements attempt.Kind: spec.Task.Kind of a task with http:.
func (Task) Name() string { return "http" }

// Body implements attempt.Kind. It checks what can be checked before any
// variable is known (the URL's scheme, the method, header names, the
// statuses, the JSON condition), so a bad request fails Describe.
func (Task) Body(t *spec.Task) (json.RawMessage, error) {
	if t.HTTP == nil {
		return nil, fmt.Errorf("task %s has no http request", t.ID)
	}
	h := t.HTTP
	b := taskBody{URL: h.URL, Method: strings.ToUpper(h.Method), Headers: h.Headers, Body: h.Body, Retries: h.Retries}
	if h.Expect != nil {
		b.Status, b.JSON = h.Expect.Status, h.Expect.JSON
	}
	if err := b.template().check(); err != nil {
		return nil, err
	}
	if err := checkStatuses(b.Status); err != nil {
		return nil, fmt.Errorf("expect: %w", err)
	}
	if _, err := compile(b.JSON); err != nil {
		return nil, fmt.Errorf("expect: %w", err)
	}
	if b.Retries < 0 || b.Retries > MaxRetries {
		return nil, fmt.Errorf("retries %d: want 0 (one try only) to %d", b.Retries, MaxRetries)
	}
	return json.Marshal(b)
}

// Run implements attempt.Kind: it makes the request, retrying as the task
// allows, and judges the last answer. It returns once no request of the
// attempt is in flight.
func (k Task) Run(ctx context.Context, s *attempt.Spec, h *attempt.Host) attempt.Result {
	var b taskBody
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return attempt.Failedf("read the http request of the attempt: %v", err)
	}
	check, err := compile(b.JSON)
	if err != nil {
		return attempt.Failedf("expect: %v", err)
	}
	req, err := b.template().expand(s)
	if err != nil {
		return attempt.Failedf("%v", err)
	}
	stdout, stderr := outputs(h)
	client, release := clientFor(k.Client)
	defer release()

	runCtx := ctx
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, s.Timeout.D(), errAttemptTimeout)
		defer cancel()
	}
	tries := 1 + min(max(b.Retries, 0), MaxRetries)
	backoff := FirstBackoff
	last := "" // what the latest try got, for an attempt stopped after it
	for try := 1; ; try++ {
		start := time.Now()
		a, err := send(runCtx, client, req, RequestTimeout)
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			if runCtx.Err() != nil {
				return stopped(ctx, s.Timeout, last)
			}
			if !retriable(err) { // a refused redirect, a request net/http will not send
				fmt.Fprintf(stderr, "%s %s: %s after %s (try %d of %d)\n", req.method, b.URL, describeErr(err), took, try, tries)
				return attempt.Failedf("%s", describeErr(err))
			}
			last = "no answer: " + describeErr(err)
			fmt.Fprintf(stderr, "%s %s: %s after %s (try %d of %d)\n", req.method, b.URL, last, took, try, tries)
			if try == tries {
				return attempt.Failedf("no answer after %d tries: %s", tries, describeErr(err))
			}
		} else {
			fmt.Fprintf(stdout, "%s %s: HTTP %d in %s (try %d of %d)\n", req.method, b.URL, a.status, took, try, tries)
			// An answer that arrived is judged even if the attempt is being
			// stopped meanwhile: it is what the attempt did.
			if statusOK(a.status, b.Status) || !retryStatus(a.status) {
				return judge(a, &b, check)
			}
			last = fmt.Sprintf("HTTP %d (expected %s)", a.status, expected(b.Status))
			if try == tries {
				return attempt.Failedf("%s after %d tries", last, tries)
			}
		}
		fmt.Fprintf(stdout, "retrying in %s\n", backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-runCtx.Done():
			timer.Stop()
			return stopped(ctx, s.Timeout, last)
		case <-timer.C:
		}
		backoff *= 2
	}
}

// judge turns the attempt's final answer into its result.
func judge(a *answer, b *taskBody, check *cond.Cond) attempt.Result {
	if !statusOK(a.status, b.Status) {
		return attempt.Failedf("HTTP %d (expected %s)", a.status, expected(b.Status))
	}
	if a.tooLarge {
		return attempt.Failedf("HTTP %d, but the response body is larger than %d bytes (1 MiB), the limit of a task's result; fetch bulk data in a shell task and publish its location", a.status, MaxBody)
	}
	if check != nil {
		if ok, _, msg := a.holds(check); !ok {
			return attempt.Failedf("%s (HTTP %d)", msg, a.status)
		}
	}
	res, err := a.result()
	if err != nil {
		return attempt.Failedf("HTTP %d, but %v", a.status, err)
	}
	return attempt.Result{Outcome: attempt.Succeeded, Message: fmt.Sprintf("HTTP %d", a.status), Result: res}
}

// errAttemptTimeout is the cause of ending an attempt that ran out of its
// time (Spec.Timeout).
var errAttemptTimeout = errors.New("the attempt timed out")

// stopped is the result of an attempt stopped before its answer was
// judged: by its executor (ctx, the attempt's own context, says why) or by
// its timeout. last is what the latest try got, if any.
func stopped(ctx context.Context, timeout attempt.Duration, last string) attempt.Result {
	tail := "request abandoned"
	if last != "" {
		tail = "last try: " + last
	}
	if ctx.Err() == nil {
		return attempt.Result{Outcome: attempt.TimedOut, Message: fmt.Sprintf("timed out after %s; %s", timeout, tail)}
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, attempt.ErrLost):
		return attempt.Result{Outcome: attempt.Preempted, Message: "lease lost; " + tail}
	case errors.Is(cause, attempt.ErrPreempted):
		return attempt.Result{Outcome: attempt.Preempted, Message: "handed back: " + cause.Error() + "; " + tail}
	}
	return attempt.Result{Outcome: attempt.Cancelled, Message: "cancelled; " + tail}
}

// outputs are where the attempt's log goes.
func outputs(h *attempt.Host) (stdout, stderr io.Writer) {
	stdout, stderr = io.Discard, io.Discard
	if h != nil && h.Stdout != nil {
		stdout = h.Stdout
	}
	if h != nil && h.Stderr != nil {
		stderr = h.Stderr
	}
	return stdout, stderr
}
