package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// Client is the Service of a remote tasuki server, over its HTTP API. The
// CLI uses it for --server; anything written against Service works with
// it. Errors the server answers come back as *Error with the server's
// status, code and message.
type Client struct {
	base  string // scheme://host[:port][/path] + Prefix, no trailing slash
	hc    *http.Client
	token string // worker token sent as a bearer token; "" for none

	// followRetries bounds consecutive failed reconnections of FollowLog;
	// followBackoff is the first wait between them (doubling up to 5s).
	followRetries int
	followBackoff time.Duration
}

var (
	_ Service = (*Client)(nil)
	_ Workers = (*Client)(nil)
)

// NewClient returns a client of the server at baseURL (for example
// http://127.0.0.1:8080; a trailing /api/v1 is accepted too). httpClient
// nil means http.DefaultClient. It should have no overall Timeout, which
// would cut log follows; cancel contexts instead.
func NewClient(baseURL string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil && !strings.Contains(baseURL, "://") {
		// "127.0.0.1:8080" fails to parse for want of a scheme: say so.
		return nil, fmt.Errorf("server URL %q: expected http://HOST:PORT or https://HOST", baseURL)
	}
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: expected http://HOST:PORT or https://HOST", baseURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("server URL %q: port %s is not a port number (1-65535)", baseURL, p)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: expected no query or fragment", baseURL)
	}
	path := strings.TrimSuffix(strings.TrimRight(u.Path, "/"), Prefix)
	u.Path, u.RawPath = strings.TrimRight(path, "/")+Prefix, ""
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{base: u.String(), hc: httpClient, followRetries: 10, followBackoff: 250 * time.Millisecond}, nil
}

// BaseURL is the API root the client talks to (ending in /api/v1).
func (c *Client) BaseURL() string { return c.base }

// WithToken returns a copy of the client that sends token as
// `Authorization: Bearer` with every request, as the worker protocol
// requires. The token is a secret: the client never puts it in an error or
// in what String prints.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = strings.TrimSpace(token)
	return &cp
}

// String names the server the client talks to, without its token, so a
// client printed in a log line gives nothing away.
func (c *Client) String() string { return "tasuki API client of " + c.base }

// request describes one API call.
type request struct {
	method string
	path   string // under Prefix, already escaped
	query  url.Values
	actor  string
	body   any
	header http.Header
	// raw is a body sent as is (a log chunk) instead of body as JSON.
	raw []byte
}

// do sends req and decodes a 2xx JSON answer into out (unless nil).
func (c *Client) do(ctx context.Context, req request, out any) error {
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", req.method, req.path, err)
	}
	return nil
}

// send sends req and returns a 2xx answer; anything else becomes an error
// (an *Error for answers from the server).
func (c *Client) send(ctx context.Context, req request) (*http.Response, error) {
	var body io.Reader
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", req.method, req.path, err)
		}
		body = bytes.NewReader(b)
	} else if req.raw != nil {
		body = bytes.NewReader(req.raw)
	}
	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	if hr.Header.Get("Accept") == "" {
		hr.Header.Set("Accept", "application/json")
	}
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	} else if req.raw != nil {
		hr.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	if req.actor != "" {
		hr.Header.Set(ActorHeader, req.actor)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	return resp, nil
}

// responseError reads an error answer: the API's ErrorBody when it is one,
// otherwise (a proxy's page, say) a CodeBadResponse error quoting it.
func responseError(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Params: eb.Error.Params}
	}
	text := strings.TrimSpace(string(b))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	msg := fmt.Sprintf("the server answered %s", resp.Status)
	if text != "" {
		msg += ": " + text
	}
	return &Error{Status: resp.StatusCode, Code: CodeBadResponse, Message: msg}
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// Pipelines implements Service.
func (c *Client) Pipelines(ctx context.Context) (PipelineList, error) {
	var l PipelineList
	err := c.do(ctx, request{method: http.MethodGet, path: "/pipelines"}, &l)
	return l, err
}

