package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/logs"
)

// sseRetry is the reconnection delay, in milliseconds, the log stream
// suggests to EventSource clients.
const sseRetry = 2000

// taskLog serves GET /runs/{id}/tasks/{task}/logs: the log as text, a byte
// range of it, or a live follow over Server-Sent Events.
func (h *handler) taskLog(w http.ResponseWriter, r *http.Request) error {
	id, task, err := runAndTask(r)
	if err != nil {
		return err
	}
	attempt, err := queryInt(r, "attempt", 0, 1<<31-1, 0)
	if err != nil {
		return err
	}
	follow, err := wantsFollow(r)
	if err != nil {
		return err
	}
	if h.logs == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server has no log store")
	}
	key, err := h.svc.LogKey(r.Context(), id, task, int(attempt))
	if err != nil {
		return err
	}
	if follow {
		return h.followLog(w, r, key)
	}
	return h.readLog(w, r, key)
}

// wantsFollow reports whether the client asked for a live follow: ?follow=1
// or an Accept header naming text/event-stream.
func wantsFollow(r *http.Request) (bool, error) {
	s, err := queryValue(r, "follow")
	if err != nil {
		return false, err
	}
	if s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return false, invalid("query parameter follow=%q: expected 1, 0, true or false", s)
		}
		return b, nil
	}
	for _, a := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(a, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true, nil
			}
		}
	}
	return false, nil
}

// logErr turns a missing log into a 404 that says which.
func logErr(key logs.Key, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return NotFound("no log for run %d task %q attempt %d (has the attempt started?)", key.RunID, key.TaskID, key.Attempt)
	}
	return err
}

// readLog answers the log, or the part a Range header or ?offset asks for.
// The answer covers the log as it is when the request arrives; a client
// that wants what comes later asks again from the end (or follows).
func (h *handler) readLog(w http.ResponseWriter, r *http.Request, key logs.Key) error {
	size, err := h.logs.Size(r.Context(), key)
	if err != nil {
		return logErr(key, err)
	}
	offsetText, err := queryValue(r, "offset")
	if err != nil {
		return err
	}
	rangeText := r.Header.Get("Range")
	start, end, partial := int64(0), size, false
	switch {
	case offsetText != "" && rangeText != "":
		return invalid("give either a Range header or ?offset, not both")
	case offsetText != "":
		n, err := strconv.ParseInt(offsetText, 10, 64)
		if err != nil || n < 0 {
			return invalid("query parameter offset=%q: expected a byte offset of at least 0", offsetText)
		}
		if n > size {
			return unsatisfiable(w, size, fmt.Sprintf("offset %d is past the end of the log (%d bytes)", n, size))
		}
		// offset == size is "nothing new yet": an empty 200, not an error,
		// so a client polling the tail need not special-case it.
		start, partial = n, n < size
	case rangeText != "":
		var msg string
		start, end, msg, err = parseRange(rangeText, size)
		if err != nil {
			return err
		}
		if msg != "" {
			return unsatisfiable(w, size, msg)
		}
		partial = true
	}
	body, err := h.logs.Open(r.Context(), key, start)
	if err != nil {
		return logErr(key, err)
	}
	defer body.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Length", strconv.FormatInt(end-start, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, size))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(w, io.LimitReader(body, end-start)); err != nil {
		return fmt.Errorf("send log of %s: %w", key, err)
	}
	return nil
}

// unsatisfiable answers 416 with the size of the log, as RFC 9110 asks.
func unsatisfiable(w http.ResponseWriter, size int64, msg string) error {
	w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
	writeError(w, Errorf(http.StatusRequestedRangeNotSatisfiable, CodeRangeNotSatisfiable, "%s", msg))
	return nil
}

