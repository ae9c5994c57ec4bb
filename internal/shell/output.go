package shell

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// OrderedStream is implemented by the two writers of one sink that keeps a
// process's stdout and stderr as a single sequence of lines (a task's log:
// logs.Writer's Stdout and Stderr). When Command.Stdout and Command.Stderr
// are the two streams of one such sink, Run reads both pipes from one
// goroutine, in the order the kernel says they became readable, instead of
// letting os/exec copy each pipe from a goroutine of its own, which orders
// the two streams by goroutine scheduling: a line written to stderr after a
// line on stdout could be logged first, with an earlier time stamp.
//
// What one reader can and cannot order: each pipe is reported ready when it
// goes from empty to holding data, and ready pipes are read in the order
// they became ready (epoll keeps its ready list in that order). So the
// first pending write of each stream is ordered exactly; a stream's later
// writes that arrive before tasuki has read its pipe are read with the
// first. Output is therefore logged out of order only if the process
// switched streams twice (out, err, out) faster than tasuki read the first
// of them. Two pipes cannot do better: nothing in a pipe records when its
// bytes were written. (A single AF_UNIX datagram socket would order every
// write, but programs would see a socket, not a pipe: writes larger than
// the socket buffer, about 208 KiB by default, fail with EMSGSIZE, and
// opening /dev/stdout or /dev/stderr fails with ENXIO, which breaks the
// common `echo ... >/dev/stderr`.)
type OrderedStream interface {
	io.Writer
	// OutputSink identifies the sink the stream belongs to; the two streams
	// of one sink return the same value. It and the stream itself must be
	// comparable with == (pointers are), as Run compares them.
	OutputSink() any
}

// orderedChunk bounds what is read from one pipe before the other gets its
// turn, so a process flooding one stream cannot hold back the other.
const orderedChunk = 256 << 10

// output is how a process's stdout and stderr are collected. The zero of
// *output (nil) means os/exec does it (writers that are files, the same
// writer for both, or writers of different sinks); otherwise one goroutine
// reads both pipes in order.
type output struct {
	child [2]*os.File // write ends, the child's stdout and stderr
	read  [2]int      // read ends, non-blocking; -1 once closed
	dst   [2]io.Writer
	ep    *os.File // epoll instance watching read, in the runtime's poller
	pool  *epollPool
	done  chan struct{}
}

// wireOutput sets cmd.Stdout and cmd.Stderr: the writers themselves, for
// os/exec to copy, unless they are the two streams of one OrderedStream
// sink, in which case they get pipes read in order by one goroutine that
// the returned output runs, with an epoll instance from pool.
func wireOutput(cmd *exec.Cmd, stdout, stderr io.Writer, pool *epollPool) (*output, error) {
	cmd.Stdout, cmd.Stderr = stdout, stderr
	o1, ok1 := stdout.(OrderedStream)
	o2, ok2 := stderr.(OrderedStream)
	if !ok1 || !ok2 || stdout == stderr || o1.OutputSink() != o2.OutputSink() {
		return nil, nil
	}
	o, err := newOutput(stdout, stderr, pool)
	if err != nil {
		return nil, fmt.Errorf("output pipes: %w", err)
	}
	cmd.Stdout, cmd.Stderr = o.child[0], o.child[1]
	return o, nil
}

