package logs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/shell"
)

// limitedLog writes n numbered lines to a log of a Files store with the
// given limit, in writes of chunk lines each, and returns the log.
func limitedLog(t *testing.T, limit int64, n, chunk int) (*Files, Key, string) {
	t.Helper()
	f := newFiles(t, noPoll)
	f.Limit = limit
	k := Key{RunID: 1, TaskID: "chatty", Attempt: 1}
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %06d\n", i)
		if (i+1)%chunk == 0 || i == n-1 {
			if _, err := w.Stdout().Write([]byte(b.String())); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f, k, readAll(t, f, k, 0)
}

var dropNote = regexp.MustCompile(`^log log limit: (\d+) lines \(.+\) dropped here$`)

// checkLimited checks a log of n numbered lines cut by a limit: the head
// from line 0, the note where it ends, the count of dropped lines, and the
// tail up to line n-1, with nothing lost but what the count says and time
// stamps that never go back.
func checkLimited(t *testing.T, log string, n int, limit int64) {
	t.Helper()
	if int64(len(log)) > limit {
		t.Fatalf("log of %d bytes, limit %d", len(log), limit)
	}
	var (
		next, dropped int
		notes         int
		last          time.Time
	)
	for line := range strings.SplitSeq(strings.TrimSuffix(log, "\n"), "\n") {
		stamp, text, _ := strings.Cut(line, " ")
		ts, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if ts.Before(last) {
			t.Fatalf("line %q goes back in time from %s", line, last)
		}
		last = ts
		switch {
		case strings.HasPrefix(text, "log log limit of "):
			notes++
		case dropNote.MatchString(text):
			notes++
			dropped, _ = strconv.Atoi(dropNote.FindStringSubmatch(text)[1])
			next += dropped
		default:
			if want := fmt.Sprintf("out line %06d", next); text != want {
				t.Fatalf("line %q, want %q (after %d dropped)", text, want, dropped)
			}
			next++
		}
	}
	if next != n || notes != 2 || dropped == 0 {
		t.Fatalf("%d lines accounted for (%d dropped), %d notes; want %d lines and 2 notes", next, dropped, notes, n)
	}
}

// TestFilesLimitKeepsHeadAndTail: a log past its limit keeps its first and
// last lines, says where the head ends and how much was dropped, and stays
// within the limit, whether lines come one by one or in large writes.
func TestFilesLimitKeepsHeadAndTail(t *testing.T) {
	for _, tt := range []struct {
		name         string
		limit        int64
		lines, chunk int
	}{
		{"line by line", 64 << 10, 20000, 1},
		{"large writes", 64 << 10, 20000, 3000},
		{"smallest limit", 1, 5000, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, k, log := limitedLog(t, tt.limit, tt.lines, tt.chunk)
			checkLimited(t, log, tt.lines, f.limit())
			if size, err := f.Size(t.Context(), k); err != nil || size != int64(len(log)) {
				t.Fatalf("Size = %d, %v; want %d", size, err, len(log))
			}
			entries, _ := os.ReadDir(filepath.Join(f.dir, "1"))
			if len(entries) != 1 {
				t.Fatalf("run directory holds %d entries, want the log alone (tail segments removed)", len(entries))
			}
		})
	}
}

// TestFilesLimitUnderIt: a log within its limit is untouched.
func TestFilesLimitUnderIt(t *testing.T) {
	_, _, log := limitedLog(t, 64<<10, 100, 10)
	if strings.Contains(log, " log ") || strings.Count(log, "\n") != 100 {
		t.Fatalf("log under its limit changed:\n%s", log)
	}
}

// TestFilesLimitFollow: a follower sees the head and the note live, then
// the count of dropped lines and the tail when the attempt ends.
func TestFilesLimitFollow(t *testing.T) {
	f := newFiles(t, noPoll)
	f.Limit = minLimit
	k := Key{RunID: 1, TaskID: "chatty", Attempt: 1}
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.Follow(context.Background(), k, 0, pw)
		pw.Close()
		done <- err
	}()
	const n = 3000
	for i := range n {
		fmt.Fprintf(w.Stdout(), "line %06d\n", i)
	}
	sc := bufio.NewScanner(pr)
	var got strings.Builder
	for sc.Scan() { // the follower has the head and the note before the end
		got.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), " log log limit of ") {
			break
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		got.WriteString(sc.Text() + "\n")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if log := readAll(t, f, k, 0); got.String() != log {
		t.Fatalf("followed %d bytes, log has %d", got.Len(), len(log))
	}
	checkLimited(t, got.String(), n, minLimit)
}

// TestFilesLimitTaskOutput runs a task that prints far more than the limit
// (like `yes | head -c 200000000`) through shell.Run into a log.
func TestFilesLimitTaskOutput(t *testing.T) {
	f := newFiles(t, noPoll)
	f.Limit = 64 << 10
	k := Key{RunID: 1, TaskID: "yes", Attempt: 1}
	w, err := f.Create(t.Context(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := shell.Run(t.Context(), shell.Command{Script: "yes | head -c 1000000", Env: []string{"PATH=/usr/bin:/bin"}, Stdout: w.Stdout(), Stderr: w.Stderr()})
	if err := w.Close(); err != nil || !res.OK() {
		t.Fatalf("run: %v; close: %v", res.Err(), err)
	}
	size, err := f.Size(t.Context(), k)
	if err != nil || size > f.Limit || size < f.Limit/2 {
		t.Fatalf("log of %d bytes (%v), limit %d", size, err, f.Limit)
	}
	log := readAll(t, f, k, 0)
	m := regexp.MustCompile(` log log limit: (\d+) lines`).FindStringSubmatch(log)
	if m == nil {
		t.Fatal("no count of dropped lines")
	}
	dropped, _ := strconv.Atoi(m[1])
	if kept := strings.Count(log, " out y\n"); kept+dropped != 500000 {
		t.Fatalf("%d lines kept + %d dropped, want the 500000 the task printed", kept, dropped)
	}
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Size
		err  bool
	}{
		{"100MiB", 100 << 20, false},
		{" 512 KiB ", 512 << 10, false},
		{"2GiB", 2 << 30, false},
		{"1048576", 1 << 20, false},
		{"17B", 17, false},
		{"0", 0, false},
		{"none", -1, false},
		{"100MB", 0, true},
		{"-5", 0, true},
		{"lots", 0, true},
		{"99999999999GiB", 0, true},
	} {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (error: %v)", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil {
			if back, err := ParseSize(got.String()); err != nil || back != got {
				t.Errorf("ParseSize(%q.String() = %q) = %d, %v", tt.in, got.String(), back, err)
			}
		}
	}
}

// BenchmarkFilesWrite is the log writing path with a real file: a Writer
// over a Files sink (with its limit check), far from the limit.
func BenchmarkFilesWrite(b *testing.B) {
	f := NewFiles(b.TempDir())
	w, err := f.Create(b.Context(), Key{RunID: 1, TaskID: "bench", Attempt: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { w.Close() }()
	chunk := []byte(strings.Repeat(strings.Repeat("a", 99)+"\n", 320))
	b.SetBytes(int64(len(chunk)))
	for i := 0; b.Loop(); i++ {
		if i%500 == 499 { // stay far below the limit
			w.Close()
			if w, err = f.Create(b.Context(), Key{RunID: 1, TaskID: "bench", Attempt: i + 2}, nil); err != nil {
				b.Fatal(err)
			}
		}
		w.Stdout().Write(chunk)
	}
}
