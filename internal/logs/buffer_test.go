package logs

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// drain sends everything pending, in pieces of at most n bytes.
func drain(b *Buffer, n int) string {
	var out strings.Builder
	for p := b.Pending(); p != nil; p = b.Pending() {
		p = p[:min(len(p), n)]
		out.Write(p)
		b.Advance(len(p))
	}
	return out.String()
}

func TestBufferKeepsAllWithinItsBound(t *testing.T) {
	b := &Buffer{Limit: 64 << 10, Why: "test"}
	var want strings.Builder
	for i := range 100 {
		line := fmt.Sprintf("2026-01-02T03:04:05Z out line %d\n", i)
		b.Write([]byte(line))
		want.WriteString(line)
	}
	if b.Full() || b.Len() != want.Len() {
		t.Fatalf("Full %v, Len %d, want %d", b.Full(), b.Len(), want.Len())
	}
	if got := drain(b, 100); got != want.String() {
		t.Errorf("got %q", got)
	}
	if b.Pending() != nil || b.Len() != 0 {
		t.Errorf("not empty after draining")
	}
}

// TestBufferKeepsFirstAndLast: past its bound, a buffer keeps the first
// and the last lines and says, in a line of its own, how many lines and
// bytes it dropped between them; the counts add up.
func TestBufferKeepsFirstAndLast(t *testing.T) {
	const limit, total = 64 << 10, 20000
	b := &Buffer{Limit: limit, Why: "tasuki worker: the server did not take the log"}
	var all strings.Builder
	for i := range total {
		line := fmt.Sprintf("2026-01-02T03:04:05.%06dZ out line %d\n", i, i)
		b.Write([]byte(line))
		all.WriteString(line)
		if b.Len() > limit {
			t.Fatalf("after line %d: %d bytes held, over %d", i, b.Len(), limit)
		}
	}
	got := drain(b, 1000)
	lines := strings.SplitAfter(got, "\n")
	lines = lines[:len(lines)-1]
	if !strings.HasSuffix(lines[0], " out line 0\n") || !strings.HasSuffix(lines[len(lines)-1], fmt.Sprintf(" out line %d\n", total-1)) {
		t.Errorf("first %q, last %q", lines[0], lines[len(lines)-1])
	}
	re := regexp.MustCompile(`^(\S+) log tasuki worker: the server did not take the log: (\d+) lines \((.+) of log, time stamps included\) dropped here\n$`)
	notes := 0
	kept := 0
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			if !strings.Contains(all.String(), l) {
				t.Fatalf("line %d %q was never written", i, l)
			}
			kept++
			continue
		}
		notes++
		n, _ := strconv.Atoi(m[2])
		if kept+n != total-(len(lines)-1-i) {
			t.Errorf("%d lines before the note, %d dropped, %d after: not %d", kept, n, len(lines)-1-i, total)
		}
		// The note carries the stamp of the line after it.
		if next := lines[i+1]; !strings.HasPrefix(next, m[1]+" ") {
			t.Errorf("note stamped %s before %q", m[1], next)
		}
	}
	if notes != 1 {
		t.Errorf("%d notes, want 1", notes)
	}
	// It keeps going as usual once drained.
	b.Write([]byte("2026-01-02T03:04:06Z out after\n"))
	if got := drain(b, 1000); got != "2026-01-02T03:04:06Z out after\n" || b.Full() {
		t.Errorf("after draining: %q, full %v", got, b.Full())
	}
}

// TestBufferLongLine: one write longer than a segment keeps its last whole
// lines, within the bound.
func TestBufferLongLine(t *testing.T) {
	const limit = 16 << 10
	b := &Buffer{Limit: limit, Why: "test"}
	b.Write([]byte(strings.Repeat("h", limit/2-10) + "\n"))
	var big strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&big, "2026-01-02T03:04:05Z out %d\n", i)
	}
	b.Write([]byte(big.String()))
	if b.Len() > limit {
		t.Fatalf("%d bytes held, over %d", b.Len(), limit)
	}
	got := drain(b, 1<<20)
	if !strings.HasSuffix(got, " out 1999\n") || !strings.Contains(got, " lines (") {
		t.Errorf("got the end %q", got[max(len(got)-200, 0):])
	}
}

// TestBufferBigWrites: writes of many lines each (a task writing fast)
// still fill the first part before anything is dropped.
func TestBufferBigWrites(t *testing.T) {
	const limit = 64 << 10
	b := &Buffer{Limit: limit, Why: "test"}
	var chunk strings.Builder
	n := 0
	for range 20 {
		chunk.Reset()
		for range 1500 {
			fmt.Fprintf(&chunk, "2026-01-02T03:04:05Z out line %d\n", n)
			n++
		}
		b.Write([]byte(chunk.String()))
	}
	got := drain(b, 4096)
	if !strings.HasPrefix(got, "2026-01-02T03:04:05Z out line 0\n") || strings.Count(got, "dropped here") != 1 ||
		!strings.HasSuffix(got, fmt.Sprintf(" out line %d\n", n-1)) {
		t.Errorf("got %d bytes starting %q", len(got), got[:min(len(got), 200)])
	}
	if head, _, _ := strings.Cut(got, " log test:"); len(head) < limit/2-100 {
		t.Errorf("the first part holds %d bytes, want about %d", len(head), limit/2)
	}
}
