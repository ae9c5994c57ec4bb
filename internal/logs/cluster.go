package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Cluster is the Store of servers that share a database (PostgreSQL): every
// log is kept as chunks in it (store.Logs), compressed, so any server reads
// any log, follows it live while another server writes it, and still has
// it after the server that wrote it changed leadership, was killed or lost
// its disk.
//
// The local file is the write buffer: a log is written through Files (its
// bound, its lock, its wake-ups) and what the file gains is shipped to the
// database every Ship interval, when a remote worker's append is
// acknowledged (Syncer), and when the log is closed, the last chunk
// marked final; the file is then removed. The database copy is the file's
// bytes, so offsets are the same wherever a log is read. A log the
// database does not have (written before this store was used, or whose
// last shipping failed) is read from the local files. A log a server
// takes over from another (Resume) goes on in a file of the bytes past
// what the database has, which is never read as the log.
//
// A server alone on SQLite uses Files: its disk is the only disk, and a
// file per log costs a write where the database would cost a write, a
// compression and a transaction on the single writer every run shares.
type Cluster struct {
	Local *Files
	DB    Chunks
	// Ended tells Follow that an attempt has ended, so following the log
	// of an attempt whose writer died (its server killed) or that printed
	// nothing finishes. Servers set it from the store.
	Ended  func(ctx context.Context, k Key) bool
	Logger *slog.Logger
	// Ship is how often an open log's new bytes go to the database
	// (DefaultShip when zero), and Poll how often a follower looks for
	// chunks shipped by another server (defaultPoll when zero).
	Ship time.Duration
	Poll time.Duration
	// Fenced, when set, writes the chunks of the logs written here (Sink,
	// Resume) in place of DB.PutLogChunks. Servers fence it by their
	// leadership (store.Logs.PutLogChunksFenced): a leader deposed while
	// it was frozen (SIGSTOP, a paused VM) that wakes up must neither add
	// to a log its successor resumed (Resume) nor end it. A refusal wraps
	// ErrDeposed and is not tried again; like any failed ship, it keeps a
	// worker from being told its part was taken, so the worker sends it to
	// the new leader.
	Fenced func(ctx context.Context, chunks ...Chunk) error

	mu     sync.Mutex
	topics map[Key]*topic

	// ItemFlush is how often the item logs WriteWhole queued go to the
	// database (DefaultItemFlush when zero).
	ItemFlush time.Duration

	imu     sync.Mutex
	queue   []Chunk        // item logs not yet in the database, in order
	pending map[Key][]byte // their bytes, for this server's readers
	queued  int            // bytes in queue
	stop    chan struct{}  // closed by Close
	closed  bool           // Close was called: WriteWhole writes at once
	flusher chan struct{}  // closed when the flushing goroutine returns; nil before it starts
	fmu     sync.Mutex     // one flush at a time
	// flushing: a Flush took the queue and writes it (guarded by imu).
	flushing bool

	codecOnce sync.Once
	enc       *zstd.Encoder
	dec       *zstd.Decoder
}

// ErrDeposed is what Cluster.Fenced returns once the server no longer
// leads: the logs it was writing go on elsewhere.
var ErrDeposed = errors.New("this server no longer leads: the log goes on on the leader")

// DefaultShip is how long a line waits in a server's log file before it is
// in the database: like a worker's flush interval, it keeps a follower on
// another server close to live without a transaction per line.
const DefaultShip = 200 * time.Millisecond

// shipChunk bounds the bytes of log one chunk holds: a read decompresses at
// most this much per chunk, and zstd has all the context it needs.
const shipChunk = 1 << 20

// minCompress is the shortest chunk worth compressing; shorter ones (and
// any that compression does not shrink) are stored as they are.
const minCompress = 128

var _ Store = (*Cluster)(nil)

// NewCluster returns a Cluster writing through local into db.
func NewCluster(local *Files, db Chunks, logger *slog.Logger) *Cluster {
	if logger == nil {
		logger = slog.Default()
	}
	return &Cluster{Local: local, DB: db, Logger: logger, topics: map[Key]*topic{}}
}

