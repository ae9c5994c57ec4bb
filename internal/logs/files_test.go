package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a writer in another process for
// TestFollowWriterProcessDies: it creates the log named by the variable
// ("dir"), writes a line and waits to be killed.
const helperEnv = "TASUKI_LOGS_TEST_HELPER"

var helperKey = Key{RunID: 9, TaskID: "remote", Attempt: 1}

func writerHelper() int {
	w, err := NewFiles(os.Getenv(helperEnv)).Create(context.Background(), helperKey, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	io.WriteString(w.Stdout(), "from another process\n")
	for {
		time.Sleep(time.Hour) // until killed, never closing the writer
	}
}

// noPoll is a poll interval long enough that a test passing with it proves
// followers were woken by notifications, not by polling.
const noPoll = time.Hour

func newFiles(t *testing.T, poll time.Duration) *Files {
	f := NewFiles(t.TempDir())
	f.poll = poll
	return f
}

func readAll(t *testing.T, f *Files, k Key, offset int64) string {
	t.Helper()
	r, err := f.Open(t.Context(), k, offset)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFilesWriteOpenSize(t *testing.T) {
	f := newFiles(t, noPoll)
	k := Key{RunID: 12, TaskID: "load_rates", Attempt: 2}
	w, err := f.Create(t.Context(), k, []string{"s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w.Stdout(), "first\n")
	io.WriteString(w.Stderr(), "key=s3cr3t\n")
	io.WriteString(w.Stdout(), "last")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "12", "load_rates.2.log")); err != nil {
		t.Errorf("log not at the documented path: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.dir, "12")); len(entries) != 1 {
		t.Errorf("run directory holds %d entries, want only the log", len(entries))
	}

	all := readAll(t, f, k, 0)
	got := lines(t, all)
	if want := []string{"out first", "err key=***", "out last"}; !equal(got, want) {
		t.Fatalf("log %q, want %q", got, want)
	}
	size, err := f.Size(t.Context(), k)
	if err != nil || size != int64(len(all)) {
		t.Errorf("Size = %d, %v; want %d", size, err, len(all))
	}
	second := int64(strings.Index(all, "\n") + 1)
	if got := readAll(t, f, k, second); got != all[second:] {
		t.Errorf("Open at %d = %q, want %q", second, got, all[second:])
	}
	if got := readAll(t, f, k, size+10); got != "" {
		t.Errorf("Open past the end = %q", got)
	}
	if len(f.topics) != 0 {
		t.Errorf("%d topics left after the writer closed", len(f.topics))
	}
}

func TestFilesErrors(t *testing.T) {
	f := newFiles(t, noPoll)
	ctx := t.Context()
	k := Key{RunID: 1, TaskID: "a", Attempt: 1}
	w, err := f.Create(ctx, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := f.Create(ctx, k, nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create = %v, want fs.ErrExist", err)
	}
	missing := Key{RunID: 1, TaskID: "a", Attempt: 2}
	// A log never written (the attempt printed nothing) reads as empty.
	if r, err := f.Open(ctx, missing, 0); err != nil {
		t.Errorf("Open missing = %v, want an empty log", err)
	} else if b, _ := io.ReadAll(r); len(b) != 0 {
		t.Errorf("Open missing read %q", b)
	}
	if _, err := f.Open(ctx, missing, 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open missing at 10 = %v, want fs.ErrNotExist", err)
	}
	if n, err := f.Size(ctx, missing); err != nil || n != 0 {
		t.Errorf("Size missing = %d, %v, want 0", n, err)
	}
	if _, err := f.Open(ctx, k, -1); err == nil {
		t.Error("Open at -1 succeeded")
	}
	for _, bad := range []Key{
		{RunID: 1, TaskID: "", Attempt: 1},
		{RunID: 1, TaskID: "..", Attempt: 1},
		{RunID: 1, TaskID: "../../etc", Attempt: 1},
		{RunID: 1, TaskID: `a\b`, Attempt: 1},
		{RunID: -1, TaskID: "a", Attempt: 1},
	} {
		if _, err := f.Create(ctx, bad, nil); err == nil {
			t.Errorf("Create(%v) succeeded", bad)
		}
		if _, err := f.Follow(ctx, bad, 0, io.Discard); err == nil {
			t.Errorf("Follow(%v) succeeded", bad)
		}
	}
}

// chanWriter hands every Write to a channel, checking that each holds only
// whole lines.
type chanWriter struct {
	t  *testing.T
	ch chan string
}

func newChanWriter(t *testing.T) *chanWriter {
	return &chanWriter{t: t, ch: make(chan string, 100)}
}

func (w *chanWriter) Write(p []byte) (int, error) {
	if len(p) == 0 || p[len(p)-1] != '\n' {
		w.t.Errorf("Follow wrote a partial line: %q", p)
	}
	w.ch <- string(p)
	return len(p), nil
}

// next returns the texts of the lines of the next Write.
func (w *chanWriter) next(t *testing.T) []string {
	t.Helper()
	select {
	case s := <-w.ch:
		return lines(t, s)
	case <-time.After(10 * time.Second):
		t.Fatal("no output from Follow within 10s")
		return nil
	}
}

type followResult struct {
	offset int64
	err    error
}

func follow(ctx context.Context, f *Files, k Key, offset int64, w io.Writer) <-chan followResult {
	done := make(chan followResult, 1)
	go func() {
		off, err := f.Follow(ctx, k, offset, w)
		done <- followResult{off, err}
	}()
	return done
}

func await(t *testing.T, done <-chan followResult) followResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return within 10s")
		return followResult{}
	}
}

func TestFollowInProcess(t *testing.T) {
	f := newFiles(t, noPoll)
	k := Key{RunID: 1, TaskID: "t", Attempt: 1}
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w.Stdout(), "before\n")

	cw := newChanWriter(t)
	done := follow(t.Context(), f, k, 0, cw)
	if got := cw.next(t); !equal(got, []string{"out before"}) {
		t.Fatalf("got %q", got)
	}
	io.WriteString(w.Stderr(), "after\n")
	if got := cw.next(t); !equal(got, []string{"err after"}) {
		t.Fatalf("got %q", got)
	}
	io.WriteString(w.Stdout(), "partial")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := cw.next(t); !equal(got, []string{"out partial"}) {
		t.Fatalf("got %q", got)
	}
	r := await(t, done)
	size, _ := f.Size(t.Context(), k)
	if r.err != nil || r.offset != size {
		t.Errorf("Follow = %d, %v; want %d, nil", r.offset, r.err, size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.topics) != 0 {
		t.Errorf("%d topics left", len(f.topics))
	}
}

func TestFollowWaitsForCreate(t *testing.T) {
	f := newFiles(t, noPoll)
	k := Key{RunID: 1, TaskID: "t", Attempt: 3}
	cw := newChanWriter(t)
	done := follow(t.Context(), f, k, 0, cw)
	// Let Follow find no log; it must wait for one rather than return.
	waitFor(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.topics[k] != nil
	})
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w.Stdout(), "hello\n")
	if got := cw.next(t); !equal(got, []string{"out hello"}) {
		t.Fatalf("got %q", got)
	}
	w.Close()
	if r := await(t, done); r.err != nil {
		t.Error(r.err)
	}
}