// Pipeline implements Service.
func (c *Client) Pipeline(ctx context.Context, name string) (Pipeline, error) {
	var p Pipeline
	err := c.do(ctx, request{method: http.MethodGet, path: "/pipelines/" + seg(name)}, &p)
	return p, err
}

// SetPaused implements Service.
func (c *Client) SetPaused(ctx context.Context, name string, paused bool, actor string) (Pipeline, error) {
	action := "/unpause"
	if paused {
		action = "/pause"
	}
	var p Pipeline
	err := c.do(ctx, request{method: http.MethodPost, path: "/pipelines/" + seg(name) + action, actor: actor}, &p)
	return p, err
}

// Trigger implements Service. Values go as JSON strings; the server checks
// them against the declared types. A value that is not UTF-8 is refused
// here: JSON would carry it with U+FFFD in place of its bad bytes.
func (c *Client) Trigger(ctx context.Context, name string, params map[string]string, actor string) (Run, error) {
	req := TriggerRequest{Params: make(map[string]json.RawMessage, len(params))}
	for k, v := range params {
		if !utf8.ValidString(v) {
			return Run{}, ParamError(k, "param %q: the value is not UTF-8 text", k)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return Run{}, fmt.Errorf("trigger %s: param %q: %w", name, k, err)
		}
		req.Params[k] = b
	}
	var r Run
	err := c.do(ctx, request{method: http.MethodPost, path: "/pipelines/" + seg(name) + "/runs", actor: actor, body: req}, &r)
	return r, err
}

// Runs implements Service.
func (c *Client) Runs(ctx context.Context, f RunFilter) (Page[Run], error) {
	q := url.Values{}
	if f.Pipeline != "" {
		q.Set("pipeline", f.Pipeline)
	}
	if len(f.States) > 0 {
		states := make([]engine.RunState, len(f.States))
		copy(states, f.States)
		q.Set("state", joinStates(states))
	}
	if f.BackfillID != 0 {
		q.Set("backfill", strconv.FormatInt(f.BackfillID, 10))
	}
	if !f.CreatedFrom.IsZero() {
		q.Set("created_from", f.CreatedFrom.Format(time.RFC3339Nano))
	}
	if !f.CreatedBefore.IsZero() {
		q.Set("created_before", f.CreatedBefore.Format(time.RFC3339Nano))
	}
	setPage(q, f.Cursor, f.Limit)
	var p Page[Run]
	err := c.do(ctx, request{method: http.MethodGet, path: "/runs", query: q}, &p)
	return p, err
}

// setPage adds the cursor and limit of a list request.
func setPage(q url.Values, cursor string, limit int) {
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(min(limit, maxLimit)))
	}
}

// Run implements Service.
func (c *Client) Run(ctx context.Context, id int64) (Run, error) {
	var r Run
	err := c.do(ctx, request{method: http.MethodGet, path: runPath(id)}, &r)
	return r, err
}

func runPath(id int64) string { return "/runs/" + strconv.FormatInt(id, 10) }

func taskPath(id int64, task string) string { return runPath(id) + "/tasks/" + seg(task) }

// Task implements Service.
func (c *Client) Task(ctx context.Context, runID int64, task string) (Task, error) {
	var t Task
	err := c.do(ctx, request{method: http.MethodGet, path: taskPath(runID, task)}, &t)
	return t, err
}

// Events implements Service.
func (c *Client) Events(ctx context.Context, runID int64, after int64, limit int) (Page[Event], error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	setPage(q, "", limit)
	var p Page[Event]
	err := c.do(ctx, request{method: http.MethodGet, path: runPath(runID) + "/events", query: q}, &p)
	return p, err
}

// runAction posts an operator action on a run.
func (c *Client) runAction(ctx context.Context, runID int64, action, actor string) (Run, error) {
	var r Run
	err := c.do(ctx, request{method: http.MethodPost, path: runPath(runID) + "/" + action, actor: actor}, &r)
	return r, err
}