// Syncer is a log sink whose Sync returns once everything written to it
// is where every server reads it: the lease broker acknowledges a remote
// worker's append only then, so the worker keeps (and resends) what a
// server that dies meanwhile had not stored.
type Syncer interface {
	Sync(ctx context.Context) error
}

func (c *Cluster) codec() (*zstd.Encoder, *zstd.Decoder) {
	c.codecOnce.Do(func() {
		// Errors are only for invalid options.
		c.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(shipChunk),
			zstd.WithEncoderConcurrency(2), zstd.WithLowerEncoderMem(true))
		c.dec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(MaxChunk),
			zstd.WithDecodeAllCapLimit(true))
	})
	return c.enc, c.dec
}

// chunk makes the chunk of k holding data at offset.
func (c *Cluster) chunk(k Key, offset int64, data []byte, final bool) Chunk {
	ch := Chunk{RunID: k.RunID, TaskID: k.TaskID, Attempt: k.Attempt, Offset: offset, Length: int64(len(data)),
		Codec: CodecRaw, Data: data, Final: final}
	if len(data) >= minCompress {
		enc, _ := c.codec()
		if z := enc.EncodeAll(data, make([]byte, 0, len(data)/4)); len(z) < len(data) {
			ch.Codec, ch.Data = CodecZstd, z
		}
	}
	return ch
}

// decode returns the bytes of log a chunk holds.
func (c *Cluster) decode(ch Chunk) ([]byte, error) {
	if ch.Codec == CodecRaw {
		return ch.Data, nil
	}
	if ch.Codec != CodecZstd {
		return nil, fmt.Errorf("log chunk at %d: unknown codec %d", ch.Offset, ch.Codec)
	}
	_, dec := c.codec()
	data, err := dec.DecodeAll(ch.Data, make([]byte, 0, ch.Length))
	if err == nil && int64(len(data)) != ch.Length {
		err = fmt.Errorf("%d bytes, want %d", len(data), ch.Length)
	}
	if err != nil {
		return nil, fmt.Errorf("decode log chunk at %d: %w", ch.Offset, err)
	}
	return data, nil
}

// Create implements Store.
func (c *Cluster) Create(ctx context.Context, k Key, secrets []string) (*Writer, error) {
	sink, err := c.Sink(ctx, k)
	if err != nil {
		return nil, err
	}
	return NewWriter(sink, secrets), nil
}

// Sink implements Store: a Files sink whose file is shipped to the
// database as it grows. Its Sync ships at once (Syncer). A log the
// database has already is refused like an existing file.
func (c *Cluster) Sink(ctx context.Context, k Key) (io.WriteCloser, error) {
	sink, _, err := c.sink(ctx, k)
	return sink, err
}

// sink is Sink, and says whether the database answered (false: it could
// not be asked whether it has the log).
func (c *Cluster) sink(ctx context.Context, k Key) (io.WriteCloser, bool, error) {
	if err := k.validate(); err != nil {
		return nil, true, err
	}
	if _, ok, err := c.DB.LogEnd(ctx, k.RunID, k.TaskID, k.Attempt); err != nil {
		return nil, false, fmt.Errorf("create log of %s: %w", k, err)
	} else if ok {
		return nil, true, fmt.Errorf("create log of %s: %w", k, fs.ErrExist)
	}
	local, err := c.Local.Sink(ctx, k)
	if err != nil {
		return nil, true, err
	}
	return &shipSink{c: c, k: k, local: local, path: c.Local.path(k)}, true, nil
}

