package httptask

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/cond"
)

// MaxBody bounds the response body read: the body becomes the task's
// result, which is stored with the task's row like a shell task's result
// (shell.MaxResultSize is the same), so a larger one fails the attempt
// rather than being stored cut off, which would not be valid JSON.
const MaxBody = 1 << 20

// RequestTimeout bounds one request, from sending it to the last byte of
// the answer (or what is left of the attempt's time, if less), so a server
// that accepts the connection and never answers costs a try, not the
// attempt.
const RequestTimeout = time.Minute

// methods are the methods a request may use (spec.HTTP's enum).
const methods = "GET, POST, PUT, PATCH, DELETE, HEAD"

// template is a request as the pipeline file wrote it, before its ${VAR}
// are expanded. Messages and logs name it, never the expanded request.
type template struct {
	URL     string
	Method  string
	Headers map[string]string
	Body    string
}

// check reports what is wrong with the template itself, whatever its
// variables hold: it runs when the attempt is described, so a pipeline
// with a bad request fails before anything runs.
func (tp template) check() error {
	if strings.TrimSpace(tp.URL) == "" {
		return errors.New("url: none given")
	}
	if prefix, _, _ := strings.Cut(tp.URL, "$"); prefix == tp.URL {
		if _, err := parseURL(tp.URL); err != nil {
			return fmt.Errorf("url %s: %w", tp.URL, err)
		}
	} else if scheme, _, ok := strings.Cut(prefix, "://"); ok && !isHTTPScheme(scheme) {
		return fmt.Errorf("url %s: the scheme must be http or https", tp.URL)
	}
	if tp.Method != "" && !slices.Contains(strings.Split(methods, ", "), tp.Method) {
		return fmt.Errorf("method %q: want one of %s", tp.Method, methods)
	}
	for _, name := range slices.Sorted(maps.Keys(tp.Headers)) {
		if !validHeaderName(name) {
			return fmt.Errorf("header %q: not a valid header name", name)
		}
	}
	return nil
}

// request is a request ready to send: its variables expanded and checked.
type request struct {
	method string
	url    *url.URL
	header http.Header
	host   string // a Host header, which net/http takes from Request.Host
	body   string
}

// expand replaces the ${VAR} of the template with the attempt's variables.
// Its errors name the template, never an expanded value; where the reason
// would quote part of a value holding a secret, it is left out.
func (tp template) expand(s *attempt.Spec) (*request, error) {
	if err := tp.check(); err != nil {
		return nil, err
	}
	secret := secretIn(s)
	raw, err := s.Expand(tp.URL)
	if err != nil {
		return nil, fmt.Errorf("url %s: %w", tp.URL, err)
	}
	u, err := parseURL(raw)
	if err != nil {
		if secret(raw) {
			return nil, fmt.Errorf("url %s: not a valid http or https URL once its variables are replaced", tp.URL)
		}
		return nil, fmt.Errorf("url %s: %w once its variables are replaced", tp.URL, err)
	}
	r := &request{method: tp.Method, url: u, header: http.Header{}}
	r.header.Set("User-Agent", "tasuki")
	for _, name := range slices.Sorted(maps.Keys(tp.Headers)) {
		v, err := s.Expand(tp.Headers[name])
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("header %s: its value holds a line break or a NUL once its variables are replaced", name)
		}
		if strings.EqualFold(name, "Host") {
			r.host = v
			continue
		}
		r.header.Set(name, v)
	}
	if r.body, err = s.Expand(tp.Body); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if r.method == "" {
		r.method = http.MethodGet
		if tp.Body != "" {
			r.method = http.MethodPost
		}
	}
	if tp.Body != "" && r.header.Get("Content-Type") == "" {
		ct := "text/plain; charset=utf-8"
		if json.Valid([]byte(r.body)) {
			ct = "application/json"
		}
		r.header.Set("Content-Type", ct)
	}
	return r, nil
}

// secretIn returns a test of whether a text holds one of the values the
// attempt's log masks.
func secretIn(s *attempt.Spec) func(string) bool {
	values := s.MaskValues()
	return func(text string) bool {
		for _, v := range values {
			if v != "" && strings.Contains(text, v) {
				return true
			}
		}
		return false
	}
}

// parseURL parses an absolute http or https URL. Its errors leave out the
// URL (url.Parse's quote it whole).
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a valid URL: %w", err)
	}
	if !isHTTPScheme(u.Scheme) {
		return nil, errors.New("the scheme must be http or https")
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}

func isHTTPScheme(s string) bool {
	return strings.EqualFold(s, "http") || strings.EqualFold(s, "https")
}

