package web

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/logs"
)

// writeLog stores data as the log of k through the store's raw sink, as a
// remote worker's log arrives.
func writeLog(t testing.TB, f *logs.Files, k logs.Key, data []byte) {
	t.Helper()
	s, err := f.Sink(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		n := min(len(data), 4<<20)
		if _, err := s.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// bruteHits finds, the slow and obvious way, the offset of the first match
// in each line that holds one of needles, and the line's number.
func bruteHits(data []byte, needles []string) (offsets, lines []int64) {
	low := bytes.ToLower(data) // the logs here are ASCII: same length
	pos := int64(0)
	for n, line := range bytes.SplitAfter(low, []byte("\n")) {
		first := -1
		for _, nd := range needles {
			if i := bytes.Index(line, []byte(nd)); i >= 0 && (first < 0 || i < first) {
				first = i
			}
		}
		if first >= 0 {
			offsets = append(offsets, pos+int64(first))
			lines = append(lines, int64(n+1))
		}
		pos += int64(len(line))
	}
	return offsets, lines
}

// searchAll runs a search to the end, request after request, checking the
// bound of each, and returns every hit.
func searchAll(t *testing.T, f *logs.Files, k logs.Key, q searchQuery) []searchHit {
	t.Helper()
	var all []searchHit
	q.Line = 1
	for range 10000 {
		res, err := searchLog(context.Background(), f, k, q)
		if err != nil {
			t.Fatal(err)
		}
		if res.Scanned > q.Budget {
			t.Fatalf("a request from %d read %d bytes, past its budget of %d", q.After, res.Scanned, q.Budget)
		}
		if !res.Done && res.Next <= q.After {
			t.Fatalf("a request from %d made no progress", q.After)
		}
		all = append(all, res.Hits...)
		if res.Done {
			return all
		}
		q.After, q.Line = res.Next, res.NextLine
	}
	t.Fatal("the search never ended")
	return nil
}

func TestSearchLog(t *testing.T) {
	f := logs.NewFiles(t.TempDir())
	k := logs.Key{RunID: 1, TaskID: "t", Attempt: 1}
	var b bytes.Buffer
	for i := 0; b.Len() < 6<<20; i++ {
		switch {
		case i%997 == 0:
			fmt.Fprintf(&b, "2026-03-01T09:00:00Z line %d: ERROR something broke\n", i)
		case i%1499 == 0:
			fmt.Fprintf(&b, "2026-03-01T09:00:00Z line %d: Traceback (most recent call last) and a failure\n", i)
		default:
			fmt.Fprintf(&b, "2026-03-01T09:00:00Z line %d: all is well, nothing to see here\n", i)
		}
		// A match across the boundary of the first read buffer.
		if b.Len() < searchChunk-3 && b.Len() > searchChunk-200 {
			pad := searchChunk - 3 - b.Len()
			b.WriteString(strings.Repeat(".", pad) + "PANIC at the boundary\n")
		}
	}
	// A line longer than the read buffer with a match across a piece's cut
	// (pieces overlap by the longest needle less one).
	b.WriteString(strings.Repeat("x", searchChunk-4) + "exception in a long line" + strings.Repeat("y", searchChunk) + "\n")
	b.WriteString("the last line has a Fatal end, without a newline")
	data := b.Bytes()
	if data[searchChunk-3] != 'P' {
		t.Fatalf("the boundary match is not where the test wants it: %q", data[searchChunk-5:searchChunk+5])
	}
	writeLog(t, f, k, data)

	for _, budget := range []int64{searchBudget, 3 << 20, 700 << 10} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			hits := searchAll(t, f, k, searchQuery{Needles: errorWords, Budget: budget, Max: 7})
			wantOff, wantLine := bruteHits(data, errorWords)
			if len(hits) != len(wantOff) {
				t.Fatalf("%d hits, want %d", len(hits), len(wantOff))
			}
			for i, h := range hits {
				if h.Offset != wantOff[i] || h.Line != wantLine[i] {
					t.Fatalf("hit %d at %d line %d, want %d line %d (%q)", i, h.Offset, h.Line, wantOff[i], wantLine[i], h.Match)
				}
				if !strings.EqualFold(string(data[h.Offset:h.Offset+int64(len(h.Match))]), h.Match) {
					t.Fatalf("hit %d: the log at %d is not %q", i, h.Offset, h.Match)
				}
			}
		})
	}

	// A request out of time stops after the piece it read, and the next
	// goes on from there.
	hits := searchAll(t, f, k, searchQuery{Needles: errorWords, Budget: searchBudget, Time: time.Nanosecond})
	if wantOff, _ := bruteHits(data, errorWords); len(hits) != len(wantOff) {
		t.Errorf("out of time at each piece: %d hits, want %d", len(hits), len(wantOff))
	}

	// One needle, the boundary match among them.
	hits = searchAll(t, f, k, searchQuery{Needles: []string{foldNeedle("PANIC AT")}, Budget: 1 << 20})
	if len(hits) != 1 || hits[0].Offset != searchChunk-3 || hits[0].Match != "PANIC at" {
		t.Errorf("the match across the first buffer's end: %+v", hits)
	}
}