// parseRange reads a single byte range (bytes=N-, bytes=N-M or bytes=-N)
// against a log of size bytes, returning [start, end). A well-formed range
// outside the log comes back as a message for a 416; a malformed one as a
// 400 error.
func parseRange(h string, size int64) (start, end int64, unsat string, err error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok {
		return 0, 0, "", invalid("Range header %q: expected bytes=START- or bytes=START-END or bytes=-LENGTH", h)
	}
	if strings.Contains(spec, ",") {
		return 0, 0, "", invalid("Range header %q: only one range is supported", h)
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, "", invalid("Range header %q: expected bytes=START- or bytes=START-END or bytes=-LENGTH", h)
	}
	num := func(s string) (int64, bool) {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil && n >= 0 && s != "" && s[0] != '+'
	}
	if first == "" { // the last N bytes
		n, ok := num(last)
		if !ok {
			return 0, 0, "", invalid("Range header %q: expected a length after bytes=-", h)
		}
		if n == 0 || size == 0 {
			return 0, 0, fmt.Sprintf("range %s is outside the log (%d bytes)", spec, size), nil
		}
		return max(0, size-n), size, "", nil
	}
	start, ok = num(first)
	if !ok {
		return 0, 0, "", invalid("Range header %q: expected a byte offset after bytes=", h)
	}
	end = size
	if last != "" {
		l, ok := num(last)
		if !ok || l < start {
			return 0, 0, "", invalid("Range header %q: expected an end offset not before the start", h)
		}
		end = min(l+1, size)
	}
	if start >= size {
		return 0, 0, fmt.Sprintf("range %s starts past the end of the log (%d bytes)", spec, size), nil
	}
	return start, end, "", nil
}

// followLog streams the log over Server-Sent Events from the offset the
// client asks for (Last-Event-ID, else ?offset, else 0) until the attempt's
// writer closes, then sends an "end" event. Each event's data is one or
// more whole log lines (one `data:` field per line) and its id is the byte
// offset after them, so a client that loses the connection resumes exactly
// where it was. Comments keep quiet streams alive. The SSE format takes a
// carriage return for a line break, so a CR inside a log line reaches an
// SSE client as one (ranged reads return the bytes exactly).
func (h *handler) followLog(w http.ResponseWriter, r *http.Request, key logs.Key) error {
	offset, err := followOffset(r)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	// A server-wide write timeout would cut a long follow; this stream
	// manages its own liveness. Not every writer supports it (tests), so
	// errors are ignored.
	_ = rc.SetWriteDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: rc, pos: offset}
	if err := s.send(fmt.Sprintf("retry: %d\n\n", sseRetry)); err != nil {
		return nil // the client is gone
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(h.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.send(": keep-alive\n\n"); err != nil {
					cancel()
					return
				}
			}
		}
	})
	end, err := h.logs.Follow(ctx, key, offset, s)
	cancel()
	wg.Wait()
	switch {
	case err == nil:
		_ = s.send(fmt.Sprintf("event: end\nid: %d\ndata: %d\n\n", end, end))
	case ctx.Err() != nil || s.gone():
		// The client left (or stopped reading): nothing more to say.
	default:
		h.log.ErrorContext(r.Context(), "api: follow log", "key", key.String(), "err", err)
		_ = s.send("event: error\ndata: " + `{"code":"internal","message":"reading the log failed"}` + "\n\n")
	}
	return nil
}

// followOffset is where a follow starts.
func followOffset(r *http.Request) (int64, error) {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
		if err != nil || n < 0 {
			return 0, invalid("Last-Event-ID %q: expected a byte offset from an earlier event", id)
		}
		return n, nil
	}
	return queryInt(r, "offset", 0, maxInt64, 0)
}

// sseWriter turns the chunks of whole lines Follow writes into events. Its
// sends are serialized, as the heartbeat shares the stream.
type sseWriter struct {
	mu  sync.Mutex
	w   io.Writer
	rc  *http.ResponseController
	pos int64 // offset in the log after what was sent
	buf []byte
	err error // the first failure to write to the client
}

// gone reports whether writing to the client has failed: it left.
func (s *sseWriter) gone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}

// Write sends p (whole log lines) as one event.
func (s *sseWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = s.buf[:0]
	text := strings.TrimSuffix(string(p), "\n")
	for line := range strings.SplitSeq(text, "\n") {
		s.buf = append(s.buf, "data: "...)
		s.buf = append(s.buf, line...)
		s.buf = append(s.buf, '\n')
	}
	s.pos += int64(len(p))
	s.buf = strconv.AppendInt(append(s.buf, "id: "...), s.pos, 10)
	s.buf = append(s.buf, "\n\n"...)
	if err := s.flushLocked(s.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// send writes a raw piece of the stream.
func (s *sseWriter) send(raw string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked([]byte(raw))
}

func (s *sseWriter) flushLocked(b []byte) error {
	if s.err != nil {
		return s.err
	}
	_, err := s.w.Write(b)
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		s.err = fmt.Errorf("send to client: %w", err)
	}
	return s.err
}