// validHeaderName reports whether name is an HTTP token (RFC 9110).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// clientFor returns the client to send with and what to call once the
// attempt (or the check) is over. Without a client of the caller's, each
// attempt gets its own transport, whose idle connections are closed at the
// end, so none of its goroutines outlives the attempt.
func clientFor(c *http.Client) (*http.Client, func()) {
	if c != nil {
		return c, func() {}
	}
	c = NewClient()
	return c, c.CloseIdleConnections
}

// NewClient returns a client with the package's time limits and redirect
// policy (see Task.Client). A process that runs many attempts (a worker
// running the items of a map) gives one to Task.Client, so the requests
// of successive attempts to one host reuse connections instead of opening
// one each; it closes the client's idle connections when it is done.
func NewClient() *http.Client {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.MaxResponseHeaderBytes = 1 << 20
	// Attempts run side by side (a map's concurrency): keep a connection
	// for each, not the default two per host.
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// redirectError is a redirect the default client refuses to follow. It is
// not retried: the server will answer the same.
type redirectError string

func (e redirectError) Error() string { return string(e) }

// checkRedirect follows up to 10 redirects, as net/http does, but not one
// from https to http, which would send the request (and its headers) in
// clear text without anyone having asked for it.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return redirectError("stopped after 10 redirects")
	}
	if prev := via[len(via)-1]; strings.EqualFold(prev.URL.Scheme, "https") && strings.EqualFold(req.URL.Scheme, "http") {
		return redirectError("refused a redirect from https to http")
	}
	return nil
}

// answer is a response read to its end (or to MaxBody).
type answer struct {
	status   int
	body     []byte
	tooLarge bool // the body was longer than MaxBody; body holds the start
}

// requestTimeout is the cause of ending a request that took longer than
// its own limit.
type requestTimeout time.Duration

func (e requestTimeout) Error() string {
	return "no answer within " + time.Duration(e).String()
}

// send makes one request and reads its answer; the request and the read
// stop when ctx is done or after limit.
func send(ctx context.Context, c *http.Client, r *request, limit time.Duration) (*answer, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, limit, requestTimeout(limit))
	defer cancel()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url.String(), body)
	if err != nil {
		return nil, buildError{unwrapURL(err)}
	}
	req.Header = r.header.Clone()
	if r.host != "" {
		req.Host = r.host
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, timeoutCause(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, &bodyError{status: resp.StatusCode, err: timeoutCause(ctx, err)}
	}
	a := &answer{status: resp.StatusCode, body: data}
	if len(data) > MaxBody {
		a.body, a.tooLarge = data[:MaxBody], true
	}
	return a, nil
}

// timeoutCause replaces the error of a request that ran out of its own
// time by that cause.
func timeoutCause(ctx context.Context, err error) error {
	if cause, ok := context.Cause(ctx).(requestTimeout); ok {
		return cause
	}
	return err
}

// buildError is a request net/http refuses to build. It is not retried.
type buildError struct{ err error }

func (e buildError) Error() string { return "build the request: " + e.err.Error() }
func (e buildError) Unwrap() error { return e.err }

// bodyError is an answer whose body could not be read to its end.
type bodyError struct {
	status int
	err    error
}

func (e *bodyError) Error() string {
	return fmt.Sprintf("HTTP %d, then the body could not be read: %v", e.status, e.err)
}
func (e *bodyError) Unwrap() error { return e.err }

// retriable reports whether a try that got no answer may be tried again:
// connection errors, answers cut off and requests without an answer in
// time; not a redirect that was refused or a request that could not be
// built, which would fail the same way again.
func retriable(err error) bool {
	_, refused := errors.AsType[redirectError](err)
	_, unbuilt := errors.AsType[buildError](err)
	return !refused && !unbuilt
}

// retryStatus reports whether an answer with this status may be tried
// again: the server is failing or overloaded and may answer next time.
func retryStatus(code int) bool { return code >= 500 || code == http.StatusTooManyRequests }

// hostPort matches an IP address with a port in an error's text, where the
// port is usually an ephemeral one that differs at each try.
var hostPort = regexp.MustCompile(`(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.%]+\]):\d+`)

