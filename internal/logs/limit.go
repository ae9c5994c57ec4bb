package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultLimit is the bound of one attempt's log file when Files.Limit is
// zero. A task that prints more (`yes | head -c 200000000` wrote 3.5 GB of
// log lines) keeps its first and last 50 MiB or so, which is what anyone
// reads, and cannot fill the disk of the server.
const DefaultLimit = 100 << 20

// minLimit is the smallest limit honoured: room for a few long lines in the
// head and the tail each.
const minLimit = 16 << 10

// limitReserve is the part of the limit kept for the two lines the limit
// adds (the note where the head ends and the count of what was dropped).
const limitReserve = 1 << 10

// headSize is how much of a log is kept from its start.
func headSize(limit int64) int64 { return (limit - limitReserve) / 2 }

// tailSize is how much of a log is kept from its end, at most.
func tailSize(limit int64) int64 { return limit - limitReserve - headSize(limit) }

// headNote is the text of the line where the head of a log that outgrew
// its limit ends (fileSink.overflow): the limit, the tail's size.
const headNote = "log limit of %s reached: the output that follows is kept as its last %s, added when the attempt ends"

// headNoteLen returns the length of the last line of end (the last bytes
// of a log) if it is a head's note (headNote), else 0: a log resumed after
// it has its head full.
func headNoteLen(end []byte) int {
	if len(end) == 0 || end[len(end)-1] != '\n' {
		return 0
	}
	line := end[bytes.LastIndexByte(end[:len(end)-1], '\n')+1:]
	_, text, _ := bytes.Cut(line, []byte(" "))
	prefix, rest, _ := strings.Cut(headNote, "%s")
	reached, _, _ := strings.Cut(rest, "%s")
	if !bytes.HasPrefix(text, []byte("log "+prefix)) || !bytes.Contains(text, []byte(reached)) {
		return 0
	}
	return len(line)
}

// limitedTail keeps the last part of a log that has outgrown its head, in
// two segment files beside the log: output goes to the current segment;
// when it is full, the older segment is dropped (its bytes and lines
// counted) and reused as the current one. So between half and all of the
// tail size is kept from the end, on disk rather than in memory, and
// segments only ever end at a line end (a line longer than a segment is a
// segment of its own), so what is kept starts with a whole line.
type limitedTail struct {
	dir, name string // segment files are dir/name.tail0 and .tail1
	segMax    int64

	seg  [2]*os.File
	size [2]int64
	cur  int // the segment being written; the other is older

	droppedBytes, droppedLines int64
	err                        error // the first failure; the tail is lost
}

// add appends p to the tail.
func (t *limitedTail) add(p []byte) error {
	for len(p) > 0 && t.err == nil {
		room := t.segMax - t.size[t.cur]
		n := len(p)
		if int64(n) > room {
			n = bytes.LastIndexByte(p[:max(room, 0)], '\n') + 1
			if n == 0 && t.size[t.cur] > 0 {
				t.rotate() // the next line does not fit: start a new segment
				continue
			}
			if n == 0 { // a line longer than a segment
				n = bytes.IndexByte(p, '\n') + 1
				if n == 0 {
					n = len(p)
				}
			}
		}
		t.write(p[:n])
		p = p[n:]
	}
	return t.err
}

// write appends p to the current segment, creating it first if need be.
func (t *limitedTail) write(p []byte) {
	if t.seg[t.cur] == nil {
		f, err := os.OpenFile(filepath.Join(t.dir, fmt.Sprintf("%s.tail%d", t.name, t.cur)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.err = fmt.Errorf("keep the tail of a log: %w", err)
			return
		}
		t.seg[t.cur] = f
	}
	n, err := t.seg[t.cur].Write(p)
	t.size[t.cur] += int64(n)
	if err != nil {
		t.err = fmt.Errorf("keep the tail of a log: %w", err)
	}
}

// rotate drops the older segment and makes it the current one.
func (t *limitedTail) rotate() {
	old := 1 - t.cur
	if f := t.seg[old]; f != nil {
		lines, err := countLines(f)
		if err == nil {
			err = f.Truncate(0)
		}
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			t.err = fmt.Errorf("keep the tail of a log: %w", err)
			return
		}
		t.droppedBytes += t.size[old]
		t.droppedLines += lines
		t.size[old] = 0
	}
	t.cur = old
}

