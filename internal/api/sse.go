package api

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// maxSSELine bounds one line of a log stream. A log line is at most a few
// hundred KiB (logs.MaxLine of text plus masking), so this only stops a
// broken server from making the client buffer without limit.
const maxSSELine = 4 << 20

// readEvents reads a log stream of Server-Sent Events, writing each data
// event's lines to w and setting *lastID to its id once written, so that a
// reconnection resumes exactly after what w got. It returns ended at the
// "end" event, an error wrapping errStream at an "error" event, one
// wrapping errWrite when w fails, and nil when the stream stops early (the
// connection dropped).
func readEvents(r io.Reader, lastID *string, w io.Writer) (ended bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	sc.Split(scanSSELines)
	var (
		event   string
		data    []byte
		hasData bool
		id      string
		hasID   bool
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 { // a blank line dispatches the event
			switch event {
			case "", "message":
				if hasData {
					if _, err := w.Write(append(data, '\n')); err != nil {
						return false, fmt.Errorf("%w: %w", errWrite, err)
					}
				}
			case "end":
				if hasID {
					*lastID = id
				}
				return true, nil
			case "error":
				return false, fmt.Errorf("%w: %s", errStream, data)
			}
			if hasID {
				*lastID = id
			}
			event, data, hasData, hasID = "", data[:0], false, false
			continue
		}
		if line[0] == ':' {
			continue // a comment: the heartbeat
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				id, hasID = string(value), true
			}
		}
	}
	return false, sc.Err()
}

// scanSSELines splits a stream into lines ended by CRLF, LF or CR, as the
// Server-Sent Events format says.
func scanSSELines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		switch {
		case i+1 < len(data) && data[i+1] == '\n':
			return i + 2, data[:i], nil
		case i+1 < len(data) || atEOF:
			return i + 1, data[:i], nil
		}
		return 0, nil, nil // a CR at the end: is an LF next?
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