// newOutput creates the pipes, takes an epoll instance from pool, and
// starts reading.
func newOutput(stdout, stderr io.Writer, pool *epollPool) (o *output, err error) {
	o = &output{read: [2]int{-1, -1}, dst: [2]io.Writer{stdout, stderr}, pool: pool, done: make(chan struct{})}
	defer func() {
		if err != nil {
			o.closeAll()
		}
	}()
	for i := range 2 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return o, fmt.Errorf("pipe: %w", err)
		}
		o.read[i] = p[0]
		o.child[i] = os.NewFile(uintptr(p[1]), "|"+[]string{"1", "2"}[i])
		// Only the read end is non-blocking: the child's write end must
		// block when the pipe is full. A new pipe's read end has no other
		// status flag to keep, so it is set without reading them first.
		if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
			return o, fmt.Errorf("pipe: %w", err)
		}
	}
	if o.ep, err = pool.get(); err != nil {
		return o, fmt.Errorf("epoll: %w", err)
	}
	rc, err := o.ep.SyscallConn()
	if err != nil {
		return o, fmt.Errorf("epoll: %w", err)
	}
	var cerr error
	if err := rc.Control(func(epfd uintptr) {
		for i, fd := range o.read {
			// Edge-triggered: a pipe joins the ready list when it goes
			// from empty to holding data, which is the ordering this
			// relies on.
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(i)}
			if cerr = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, fd, &ev); cerr != nil {
				return
			}
		}
	}); err != nil || cerr != nil {
		return o, fmt.Errorf("epoll: %w", errors.Join(err, cerr))
	}
	go o.copy()
	return o, nil
}

// maxEpolls bounds epollPool: about the attempts a process runs at once,
// beyond which a burst's instances are closed.
const maxEpolls = 64

// epollPool keeps the epoll instances of finished attempts for the next
// ones: making one and entering it in the runtime's poller, then leaving
// the poller and closing it, took seven system calls per attempt. A kept
// instance watches nothing (closeRead takes each pipe out) and is in the
// runtime's poller. Its zero value is empty and ready.
type epollPool struct {
	mu     sync.Mutex
	free   []*os.File
	closed bool // put closes what it is given
}

// get returns an epoll instance that watches nothing, non-blocking and
// with no read deadline: from the pool, or new.
func (p *epollPool) get() (*os.File, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		ep := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		// The last attempt's reader was stopped by a deadline.
		if err := ep.SetReadDeadline(time.Time{}); err == nil {
			return ep, nil
		}
		ep.Close()
	} else {
		p.mu.Unlock()
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	// A non-blocking descriptor goes into the runtime's poller: the reader
	// parks like any goroutine on a pipe, and holds no thread while waiting.
	return os.NewFile(uintptr(epfd), "epoll"), nil
}