// Resume implements Store: the log goes on from the end of its chunks in
// the database (base), where the server that wrote it before left it. That
// server shipped every part it acknowledged to the worker (Sync), so
// base is all the worker needs not send again; what its file held past
// base was never acknowledged, and the worker sends it again. The new
// file holds the bytes from base on, is shipped at their offsets in the
// log, and lies where reads never look (Files.sinkFrom): every server,
// this one included, reads and follows the log in the database, where the
// file's bytes arrive every Ship. A log whose final chunk is in cannot be
// resumed.
func (c *Cluster) Resume(ctx context.Context, k Key) (io.WriteCloser, int64, error) {
	if err := k.validate(); err != nil {
		return nil, 0, err
	}
	if _, ok := c.queuedItem(k); ok {
		return nil, 0, fmt.Errorf("resume log of %s: %w", k, ErrComplete)
	}
	end, ok, err := c.DB.LogEnd(ctx, k.RunID, k.TaskID, k.Attempt)
	if err != nil {
		return nil, 0, fmt.Errorf("resume log of %s: %w", k, err)
	}
	if ok && end.Final {
		return nil, 0, fmt.Errorf("resume log of %s: %w", k, ErrComplete)
	}
	base, offset, headFull := int64(0), int64(0), false
	if ok {
		// The last line says whether the head is full (see Files.Limit).
		r := &chunkReader{ctx: ctx, c: c, k: k, pos: max(end.End()-1024, 0)}
		last, err := io.ReadAll(io.LimitReader(r, end.End()-r.pos))
		if err != nil {
			return nil, 0, fmt.Errorf("resume log of %s: %w", k, err)
		}
		note := headNoteLen(last)
		base, offset, headFull = end.End(), end.End()-int64(note), note > 0
	}
	local, err := c.Local.sinkFrom(k, base, headFull)
	if err != nil {
		return nil, 0, fmt.Errorf("resume log of %s: %w", k, err)
	}
	return &shipSink{c: c, k: k, local: local, path: local.path, base: base, shipped: base}, offset, nil
}

// shipSink writes to the local file and ships what it gains.
type shipSink struct {
	c     *Cluster
	k     Key
	local io.WriteCloser
	path  string
	base  int64 // the offset in the log of the file's first byte (Resume)

	mu       sync.Mutex // held while shipping, so ships go in order
	shipped  int64      // bytes of the log in the database (base and those of the file)
	finished bool       // the final chunk is in: the file may be gone
	warned   bool       // a failed ship was logged

	tmu    sync.Mutex
	timer  *time.Timer // a ship is due; nil if none
	closed bool
}

var _ Syncer = (*shipSink)(nil)

func (s *shipSink) Write(p []byte) (int, error) {
	n, err := s.local.Write(p)
	s.tmu.Lock()
	if !s.closed && s.timer == nil {
		s.timer = time.AfterFunc(s.c.ship(), s.tick)
	}
	s.tmu.Unlock()
	return n, err
}

func (c *Cluster) ship() time.Duration {
	if c.Ship > 0 {
		return c.Ship
	}
	return DefaultShip
}

// How much send ships.
type shipping int

const (
	shipLines shipping = iota // the whole lines (the timer's ships)
	shipAll                   // every byte, a line cut maybe (Sync's, before the worker is told)
	shipFinal                 // every byte, and the log's end (Close's)
)

// tick ships on the timer; a failure is logged once and tried again a
// second later (or at Sync, or at Close).
func (s *shipSink) tick() {
	s.tmu.Lock()
	s.timer = nil
	closed := s.closed
	s.tmu.Unlock()
	if closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.send(ctx, shipLines); err != nil {
		s.mu.Lock()
		warned := s.warned
		s.warned = true
		s.mu.Unlock()
		if errors.Is(err, ErrDeposed) {
			return // for good
		}
		if !warned {
			s.c.Logger.Warn("ship a log to the database; trying again", "log", s.k.String(), "err", err)
		}
		s.tmu.Lock()
		if !s.closed && s.timer == nil {
			s.timer = time.AfterFunc(max(s.c.ship(), time.Second), s.tick)
		}
		s.tmu.Unlock()
	}
}

// put writes the chunks of a log written here (Fenced).
func (c *Cluster) put(ctx context.Context, chunks ...Chunk) error {
	if c.Fenced != nil {
		return c.Fenced(ctx, chunks...)
	}
	return c.DB.PutLogChunks(ctx, chunks...)
}

// Sync implements Syncer. It ships every byte written, a line cut short
// included: whatever the worker is told was taken must be in the
// database, where a server that takes the attempt over resumes its log
// (Resume), since the worker never sends it again.
func (s *shipSink) Sync(ctx context.Context) error { return s.send(ctx, shipAll) }

