package shell

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Watchdog bounds how long the attempts of this process outlive it when it
// stops answering: frozen by SIGSTOP or a paused VM, or stuck in the kernel.
// When tasuki dies, Pdeathsig and the cages end its attempts; while it merely
// stands still, nothing does, and on a shared store another server takes
// over meanwhile and runs them again beside the old ones.
//
// The watchdog is a small companion process (ServeWatchdog: tasuki runs
// itself as 'tasuki watchdog') holding the read end of a pipe from this
// process. A goroutine of its own writes a keepalive every quarter of the
// timeout, and Run writes the process group of each attempt as it starts
// and as it ends, one write of a few bytes each. When no keepalive has come
// for the timeout, the companion kills every group listed, the cgroups of
// this process's attempts and every process descending from this one (but
// itself), says so in one line on its standard error, and does it again
// every quarter of the timeout until keepalives come back. When the pipe
// closes without a goodbye (this process died), it does the same (the
// descendants excepted: they are no longer this process's) and exits.
//
// Before it kills, the companion writes the time in a page both processes
// map, so that Run, once this process runs again, tells a SIGKILL of the
// watchdog's (Result.Watchdog: the attempt runs again, not charged) from one
// the task brought on itself.
//
// The companion is a process group of its own, so neither a Ctrl-C nor a
// kill of tasuki's group reaches it; it gets a signal when this process
// dies (Pdeathsig: watchdogDeathSignal), which it takes for the pipe
// closing once its parent is gone, and it ignores SIGTERM, SIGINT and
// SIGHUP (a supervisor stopping the whole service: the watchdog watches the
// drain too).
type Watchdog struct {
	ct      *container
	timeout time.Duration
	log     *slog.Logger
	cmd     *exec.Cmd

	// mu is held shared by each write and read of the shared page, and
	// exclusively by Close, which closes and unmaps them.
	mu    sync.RWMutex
	fd    int    // the pipe's write end, non-blocking; -1 once closed
	stamp *int64 // in page: when the companion last killed (CLOCK_MONOTONIC ns); 0: never
	page  []byte // the shared page, mapped read-only; nil once unmapped
	last  int64  // *stamp when Close unmapped it
	// base and baseMono are one instant on two clocks, time.Now's
	// monotonic reading and CLOCK_MONOTONIC (the companion's), to turn
	// the stamp into a time.Time.
	base     time.Time
	baseMono int64

	complained atomic.Bool // a failed write was logged
	closing    atomic.Bool
	stop       chan struct{} // ends the keepalives
	kaDone     chan struct{} // closed when they have ended
	exited     chan struct{} // closed once the companion is reaped
	closeOnce  sync.Once
	closeErr   error
}

// WatchdogConfig says how to run the watchdog's companion process.
type WatchdogConfig struct {
	// Path and Args run the companion, as in exec.Cmd (Args[0] is the
	// name it runs under): a program whose main calls ServeWatchdog. tasuki
	// server gives /proc/self/exe and "tasuki watchdog": itself, even if
	// its file was replaced since it started.
	Path string
	Args []string
	// Env is the companion's environment; nil inherits this process's.
	Env []string
	// Timeout is how long the companion waits for a keepalive before it
	// ends the attempts: how long they may outlive this process frozen.
	// Keepalives go every quarter of it.
	Timeout time.Duration
	// Stderr is where the companion says what it did (default os.Stderr).
	Stderr io.Writer
	// Logger reports the watchdog's own trouble: a companion that exits, or
	// that does not read (default slog.Default()).
	Logger *slog.Logger
}

// The messages of the pipe, one line each after the header (a JSON
// watchdogHeader): a keepalive, a group that started ("+PGID"), one that
// ended ("-PGID"), and the goodbye of a process that closes the pipe on
// purpose.
const (
	opKeepalive = '.'
	opStarted   = '+'
	opEnded     = '-'
	opBye       = 'q'
)

// watchdogHeader is the first line on the pipe: what the companion watches.
type watchdogHeader struct {
	PID       int           `json:"pid"`
	Timeout   time.Duration `json:"timeout"`
	Mechanism Mechanism     `json:"mechanism"`
	Cgroups   string        `json:"cgroups,omitempty"`
}