// put keeps ep, which must watch nothing, for another attempt, or closes
// it when the pool is full or closed.
func (p *epollPool) put(ep *os.File) {
	p.mu.Lock()
	if !p.closed && len(p.free) < maxEpolls {
		p.free = append(p.free, ep)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	ep.Close()
}

// close closes the instances kept, and those put from now on.
func (p *epollPool) close() error {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	var errs []error
	for _, ep := range free {
		errs = append(errs, ep.Close())
	}
	return errors.Join(errs...)
}

// copyBufs holds the read buffers of finished attempts for the next ones:
// most attempts print little or nothing, and a 32 KiB buffer made for each
// was most of what a run of many short tasks allocated (and collected). A
// package-level sync.Pool, unlike the Executor's pools: it holds only
// memory, which the garbage collector takes back from it, so it has no
// lifetime to own, and every Executor can share it (the idiom of fmt and
// encoding/json).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copy reads both pipes until both are at end of file, or until the
// deadline wait sets. A write error of a destination stops writing to it
// but not reading, so the process never blocks on a full pipe.
func (o *output) copy() {
	defer close(o.done)
	rc, err := o.ep.SyscallConn()
	if err != nil {
		return
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var (
		events  [2]unix.EpollEvent
		pending []int   // streams with output to read, in ready order
		hungUp  [2]bool // every writer of the pipe has closed it
		failed  [2]bool
	)
	_ = rc.Read(func(epfd uintptr) bool {
		for o.read[0] >= 0 || o.read[1] >= 0 {
			n, err := unix.EpollWait(int(epfd), events[:], 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return true // cannot happen with a valid epoll fd
			}
			for _, ev := range events[:n] {
				i := int(ev.Fd)
				if ev.Events&(unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
					hungUp[i] = true
				}
				if !slices.Contains(pending, i) {
					pending = append(pending, i)
				}
			}
			if len(pending) == 0 {
				return false // park until a pipe is ready
			}
			i := pending[0]
			pending = pending[1:]
			if !o.drain(i, buf, hungUp[i], &failed[i]) {
				pending = append(pending, i) // more to read: after the other
			}
		}
		return true
	})
}

// drain reads stream i until its pipe is empty (true), at end of file
// (true, and the pipe is closed), or orderedChunk has been read (false).
// A read shorter than buf emptied the pipe: drain stops there rather than
// read again, as a second read could take output written after the other
// stream's, which epoll has already queued in its turn (a write to an
// empty pipe queues it again). Once the pipe has hung up, nothing more
// can be written and no event will come, so it is read to end of file.
func (o *output) drain(i int, buf []byte, hungUp bool, failed *bool) bool {
	fd := o.read[i]
	if fd < 0 {
		return true
	}
	for total := 0; total < orderedChunk; {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return true
		case err != nil || n == 0:
			// End of file (every writer closed it) or a broken pipe.
			o.closeRead(i)
			return true
		}
		total += n
		if !*failed {
			if _, err := o.dst[i].Write(buf[:n]); err != nil {
				*failed = true
			}
		}
		if n < len(buf) && !hungUp {
			return true
		}
	}
	return false
}

// started closes the parent's copies of the child's ends once the child
// has its own, so the pipes reach end of file when the process tree exits.
func (o *output) started() {
	if o == nil {
		return
	}
	for i, f := range o.child {
		if f != nil {
			f.Close()
			o.child[i] = nil
		}
	}
}

// wait waits for the output to be read to its end after the process
// exited, for at most grace: a leftover process that escaped the group and
// holds the pipes open cannot keep the attempt from finishing (the same
// bound exec.Cmd.WaitDelay gives os/exec's copying goroutines).
func (o *output) wait(grace time.Duration) {
	if o == nil {
		return
	}
	o.started()
	_ = o.ep.SetReadDeadline(time.Now().Add(grace))
	<-o.done
}

// close releases everything: after wait, or when the process never
// started.
func (o *output) close() {
	if o == nil {
		return
	}
	o.started()
	_ = o.ep.SetReadDeadline(time.Now()) // stop the reader if it still runs
	<-o.done
	o.closeAll()
}

// closeAll closes the descriptors, and gives the epoll instance back to
// its pool if it watches nothing any more. The reader must not be running.
func (o *output) closeAll() {
	for i, f := range o.child {
		if f != nil {
			f.Close()
			o.child[i] = nil
		}
	}
	clean := true
	for i := range o.read {
		clean = o.closeRead(i) && clean
	}
	if o.ep != nil {
		if clean {
			o.pool.put(o.ep)
		} else {
			o.ep.Close()
		}
		o.ep = nil
	}
}

// closeRead takes read end i out of the epoll instance, then closes it,
// and reports whether the instance no longer watches it. Closing the
// descriptor alone would not take the pipe out while another copy of it is
// open: a process being started elsewhere in tasuki (another attempt) holds
// copies of every descriptor until its exec closes them, and the pipe
// would stay in the instance, which the next attempt reuses.
func (o *output) closeRead(i int) bool {
	fd := o.read[i]
	if fd < 0 {
		return true
	}
	clean := false
	if o.ep != nil {
		if rc, err := o.ep.SyscallConn(); err == nil {
			_ = rc.Control(func(epfd uintptr) {
				err := unix.EpollCtl(int(epfd), unix.EPOLL_CTL_DEL, fd, nil)
				// ENOENT: never added (newOutput failed first).
				clean = err == nil || errors.Is(err, unix.ENOENT)
			})
		}
	}
	unix.Close(fd)
	o.read[i] = -1
	return clean
}