// send ships what the file holds past what was shipped: with shipLines,
// whole lines only (a line is shipped cut only when a chunk holds no line
// end); with shipFinal, the last chunk marks the log complete. A log that
// never got a file ships nothing: followers learn its end from Ended.
func (s *shipSink) send(ctx context.Context, how shipping) error {
	final := how == shipFinal
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return nil // a tick that fired as the sink closed
	}
	file, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) && s.shipped == s.base {
		if final && s.base > 0 {
			// A resumed log that got nothing more: its end is marked.
			if err := s.c.put(ctx, Chunk{RunID: s.k.RunID, TaskID: s.k.TaskID, Attempt: s.k.Attempt, Offset: s.base, Final: true}); err != nil {
				return fmt.Errorf("ship log of %s: %w", s.k, err)
			}
			s.c.wake(s.k)
		}
		s.finished = final
		return nil
	}
	if err != nil {
		return fmt.Errorf("ship log of %s: %w", s.k, err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return fmt.Errorf("ship log of %s: %w", s.k, err)
	}
	var chunks []Chunk
	for at, size := s.shipped, s.base+fi.Size(); at < size; {
		buf := make([]byte, min(size-at, shipChunk))
		n, err := file.ReadAt(buf, at-s.base)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("ship log of %s: %w", s.k, err)
		}
		buf = buf[:n]
		if how == shipLines && at+int64(n) >= size {
			// The last piece: whole lines only, unless it is a full chunk
			// of one line.
			if cut := bytes.LastIndexByte(buf, '\n') + 1; cut > 0 || n < shipChunk {
				buf = buf[:cut]
			}
		}
		if len(buf) == 0 {
			break
		}
		chunks = append(chunks, s.c.chunk(s.k, at, buf, false))
		at += int64(len(buf))
	}
	if final {
		if len(chunks) > 0 {
			chunks[len(chunks)-1].Final = true
		} else {
			chunks = append(chunks, Chunk{RunID: s.k.RunID, TaskID: s.k.TaskID, Attempt: s.k.Attempt, Offset: s.shipped, Final: true})
		}
	}
	if len(chunks) == 0 {
		return nil
	}
	// One transaction: a follower never sees a log's end without its
	// bytes. Large logs go in several, a few MiB each.
	for start := 0; start < len(chunks); start += 4 {
		part := chunks[start:min(start+4, len(chunks))]
		if err := s.c.put(ctx, part...); err != nil {
			return fmt.Errorf("ship log of %s: %w", s.k, err)
		}
		s.shipped = part[len(part)-1].End()
	}
	s.finished = final
	s.c.wake(s.k)
	return nil
}

// Close closes the file (a log past its bound gets its tail), then ships
// the rest, marked final, and removes the file: the database has it. If
// the database cannot be reached for a while, the file stays, and this
// server reads the log from it.
func (s *shipSink) Close() error {
	s.tmu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.tmu.Unlock()
	err := s.local.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		serr := s.send(ctx, shipFinal)
		if serr == nil {
			break
		}
		if errors.Is(serr, ErrDeposed) || !sleep(ctx, wait) {
			s.c.Logger.Error("ship a log to the database: it stays on this server's disk", "log", s.k.String(), "err", serr)
			return errors.Join(err, serr)
		}
		wait = min(2*wait, 5*time.Second)
	}
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		s.c.Logger.Warn("remove a shipped log file", "log", s.k.String(), "err", rerr)
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// WriteWhole implements Store. The logs of map items are queued and go to
// the database every ItemFlush, a row each, in one statement with all the
// others queued meanwhile (a map of 100,000 short items costs 100,000
// rows, not 100,000 files, and a few hundred transactions); this server
// reads them from the queue until then, others a moment later (see
// Follow). Other logs are written as if through Sink, or, when the
// database does not answer (a restart), queued like an item's: they are
// written when it answers again, and a runner writes what is queued before
// it records the end of the attempts (Flush), so the report of an attempt
// that comes with its whole log during an outage does not lose the log.
func (c *Cluster) WriteWhole(ctx context.Context, logs []Whole) error {
	var chunks []Chunk
	var queued []Whole
	var errs []error
	for _, w := range logs {
		if err := w.Key.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(w.Data) == 0 {
			continue
		}
		if _, _, ok := ParseItemTask(w.Key.TaskID); !ok || len(w.Data) > shipChunk {
			queue, err := c.writeWhole(ctx, w)
			if !queue {
				if err != nil {
					errs = append(errs, err)
				}
				continue
			}
			c.Logger.Warn("the database does not answer: the log is queued until it does", "log", w.Key.String(), "err", err)
		}
		chunks = append(chunks, c.chunk(w.Key, 0, w.Data, true))
		queued = append(queued, w)
	}
	c.enqueue(ctx, chunks, queued)
	return errors.Join(errs...)
}