// Cancel implements Service.
func (c *Client) Cancel(ctx context.Context, runID int64, actor string) (Run, error) {
	return c.runAction(ctx, runID, "cancel", actor)
}

// RetryFailed implements Service.
func (c *Client) RetryFailed(ctx context.Context, runID int64, actor string) (Run, error) {
	return c.runAction(ctx, runID, "retry", actor)
}

// Rerun implements Service.
func (c *Client) Rerun(ctx context.Context, runID int64, actor string) (Run, error) {
	return c.runAction(ctx, runID, "rerun", actor)
}

// MarkTask implements Service.
func (c *Client) MarkTask(ctx context.Context, runID int64, task string, state engine.TaskState, actor string) (Run, error) {
	var r Run
	err := c.do(ctx, request{method: http.MethodPost, path: taskPath(runID, task) + "/mark", actor: actor, body: MarkRequest{State: state}}, &r)
	return r, err
}

// CreateBackfill implements Service.
func (c *Client) CreateBackfill(ctx context.Context, req BackfillRequest, actor string) (Backfill, error) {
	var b Backfill
	err := c.do(ctx, request{method: http.MethodPost, path: "/backfills", actor: actor, body: req}, &b)
	return b, err
}

// Backfills implements Service.
func (c *Client) Backfills(ctx context.Context, pipeline string, cursor string, limit int) (Page[Backfill], error) {
	q := url.Values{}
	if pipeline != "" {
		q.Set("pipeline", pipeline)
	}
	setPage(q, cursor, limit)
	var p Page[Backfill]
	err := c.do(ctx, request{method: http.MethodGet, path: "/backfills", query: q}, &p)
	return p, err
}

func backfillPath(id int64) string { return "/backfills/" + strconv.FormatInt(id, 10) }

// Backfill implements Service.
func (c *Client) Backfill(ctx context.Context, id int64) (Backfill, error) {
	var b Backfill
	err := c.do(ctx, request{method: http.MethodGet, path: backfillPath(id)}, &b)
	return b, err
}

// CancelBackfill implements Service.
func (c *Client) CancelBackfill(ctx context.Context, id int64, actor string) (Backfill, error) {
	var b Backfill
	err := c.do(ctx, request{method: http.MethodPost, path: backfillPath(id) + "/cancel", actor: actor}, &b)
	return b, err
}

// LogKey implements Service from the task's attempts: attempt 0 is the
// latest. The key is only a name; read logs with ReadLog and FollowLog.
func (c *Client) LogKey(ctx context.Context, runID int64, task string, attempt int) (logs.Key, error) {
	t, err := c.Task(ctx, runID, task)
	if err != nil {
		return logs.Key{}, err
	}
	if attempt == 0 {
		attempt = t.Attempt
	}
	if attempt <= 0 || attempt > t.Attempt {
		return logs.Key{}, NotFound("task %q of run %d has no attempt %d", task, runID, attempt)
	}
	return logs.Key{RunID: runID, TaskID: t.ID, Attempt: attempt}, nil
}

// Ready implements Service: nil when the server answers ready.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/ready"}, nil)
}

// Health checks that the server answers at all.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/health"}, nil)
}

// logQuery is the query of a log request.
func logQuery(attempt int) url.Values {
	q := url.Values{}
	if attempt > 0 {
		q.Set("attempt", strconv.Itoa(attempt))
	}
	return q
}

// ReadLog copies a task attempt's log (attempt 0: the latest) from offset
// to its current end into w, and returns the offset reached, from which a
// later call continues.
func (c *Client) ReadLog(ctx context.Context, runID int64, task string, attempt int, offset int64, w io.Writer) (int64, error) {
	q := logQuery(attempt)
	if offset > 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: taskPath(runID, task) + "/logs", query: q,
		header: http.Header{"Accept": {"text/plain"}}})
	if err != nil {
		return offset, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return offset + n, fmt.Errorf("read log of run %d task %q: %w", runID, task, err)
	}
	return offset + n, nil
}

