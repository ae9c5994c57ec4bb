package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// The part of a log the task page is rendered with.
const (
	// logTail is how much of a log the page shows at first: its end, or
	// the part around a match. The script loads more by ranges of the same
	// size (static/log.js).
	logTail = 256 << 10
	// logBefore is how much of the window around a match comes before it.
	logBefore = 32 << 10
)

// logView is the part of a log a page shows, cut at line boundaries.
type logView struct {
	API  template.URL // the API's route of the log, with its query
	File string       // the name a download takes
	// Start and End are the byte offsets of the text shown; Size the log's
	// length when it was read.
	Start, End, Size int64
	// The text, split around the line of the match the page was opened at
	// (Hit; empty without one).
	Before, Hit, After string
	HitAt              int64 // the match's offset; -1: none
	Live               bool  // the attempt is running and the view reaches the log's end
}

// Earlier is the offset of the window before this one (for the link that
// loads it without the script).
func (v *logView) Earlier() int64 { return max(0, v.Start-logTail+logBefore) }

// Bytes is a size in human units.
func (v *logView) Bytes(n int64) string { return humanBytes(n) }

// readLogWindow reads the end of a log (at < 0) or the part around offset
// at, logTail bytes at most, through two reads: its size and the range.
func readLogWindow(ctx context.Context, store logs.Store, key logs.Key, at int64) (*logView, error) {
	size, err := store.Size(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, api.NotFound("no log for %s", key)
	}
	if err != nil {
		return nil, err
	}
	v := &logView{Size: size, HitAt: -1, Start: max(0, size-logTail), End: size}
	if at >= 0 {
		at = min(at, size)
		v.HitAt = at
		v.Start = max(0, at-logBefore)
		v.End = min(size, v.Start+logTail)
	}
	if v.End == v.Start {
		return v, nil
	}
	rc, err := store.Open(ctx, key, v.Start)
	if err != nil {
		return nil, fmt.Errorf("read log of %s: %w", key, err)
	}
	defer rc.Close()
	data := make([]byte, v.End-v.Start)
	n, err := io.ReadFull(rc, data)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read log of %s at %d: %w", key, v.Start, err)
	}
	data = data[:n]
	v.End = v.Start + int64(n)
	// Show whole lines: the window's edges fall anywhere.
	if v.Start > 0 {
		if i := bytes.IndexByte(data, '\n'); i >= 0 && i+1 < len(data) && (v.HitAt < 0 || v.Start+int64(i+1) <= v.HitAt) {
			data = data[i+1:]
			v.Start += int64(i + 1)
		}
	}
	if v.End < size {
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			v.End -= int64(len(data) - i - 1)
			data = data[:i+1]
		}
	}
	text := func(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }
	if v.HitAt >= v.Start && v.HitAt < v.End {
		off := int(v.HitAt - v.Start)
		ls := bytes.LastIndexByte(data[:off], '\n') + 1
		le := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			le = off + i
		}
		v.Before, v.Hit, v.After = text(data[:ls]), text(data[ls:le]), text(data[le:])
		return v, nil
	}
	v.Before = text(data)
	return v, nil
}
