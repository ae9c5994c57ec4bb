package web

// Searching a log without loading it. A log may be a gigabyte; a page must
// not wait for one to be read, nor a browser download it, to find a line.
// So the server reads the log through the logs.Store from a byte offset,
// a bounded number of bytes per request (searchBudget), and answers the
// first matches with where it stopped: the next request goes on from
// there. Each match carries its byte offset, which the log viewer turns
// into a ranged read of the lines around it.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/logs"
)

// Bounds of one search request.
const (
	// searchBudget is how many bytes of a log one request reads at most,
	// and searchTime how long it reads at most (on a busy machine the
	// bytes take longer): the scan measured 440-560 MB/s on a 2-core VM
	// at load 17 (BenchmarkSearchLog), so a request takes up to about a
	// tenth of a second and a 1 GB log is searched in some 30 requests,
	// each answering what it found so far.
	searchBudget = 32 << 20
	searchTime   = 250 * time.Millisecond
	// searchChunk is the size of the buffer the log is read through. A line
	// longer than it is searched in overlapping pieces of this size.
	searchChunk = 1 << 20
	// maxHits is how many matching lines one request answers at most.
	maxHits = 50
	// maxQuery bounds the text searched for.
	maxQuery = 200
	// hitContext bounds the text of a match's line shown in the list.
	hitContext = 240
)

// errorWords are what "jump to first error" looks for, matched without
// regard to ASCII case anywhere in a line: the words failing programs and
// runtimes (Go, Python, Java, shells) print.
var errorWords = []string{"error", "fail", "exception", "panic", "traceback", "fatal"}

// searchQuery is what to look for in a log and where to start.
type searchQuery struct {
	Needles []string      // lower-case ASCII letters; any of them matches
	After   int64         // byte offset to start at
	Line    int64         // the line number at After (from 1); 0 when unknown
	Budget  int64         // bytes to read at most (0: searchBudget)
	Max     int           // matches to answer at most (0: maxHits)
	Time    time.Duration // time to read at most (0: searchTime)
}

// searchHit is one matching line.
type searchHit struct {
	Offset int64  // byte offset of the match in the log
	Line   int64  // its line number, from 1; 0 when unknown
	Before string // the line's text around the match, clipped
	Match  string
	After  string
}

// searchResult is what one request of a search found.
type searchResult struct {
	Hits []searchHit
	// Next is the offset to go on from; Done says the end of the log (as
	// it was when the search began) was reached.
	Next     int64
	NextLine int64
	Done     bool
	Scanned  int64 // bytes read by this request
	Size     int64 // the log's size when the search began
	From     int64 // where this request began
}

