package logs

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxLine is the longest piece of a line a Writer buffers. Output with no
// newline for longer than this (a progress bar, a minified JSON dump) is
// written out in pieces of this size, each a log line of its own, so a task
// cannot make tasuki hold an unbounded line in memory.
const MaxLine = 64 << 10

// Mask replaces every secret in the log.
const Mask = "***"

// ErrClosed is returned by writes to a Writer after Close.
var ErrClosed = fs.ErrClosed

// Writer turns a task's stdout and stderr into time-stamped log lines
// `<RFC3339Nano UTC> <out|err> <text>` with secrets masked, and appends them
// to a sink. It is storage-independent: a Store creates one around its own
// sink with NewWriter.
//
// Each complete line is written to the sink in one Write call, and the
// lines produced by one Write to Stdout or Stderr in one call, so a reader
// of the sink never sees half a line from a well-behaved sink.
type Writer struct {
	mu      sync.Mutex
	sink    io.WriteCloser
	masker  masker
	out     stream
	err     stream
	scratch []byte // lines being formatted for one sink write
	sinkErr error  // the first error from the sink
	closed  bool
	now     func() time.Time
	last    time.Time // the latest stamp given to a line
}

// stream is one of the task's output streams: it buffers a partial line
// until its newline arrives.
type stream struct {
	w       *Writer
	name    string // "out" or "err", as written in the log
	pending []byte
	split   bool // pieces of the current line have been logged
}

// NewWriter returns a Writer that appends formatted lines to sink and closes
// it on Close. Every secret (and, for a secret of several lines, each of its
// lines) is replaced with Mask wherever it appears within a line.
func NewWriter(sink io.WriteCloser, secrets []string) *Writer {
	w := &Writer{sink: sink, masker: newMasker(secrets), now: time.Now}
	w.out = stream{w: w, name: "out"}
	w.err = stream{w: w, name: "err"}
	return w
}

// Stdout is where the task's standard output goes. It is safe to use
// concurrently with Stderr. Stdout and Stderr are the two streams of one
// ordered sink (shell.OrderedStream), so shell.Run reads both pipes from one
// goroutine and the log keeps the order the output arrived in.
func (w *Writer) Stdout() io.Writer { return &w.out }

// Stderr is where the task's standard error goes.
func (w *Writer) Stderr() io.Writer { return &w.err }

// OutputSink says which Writer the stream belongs to (shell.OrderedStream).
func (s *stream) OutputSink() any { return s.w }

// Write buffers p and logs every line it completes. It never fails because
// of the sink: a task blocked on a full pipe because its log could not be
// written would hang, so output is dropped instead and the sink's error is
// reported by Close. It fails with ErrClosed after Close.
func (s *stream) Write(p []byte) (int, error) {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	ts := w.stamp()
	w.scratch = w.scratch[:0]
	if len(s.pending) == 0 {
		// Every line this write completes or starts lies within p.
		w.masker.scan(p)
	} else {
		// A secret may straddle the pending piece and p.
		w.masker.full()
	}
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			s.pending = append(s.pending, rest...)
			left := s.pieces(ts, s.pending, false)
			s.pending = s.pending[:copy(s.pending, left)]
			if cap(s.pending) > 4*MaxLine {
				s.pending = slices.Clone(s.pending) // do not keep a huge buffer
			}
			break
		}
		if len(s.pending) == 0 {
			// The common case: a whole line, logged without copying.
			s.pieces(ts, rest[:i], true)
		} else {
			s.pending = append(s.pending, rest[:i]...)
			s.pieces(ts, s.pending, true)
			s.pending = s.pending[:0]
		}
		rest = rest[i+1:]
	}
	w.flush()
	return len(p), nil
}

// stamp is the time stamp of lines logged now: the clock, but never
// before the previous stamp, so that time stamps never go backwards in the
// log even when the wall clock is stepped back. Called with w.mu held.
func (w *Writer) stamp() time.Time {
	ts := w.now().Round(0) // the wall clock: its steps are what to guard against
	if ts.Before(w.last) {
		return w.last
	}
	w.last = ts
	return ts
}