// countLines counts the line ends in f from its start.
func countLines(f *os.File) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for off := int64(0); ; {
		m, err := f.ReadAt(buf, off)
		n += int64(bytes.Count(buf[:m], []byte{'\n'}))
		off += int64(m)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// finish appends to the log the line saying what was dropped and the kept
// tail, older segment first, then removes the segments.
func (t *limitedTail) finish(log *os.File) error {
	defer func() {
		for _, f := range t.seg {
			if f != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}
	}()
	if t.err != nil {
		return t.err
	}
	if t.size[0]+t.size[1] == 0 {
		return nil // a resumed log's tail that got nothing
	}
	order := []int{1 - t.cur, t.cur}
	first := make([]byte, 64) // the start of the first kept line, for its stamp
	for _, i := range order {
		if t.size[i] > 0 {
			n, _ := t.seg[i].ReadAt(first, 0)
			first = first[:n]
			break
		}
	}
	note := noteLine(first, fmt.Sprintf("log limit: %d lines (%s of log, time stamps included) dropped here", t.droppedLines, sizeText(t.droppedBytes)))
	if _, err := log.Write(note); err != nil {
		return err
	}
	for _, i := range order {
		if t.size[i] == 0 {
			continue
		}
		if _, err := io.Copy(log, io.NewSectionReader(t.seg[i], 0, t.size[i])); err != nil {
			return fmt.Errorf("add the tail of a log: %w", err)
		}
	}
	return nil
}

// NoteLine is a log line of tasuki's own, as noteLine, for what the
// server has to say in a log it receives whole lines of (a remote
// worker's).
func NoteLine(next []byte, text string) []byte { return noteLine(next, text) }

// noteLine is a log line of tasuki's own, with the stream name "log". It
// carries the time stamp of next, the line it comes before (so stamps
// never go backwards in the log), or the current time if next has none.
func noteLine(next []byte, text string) []byte {
	stamp, _, ok := bytes.Cut(next, []byte(" "))
	if _, err := time.Parse(time.RFC3339Nano, string(stamp)); !ok || err != nil {
		stamp = time.Now().UTC().AppendFormat(nil, time.RFC3339Nano)
	}
	line := append(bytes.Clone(stamp), " log "...)
	return append(append(line, text...), '\n')
}

// sizeText writes a byte count for people: "100 MiB", "12.5 KiB", "17 bytes".
func sizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/(1<<20))) + " MiB"
	case n >= 1<<10:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/(1<<10))) + " KiB"
	}
	return fmt.Sprintf("%d bytes", n)
}

func trimZero(s string) string {
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		return s[:len(s)-2]
	}
	return s
}

// Size is a log limit in configuration: a number of bytes, optionally with
// a binary unit ("100MiB", "512KiB", "1GiB", "1048576"), or "none" for no
// limit (stored as -1). Zero means the default.
type Size int64

// ParseSize reads a Size.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "none") || strings.EqualFold(t, "unlimited") {
		return -1, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: expected a number of bytes, optionally with KiB, MiB or GiB (like 100MiB), or none", s)
	}
	return Size(n * mult), nil
}

// UnmarshalText reads a Size from configuration.
func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// MarshalText writes a Size as ParseSize reads it.
func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// String writes the size with the largest binary unit that divides it.
func (z Size) String() string {
	switch {
	case z < 0:
		return "none"
	case z == 0:
		return "0"
	case z%(1<<30) == 0:
		return strconv.FormatInt(int64(z>>30), 10) + "GiB"
	case z%(1<<20) == 0:
		return strconv.FormatInt(int64(z>>20), 10) + "MiB"
	case z%(1<<10) == 0:
		return strconv.FormatInt(int64(z>>10), 10) + "KiB"
	}
	return strconv.FormatInt(int64(z), 10)
}