func TestFollowFinishedLogAndOffset(t *testing.T) {
	f := newFiles(t, noPoll)
	k := Key{RunID: 1, TaskID: "t", Attempt: 1}
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w.Stdout(), "one\ntwo\nthree\n")
	w.Close()
	all := readAll(t, f, k, 0)
	from := int64(strings.Index(all, "\n") + 1)
	var got strings.Builder
	off, err := f.Follow(t.Context(), k, from, &got)
	if err != nil || off != int64(len(all)) || got.String() != all[from:] {
		t.Errorf("Follow = %d, %v, %q; want %d, nil, %q", off, err, got.String(), len(all), all[from:])
	}
}

func TestFollowCancel(t *testing.T) {
	f := newFiles(t, noPoll)
	k := Key{RunID: 1, TaskID: "t", Attempt: 1}
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	io.WriteString(w.Stdout(), "line\n")
	ctx, cancel := context.WithCancel(t.Context())
	cw := newChanWriter(t)
	done := follow(ctx, f, k, 0, cw)
	cw.next(t)
	cancel()
	r := await(t, done)
	size, _ := f.Size(t.Context(), k)
	if !errors.Is(r.err, context.Canceled) || r.offset != size {
		t.Errorf("Follow = %d, %v; want %d, context.Canceled", r.offset, r.err, size)
	}
}

// TestFollowOtherInstance follows a log written through another Files, as a
// second tasuki process would: no notifications, only the poll fallback.
func TestFollowOtherInstance(t *testing.T) {
	dir := t.TempDir()
	writer := NewFiles(dir)
	writer.poll = noPoll
	reader := NewFiles(dir)
	reader.poll = 20 * time.Millisecond
	k := Key{RunID: 5, TaskID: "t", Attempt: 1}

	cw := newChanWriter(t)
	done := follow(t.Context(), reader, k, 0, cw)
	w, err := writer.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		io.WriteString(w.Stdout(), fmt.Sprintf("line %d\n", i))
		if got := cw.next(t); !equal(got, []string{fmt.Sprintf("out line %d", i)}) {
			t.Fatalf("got %q", got)
		}
	}
	w.Close()
	r := await(t, done)
	size, _ := reader.Size(t.Context(), k)
	if r.err != nil || r.offset != size {
		t.Errorf("Follow = %d, %v; want %d, nil", r.offset, r.err, size)
	}
}

