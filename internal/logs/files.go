package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// defaultPoll is how often a follower looks for output from a writer in
// another process, which cannot notify it. Writers in this process notify
// their followers at once.
const defaultPoll = 250 * time.Millisecond

// Files is a Store with one file per attempt: dir/<runID>/<taskID>.<attempt>.log.
// One directory per run (not per task) keeps a short task to one file created:
// directory creation showed up as a quarter of the CPU time of a run of
// 10,000 short tasks.
//
// While a Writer is open it holds an exclusive flock on its file; followers
// test that lock to know whether more output can come. The lock is released
// when the writer is closed or its process dies, so a follower in any
// process finishes instead of waiting forever on a worker that crashed.
//
// Data is written with plain write(2) calls, without fsync: a log survives
// tasuki crashing, not necessarily the machine losing power.
type Files struct {
	dir  string
	poll time.Duration

	mu     sync.Mutex
	topics map[Key]*topic // keys with an open writer or follower here

	dirsMu sync.Mutex
	dirs   map[string]bool // run directories known to exist (bounded: see maxDirs)

	// Limit bounds the size of each attempt's log file, in bytes; zero means
	// DefaultLimit and a negative value no bound. A log that would grow
	// past it keeps its first half and its last half, with a line saying
	// how much was dropped between them (see limitedTail). It is a setting
	// of the store, so it bounds the logs of local and remote attempts
	// alike; set it before the first Create.
	Limit int64

	// Ended, when set, tells Follow that an attempt has ended, so following
	// the log of an attempt that never printed anything (and so has no file)
	// finishes instead of waiting for the file. Servers and the CLI set it
	// from the store.
	Ended func(ctx context.Context, k Key) bool

	// Wrote, when set, is told how many bytes each write added to the
	// logs (for metrics). Set it before the first write.
	Wrote func(n int)
}

var _ Store = (*Files)(nil)

// NewFiles returns a Files store rooted at dir, which is created on demand.
func NewFiles(dir string) *Files {
	return &Files{dir: dir, poll: defaultPoll, topics: make(map[Key]*topic)}
}

// path is where the log of k lives.
func (f *Files) path(k Key) string {
	return filepath.Join(f.dir, strconv.FormatInt(k.RunID, 10), k.TaskID+"."+strconv.Itoa(k.Attempt)+".log")
}

// Create implements Store. The file itself is created at the first write: a
// task that prints nothing costs no file (creating files is a large part of
// the cost of a short task), and its log reads as empty.
func (f *Files) Create(ctx context.Context, k Key, secrets []string) (*Writer, error) {
	sink, err := f.Sink(ctx, k)
	if err != nil {
		return nil, err
	}
	return NewWriter(sink, secrets), nil
}

// maxDirs bounds the run directories Files remembers.
const maxDirs = 4096

// Sink returns a raw appender for the log of k: bytes written to it are
// already formatted lines (a remote worker formats them with NewWriter and
// sends them). Like a Writer, it creates the file at the first write, holds
// the writer's lock until Close, and wakes followers.
func (f *Files) Sink(ctx context.Context, k Key) (io.WriteCloser, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create log of %s: %w", k, err)
	}
	path := f.path(k)
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("create log of %s: %w", k, fs.ErrExist)
	}
	s, err := f.claimSink(k, path)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", k, err)
	}
	return s, nil
}

// Resume implements Store. The log's file, left by a writer that is gone
// (the process of this server before it restarted), is opened for
// appending; a log never written gets its file at the first write, as with
// Sink. Files cannot tell a file whose writer ended the log from one whose
// writer died: only a map item's log written whole into its run's pack is
// known complete.
func (f *Files) Resume(ctx context.Context, k Key) (io.WriteCloser, int64, error) {
	if err := k.validate(); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("resume log of %s: %w", k, err)
	}
	if _, _, ok, err := f.packed(k); err != nil || ok {
		if err == nil {
			err = ErrComplete
		}
		return nil, 0, fmt.Errorf("resume log of %s: %w", k, err)
	}
	s, err := f.claimSink(k, f.path(k))
	if err != nil {
		return nil, 0, fmt.Errorf("resume log of %s: %w", k, err)
	}
	file, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return s, 0, nil
	}
	var size int64
	if err == nil {
		size, err = resumeFile(file)
	}
	if err != nil {
		if file != nil {
			file.Close()
		}
		s.Close()
		return nil, 0, fmt.Errorf("resume log of %s: %w", k, err)
	}
	s.file, s.written = file, size
	offset := size
	if s.limit > 0 {
		end := make([]byte, min(size, 1024))
		n, _ := file.ReadAt(end, size-int64(len(end)))
		if note := headNoteLen(end[:n]); note > 0 {
			s.startTail()
			offset -= int64(note)
		}
	}
	return s, offset, nil
}