// watchdogDeathSignal is what the companion gets when this process dies
// (Pdeathsig): a signal whose default is to do nothing, because the
// companion may get it before it handles signals (this process died as it
// started), and must still read what the pipe holds and end the attempts
// listed there. The pipe closing says the same; the signal is for a write
// end that another process would hold.
const watchdogDeathSignal = syscall.SIGWINCH

// stampSize is the part of the shared page in use: one int64.
const stampSize = 8

// The companion's descriptors: the pipe and the shared page.
const (
	watchdogPipeFD = 3
	watchdogPageFD = 4
)

// StartWatchdog starts the watchdog of this process's attempts: from now
// until Close, every attempt Run starts is ended at most cfg.Timeout after
// this process stops answering. There is one per process at most.
func StartWatchdog(cfg WatchdogConfig) (*Watchdog, error) {
	return startWatchdog(processContainer(), cfg)
}

func startWatchdog(ct *container, cfg WatchdogConfig) (_ *Watchdog, err error) {
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("start the watchdog: timeout %s: must be positive", cfg.Timeout)
	}
	if ct.watch.Load() != nil {
		return nil, errors.New("start the watchdog: this process has one already")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	// Close-on-exec, so that no attempt holds the write end: the pipe
	// closes when this process dies, whatever it leaves running.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("start the watchdog: make a pipe: %w", err)
	}
	r := os.NewFile(uintptr(p[0]), "watchdog pipe")
	defer r.Close() // the companion has its own copy
	wfd := p[1]
	defer func() {
		if err != nil {
			_ = unix.Close(wfd)
		}
	}()
	mfd, err := unix.MemfdCreate("tasuki-watchdog", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("start the watchdog: make the shared page: %w", err)
	}
	mf := os.NewFile(uintptr(mfd), "watchdog page")
	defer mf.Close() // the mapping outlives it
	if err := unix.Ftruncate(mfd, stampSize); err != nil {
		return nil, fmt.Errorf("start the watchdog: size the shared page: %w", err)
	}
	page, err := unix.Mmap(mfd, 0, stampSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("start the watchdog: map the shared page: %w", err)
	}
	defer func() {
		if err != nil {
			_ = unix.Munmap(page)
		}
	}()
	header, err := json.Marshal(watchdogHeader{PID: os.Getpid(), Timeout: cfg.Timeout, Mechanism: ct.info.Mechanism, Cgroups: ct.info.Path})
	if err != nil {
		return nil, fmt.Errorf("start the watchdog: %w", err)
	}
	// Written before the companion starts (the pipe holds it, far below
	// its capacity), while the write end still blocks.
	if _, err := unix.Write(wfd, append(header, '\n')); err != nil {
		return nil, fmt.Errorf("start the watchdog: write to its pipe: %w", err)
	}
	// Room for 1 MiB of messages (130,000 of them) where the system
	// allows it, rather than 64 KiB: the companion may not run for a while
	// on a loaded machine, and a message that finds the pipe full is lost.
	_, _ = unix.FcntlInt(uintptr(wfd), unix.F_SETPIPE_SZ, 1<<20)
	// From now on a write never waits: a companion that does not read
	// must not hold up attempts (write reports it).
	if err := unix.SetNonblock(wfd, true); err != nil {
		return nil, fmt.Errorf("start the watchdog: %w", err)
	}
	args := cfg.Args
	if len(args) == 0 {
		args = []string{cfg.Path}
	}
	cmd := &exec.Cmd{
		Path: cfg.Path, Args: args, Env: cfg.Env, Stderr: cfg.Stderr,
		ExtraFiles:  []*os.File{r, mf}, // watchdogPipeFD, watchdogPageFD
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: watchdogDeathSignal},
	}
	base, baseMono := time.Now(), monotonic()
	start := cmd.Start
	if ct.reap != nil {
		// Not an orphan of an attempt: a subreaper's scans leave it be.
		start = func() error { return ct.reap.startOwn(cmd) }
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("start the watchdog: %w", err)
	}
	w := &Watchdog{
		ct: ct, timeout: cfg.Timeout, log: cfg.Logger, cmd: cmd,
		fd: wfd, stamp: (*int64)(unsafe.Pointer(&page[0])), page: page,
		base: base, baseMono: baseMono,
		stop: make(chan struct{}), kaDone: make(chan struct{}), exited: make(chan struct{}),
	}
	go w.wait()
	go w.keepalive()
	if !ct.watch.CompareAndSwap(nil, w) {
		_ = w.Close()
		return nil, errors.New("start the watchdog: this process has one already")
	}
	return w, nil
}

