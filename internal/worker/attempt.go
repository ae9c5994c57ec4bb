package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// runAttempt runs one lease to its end and reports it.
func (s *session) runAttempt(a *leased) {
	l := a.lease
	// Every line names the attempt; the attributes are built only for a
	// line the logger takes (a logger With them per attempt was a tenth of
	// a worker's CPU on a map's items, whose lines are debug).
	log := func(level slog.Level, msg string, args ...any) {
		if ctx := context.Background(); s.log.Enabled(ctx, level) {
			s.log.Log(ctx, level, msg, append([]any{"lease", l.ID, "run", l.RunID, "pipeline", l.Pipeline, "task", l.Task, "attempt", l.Attempt}, args...)...)
		}
	}
	// A map item's lines are debug: they come by the thousand a second
	// (a failed one's report is a warning).
	level := slog.LevelInfo
	if l.Spec.Item != nil || len(l.Spec.Items) > 0 {
		level = slog.LevelDebug
	}
	log(level, "attempt started")
	began := time.Now()
	sink := newLogSink(s, a)
	lw := logs.NewWriter(sink, l.Spec.MaskValues())
	req := s.execute(a, lw)
	_ = lw.Close() // waits until the log is sent, or cannot be
	req.LogSize = sink.sent()
	req.Log = sink.whole()
	defer s.sweepCache(context.WithoutCancel(a.report))
	size := reportSize(req)
	req = fitsReport(req, size)
	s.m.AttemptEnded(string(req.Outcome), time.Since(began))
	if a.isLost() {
		log(slog.LevelWarn, "attempt ended unreported: the server no longer holds its lease", "outcome", req.Outcome)
		return
	}
	err := s.rep.complete(a, req, size)
	switch {
	case err == nil:
		if req.Outcome != api.OutcomeSucceeded {
			level = slog.LevelWarn // a failure shows at the default level
		}
		log(level, "attempt reported", "outcome", req.Outcome, "exit_code", derefOr(req.ExitCode, -1), "message", req.Message, "log_bytes", req.LogSize+int64(len(req.Log)))
	case isLeaseLost(err):
		log(slog.LevelWarn, "the server refused the report: it no longer holds the lease (the attempt may run again elsewhere)", "outcome", req.Outcome, "err", err)
	default:
		log(slog.LevelError, "attempt not reported; the server will find its lease lost", "outcome", req.Outcome, "err", err)
	}
}

// execute prepares the attempt's files and environment on this machine and
// runs it with its kind, which says how it ended.
func (s *session) execute(a *leased, lw *logs.Writer) api.CompleteRequest {
	l := a.lease
	if !filesKind(l.Spec.Kind) {
		// An in-process kind (http, sql) reads its needs from the spec and
		// hands its result back itself: no directory to make and remove
		// (that was half a worker's CPU on a map of HTTP calls).
		h := &attempt.Host{
			Environ: slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TASUKI_TOKEN=") }),
			Dir:     s.dir, Stdout: lw.Stdout(), Stderr: lw.Stderr(), Grace: s.killGrace,
		}
		return complete(s.kinds.Run(a.proc, &l.Spec, h))
	}
	tmp, err := os.MkdirTemp("", "tasuki-attempt-")
	if err != nil {
		return complete(attempt.Failedf("worker %s: create the attempt's directory: %v", s.name, err))
	}
	defer os.RemoveAll(tmp)
	needs, err := writeNeeds(l.Spec.Needs, l.Spec.NeedFiles, tmp)
	if err != nil {
		return complete(attempt.Failedf("worker %s: %v", s.name, err))
	}
	if err := s.placeNeedFiles(a, filepath.Join(tmp, "needs"), needs); err != nil {
		return complete(l.Spec.Redact(attempt.Failedf("worker %s: %v", s.name, err)))
	}
	h := &attempt.Host{
		// The worker's own token never reaches the tasks it runs: a task
		// could print it to its log, and the log is readable by everyone
		// who reads runs.
		Environ:    slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TASUKI_TOKEN=") }),
		Dir:        s.dir,
		NeedFiles:  needs,
		ResultFile: filepath.Join(tmp, "result.json"),
		Stdout:     lw.Stdout(),
		Stderr:     lw.Stderr(),
		Grace:      s.killGrace,
		// The metadata of the datasets the task produces, sent back with
		// the report.
		DatasetFiles: attempt.DatasetFiles(tmp, "attempt", l.Spec.Produces),
	}
	if err := s.placeArtifacts(a, filepath.Join(tmp, "artifacts"), h); err != nil {
		return complete(l.Spec.Redact(attempt.Failedf("worker %s: %v", s.name, err)))
	}
	res := s.kinds.Run(a.proc, &l.Spec, h)
	return complete(s.collectOutputs(a, h, res))
}