// claimSink returns a sink of k's log writing to path, once no writer of
// this process has it.
func (f *Files) claimSink(k Key, path string) (*fileSink, error) {
	t := f.acquire(k)
	if !t.claim() {
		f.release(k)
		return nil, fmt.Errorf("a writer is open: %w", fs.ErrExist)
	}
	return &fileSink{files: f, key: k, path: path, topic: t, limit: f.limit()}, nil
}

// resumeFile takes the writer's lock of a log file a writer left and
// returns its size. A follower testing the lock holds it shared for an
// instant, so it is tried a few times before the file is taken for
// another process's writer's.
func resumeFile(file *os.File) (int64, error) {
	for i := 0; ; i++ {
		err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return 0, fmt.Errorf("lock %s: %w", file.Name(), err)
		}
		if i == 100 {
			return 0, fmt.Errorf("a writer in another process has %s: %w", file.Name(), fs.ErrExist)
		}
		time.Sleep(time.Millisecond)
	}
	fi, err := file.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// sinkFrom returns a sink of the log of k from offset base on, for
// Cluster.Resume, which has the bytes before base in the database: its
// file holds the bytes from base on only. With base > 0, that file is not
// where Open, Size and Follow look (the Cluster reads such a log from the
// database, the file's bytes once shipped), so they never take it for the
// whole log. A file left at either place by a writer that is gone is
// replaced: whatever it holds past the database's end was never
// acknowledged to the worker, which sends it again. headFull says the
// log's head is full: what comes goes to its tail.
func (f *Files) sinkFrom(k Key, base int64, headFull bool) (*fileSink, error) {
	path := f.path(k)
	if base > 0 {
		path = filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".resumed")
	}
	s, err := f.claimSink(k, path)
	if err != nil {
		return nil, err
	}
	for _, p := range []string{f.path(k), path} {
		if err := removeStale(p); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.written = base
	if headFull && s.limit > 0 {
		s.startTail()
	}
	return s, nil
}

// removeStale removes a log file no writer holds.
func removeStale(path string) error {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	writing, err := locked(file)
	if err == nil && writing {
		err = fmt.Errorf("a writer in another process has %s: %w", path, fs.ErrExist)
	}
	if err == nil {
		err = os.Remove(path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// limit is the bound of one log file, or 0 for none.
func (f *Files) limit() int64 {
	switch {
	case f.Limit == 0:
		return DefaultLimit
	case f.Limit < 0:
		return 0
	}
	return max(f.Limit, minLimit)
}

// createFile creates the log file of k, locked for its writer.
func (f *Files) createFile(k Key, path string) (*os.File, error) {
	dir := filepath.Dir(path)
	f.dirsMu.Lock()
	known := f.dirs[dir]
	f.dirsMu.Unlock()
	if !known {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create log of %s: %w", k, err)
		}
		f.dirsMu.Lock()
		if f.dirs == nil || len(f.dirs) >= maxDirs {
			// Forget them all rather than grow for ever: a directory not
			// remembered costs one MkdirAll on its next log.
			f.dirs = map[string]bool{}
		}
		f.dirs[dir] = true
		f.dirsMu.Unlock()
	}
	// Lock a temporary file, then link it into place: a follower must never
	// see the log without its writer's lock, or it would take the log for
	// finished. Linking fails if the log exists, like O_EXCL.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", k, err)
	}
	defer os.Remove(tmp.Name())
	if err := syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create log of %s: lock %s: %w", k, tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create log of %s: %w", k, err)
	}
	return tmp, nil
}

// Open implements Store.
func (f *Files) Open(ctx context.Context, k Key, offset int64) (io.ReadCloser, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("open log of %s at %d: %w", k, offset, errNegativeOffset)
	}
	file, err := os.Open(f.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		if r, ok, err := f.openPacked(k, offset); ok || err != nil {
			return r, err
		}
	}
	if errors.Is(err, fs.ErrNotExist) && offset == 0 {
		// Never written (the attempt printed nothing, or has not yet).
		return io.NopCloser(strings.NewReader("")), nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", k, err)
	}
	if _, err := file.Seek(offset, io.SeekStart); err != nil {
		file.Close()
		return nil, fmt.Errorf("open log of %s at %d: %w", k, offset, err)
	}
	return file, nil
}

