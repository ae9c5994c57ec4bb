package logs

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasuki-dev/tasuki/internal/shell"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(writerHelper())
	}
	goleak.VerifyTestMain(m)
}

// memSink records what a Writer appends, one entry per Write call.
type memSink struct {
	mu     sync.Mutex
	writes []string
	closed bool
	err    error // returned by Write when set
}

func (s *memSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errors.New("memSink: write after close")
	}
	if s.err != nil {
		return 0, s.err
	}
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *memSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *memSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.writes, "")
}

var fixedTime = time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.FixedZone("JST", 9*3600))

const stamp = "2026-03-03T20:06:07.89Z"

func newTestWriter(secrets ...string) (*Writer, *memSink) {
	sink := &memSink{}
	w := NewWriter(sink, secrets)
	w.now = func() time.Time { return fixedTime }
	return w, sink
}

// lines returns the log lines as "<stream> <text>", checking each stamp.
func lines(t *testing.T, log string) []string {
	t.Helper()
	if log == "" {
		return nil
	}
	if !strings.HasSuffix(log, "\n") {
		t.Fatalf("log does not end with a newline: %q", log)
	}
	var out []string
	for l := range strings.SplitSeq(strings.TrimSuffix(log, "\n"), "\n") {
		ts, rest, ok := strings.Cut(l, " ")
		if !ok {
			t.Fatalf("line without stamp: %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
			t.Fatalf("bad stamp %q in %q: %v", ts, l, err)
		}
		out = append(out, rest)
	}
	return out
}

func TestWriterFormat(t *testing.T) {
	w, sink := newTestWriter()
	io.WriteString(w.Stdout(), "hello\n\nworld\n")
	io.WriteString(w.Stderr(), "oops\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := stamp + " out hello\n" + stamp + " out \n" + stamp + " out world\n" + stamp + " err oops\n"
	if got := sink.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if !sink.closed {
		t.Error("sink not closed")
	}
	// One sink write per Write call, so readers never see half a line.
	if len(sink.writes) != 2 {
		t.Errorf("%d sink writes, want 2", len(sink.writes))
	}
}

func TestWriterPartialLines(t *testing.T) {
	w, sink := newTestWriter()
	out, errw := w.Stdout(), w.Stderr()
	io.WriteString(out, "hel")
	io.WriteString(errw, "e1")
	if got := sink.String(); got != "" {
		t.Fatalf("partial lines were written: %q", got)
	}
	io.WriteString(out, "lo\nwor")
	io.WriteString(errw, "\n")
	io.WriteString(out, "ld")
	io.WriteString(errw, "tail without newline")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"out hello", "err e1", "out world", "err tail without newline"}
	if got := lines(t, sink.String()); !equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWriterLongLines(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 3*MaxLine/16) + "tail" // 3 pieces and a bit
	tests := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"one write", []string{long + "\n"}, pieces(long)},
		{"small writes", chunk(long+"\n", 1000), pieces(long)},
		{"no newline until close", chunk(long, 4096), pieces(long)},
		{"exactly MaxLine", []string{strings.Repeat("x", MaxLine), "\n", "next\n"}, []string{strings.Repeat("x", MaxLine), "next"}},
		{"exactly 2*MaxLine", chunk(strings.Repeat("y", 2*MaxLine)+"\nnext\n", 999), []string{strings.Repeat("y", MaxLine), strings.Repeat("y", MaxLine), "next"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, sink := newTestWriter()
			for _, c := range tt.chunks {
				io.WriteString(w.Stdout(), c)
				if len(w.out.pending) >= MaxLine {
					t.Fatalf("%d bytes pending, want less than MaxLine", len(w.out.pending))
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := lines(t, sink.String())
			var want []string
			for _, p := range tt.want {
				want = append(want, "out "+p)
			}
			if !equal(got, want) {
				t.Errorf("got %d lines of lengths %v, want %d of %v", len(got), lens(got), len(want), lens(want))
			}
		})
	}
}

// pieces splits s as the Writer does a long line without secrets.
func pieces(s string) []string {
	var out []string
	for len(s) >= MaxLine {
		out = append(out, s[:MaxLine])
		s = s[MaxLine:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

func chunk(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func TestWriterConcurrentStreams(t *testing.T) {
	w, sink := newTestWriter()
	const n = 2000
	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		w    io.Writer
	}{{"out", w.Stdout()}, {"err", w.Stderr()}} {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(1, uint64(len(s.name))))
			var all strings.Builder
			for i := range n {
				fmt.Fprintf(&all, "%s line %d %s\n", s.name, i, strings.Repeat("z", i%50))
			}
			// Write it in random pieces that cut lines anywhere.
			for rest := all.String(); rest != ""; {
				k := min(len(rest), 1+rng.IntN(300))
				if _, err := io.WriteString(s.w, rest[:k]); err != nil {
					t.Error(err)
					return
				}
				rest = rest[k:]
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	for _, l := range lines(t, sink.String()) {
		stream, text, _ := strings.Cut(l, " ")
		i := next[stream]
		if want := fmt.Sprintf("%s line %d %s", stream, i, strings.Repeat("z", i%50)); text != want {
			t.Fatalf("line %q, want %q", l, stream+" "+want)
		}
		next[stream]++
	}
	if next["out"] != n || next["err"] != n {
		t.Errorf("got %v lines, want %d of each", next, n)
	}
}

func TestWriterMasking(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		chunks  []string
		want    []string
	}{
		{"simple", []string{"hunter2"}, []string{"password is hunter2!\n"}, []string{"password is ***!"}},
		{"twice and at edges", []string{"hunter2"}, []string{"hunter2 and hunter2hunter2\n"}, []string{"*** and ******"}},
		{"split across writes", []string{"hunter2"}, []string{"pw hun", "ter", "2 ok\n"}, []string{"pw *** ok"}},
		{"several secrets", []string{"alpha", "beta"}, []string{"alpha beta gamma\n"}, []string{"*** *** gamma"}},
		{"longest at a position", []string{"abc", "abcdef", "cde"}, []string{"xabcdefx xabcde\n"}, []string{"x***x x***de"}},
		{"leftmost first", []string{"cde", "abc"}, []string{"abcde\n"}, []string{"***de"}},
		{"multi-line secret", []string{"-----BEGIN KEY-----\nAAAA\r\nBBBB"}, []string{"x AAAA y\n", "BBBB\n", "-----BEGIN KEY-----\n"}, []string{"x *** y", "***", "***"}},
		{"empty secret ignored", []string{"", "s3cr3t"}, []string{"a s3cr3t b\n"}, []string{"a *** b"}},
		{"tail at close", []string{"hunter2"}, []string{"no newline hunter2"}, []string{"no newline ***"}},
		{"straddles a piece boundary", []string{"hunter2"},
			[]string{strings.Repeat("x", MaxLine-3), "hunter2", strings.Repeat("y", MaxLine), "\n"},
			[]string{strings.Repeat("x", MaxLine-3) + "***", strings.Repeat("y", MaxLine)}},
		{"cut by a write at a piece boundary", []string{"hunter2"},
			[]string{strings.Repeat("x", MaxLine-3), "hunt", "er2" + strings.Repeat("y", MaxLine+10), "\n"},
			[]string{strings.Repeat("x", MaxLine-3) + "***", strings.Repeat("y", MaxLine), strings.Repeat("y", 10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, sink := newTestWriter(tt.secrets...)
			for _, c := range tt.chunks {
				io.WriteString(w.Stderr(), c)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := lines(t, sink.String())
			var want []string
			for _, p := range tt.want {
				want = append(want, "err "+p)
			}
			if !equal(got, want) {
				t.Errorf("got %.200q\nwant %.200q", got, want)
			}
		})
	}
}

// TestWriterMaskingEncoded: a secret printed base64-encoded (alone, or
// inside longer base64 text at any offset, as in a Basic authorization
// header) or URL-encoded is masked as the value itself is, also when the
// encoded form arrives in two writes.
func TestWriterMaskingEncoded(t *testing.T) {
	const secret = "p@ss w/rd+€!"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name   string
		chunks []string
		leak   []string // what must not be in the log
	}{
		{"base64", []string{"token " + b64(secret) + "\n"}, []string{b64(secret)[:15]}},
		{"base64 url alphabet", []string{base64.RawURLEncoding.EncodeToString([]byte(secret)) + "\n"}, []string{base64.RawURLEncoding.EncodeToString([]byte(secret))[:15]}},
		{"basic auth offset 0", []string{"Authorization: Basic " + b64(secret+":x") + "\n"}, []string{b64(secret + ":x")[:15]}},
		{"basic auth offset 1", []string{"Authorization: Basic " + b64("abc:"+secret) + "\n"}, []string{b64("abc:" + secret)[7:18]}},
		{"basic auth offset 2", []string{"Authorization: Basic " + b64("a:"+secret) + "\n"}, []string{b64("a:" + secret)[4:15]}},
		{"query escaped", []string{"GET /?pw=" + url.QueryEscape(secret) + "\n"}, []string{url.QueryEscape(secret)}},
		{"path escaped", []string{"GET /" + url.PathEscape(secret) + "/x\n"}, []string{url.PathEscape(secret)}},
		{"base64 in two writes", []string{"t " + b64(secret)[:7], b64(secret)[7:] + " end\n"}, []string{b64(secret)[:15]}},
		// What other languages' encoders print (found by trying it as a
		// stranger: Python's quote and encodeURIComponent were not masked).
		{"encodeURIComponent", []string{"url=https://x/?p=" + jsEncode(secret) + "\n"}, []string{jsEncode(secret)}},
		{"python quote", []string{"p=" + pyQuote(secret, "/") + "\n"}, []string{pyQuote(secret, "/")}},
		{"python quote safe empty", []string{"p=" + pyQuote(secret, "") + "\n"}, []string{pyQuote(secret, "")}},
		{"lower-case hex", []string{"p=" + strings.ToLower(pyQuote(secret, "")) + "\n"}, []string{strings.ToLower(pyQuote(secret, ""))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, sink := newTestWriter(secret)
			for _, c := range tt.chunks {
				io.WriteString(w.Stdout(), c)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			log := sink.String()
			for _, l := range tt.leak {
				if strings.Contains(log, l) {
					t.Errorf("log holds %q:\n%s", l, log)
				}
			}
			if !strings.Contains(log, Mask) {
				t.Errorf("nothing masked:\n%s", log)
			}
		})
	}
	// Short secrets are masked as they are, not in encoded forms that
	// ordinary text is full of.
	w, sink := newTestWriter("abc")
	io.WriteString(w.Stdout(), "YWJj abc\n")
	w.Close()
	if got := lines(t, sink.String()); !equal(got, []string{"out YWJj ***"}) {
		t.Errorf("short secret: got %q", got)
	}
}

// TestWriterMaskingRandom checks that no secret survives, however output is
// cut into writes and however long its lines are.
func TestWriterMaskingRandom(t *testing.T) {
	secrets := []string{"hunter2", "tok-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "xyzzy", "zz"}
	rng := rand.New(rand.NewPCG(7, 7))
	alphabet := "abxyz-AZ \n"
	for round := range 20 {
		var b strings.Builder
		for b.Len() < 3*MaxLine {
			if rng.IntN(20) == 0 {
				b.WriteString(secrets[rng.IntN(len(secrets))])
			} else if rng.IntN(2000) == 0 {
				b.WriteString(strings.Repeat("q", MaxLine+rng.IntN(100))) // a long line
			} else {
				b.WriteByte(alphabet[rng.IntN(len(alphabet))])
			}
		}
		w, sink := newTestWriter(secrets...)
		for rest := b.String(); rest != ""; {
			k := min(len(rest), 1+rng.IntN(5000))
			io.WriteString(w.Stdout(), rest[:k])
			rest = rest[k:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for _, l := range lines(t, sink.String()) {
			for _, s := range secrets {
				if strings.Contains(l, s) {
					t.Fatalf("round %d: secret %q in %.200q", round, s, l)
				}
			}
		}
	}
}

func TestWriterSinkErrorDoesNotBlockTask(t *testing.T) {
	w, sink := newTestWriter()
	sink.err = errors.New("disk full")
	n, err := io.WriteString(w.Stdout(), "lost\n")
	if n != 5 || err != nil {
		t.Errorf("Write = %d, %v; want 5, nil so the task's output keeps flowing", n, err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close = %v, want the sink's error", err)
	}
}

func TestWriterClose(t *testing.T) {
	w, _ := newTestWriter()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := io.WriteString(w.Stdout(), "late\n"); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func lens(s []string) []int {
	var out []int
	for _, x := range s {
		out = append(out, len(x))
	}
	return out
}

func BenchmarkWriterLines(b *testing.B) {
	line := []byte(strings.Repeat("a", 99) + "\n")
	chunk := bytes.Repeat(line, 320) // what a pipe read typically returns
	for _, secrets := range [][]string{nil, {"hunter2", "tok-ABCDEFGHIJKLMNOP"}} {
		b.Run(fmt.Sprintf("secrets=%d", len(secrets)), func(b *testing.B) {
			w := NewWriter(nopCloser{io.Discard}, secrets)
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				w.Stdout().Write(chunk)
			}
			w.Close()
		})
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// TestWriterStampsNeverGoBack: a wall clock stepped back (NTP) does not
// make a later line carry an earlier time stamp than the line before it.
func TestWriterStampsNeverGoBack(t *testing.T) {
	sink := &memSink{}
	w := NewWriter(sink, nil)
	times := []time.Time{fixedTime, fixedTime.Add(-time.Hour), fixedTime.Add(time.Second), fixedTime.Add(time.Second)}
	w.now = func() time.Time { ts := times[0]; times = times[1:]; return ts }
	for _, s := range []string{"a\n", "b\n", "c\n"} {
		w.Stdout().Write([]byte(s))
	}
	w.Close()
	want := "2026-03-03T20:06:07.89Z out a\n2026-03-03T20:06:07.89Z out b\n2026-03-03T20:06:08.89Z out c\n"
	if got := sink.String(); got != want {
		t.Fatalf("log:\n%s\nwant:\n%s", got, want)
	}
}

// TestWriterStreamsAreOrdered: a Writer's Stdout and Stderr tell shell.Run
// that they are one ordered sink, so it reads both pipes in one goroutine.
func TestWriterStreamsAreOrdered(t *testing.T) {
	w := NewWriter(&memSink{}, nil)
	defer w.Close()
	out, ok1 := w.Stdout().(shell.OrderedStream)
	errw, ok2 := w.Stderr().(shell.OrderedStream)
	if !ok1 || !ok2 || out.OutputSink() != errw.OutputSink() {
		t.Fatal("Stdout and Stderr are not the two streams of one shell.OrderedStream sink")
	}
	if other := NewWriter(&memSink{}, nil); other.Stdout().(shell.OrderedStream).OutputSink() == out.OutputSink() {
		t.Fatal("two Writers share a sink identity")
	}
}

// TestWriterKeepsTaskOrder runs a task through shell.Run into a log many
// times: a line on stdout and then one on stderr are always logged in that
// order, with stamps that do not go back (the single reader of an ordered
// sink; see shell.OrderedStream).
func TestWriterKeepsTaskOrder(t *testing.T) {
	f := newFiles(t, noPoll)
	for i := range 100 {
		k := Key{RunID: 1, TaskID: "order", Attempt: i + 1}
		w, err := f.Create(t.Context(), k, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := shell.Run(t.Context(), shell.Command{Script: "echo 1-out; echo 2-err >&2", Env: []string{"PATH=/usr/bin:/bin"}, Stdout: w.Stdout(), Stderr: w.Stderr()})
		if err := w.Close(); err != nil || !res.OK() {
			t.Fatalf("run: %v; close: %v", res.Err(), err)
		}
		log := readAll(t, f, k, 0)
		if got := lines(t, log); !equal(got, []string{"out 1-out", "err 2-err"}) {
			t.Fatalf("attempt %d logged %q", i+1, got)
		}
		first, second, _ := strings.Cut(log, "\n")
		t1, _ := time.Parse(time.RFC3339Nano, strings.Fields(first)[0])
		t2, _ := time.Parse(time.RFC3339Nano, strings.Fields(second)[0])
		if t2.Before(t1) {
			t.Fatalf("attempt %d: stamps go back:\n%s", i+1, log)
		}
	}
}

// jsEncode is JavaScript's encodeURIComponent, written out here so the test
// does not share the code it checks.
func jsEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.!~*'()", rune(c)) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// pyQuote is Python's urllib.parse.quote(s, safe=safe).
func pyQuote(s, safe string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.~"+safe, rune(c)) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