// writeWhole writes one whole log through a sink, or says to queue it
// (the database did not answer before anything was written, and the log
// fits in a chunk).
func (c *Cluster) writeWhole(ctx context.Context, w Whole) (queue bool, err error) {
	sink, answered, err := c.sink(ctx, w.Key)
	if err != nil {
		return !answered && len(w.Data) <= shipChunk, err
	}
	_, err = sink.Write(w.Data)
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("write log of %s: %w", w.Key, err)
	}
	return false, nil
}

// DefaultItemFlush is how long the logs of map items wait in a server
// before they go to the database, in one statement with every other item
// log that came meanwhile. Written with each batch of worker reports, they
// cost a transaction per batch, which on a busy map was more than all the
// rest of the database's work per item (the results of items are applied
// in batches of their own).
const DefaultItemFlush = 100 * time.Millisecond

// maxQueued bounds the bytes of item logs waiting: past it, WriteWhole
// writes them itself before it returns.
const maxQueued = 8 << 20

// enqueue queues the chunks of item logs (wholes holds their bytes) for
// the flusher; this server reads them from the queue meanwhile.
func (c *Cluster) enqueue(ctx context.Context, chunks []Chunk, wholes []Whole) {
	if len(chunks) == 0 {
		return
	}
	c.imu.Lock()
	if c.pending == nil {
		c.pending = map[Key][]byte{}
	}
	for _, w := range wholes {
		c.pending[w.Key] = w.Data
	}
	for _, ch := range chunks {
		c.queue = append(c.queue, ch)
		c.queued += len(ch.Data)
	}
	full := c.queued > maxQueued || c.closed
	if c.flusher == nil && !c.closed {
		c.stop, c.flusher = make(chan struct{}), make(chan struct{})
		go c.flushLoop(c.stop, c.flusher)
	}
	c.imu.Unlock()
	for _, ch := range chunks {
		c.wake(Key{RunID: ch.RunID, TaskID: ch.TaskID, Attempt: ch.Attempt})
	}
	if full {
		if err := c.Flush(context.WithoutCancel(ctx)); err != nil {
			c.Logger.Warn("write item logs to the database; trying again", "err", err)
		}
	}
}

func (c *Cluster) itemFlush() time.Duration {
	if c.ItemFlush > 0 {
		return c.ItemFlush
	}
	return DefaultItemFlush
}

// flushLoop writes the queued item logs every ItemFlush until stop.
func (c *Cluster) flushLoop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(c.itemFlush())
	defer t.Stop()
	warned := false
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := c.Flush(ctx)
		cancel()
		if err != nil && !warned {
			c.Logger.Warn("write item logs to the database; trying again", "err", err)
		}
		warned = err != nil
	}
}