// Size implements Store.
func (f *Files) Size(ctx context.Context, k Key) (int64, error) {
	if err := k.validate(); err != nil {
		return 0, err
	}
	fi, err := os.Stat(f.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		_, e, _, err := f.packed(k)
		return e.length, err // 0: never written
	}
	if err != nil {
		return 0, fmt.Errorf("size of log of %s: %w", k, err)
	}
	return fi.Size(), nil
}

// Follow implements Store. It wakes up when a writer in this process
// appends, and every poll interval to catch writers in other processes.
func (f *Files) Follow(ctx context.Context, k Key, offset int64, w io.Writer) (int64, error) {
	if err := k.validate(); err != nil {
		return offset, err
	}
	if offset < 0 {
		return offset, fmt.Errorf("follow log of %s at %d: %w", k, offset, errNegativeOffset)
	}
	t := f.acquire(k)
	defer f.release(k)
	tick := time.NewTicker(f.poll)
	defer tick.Stop()

	fl := follower{w: w, pos: offset, buf: make([]byte, 16<<10)}
	defer fl.close()
	for {
		// Take the wake-up channel before looking, so an append made while
		// we look is not missed.
		changed := t.changed()
		done, err := fl.step(f.path(k))
		if err != nil {
			return fl.pos, fmt.Errorf("follow log of %s: %w", k, err)
		}
		if done {
			return fl.pos, nil
		}
		if fl.file == nil {
			if pos, ok, err := f.followPacked(k, fl.pos, w); ok || err != nil {
				return pos, err
			}
		}
		if fl.file == nil && (t.closed() || (f.Ended != nil && f.Ended(ctx, k))) {
			// The writer is gone and the log was never created: unless it
			// appeared just now (as a file, or whole in its pack before the
			// attempt was recorded ended), the attempt printed nothing.
			if done, err := fl.step(f.path(k)); err != nil || done || fl.file != nil {
				if err != nil || done {
					return fl.pos, err
				}
				continue
			}
			pos, _, err := f.followPacked(k, fl.pos, w)
			return pos, err
		}
		select {
		case <-ctx.Done():
			return fl.pos, ctx.Err()
		case <-changed:
		case <-tick.C:
		}
	}
}

// maxFollowBuf bounds a follower's buffer. It holds the longest line a
// Writer makes (MaxLine of text, a little more when a secret straddles the
// cut, plus the stamp) with room to spare; followers start much smaller, as
// there may be many of them.
const maxFollowBuf = 4 * MaxLine

// follower is the state of one Follow call.
type follower struct {
	w    io.Writer
	file *os.File // nil until the log exists
	pos  int64    // offset of buf[0] in the log
	buf  []byte   // read from the log, not yet given to w
	n    int      // bytes used in buf
}

// step copies what the log holds now. It reports done when no writer holds
// the log any longer and everything has been copied.
func (fl *follower) step(path string) (done bool, err error) {
	if fl.file == nil {
		file, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // not created yet
		}
		if err != nil {
			return false, err
		}
		if _, err := file.Seek(fl.pos, io.SeekStart); err != nil {
			file.Close()
			return false, err
		}
		fl.file = file
	}
	// Check for a writer before reading: if there is none now, there is
	// nothing more to come after what the read below finds.
	writing, err := locked(fl.file)
	if err != nil {
		return false, err
	}
	for {
		m, err := fl.file.Read(fl.buf[fl.n:])
		fl.n += m
		if werr := fl.deliver(false); werr != nil {
			return false, werr
		}
		if err == io.EOF || (err == nil && m == 0) {
			break
		}
		if err != nil {
			return false, err
		}
	}
	if writing {
		return false, nil
	}
	return true, fl.deliver(true) // a last line without newline, if any
}

// deliver writes the whole lines in buf to w, or everything if all, and
// keeps the rest.
func (fl *follower) deliver(all bool) error {
	end := fl.n
	if !all {
		end = bytes.LastIndexByte(fl.buf[:fl.n], '\n') + 1
		if end == 0 && fl.n == len(fl.buf) {
			if len(fl.buf) < maxFollowBuf {
				// A line longer than the buffer: make room for it.
				fl.buf = append(fl.buf[:fl.n], make([]byte, len(fl.buf))...)
				return nil
			}
			end = fl.n // longer than any line a Writer makes: pass it on in pieces
		}
	}
	if end == 0 {
		return nil
	}
	if _, err := fl.w.Write(fl.buf[:end]); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	fl.pos += int64(end)
	fl.n = copy(fl.buf, fl.buf[end:fl.n])
	return nil
}