func TestSearchLogStopsAtMax(t *testing.T) {
	f := logs.NewFiles(t.TempDir())
	k := logs.Key{RunID: 1, TaskID: "t", Attempt: 1}
	writeLog(t, f, k, []byte(strings.Repeat("an error\n", 1000)))
	res, err := searchLog(context.Background(), f, k, searchQuery{Needles: errorWords, Line: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != maxHits || res.Done || res.Next != int64(maxHits*9) || res.NextLine != maxHits+1 {
		t.Errorf("%d hits, next %d line %d, done %v; want %d, %d, %d, false", len(res.Hits), res.Next, res.NextLine, res.Done, maxHits, maxHits*9, maxHits+1)
	}
}

func TestReadLogWindow(t *testing.T) {
	f := logs.NewFiles(t.TempDir())
	k := logs.Key{RunID: 1, TaskID: "t", Attempt: 1}
	var b bytes.Buffer
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	data := b.Bytes()
	writeLog(t, f, k, data)
	v, err := readLogWindow(context.Background(), f, k, -1)
	if err != nil {
		t.Fatal(err)
	}
	if v.End != int64(len(data)) || v.Size != v.End || v.End-v.Start > logTail || data[v.Start-1] != '\n' || v.Before != string(data[v.Start:]) {
		t.Errorf("tail window %d-%d of %d", v.Start, v.End, v.Size)
	}
	at := int64(bytes.Index(data, []byte("line 50000\n")) + 3)
	v, err = readLogWindow(context.Background(), f, k, at)
	if err != nil {
		t.Fatal(err)
	}
	if v.Hit != "line 50000" || data[v.Start-1] != '\n' || data[v.End-1] != '\n' || v.Start+int64(len(v.Before)) != at-3 {
		t.Errorf("window at %d: %d-%d, hit %q", at, v.Start, v.End, v.Hit)
	}
}

// BenchmarkSearchLog measures one search request (searchBudget bytes read,
// no match) for the error words and for one word.
//
//	go test -run '^$' -bench SearchLog ./internal/web/
func BenchmarkSearchLog(b *testing.B) {
	f := logs.NewFiles(b.TempDir())
	k := logs.Key{RunID: 1, TaskID: "t", Attempt: 1}
	var chunk bytes.Buffer
	for i := 0; chunk.Len() < searchBudget; i++ {
		fmt.Fprintf(&chunk, "2026-03-01T09:00:00.000Z stdout Copied block %d of the table into the warehouse\n", i)
	}
	writeLog(b, f, k, chunk.Bytes())
	for _, c := range []struct {
		name    string
		needles []string
	}{{"errors", errorWords}, {"word", []string{"disk full"}}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(searchBudget)
			for b.Loop() {
				res, err := searchLog(context.Background(), f, k, searchQuery{Needles: c.needles, Line: 1})
				if err != nil || len(res.Hits) != 0 {
					b.Fatal(err, len(res.Hits))
				}
			}
		})
	}
}

func TestLowerASCII(t *testing.T) {
	src := make([]byte, 4099)
	for i := range src {
		src[i] = byte(i*7 + i/256)
	}
	dst := make([]byte, len(src))
	for _, n := range []int{0, 1, 7, 8, 9, 4099} {
		lowerASCII(dst[:n], src[:n])
		for i := range n {
			want := src[i]
			if 'A' <= want && want <= 'Z' {
				want += 32
			}
			if dst[i] != want {
				t.Fatalf("byte %d (%#x) of %d: %#x, want %#x", i, src[i], n, dst[i], want)
			}
		}
	}
	if rarest([]byte("disk full")) == 4 || rarest([]byte("exception")) != 1 {
		t.Errorf("rarest: %d, %d", rarest([]byte("disk full")), rarest([]byte("exception")))
	}
}