// Flush writes the queued logs to the database now. With nothing queued
// or being written, it returns at once (a runner calls it before each
// commit).
func (c *Cluster) Flush(ctx context.Context) error {
	c.imu.Lock()
	idle := len(c.queue) == 0 && !c.flushing
	c.imu.Unlock()
	if idle {
		return nil
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.imu.Lock()
	batch := c.queue
	c.queue, c.queued = nil, 0
	c.flushing = true
	c.imu.Unlock()
	defer func() {
		c.imu.Lock()
		c.flushing = false
		c.imu.Unlock()
	}()
	for start := 0; start < len(batch); start += 2000 {
		part := batch[start:min(start+2000, len(batch))]
		if err := c.DB.PutLogChunks(ctx, part...); err != nil {
			c.imu.Lock() // back in line, first
			c.queue, c.queued = append(batch[start:len(batch):len(batch)], c.queue...), 0
			for _, ch := range c.queue {
				c.queued += len(ch.Data)
			}
			c.imu.Unlock()
			return fmt.Errorf("write %d item logs: %w", len(batch)-start, err)
		}
		c.imu.Lock()
		for _, ch := range part {
			delete(c.pending, Key{RunID: ch.RunID, TaskID: ch.TaskID, Attempt: ch.Attempt})
		}
		c.imu.Unlock()
	}
	return nil
}

// Close writes the queued item logs and stops the flusher. Servers close
// their log store before their database.
func (c *Cluster) Close(ctx context.Context) error {
	c.imu.Lock()
	stop, done := c.stop, c.flusher
	if stop != nil && !c.closed {
		close(stop)
	}
	c.closed = true
	c.imu.Unlock()
	if done != nil {
		<-done
	}
	return c.Flush(ctx)
}

// queuedItem returns the bytes of a log still in the queue (an item's, or
// one queued while the database did not answer).
func (c *Cluster) queuedItem(k Key) ([]byte, bool) {
	c.imu.Lock()
	defer c.imu.Unlock()
	data, ok := c.pending[k]
	return data, ok
}

// writeWhole writes one whole log through s's Sink.
func writeWhole(ctx context.Context, s interface {
	Sink(context.Context, Key) (io.WriteCloser, error)
}, w Whole) error {
	sink, err := s.Sink(ctx, w.Key)
	if err != nil {
		return err
	}
	_, err = sink.Write(w.Data)
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write log of %s: %w", w.Key, err)
	}
	return nil
}

// Open implements Store.
func (c *Cluster) Open(ctx context.Context, k Key, offset int64) (io.ReadCloser, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("open log of %s at %d: %w", k, offset, errNegativeOffset)
	}
	if data, ok := c.queuedItem(k); ok {
		return io.NopCloser(bytes.NewReader(data[min(offset, int64(len(data))):])), nil
	}
	_, ok, err := c.DB.LogEnd(ctx, k.RunID, k.TaskID, k.Attempt)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", k, err)
	}
	if !ok {
		return c.Local.Open(ctx, k, offset)
	}
	return &chunkReader{ctx: ctx, c: c, k: k, pos: offset}, nil
}