func (fl *follower) close() {
	if fl.file != nil {
		fl.file.Close()
	}
}

// locked reports whether a writer holds the log open, in any process.
func locked(file *os.File) (bool, error) {
	fd := int(file.Fd())
	err := syscall.Flock(fd, syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("test writer lock: %w", err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_UN); err != nil {
		return false, fmt.Errorf("test writer lock: %w", err)
	}
	return false, nil
}

// topic wakes the followers of one key when its writer appends.
type topic struct {
	refs int // guarded by Files.mu

	mu       sync.Mutex
	ch       chan struct{} // closed on the next append; nil if nobody waits
	writing  bool          // a writer of this process has the key
	finished bool          // that writer closed (maybe without writing)
}

// claim marks the key as written by a new writer, or reports false when a
// writer of this process already has it.
func (t *topic) claim() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.writing {
		return false
	}
	t.writing, t.finished = true, false
	return true
}

// finish records that the writer closed.
func (t *topic) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writing, t.finished = false, true
}

// closed reports whether a writer of this process closed the key.
func (t *topic) closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finished
}

// changed returns a channel that is closed at the next append.
func (t *topic) changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ch == nil {
		t.ch = make(chan struct{})
	}
	return t.ch
}

// notify wakes everyone waiting on changed. It allocates nothing when
// nobody follows, which is the common case for a writer.
func (t *topic) notify() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ch != nil {
		close(t.ch)
		t.ch = nil
	}
}

// acquire returns the topic of k, creating it for the first user.
func (f *Files) acquire(k Key) *topic {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topics[k]
	if t == nil {
		t = &topic{}
		f.topics[k] = t
	}
	t.refs++
	return t
}

// release drops a use of k's topic, forgetting it after the last, so the
// map only holds logs being written or followed.
func (f *Files) release(k Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.topics[k]; t != nil {
		if t.refs--; t.refs == 0 {
			delete(f.topics, k)
		}
	}
}

// fileSink appends a Writer's lines to the log file, created at the first
// write, and wakes followers.
type fileSink struct {
	files   *Files
	key     Key
	path    string
	file    *os.File // nil until the first write
	topic   *topic
	limit   int64        // bound of the file; 0 for none
	written int64        // bytes in the file
	tail    *limitedTail // past the head: where output goes; nil before
}

func (s *fileSink) Write(p []byte) (int, error) {
	if s.file == nil {
		file, err := s.files.createFile(s.key, s.path)
		if err != nil {
			return 0, err
		}
		s.file = file
	}
	if s.tail != nil {
		return len(p), s.tail.add(p)
	}
	if head := headSize(s.limit); s.limit > 0 && s.written+int64(len(p)) > head {
		return len(p), s.overflow(p, head)
	}
	n, err := s.file.Write(p)
	s.written += int64(n)
	if s.files.Wrote != nil {
		s.files.Wrote(n)
	}
	s.topic.notify()
	return n, err
}

// overflow writes what of p still fits the head, a line saying that the
// rest is kept as its tail, and starts the tail with the rest.
func (s *fileSink) overflow(p []byte, head int64) error {
	cut := 0
	if room := head - s.written; room > 0 {
		cut = bytes.LastIndexByte(p[:room], '\n') + 1
	}
	rest := p[cut:]
	note := noteLine(rest, fmt.Sprintf(headNote, sizeText(s.limit), sizeText(tailSize(s.limit))))
	n, err := s.file.Write(append(p[:cut:cut], note...))
	s.written += int64(n)
	s.topic.notify()
	if err != nil {
		return err
	}
	s.startTail()
	return s.tail.add(rest)
}

// startTail sends what comes next to the tail: the head is full.
func (s *fileSink) startTail() {
	s.tail = &limitedTail{dir: filepath.Dir(s.path), name: "." + filepath.Base(s.path), segMax: tailSize(s.limit) / 2}
}

// Close closes the file, which releases the writer's lock, and only then
// wakes followers, so that they see the log as finished. A log past its
// limit first gets the line saying what was dropped and the tail.
func (s *fileSink) Close() error {
	var err error
	if s.tail != nil {
		err = s.tail.finish(s.file)
	}
	if s.file != nil {
		if cerr := s.file.Close(); err == nil {
			err = cerr
		}
	}
	s.topic.finish()
	s.topic.notify()
	s.files.release(s.key)
	return err
}