// reportSize is the size of req in JSON, or a bound of it: a report with
// nothing but an outcome, a message, a result and a log (a map item's) is
// not encoded only to be measured.
func reportSize(req api.CompleteRequest) int {
	if len(req.Outputs)+len(req.Results)+len(req.Datasets) == 0 {
		// A character of the message takes at most 6 bytes escaped, the
		// log goes in base64, and the rest is under 512 bytes.
		return 512 + 6*len(req.Message) + len(req.Result) + (len(req.Log)+2)/3*4
	}
	b, err := json.Marshal(req)
	if err != nil {
		return 0
	}
	return len(b)
}

// complete is the report of an attempt that ended with res.
func complete(res attempt.Result) api.CompleteRequest {
	return api.CompleteRequest{Outcome: res.Outcome, ExitCode: res.ExitCode, Message: res.Message, Result: res.Result, Datasets: res.Datasets, Outputs: res.Outputs, Results: res.Results}
}

// writeNeeds writes the needs' results into dir, one file each, and returns
// the files by need id. The needs that come as files (a map's results,
// placeNeedFiles) are left out.
func writeNeeds(results map[string]json.RawMessage, shared []artifact.Need, dir string) (map[string]string, error) {
	files := make(map[string]string, len(results))
	for i, id := range slices.Sorted(maps.Keys(results)) {
		if slices.ContainsFunc(shared, func(n artifact.Need) bool { return n.Need == id }) {
			continue
		}
		data := results[id]
		if len(data) == 0 || string(data) == "null" {
			data = json.RawMessage("{}") // as the local runner writes a need without result
		}
		// Files are numbered, not named by id, so no id a server sends
		// can make a path outside dir.
		path := filepath.Join(dir, "need-"+strconv.Itoa(i)+".json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("write the result of need %s: %w", id, err)
		}
		files[id] = path
	}
	return files, nil
}

func derefOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// logSink is where an attempt's formatted log lines go: a buffer that a
// goroutine sends to the server in batches, at least every flushEvery,
// with the running offset, retrying what fails. It never blocks or fails a
// write (a task must not stall on its log). While the server does not
// take the log (it is unreachable, or slower than the task) the buffer is
// bounded by the worker's LogBuffer: past it, the first and last parts are
// kept and a line says how much was dropped between them (logs.Buffer),
// all sent once the server is back.
type logSink struct {
	s *session
	a *leased

	mu      sync.Mutex
	buf     logs.Buffer
	offset  int64 // bytes the server has taken
	closed  bool
	done    bool // nothing more will be sent
	sending bool // a request with bytes of the log is in flight
	// inline is the most bytes the report may carry as the whole log
	// (the lease's InlineLog), and kept is that log, set by Close when
	// nothing was sent before and everything fits: a short attempt (a map
	// item) then costs no log request.
	inline int
	kept   []byte

	// The sending goroutine starts only when there is something to send
	// that the report will not carry: a flushEvery after the first write
	// (timer), at once when the buffer is large, or at Close for what the
	// report cannot carry. Most items of a map end before, so they cost
	// neither a goroutine nor a ticker.
	started  bool
	timer    *time.Timer
	wake     chan struct{} // capacity 1
	finished chan struct{} // closed when the sending goroutine returns
}