// chunkReader reads a log's chunks from pos on, a page at a time.
type chunkReader struct {
	ctx  context.Context
	c    *Cluster
	k    Key
	pos  int64  // offset of buf[0]
	buf  []byte // decoded, not yet read
	done bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		chunks, err := r.c.DB.LogChunks(r.ctx, r.k.RunID, r.k.TaskID, r.k.Attempt, r.pos, 4)
		if err != nil {
			return 0, fmt.Errorf("read log of %s: %w", r.k, err)
		}
		r.done = len(chunks) == 0
		for _, ch := range chunks {
			if ch.End() <= r.pos {
				r.done = r.done || ch.Final
				continue
			}
			data, err := r.c.decode(ch)
			if err != nil {
				return 0, fmt.Errorf("read log of %s: %w", r.k, err)
			}
			r.buf = append(r.buf, data[max(r.pos-ch.Offset, 0):]...)
			r.pos = ch.End()
			r.done = r.done || ch.Final
		}
		if len(r.buf) == 0 {
			r.done = true
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *chunkReader) Close() error { return nil }

// Size implements Store.
func (c *Cluster) Size(ctx context.Context, k Key) (int64, error) {
	if err := k.validate(); err != nil {
		return 0, err
	}
	if data, ok := c.queuedItem(k); ok {
		return int64(len(data)), nil
	}
	end, ok, err := c.DB.LogEnd(ctx, k.RunID, k.TaskID, k.Attempt)
	if err != nil {
		return 0, fmt.Errorf("size of log of %s: %w", k, err)
	}
	if !ok {
		return c.Local.Size(ctx, k)
	}
	return end.End(), nil
}

// Follow implements Store. It reads the chunks past offset, wakes when
// this server ships some, and polls for those of other servers. It ends
// at the final chunk; or, for a log whose writer died before shipping it
// (the attempt has ended without one), once the attempt has ended and
// nothing more came. A log the database does not have but the local files
// do is followed there.
func (c *Cluster) Follow(ctx context.Context, k Key, offset int64, w io.Writer) (int64, error) {
	if err := k.validate(); err != nil {
		return offset, err
	}
	if offset < 0 {
		return offset, fmt.Errorf("follow log of %s at %d: %w", k, offset, errNegativeOffset)
	}
	t := c.acquire(k)
	defer c.release(k)
	poll := c.Poll
	if poll <= 0 {
		poll = defaultPoll
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()

	pos := offset // offset of pending[0]
	var pending []byte
	seen := false // the database has chunks of the log
	deliver := func(all bool) error {
		end := len(pending)
		if !all {
			end = bytes.LastIndexByte(pending, '\n') + 1
		}
		if end == 0 {
			return nil
		}
		if _, err := w.Write(pending[:end]); err != nil {
			return fmt.Errorf("follow log of %s: write: %w", k, err)
		}
		pos += int64(end)
		pending = append(pending[:0], pending[end:]...)
		return nil
	}
	// read takes the chunks shipped so far, and says whether the final one
	// was among them.
	read := func() (bool, error) {
		for {
			at := pos + int64(len(pending))
			chunks, err := c.DB.LogChunks(ctx, k.RunID, k.TaskID, k.Attempt, at, 4)
			if err != nil {
				return false, fmt.Errorf("follow log of %s: %w", k, err)
			}
			final := false
			for _, ch := range chunks {
				seen = true
				final = final || ch.Final
				if ch.End() <= at {
					continue
				}
				data, err := c.decode(ch)
				if err != nil {
					return false, fmt.Errorf("follow log of %s: %w", k, err)
				}
				pending = append(pending, data[max(at-ch.Offset, 0):]...)
				at = ch.End()
			}
			if err := deliver(final); err != nil {
				return false, err
			}
			if final || len(chunks) < 4 {
				return final, nil
			}
		}
	}
	var endedAt time.Time
	for {
		changed := t.changed()
		if data, ok := c.queuedItem(k); ok && !seen {
			// A map item's whole log, not yet in the database.
			if pos < int64(len(data)) {
				if _, err := w.Write(data[pos:]); err != nil {
					return pos, fmt.Errorf("follow log of %s: write: %w", k, err)
				}
			}
			return max(pos, int64(len(data))), nil
		}
		final, err := read()
		if err != nil || final {
			return pos, err
		}
		if !seen {
			if n, err := c.Local.Size(ctx, k); err == nil && n > 0 {
				return c.Local.Follow(ctx, k, pos, w)
			}
		}
		if c.Ended != nil && c.Ended(ctx, k) {
			// The attempt has ended: what its writer shipped before that is
			// all there is, once read. A map item's whole log may still be
			// on its way from another server's queue: it gets a moment.
			if endedAt.IsZero() {
				endedAt = time.Now()
			}
			if seen || time.Since(endedAt) >= 3*c.itemFlush() {
				if _, err := read(); err != nil {
					return pos, err
				}
				return pos, deliver(true)
			}
		}
		select {
		case <-ctx.Done():
			return pos, ctx.Err()
		case <-changed:
		case <-tick.C:
		}
	}
}

// wake tells the followers of k in this process that chunks were shipped.
func (c *Cluster) wake(k Key) {
	c.mu.Lock()
	t := c.topics[k]
	c.mu.Unlock()
	if t != nil {
		t.notify()
	}
}

func (c *Cluster) acquire(k Key) *topic {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.topics == nil {
		c.topics = map[Key]*topic{}
	}
	t := c.topics[k]
	if t == nil {
		t = &topic{}
		c.topics[k] = t
	}
	t.refs++
	return t
}

func (c *Cluster) release(k Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.topics[k]; t != nil {
		if t.refs--; t.refs == 0 {
			delete(c.topics, k)
		}
	}
}