// PID is the companion's process id.
func (w *Watchdog) PID() int { return w.cmd.Process.Pid }

// Timeout is how long attempts may outlive this process frozen.
func (w *Watchdog) Timeout() time.Duration { return w.timeout }

// keepalive tells the companion this process still runs, every quarter of
// the timeout, from a goroutine that does nothing else: an attempt or a
// store that is slow must not look like a freeze.
func (w *Watchdog) keepalive() {
	defer close(w.kaDone)
	t := time.NewTicker(max(w.timeout/4, time.Millisecond))
	defer t.Stop()
	msg := []byte{opKeepalive, '\n'}
	for {
		w.write(msg)
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// started tells the companion that an attempt's process group pgid runs.
func (w *Watchdog) started(pgid int) { w.tell(opStarted, pgid) }

// ended tells the companion that group pgid is over (its leader reaped).
func (w *Watchdog) ended(pgid int) { w.tell(opEnded, pgid) }

func (w *Watchdog) tell(op byte, pgid int) {
	var b [24]byte
	msg := append(b[:0], op)
	msg = strconv.AppendInt(msg, int64(pgid), 10)
	w.write(append(msg, '\n'))
}

// write sends one message: a single write of less than PIPE_BUF, which
// the kernel keeps whole whoever else writes at the same moment. It never
// waits: a full pipe (a companion that does not read) or a broken one (a
// companion gone) loses the message, and says so once.
func (w *Watchdog) write(msg []byte) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.fd < 0 {
		return
	}
	for {
		_, err := unix.Write(w.fd, msg)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil && !w.closing.Load() && w.complained.CompareAndSwap(false, true) {
			w.log.Error("the attempt watchdog does not take what this process tells it: attempts may outlive this process if it freezes",
				"pid", w.cmd.Process.Pid, "err", err)
		}
		return
	}
}

// firedSince reports when the companion last killed, and whether that was
// at or after t.
func (w *Watchdog) firedSince(t time.Time) (time.Time, bool) {
	w.mu.RLock()
	v := w.last
	if w.stamp != nil {
		v = atomic.LoadInt64(w.stamp)
	}
	w.mu.RUnlock()
	if v == 0 {
		return time.Time{}, false
	}
	at := w.base.Add(time.Duration(v - w.baseMono))
	return at, !at.Before(t)
}

// wait reaps the companion, and says so if it exits before Close.
func (w *Watchdog) wait() {
	err := w.cmd.Wait()
	if w.ct.reap != nil {
		w.ct.reap.forget(w.cmd.Process.Pid)
	}
	if !w.closing.Load() {
		w.complained.Store(true) // the writes that fail from now on are this
		w.log.Error("the attempt watchdog exited: attempts may outlive this process if it freezes",
			"pid", w.cmd.Process.Pid, "err", err)
	}
	close(w.exited)
}

// Close stops the watchdog: the keepalives end, the companion is told
// goodbye and exits (it kills nothing then, unless an attempt still runs).
// Attempts that start afterwards are not watched.
func (w *Watchdog) Close() error {
	w.closeOnce.Do(func() {
		w.ct.watch.CompareAndSwap(w, nil)
		w.closing.Store(true)
		close(w.stop)
		<-w.kaDone
		w.write([]byte{opBye, '\n'})
		w.mu.Lock()
		w.last = atomic.LoadInt64(w.stamp)
		w.stamp = nil
		_ = unix.Munmap(w.page)
		w.page = nil
		_ = unix.Close(w.fd)
		w.fd = -1
		w.mu.Unlock()
		select {
		case <-w.exited:
		case <-time.After(killWait):
			_ = w.cmd.Process.Kill()
			<-w.exited
			w.closeErr = fmt.Errorf("the attempt watchdog (process %d) did not exit within %s of its pipe closing: killed", w.cmd.Process.Pid, killWait)
		}
	})
	return w.closeErr
}

// monotonic reads CLOCK_MONOTONIC, the clock of the shared stamp (and of
// time.Now's monotonic reading), in nanoseconds.
func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