// TestFollowWholeLinesFromRawWriter checks that Follow only passes on whole
// lines even when a writer's data arrives in pieces, and that it keeps
// going while anyone holds the writer lock.
func TestFollowWholeLinesFromRawWriter(t *testing.T) {
	f := newFiles(t, 20*time.Millisecond)
	k := Key{RunID: 1, TaskID: "raw", Attempt: 1}
	path := f.path(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	cw := newChanWriter(t)
	done := follow(t.Context(), f, k, 0, cw)
	file.WriteString("2026-01-01T00:00:00Z out ab")
	file.WriteString("cd\n2026-01-01T00:00:00Z out ef")
	if got := cw.next(t); !equal(got, []string{"out abcd"}) {
		t.Fatalf("got %q", got)
	}
	file.WriteString("\n")
	if got := cw.next(t); !equal(got, []string{"out ef"}) {
		t.Fatalf("got %q", got)
	}
	file.Close() // releases the lock
	if r := await(t, done); r.err != nil {
		t.Error(r.err)
	}
}

// TestFollowWriterProcessDies follows a log whose writer is another process
// that is killed without closing it: the lock goes with the process, so
// Follow ends instead of waiting forever.
func TestFollowWriterProcessDies(t *testing.T) {
	f := newFiles(t, 20*time.Millisecond)
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+f.dir)
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	cw := newChanWriter(t)
	done := follow(t.Context(), f, helperKey, 0, cw)
	if got := cw.next(t); !equal(got, []string{"out from another process"}) {
		t.Fatalf("got %q", got)
	}
	helper.Process.Kill()
	helper.Wait()
	if r := await(t, done); r.err != nil {
		t.Error(r.err)
	}
}

func TestFollowManyFollowers(t *testing.T) {
	f := newFiles(t, noPoll)
	k := Key{RunID: 1, TaskID: "t", Attempt: 1}
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Go(func() {
			var b strings.Builder
			if _, err := f.Follow(t.Context(), k, 0, &b); err != nil {
				t.Error(err)
			}
			results[i] = b.String()
		})
	}
	for i := range 500 {
		fmt.Fprintf(w.Stdout(), "line %d\n", i)
	}
	w.Close()
	wg.Wait()
	all := readAll(t, f, k, 0)
	for i, r := range results {
		if r != all {
			t.Errorf("follower %d got %d bytes, want %d", i, len(r), len(all))
		}
	}
}

// waitFor waits until cond holds; for states that have no event to await.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFollowLongLines(t *testing.T) {
	f := newFiles(t, noPoll)
	k := Key{RunID: 1, TaskID: "t", Attempt: 1}
	w, err := f.Create(t.Context(), k, []string{strings.Repeat("S", 1000)})
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	done := follow(t.Context(), f, k, 0, &lineChecker{t: t, w: &got})
	big := strings.Repeat("x", MaxLine-10) + strings.Repeat("S", 1000) + strings.Repeat("y", 3*MaxLine)
	io.WriteString(w.Stdout(), big+"\nshort\n")
	w.Close()
	if r := await(t, done); r.err != nil {
		t.Fatal(r.err)
	}
	if all := readAll(t, f, k, 0); got.String() != all {
		t.Errorf("followed %d bytes, log has %d", got.Len(), len(all))
	}
	if n := len(lines(t, got.String())); n != 5 {
		t.Errorf("%d lines, want 5 (x...***, three of y, short)", n)
	}
}

// lineChecker passes writes on, failing the test for partial lines.
type lineChecker struct {
	t *testing.T
	w io.Writer
}

func (c *lineChecker) Write(p []byte) (int, error) {
	if len(p) == 0 || p[len(p)-1] != '\n' {
		c.t.Errorf("Follow wrote a partial line ending %q", p[max(0, len(p)-20):])
	}
	return c.w.Write(p)
}

// TestSilentAttemptHasNoFile checks that an attempt that prints nothing
// creates no file and reads as empty, and that following it ends once the
// store says the attempt ended (Ended), in this process or another.
func TestSilentAttemptHasNoFile(t *testing.T) {
	f := newFiles(t, time.Millisecond)
	var ended atomic.Bool
	f.Ended = func(context.Context, Key) bool { return ended.Load() }
	k := Key{RunID: 3, TaskID: "quiet", Attempt: 1}
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	follow := func(fs *Files) {
		_, err := fs.Follow(t.Context(), k, 0, io.Discard)
		done <- err
	}
	go follow(f)
	other := NewFiles(f.dir) // another process: no in-process notification
	other.poll = time.Millisecond
	other.Ended = f.Ended
	go follow(other)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ended.Store(true)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("follow of a silent attempt: %v", err)
		}
	}
	if _, err := os.Stat(f.path(k)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a silent attempt created its log file: %v", err)
	}
	if got := readAll(t, f, k, 0); got != "" {
		t.Fatalf("silent log reads %q", got)
	}
}