// FollowLog copies a task attempt's log (attempt 0: the latest) into w and
// then what is appended, until the attempt ends (nil) or ctx is done (its
// error). A dropped connection is resumed where it stopped, with the SSE
// Last-Event-ID, so w gets every line once; it gives up after several
// failed reconnections in a row. A first connection that fails, and
// answers that are errors (no such run, say), end it at once. Attempt 0 is
// resolved to a number before following, so a reconnection made after a
// retry began resumes the same attempt rather than splice the next one's
// log in at the old offset.
func (c *Client) FollowLog(ctx context.Context, runID int64, task string, attempt int, w io.Writer) error {
	if attempt == 0 {
		k, err := c.LogKey(ctx, runID, task, 0)
		if err != nil {
			return err
		}
		attempt = k.Attempt
	}
	return c.followLog(ctx, runID, task, attempt, w, nil)
}

// FollowAttempt is FollowLog for one attempt (attempt > 0) that never gives
// up reconnecting while ctx lasts, however long the server is away (a
// restart, a deploy): before each reconnection it calls dropped, if not
// nil, with why the stream stopped and how many tries in a row have
// failed, so a terminal can say so. Error answers that waiting cannot fix
// (no such task) still end it.
func (c *Client) FollowAttempt(ctx context.Context, runID int64, task string, attempt int, w io.Writer, dropped func(err error, failures int)) error {
	if attempt <= 0 {
		return fmt.Errorf("follow log of run %d task %q: attempt %d: expected a positive number", runID, task, attempt)
	}
	if dropped == nil {
		dropped = func(error, int) {}
	}
	return c.followLog(ctx, runID, task, attempt, w, dropped)
}

// followLog follows one attempt's log; dropped nil means FollowLog's
// bounded reconnections, otherwise FollowAttempt's unbounded ones.
func (c *Client) followLog(ctx context.Context, runID int64, task string, attempt int, w io.Writer, dropped func(error, int)) error {
	path := taskPath(runID, task) + "/logs"
	lastID := ""
	failures := 0
	wait := c.followBackoff
	connected := false
	for {
		h := http.Header{"Accept": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
		if lastID != "" {
			h.Set("Last-Event-ID", lastID)
		}
		resp, err := c.send(ctx, request{method: http.MethodGet, path: path, query: logQuery(attempt), header: h})
		if err == nil {
			connected = true
			before := lastID
			var ended bool
			ended, err = readEvents(resp.Body, &lastID, w)
			resp.Body.Close()
			if ended {
				return nil
			}
			if errors.Is(err, errWrite) || errors.Is(err, errStream) || errors.Is(err, bufio.ErrTooLong) {
				return fmt.Errorf("follow log of run %d task %q: %w", runID, task, err)
			}
			if err == nil {
				err = io.ErrUnexpectedEOF // the stream ended without its end event
			}
			if lastID != before {
				// The stream made progress before it dropped: start the
				// count of failed reconnections afresh.
				failures, wait = 0, c.followBackoff
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("follow log of run %d task %q: %w", runID, task, ctx.Err())
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && !retryable(apiErr.Status) {
			return apiErr
		}
		failures++
		if dropped != nil {
			dropped(err, failures)
		} else {
			if !connected {
				return err // a server that never answered is not a dropped stream
			}
			if failures > c.followRetries {
				return fmt.Errorf("follow log of run %d task %q: gave up after %d reconnections: %w", runID, task, c.followRetries, err)
			}
		}
		if failures > 1 { // the first reconnection after a drop is immediate
			select {
			case <-ctx.Done():
				return fmt.Errorf("follow log of run %d task %q: %w", runID, task, ctx.Err())
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
		}
	}
}

// retryable reports whether an error status may go away by itself (a proxy
// or a restarting server).
func retryable(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

var (
	// errWrite marks a failure to write to the caller's writer, which
	// reconnecting cannot fix.
	errWrite = errors.New("write log")
	// errStream marks an error event from the server.
	errStream = errors.New("server reported an error")
)