func newLogSink(s *session, a *leased) *logSink {
	return &logSink{s: s, a: a, inline: a.lease.InlineLog, wake: make(chan struct{}, 1), finished: make(chan struct{}),
		buf: logs.Buffer{Limit: s.logBuffer, Why: "tasuki worker: the server did not take the log as fast as the task wrote it"}}
}

// startLocked starts the sending goroutine; k.mu is held.
func (k *logSink) startLocked() {
	if !k.started {
		k.started = true
		go k.run()
	}
}

// startLater is the timer's: the first write is flushEvery old.
func (k *logSink) startLater() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.closed {
		k.startLocked()
	}
}

// Write buffers p. It always succeeds.
func (k *logSink) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.done {
		k.buf.Write(p)
		if k.buf.Len() >= flushSize {
			k.startLocked()
			signal(k.wake)
		}
	}
	if !k.started && k.timer == nil {
		k.timer = time.AfterFunc(flushEvery, k.startLater)
	}
	return len(p), nil
}

// Close sends what is left and returns when it is sent or cannot be.
func (k *logSink) Close() error {
	k.mu.Lock()
	k.closed = true
	if k.timer != nil {
		k.timer.Stop()
	}
	if n := k.buf.Len(); k.offset == 0 && !k.sending && !k.buf.Full() && n > 0 && n <= k.inline {
		k.kept = k.buf.Pending()
		k.buf.Advance(n)
	}
	if k.buf.Len() > 0 {
		k.startLocked()
	}
	started := k.started
	k.mu.Unlock()
	if started {
		signal(k.wake)
		<-k.finished
	}
	return nil
}

// sent is the number of log bytes the server has taken.
func (k *logSink) sent() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.offset
}

// whole is the log for the report to carry (see kept), after Close.
func (k *logSink) whole() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.kept
}

// run sends the buffer every flushEvery, or at once when it is large or
// closed, until it is closed and empty or nothing more can be sent.
func (k *logSink) run() {
	defer close(k.finished)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-k.wake:
		case <-k.a.report.Done():
			k.stop()
			return
		}
		if k.flush() {
			return
		}
	}
}

// stop drops what is buffered and whatever comes later.
func (k *logSink) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.done = true
	k.buf = logs.Buffer{}
}

// flush sends the buffer in chunks of at most api.MaxLogChunk bytes. It
// reports whether the sink is finished: closed and sent, or unable to send.
func (k *logSink) flush() bool {
	id := k.a.lease.ID
	for {
		k.mu.Lock()
		pending := k.buf.Pending()
		if len(pending) == 0 {
			closed := k.closed
			k.mu.Unlock()
			return closed
		}
		// pending's bytes stay as they are until Advance: writes meanwhile
		// only append.
		chunk, offset := pending[:min(len(pending), api.MaxLogChunk)], k.offset
		k.sending = true
		k.mu.Unlock()

		err := k.s.retry(k.a.report, "send log", id, func(ctx context.Context) error {
			err := k.s.w.Client.AppendLog(ctx, id, offset, chunk)
			k.s.m.Call("log", err)
			return err
		})
		if err != nil {
			k.stop()
			switch {
			case isLeaseLost(err):
				k.s.log.Warn("the server refused the log: it no longer holds the lease; ending the attempt", "lease", id, "err", err)
				k.a.markLost()
			case k.a.report.Err() != nil:
				// The lease was lost or the worker gave up reporting: said
				// where that happened.
			default:
				k.s.log.Error("the server refused the log; the rest of the attempt's log is dropped", "lease", id, "err", err)
			}
			return true
		}
		k.mu.Lock()
		k.sending = false
		k.offset += int64(len(chunk))
		k.buf.Advance(len(chunk))
		k.mu.Unlock()
	}
}