// lowerASCII writes src with ASCII letters in lower case to dst, which
// must be as long: the same length, so offsets in one are offsets in the
// other (full Unicode case folding would change lengths). It works on
// eight bytes at a time: a byte is an upper-case letter when adding
// 0x80-'A' to its low seven bits sets its top bit and adding 0x80-'Z'-1
// does not (and its own top bit is clear); 0x20 is that bit shifted.
func lowerASCII(dst, src []byte) {
	const ones, top = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(src); i += 8 {
		w := binary.LittleEndian.Uint64(src[i:])
		low7 := w &^ top
		upper := (low7 + ones*(0x80-'A')) &^ (low7 + ones*(0x80-'Z'-1)) &^ w & top
		binary.LittleEndian.PutUint64(dst[i:], w|upper>>2)
	}
	for ; i < len(src); i++ {
		c := src[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
}

// commonness ranks bytes by how often they appear in logs, most common
// last: a needle is looked for from its rarest byte, since bytes.Index
// costs a call per occurrence of the first byte of what it looks for.
const commonness = "qzjxkvbywgpfmucdhlsrnioate"

// rarest returns the position in needle of the byte to look for first.
func rarest(needle []byte) int {
	best, rank := 0, len(commonness)+1
	for i, c := range needle {
		r := strings.IndexByte(commonness, c)
		switch {
		case r >= 0:
		case c == ' ' || c == '\t':
			r = len(commonness) // the most common byte of all
		case c >= 0x80:
			r = -1 // a byte of a non-ASCII letter: rare in logs
		default:
			r = strings.IndexByte(commonness, 'm') // digits and punctuation: middling
		}
		if r < rank {
			best, rank = i, r
		}
	}
	return best
}

// indexFrom finds needle in low at or after from, by its part from
// position p (its rarest byte), checking the part before.
func indexFrom(low []byte, from int, needle []byte, p int) int {
	tail := needle[p:]
	for at := from + p; at <= len(low)-len(tail); {
		i := bytes.Index(low[at:], tail)
		if i < 0 {
			return -1
		}
		j := at + i - p
		if bytes.Equal(low[j:j+p], needle[:p]) {
			return j
		}
		at += i + 1
	}
	return -1
}

// foldNeedle is a query as searchLog compares it.
func foldNeedle(q string) string {
	b := []byte(q)
	lowerASCII(b, b)
	return string(b)
}

// searchLog searches the log of key from q.After, reading at most q.Budget
// bytes, and returns the first q.Max lines that hold one of q.Needles. The
// search covers the log as it is when it begins; a running attempt's later
// output is searched by a later request.
func searchLog(ctx context.Context, store logs.Store, key logs.Key, q searchQuery) (searchResult, error) {
	if len(q.Needles) == 0 {
		return searchResult{}, errors.New("search a log: nothing to look for")
	}
	budget := q.Budget
	if budget <= 0 {
		budget = searchBudget
	}
	limit := q.Max
	deadline := time.Now().Add(cmp.Or(q.Time, searchTime))
	if limit <= 0 {
		limit = maxHits
	}
	size, err := store.Size(ctx, key)
	if err != nil {
		return searchResult{}, fmt.Errorf("search log of %s: %w", key, err)
	}
	res := searchResult{Size: size, From: q.After, Next: q.After, NextLine: q.Line}
	if q.After >= size {
		res.Next, res.Done = size, true
		return res, nil
	}
	rc, err := store.Open(ctx, key, q.After)
	if err != nil {
		return searchResult{}, fmt.Errorf("search log of %s: %w", key, err)
	}
	defer rc.Close()
	stop := min(size, q.After+budget) // read up to here
	s := scanner{
		next: make([]int, len(q.Needles)), limit: limit,
		base: q.After, line: q.Line, res: &res,
	}
	for _, n := range q.Needles {
		s.needles = append(s.needles, []byte(n))
		s.from = append(s.from, rarest([]byte(n)))
		s.overlap = max(s.overlap, len(n)-1)
	}
	buf := make([]byte, searchChunk)
	low := make([]byte, searchChunk)
	r := io.LimitReader(rc, stop-q.After)
	n := 0 // bytes in buf, from s.base
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		m, rerr := io.ReadFull(r, buf[n:])
		n += m
		res.Scanned += int64(m)
		eof := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !eof {
			return res, fmt.Errorf("search log of %s at %d: %w", key, s.base+int64(n), rerr)
		}
		atEnd := eof && s.base+int64(n) >= size // the whole rest of the log is in buf
		// Search the complete lines in buf; the last, unfinished one waits
		// for more, unless the log ends there.
		upto := n
		if !atEnd {
			upto = bytes.LastIndexByte(buf[:n], '\n') + 1
		}
		segment := false
		if upto == 0 && n > 0 && (n == len(buf) || eof) {
			// A line longer than the buffer (or than what is left of the
			// budget): search it as it is, keeping its end for the next
			// piece so a match across the cut is found in that one.
			upto, segment = n, true
		}
		lowerASCII(low[:upto], buf[:upto])
		full := s.scan(buf[:upto], low[:upto])
		if full {
			return res, nil
		}
		keep := 0
		if segment && !atEnd && !s.skipLine && upto > s.overlap {
			// Search the end of the piece again with the next, unless the
			// line has had its hit.
			keep = s.overlap
		}
		consumed := upto - keep
		s.base += int64(consumed)
		copy(buf, buf[consumed:n])
		n -= consumed
		res.Next, res.NextLine = s.base, s.line
		if !eof && time.Now().After(deadline) {
			return res, nil // the rest of the budget waits for the next request
		}
		if eof {
			res.Done = atEnd
			if res.Done {
				res.Next = size
			}
			return res, nil
		}
	}
}

// scanner finds matching lines in the buffers searchLog reads.
type scanner struct {
	needles  [][]byte
	from     []int // per needle, the position of its rarest byte
	next     []int // per needle, the next occurrence at or after pos in the buffer being scanned; -1: none
	overlap  int   // longest needle - 1: the bytes a piece of a long line keeps for the next
	limit    int
	base     int64 // log offset of the buffer's first byte
	line     int64 // line number at base; 0: unknown
	skipLine bool  // base is inside a long line that has matched already: one hit per line
	res      *searchResult
}

// scan searches buf (its ASCII-lower-case copy low) and reports whether
// the result is full; then res.Next is the start of the line after the
// last match.
func (s *scanner) scan(buf, low []byte) bool {
	for k := range s.next {
		s.next[k] = -2 // not looked for yet
	}
	pos, counted := 0, 0
	if s.skipLine {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			pos, s.skipLine = i+1, false
		} else {
			pos = len(buf)
		}
	}
	for pos < len(buf) {
		m, width := -1, 0
		for k, nd := range s.needles {
			if s.next[k] == -1 {
				continue
			}
			if s.next[k] < pos {
				i := indexFrom(low, pos, nd, s.from[k])
				if i < 0 {
					s.next[k] = -1
					continue
				}
				s.next[k] = i
			}
			if m < 0 || s.next[k] < m || (s.next[k] == m && len(nd) > width) {
				m, width = s.next[k], len(nd)
			}
		}
		if m < 0 {
			break
		}
		start := bytes.LastIndexByte(buf[pos:m], '\n') + 1 + pos
		end := len(buf)
		if i := bytes.IndexByte(buf[m:], '\n'); i >= 0 {
			end = m + i
		}
		if s.line > 0 {
			s.line += int64(bytes.Count(buf[counted:start], []byte{'\n'}))
			counted = start
		}
		s.res.Hits = append(s.res.Hits, makeHit(buf[start:end], m-start, width, s.base+int64(m), s.line))
		pos = end + 1
		if end == len(buf) {
			// The line goes on in the next piece: it has its hit.
			s.skipLine = true
		}
		if len(s.res.Hits) >= s.limit {
			pos = min(pos, len(buf))
			if s.line > 0 {
				s.line += int64(bytes.Count(buf[counted:pos], []byte{'\n'}))
			}
			s.base += int64(pos)
			s.res.Next, s.res.NextLine = s.base, s.line
			s.res.Done = false
			return true
		}
	}
	if s.line > 0 {
		s.line += int64(bytes.Count(buf[counted:], []byte{'\n'}))
	}
	return false
}

// makeHit clips a matching line to hitContext bytes around its match,
// on rune boundaries.
func makeHit(line []byte, at, width int, offset, lineNo int64) searchHit {
	before, match, after := line[:at], line[at:at+width], line[at+width:]
	if room := (hitContext - width) / 3; len(before) > room {
		cut := len(before) - room
		for cut < len(before) && !utf8.RuneStart(before[cut]) {
			cut++
		}
		before = before[cut:]
	}
	if room := hitContext - width - len(before); len(after) > room {
		cut := max(room, 0)
		for cut > 0 && !utf8.RuneStart(after[cut]) {
			cut--
		}
		after = after[:cut]
	}
	clean := func(b []byte) string { return strings.ToValidUTF8(strings.TrimRight(string(b), "\r"), "\uFFFD") }
	return searchHit{Offset: offset, Line: lineNo, Before: clean(before), Match: clean(match), After: clean(after)}
}