// describeErr says in a few stable words why a request got no answer: the
// same situation gives the same text (a wait's Seen), and the text never
// holds the expanded URL, which the url.Error around it quotes.
func describeErr(err error) string {
	if e, ok := errors.AsType[redirectError](err); ok {
		return e.Error()
	}
	if e, ok := errors.AsType[buildError](err); ok {
		return e.Error()
	}
	prefix := ""
	if e, ok := errors.AsType[*bodyError](err); ok {
		prefix = fmt.Sprintf("HTTP %d, then the body could not be read: ", e.status)
	}
	if e, ok := errors.AsType[requestTimeout](err); ok {
		return prefix + e.Error()
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return prefix + "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return prefix + "connection reset by the server"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return prefix + "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return prefix + "network unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return prefix + "connection closed by the server"
	case errors.Is(err, context.DeadlineExceeded):
		return prefix + "timed out"
	case errors.Is(err, context.Canceled):
		return prefix + "interrupted"
	}
	if dns, ok := errors.AsType[*net.DNSError](err); ok {
		switch {
		case dns.IsNotFound:
			return prefix + "no such host"
		case dns.IsTimeout:
			return prefix + "DNS lookup timed out"
		}
		return prefix + "DNS lookup failed"
	}
	if ce, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return prefix + "TLS certificate not accepted: " + ce.Err.Error()
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return prefix + "TLS handshake failed: the server does not speak TLS"
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return prefix + "timed out"
	}
	if be, ok := errors.AsType[*bodyError](err); ok {
		err = be.err
	}
	err = unwrapURL(err)
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Err != nil {
		err = op.Err
	}
	return prefix + hostPort.ReplaceAllString(err.Error(), "$1")
}

// unwrapURL drops the url.Error around err, which quotes the expanded URL.
func unwrapURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// statusOK reports whether code is one of want (default: any 2xx).
func statusOK(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code <= 299
	}
	return slices.Contains(want, code)
}

// expected says which statuses count: "2xx", "200" or "200, 201".
func expected(want []int) string {
	if len(want) == 0 {
		return "2xx"
	}
	s := make([]string, len(want))
	for i, c := range want {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ", ")
}

// checkStatuses refuses a status list with a value that is no HTTP status.
func checkStatuses(want []int) error {
	for _, c := range want {
		if c < 100 || c > 599 {
			return fmt.Errorf("status %d: not an HTTP status (100 to 599)", c)
		}
	}
	return nil
}

// compile compiles a JSON condition; "" is none (nil).
func compile(src string) (*cond.Cond, error) {
	if src == "" {
		return nil, nil
	}
	return cond.Compile(src)
}

// isJSON reports whether the body is JSON. A body that parses as JSON is,
// whatever its Content-Type says: many servers label JSON text/plain, and
// a text answer that happens to parse (a bare number) is rare.
func (a *answer) isJSON() bool {
	return len(bytes.TrimSpace(a.body)) > 0 && json.Valid(a.body)
}

// holds evaluates c on the decoded body. When it does not hold it says
// why twice: in a few stable words for a wait's Seen (`body.ok == true is
// false`, `body is not JSON`) and as a task's message, which names the
// condition (`condition body.ok == true is false`).
func (a *answer) holds(c *cond.Cond) (ok bool, seen, msg string) {
	if !a.isJSON() {
		seen = "body is not JSON"
		if len(bytes.TrimSpace(a.body)) == 0 {
			seen = "body is empty, not JSON"
		}
		return false, seen, "condition " + c.String() + ": " + seen
	}
	var v any
	if err := json.Unmarshal(a.body, &v); err != nil {
		return false, "body is not JSON", "condition " + c.String() + ": body is not JSON"
	}
	ok, err := c.Eval(v)
	switch {
	case err != nil:
		return false, err.Error(), err.Error()
	case !ok:
		return false, c.String() + " is false", "condition " + c.String() + " is false"
	}
	return true, "", ""
}

// result is the task's result from the body: the JSON it holds, compacted,
// or its text as a JSON string; nothing for an empty body.
func (a *answer) result() (json.RawMessage, error) {
	if a.tooLarge {
		return nil, fmt.Errorf("the response body is larger than %d bytes (1 MiB), the limit of a task's result", MaxBody)
	}
	if len(bytes.TrimSpace(a.body)) == 0 {
		return nil, nil
	}
	if a.isJSON() {
		var buf bytes.Buffer
		if err := json.Compact(&buf, a.body); err != nil {
			return nil, fmt.Errorf("compact the JSON body: %w", err)
		}
		return buf.Bytes(), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the text as it came, not \u003c for <
	if err := enc.Encode(string(a.body)); err != nil {
		return nil, fmt.Errorf("encode the body as a JSON string: %w", err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(out) > MaxBody {
		return nil, fmt.Errorf("the response body is larger than %d bytes (1 MiB), the limit of a task's result, once written as a JSON string", MaxBody)
	}
	return out, nil
}