// pieces formats data into log lines in w.scratch: all of it if final (the
// line is complete), otherwise only whole pieces of MaxLine bytes, returning
// the rest. Long lines become several log lines of about MaxLine bytes.
func (s *stream) pieces(ts time.Time, data []byte, final bool) []byte {
	w := s.w
	// Keep enough of the tail that a secret straddling the end of a piece
	// can still be masked whole.
	for len(data) >= MaxLine+max(w.masker.maxLen-1, 0) {
		var n int
		w.scratch, n = w.lineUpTo(w.scratch, ts, s.name, data, MaxLine)
		data = data[n:]
		s.split = true
	}
	if final {
		// An empty rest is an empty line, unless it is the end of a line
		// already logged in pieces.
		if len(data) > 0 || !s.split {
			w.scratch = w.line(w.scratch, ts, s.name, data)
		}
		data, s.split = nil, false
	}
	return data
}

// line appends one complete log line for text to dst.
func (w *Writer) line(dst []byte, ts time.Time, name string, text []byte) []byte {
	dst, _ = w.lineUpTo(dst, ts, name, text, len(text))
	return dst
}

// lineUpTo appends a log line holding text up to at least cut, or further
// when a secret starting before cut ends after it, and says how much of text
// it used.
func (w *Writer) lineUpTo(dst []byte, ts time.Time, name string, text []byte, cut int) ([]byte, int) {
	dst = ts.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst, n := w.masker.mask(dst, text, cut)
	return append(dst, '\n'), n
}

// flush appends the formatted lines to the sink. Called with w.mu held.
func (w *Writer) flush() {
	if len(w.scratch) == 0 || w.sinkErr != nil {
		return
	}
	if _, err := w.sink.Write(w.scratch); err != nil {
		w.sinkErr = err
	}
	if cap(w.scratch) > 4*MaxLine {
		w.scratch = nil // do not keep a huge buffer after one big write
	}
}

// Close logs any partial lines, then closes the sink. It reports the first
// error writing to or closing the sink. Closing twice is harmless.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	ts := w.stamp()
	w.scratch = w.scratch[:0]
	w.masker.full()
	for _, s := range []*stream{&w.out, &w.err} {
		if len(s.pending) > 0 {
			s.pieces(ts, s.pending, true)
		}
	}
	w.flush()
	w.scratch, w.out.pending, w.err.pending = nil, nil, nil
	err := w.sink.Close()
	if w.sinkErr != nil {
		return fmt.Errorf("write log: %w", w.sinkErr)
	}
	if err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	return nil
}

// masker replaces secrets with Mask.
type masker struct {
	secrets [][]byte // longest first, so the longest wins at a position
	maxLen  int
	next    []int // scratch for mask: next match of each secret
	// active lists the secrets mask looks for (indexes into secrets): all
	// of them, or those a write was found to hold (see scan).
	active []int
	all    []int
	hits   []int // scratch for scan, which active may be
}

// newMasker prepares secrets for masking. Empty secrets are ignored. A
// secret of several lines can never appear within one log line, so each of
// its lines is masked on its own instead. Each value is also masked in the
// forms a task most often prints it in by accident or on purpose: base64
// (standard and URL alphabets, at any alignment within longer base64 text,
// as in an HTTP Basic authorization header) and URL-encoded (query and path
// escaping).
func newMasker(secrets []string) masker {
	var m masker
	add := func(part string) {
		if part == "" || slices.ContainsFunc(m.secrets, func(b []byte) bool { return string(b) == part }) {
			return
		}
		m.secrets = append(m.secrets, []byte(part))
		m.maxLen = max(m.maxLen, len(part))
	}
	for _, s := range secrets {
		for part := range strings.SplitSeq(s, "\n") {
			part = strings.TrimSuffix(part, "\r")
			add(part)
			for _, enc := range encodedForms(part) {
				add(enc)
			}
		}
	}
	slices.SortStableFunc(m.secrets, func(a, b []byte) int { return len(b) - len(a) })
	m.next = make([]int, len(m.secrets))
	m.all = make([]int, len(m.secrets))
	for i := range m.all {
		m.all[i] = i
	}
	m.active = m.all
	m.hits = make([]int, 0, len(m.all))
	return m
}

// minEncoded is the shortest secret whose encoded forms are masked: the
// base64 of a shorter value is a few characters that ordinary text is full
// of, and masking them would garble logs without hiding anything.
const minEncoded = 4

// encodedForms are the base64 and URL-encoded forms of a secret that differ
// from it. A value embedded in longer base64 text ("user:password" in a
// Basic authorization header) is encoded differently depending on its
// offset modulo 3, so for each of the three offsets the characters that
// depend on the value alone are masked.
func encodedForms(s string) []string {
	if len(s) < minEncoded {
		return nil
	}
	var forms []string
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := range 3 {
			full := enc.EncodeToString(append(make([]byte, k), s...))
			first := (8*k + 5) / 6         // first character holding no bit of the prefix
			last := (8 * (k + len(s))) / 6 // characters past it hold bits of what follows
			if last > first {
				forms = append(forms, full[first:last])
			}
		}
	}
	// Go's two URL escapes, then what other languages' encoders make of it:
	// RFC 3986 unreserved only (Python's quote(safe="")),
	// encodeURIComponent's marks, Python's quote() keeping "/"; and each
	// with lower-case hex, which decoders accept as well.
	pct := []string{url.QueryEscape(s), url.PathEscape(s)}
	for _, keep := range []string{"-._~", "-_.!~*'()", "-._~/"} {
		pct = append(pct, percentEncode(s, keep))
	}
	for _, f := range pct {
		forms = append(forms, f, lowerHex(f))
	}
	slices.Sort(forms)
	forms = slices.Compact(forms)
	return slices.DeleteFunc(forms, func(f string) bool { return f == s })
}

// percentEncode escapes every byte of s but ASCII letters, digits and those
// in keep as %XX (upper-case hex), a space included (%20).
func percentEncode(s, keep string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// lowerHex writes the hex digits of a percent-encoded string's escapes in
// lower case ("%2F" becomes "%2f").
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if 'A' <= b[j] && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			i += 2
		}
	}
	return string(b)
}

// scan narrows the secrets mask looks for to those p holds, so that the
// common write, holding none, is formatted without searching each of its
// lines for each secret. It must only be used when every line masked next
// lies within p.
func (m *masker) scan(p []byte) {
	m.active = m.hits[:0]
	for _, k := range m.all {
		if bytes.Contains(p, m.secrets[k]) {
			m.active = append(m.active, k)
		}
	}
}

// full makes mask look for every secret again.
func (m *masker) full() { m.active = m.all }

// Masker masks secrets in text outside a log (an attempt's message and
// result) exactly as a Writer masks its lines: each value, its lines, and
// its base64 and URL-encoded forms become Mask.
type Masker struct{ m masker }

// NewMasker returns a Masker of secrets.
func NewMasker(secrets []string) *Masker { return &Masker{m: newMasker(secrets)} }

// String returns text with every secret in it masked.
func (x *Masker) String(text string) string {
	if len(x.m.secrets) == 0 {
		return text
	}
	x.m.scan([]byte(text))
	if len(x.m.active) == 0 {
		return text
	}
	b := []byte(text)
	out, _ := x.m.mask(nil, b, len(b))
	return string(out)
}

// mask appends text to dst with secrets replaced, stopping at cut or at the
// end of a secret that starts before cut; it returns how much of text it
// consumed. Matches are found leftmost first, the longest at a position,
// like a left-to-right scan would; each secret is searched for at most once
// per position, so the cost is linear in len(text) per secret.
func (m *masker) mask(dst, text []byte, cut int) ([]byte, int) {
	if len(m.active) == 0 {
		return append(dst, text[:cut]...), cut
	}
	for _, k := range m.active {
		m.next[k] = bytes.Index(text, m.secrets[k])
	}
	i := 0
	for {
		best := -1
		for _, k := range m.active {
			s := m.secrets[k]
			if m.next[k] >= 0 && m.next[k] < i {
				// Its match overlapped one already masked: look again.
				if j := bytes.Index(text[i:], s); j >= 0 {
					m.next[k] = i + j
				} else {
					m.next[k] = -1
				}
			}
			if m.next[k] >= 0 && (best < 0 || m.next[k] < m.next[best]) {
				best = k // ties keep the earlier, longer secret
			}
		}
		if best < 0 || m.next[best] >= cut {
			break
		}
		start := m.next[best]
		dst = append(dst, text[i:start]...)
		dst = append(dst, Mask...)
		i = start + len(m.secrets[best])
	}
	if i < cut {
		dst = append(dst, text[i:cut]...)
		i = cut
	}
	return dst, i
}
