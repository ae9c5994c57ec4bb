package shell

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ServeWatchdog is the watchdog's companion process (see Watchdog): tasuki
// runs itself as 'tasuki watchdog', with the pipe from the process it
// watches on descriptor 3 and the shared page on descriptor 4. It returns
// once that process has closed the pipe, having ended what was left of its
// attempts unless it said goodbye. It reports on stderr what it did; its
// error is for a companion that could not start (one run by hand).
func ServeWatchdog(stderr io.Writer) error {
	var st unix.Stat_t
	if err := unix.Fstat(watchdogPipeFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return errors.New("no pipe on descriptor 3: the watchdog is started by 'tasuki server', not by hand")
	}
	// One goroutine does the work, waiting in poll(2): a Go scheduler
	// with more processors spins threads at every message (several times
	// the CPU time of reading it).
	runtime.GOMAXPROCS(1)
	if err := unix.SetNonblock(watchdogPipeFD, true); err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	defer unix.Close(wake)
	page, err := unix.Mmap(watchdogPageFD, 0, stampSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("watchdog: map the shared page on descriptor 4: %w", err)
	}
	defer unix.Munmap(page)
	c := &companion{
		in:     &lineReader{fd: watchdogPipeFD, wake: wake, buf: make([]byte, 4096)},
		stamp:  (*int64)(unsafe.Pointer(&page[0])),
		out:    stderr,
		self:   os.Getpid(),
		groups: map[int]int64{},
	}
	// The header was written before this process started.
	line, err := c.in.line(time.Now().Add(10 * time.Second))
	if err != nil {
		return fmt.Errorf("watchdog: read what to watch: %w", err)
	}
	var h watchdogHeader
	if err := json.Unmarshal(line, &h); err != nil || h.PID <= 0 || h.Timeout <= 0 {
		return fmt.Errorf("watchdog: what to watch: %q", line)
	}
	c.pid, c.timeout = h.PID, h.Timeout
	// Messages are read in batches at most 20 times a second (less often
	// than that with a short timeout): a wake-up for each message cost the
	// companion 65 us of CPU per attempt, 50 ms batches about 1 us
	// (BenchmarkWatchdog). A keepalive is seen that much later at most.
	c.in.batch = min(50*time.Millisecond, h.Timeout/20)
	c.ct = &container{info: Containment{Mechanism: h.Mechanism, Path: h.Cgroups}}

	// Signals end nothing here (a supervisor stopping the service sends
	// SIGTERM to every process of it: the watchdog watches the drain too),
	// but the parent's death (Pdeathsig: watchdogDeathSignal) is the pipe
	// closing: it wakes the read.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, watchdogDeathSignal, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	served := make(chan struct{})
	defer close(served)
	go func() {
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0} // an eventfd takes a uint64
		for {
			select {
			case <-sigs:
				if os.Getppid() != c.pid {
					_, _ = unix.Write(wake, one)
					return
				}
			case <-served:
				return
			}
		}
	}()
	// A parent that died before this process got here closed the pipe:
	// what it wrote is read to the end all the same, then gone.
	c.serve()
	return nil
}

// companion is the state of the watchdog's companion process.
type companion struct {
	in      *lineReader
	stamp   *int64 // in the shared page
	out     io.Writer
	self    int // this process
	pid     int // the watched process
	timeout time.Duration
	ct      *container // the watched process's mechanism and cgroups
	// groups are the process groups of the attempts running, each with
	// when it was told of (CLOCK_BOOTTIME ns, at the read that brought
	// it): its leader started before.
	groups map[int]int64
	fired  time.Time // when keepalives were found missing; zero while they come
	bye    bool      // the watched process said goodbye
}

// serve reads the pipe until it closes.
func (c *companion) serve() {
	every := max(c.timeout/4, time.Millisecond)
	last := time.Now()
	deadline := last.Add(c.timeout)
	for {
		line, err := c.in.line(deadline)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if os.Getppid() != c.pid {
				c.gone()
				return
			}
			c.frozen(time.Since(last))
			deadline = time.Now().Add(every)
			continue
		}
		if err != nil {
			c.gone()
			return
		}
		if len(line) == 0 {
			continue
		}
		switch line[0] {
		case opKeepalive:
			last = time.Now()
			if !c.fired.IsZero() {
				fmt.Fprintf(c.out, "tasuki watchdog: tasuki process %d answers again, %s after it stopped\n", c.pid, (last.Sub(c.fired) + c.timeout).Round(time.Millisecond))
				c.fired = time.Time{}
			}
			deadline = last.Add(c.timeout)
		case opStarted, opEnded:
			pgid, err := strconv.Atoi(string(line[1:]))
			if err != nil || pgid <= 1 {
				continue
			}
			if line[0] == opStarted {
				c.groups[pgid] = c.in.readAt
			} else {
				delete(c.groups, pgid)
			}
		case opBye:
			c.bye = true
		}
	}
}

// frozen ends the attempts of a process that sent no keepalive for the
// timeout, and again each quarter of it while none comes.
func (c *companion) frozen(silent time.Duration) {
	first := c.fired.IsZero()
	if first {
		c.fired = time.Now()
	}
	// Before the kill: Run, reading it after the process died, knows.
	atomic.StoreInt64(c.stamp, monotonic())
	c.kill(true)
	if first {
		fmt.Fprintf(c.out, "tasuki watchdog: tasuki process %d sent no keepalive for %s (frozen or stuck): killed the processes of its %d running attempts, so that none runs beside another attempt of its task\n",
			c.pid, silent.Round(time.Millisecond), len(c.groups))
	}
}

// gone ends what is left of the attempts of a process that closed the
// pipe: unless it said goodbye, it died.
func (c *companion) gone() {
	if c.bye {
		// A process that closes the pipe on purpose has ended its
		// attempts; an attempt still listed is ended with it.
		c.killGroups()
		return
	}
	atomic.StoreInt64(c.stamp, monotonic())
	if n := c.kill(false); n > 0 {
		fmt.Fprintf(c.out, "tasuki watchdog: tasuki process %d is gone: killed what was left of its running attempts (%d processes, groups or cgroups)\n", c.pid, n)
	}
}

// kill sends SIGKILL to every process of the watched process's attempts it
// can find: the groups it was told of, the attempts' cgroups, and, while
// the watched process lives (alive), its descendants, which include the
// attempts it started but had no time to tell of. Without it, the cgroups
// are also removed (as the next tasuki's sweep would) and, under the
// subreaper, the processes carrying its attempts' tag are killed: the
// orphans went to init. It returns how many groups, cgroups and processes
// it sent SIGKILL to.
func (c *companion) kill(alive bool) int {
	n := c.killGroups()
	dirs, _ := c.ct.ownedCages(func(owner int) bool { return owner == c.pid })
	for _, dir := range dirs {
		g := c.ct.foreignCage(dir)
		if pids, _ := readPids(filepath.Join(dir, "cgroup.procs")); len(pids) > 0 {
			// An empty cgroup is one kept for reuse: killing it would
			// spoil it (cgroup2Cage.killed) or freeze it for nothing.
			g.kill(0)
			n++
		}
		if !alive {
			_ = g.close(0)
		}
	}
	if alive {
		n += c.killDescendants()
	} else if c.ct.info.Mechanism == Subreaper {
		n += c.killTagged()
	}
	return n
}

// killGroups kills the process groups it was told of, and returns how
// many it reached. A group whose leader's id now belongs to a process that
// started after the group was told of is another's (the id was reused: the
// message that the group ended was lost, the pipe being full): it is
// forgotten, not killed. A group whose leader is gone (reaped) may still
// hold what the attempt left: no new group can have its id while it does.
func (c *companion) killGroups() int {
	n := 0
	for pgid, told := range c.groups {
		if started, ok := startedAt(pgid); ok && started > told {
			delete(c.groups, pgid)
			continue
		}
		if syscall.Kill(-pgid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// userHZ is the unit of the start times in /proc/PID/stat: clock ticks,
// USER_HZ, which Linux fixes at 100 on every architecture tasuki runs on.
const userHZ = 100

// startedAt reads when process pid started (CLOCK_BOOTTIME ns, to the
// clock tick below), if it exists.
func startedAt(pid int) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ppid ..."; starttime is the 22nd field, the 20th
	// after the command name (which may contain spaces and ")").
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, false
	}
	ticks, err := strconv.ParseInt(string(f[19]), 10, 64)
	if err != nil {
		return 0, false
	}
	return ticks * (int64(time.Second) / userHZ), true
}

// bootTime reads CLOCK_BOOTTIME, the clock of /proc's start times, in ns.
func bootTime() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return ts.Nano()
}

// killDescendants kills every process descending from the watched one but
// this one. A process forked meanwhile is found the next round.
func (c *companion) killDescendants() int {
	n := 0
	procs := readProcs()
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	var visit func(pid int)
	visit = func(pid int) {
		for _, ch := range children[pid] {
			if ch == c.self {
				continue
			}
			if !procs[ch].dead() && syscall.Kill(ch, syscall.SIGKILL) == nil {
				n++
			}
			visit(ch)
		}
	}
	visit(c.pid)
	return n
}

// killTagged kills the processes whose AttemptTagEnv names an attempt of
// the watched process (its pid, a dash, a number).
func (c *companion) killTagged() int {
	n := 0
	names, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	prefix := strconv.Itoa(c.pid) + "-"
	for _, e := range names {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == c.self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		if tag := envTag(env); strings.HasPrefix(tag, prefix) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// lineReader reads the pipe's lines, keeping a line cut by a short read
// for the next call.
type lineReader struct {
	fd, wake   int // the pipe (non-blocking), and an eventfd that ends the wait
	buf        []byte
	start, end int   // the unread part of buf
	readAt     int64 // when the last read returned data (bootTime)
	woken      bool  // the eventfd was written
	// batch is how long to wait after a read that returned data before
	// reading again (zero: not at all); busy says the last read did.
	batch time.Duration
	busy  bool
}

// errWoken is line's answer when the eventfd was written: the watched
// process is gone.
var errWoken = errors.New("woken: the watched process is gone")

// line returns the next line, without its newline, valid until the next
// call; or, when no whole line is buffered, io.EOF once the pipe is closed,
// os.ErrDeadlineExceeded at deadline, errWoken, or the read's error.
func (r *lineReader) line(deadline time.Time) ([]byte, error) {
	for {
		if i := bytes.IndexByte(r.buf[r.start:r.end], '\n'); i >= 0 {
			l := r.buf[r.start : r.start+i]
			r.start += i + 1
			return l, nil
		}
		if r.start > 0 {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		if r.end == len(r.buf) {
			if len(r.buf) >= 1<<20 {
				return nil, errors.New("a line of more than 1 MiB")
			}
			r.buf = append(r.buf, make([]byte, len(r.buf))...)
		}
		n, err := unix.Read(r.fd, r.buf[r.end:])
		switch {
		case n > 0:
			r.readAt = bootTime()
			r.end += n
			r.busy = true
			continue
		case err == nil:
			return nil, io.EOF
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EAGAIN):
			return nil, err
		}
		// Nothing to read: wait for the pipe, the eventfd or the deadline.
		if r.woken {
			return nil, errWoken
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, os.ErrDeadlineExceeded
		}
		if r.busy && r.batch > 0 {
			// Messages came: more are likely to. Waking up for each
			// costs the process several times what reading it does
			// (threads of the Go scheduler spinning); waiting a moment
			// reads them by the hundred. Nothing here needs them sooner.
			r.busy = false
			time.Sleep(min(r.batch, wait))
			continue
		}
		fds := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}, {Fd: int32(r.wake), Events: unix.POLLIN}}
		// Rounded up: poll's unit is the millisecond, and rounding down
		// would wake early and poll again for nothing.
		ms := (wait + time.Millisecond - 1) / time.Millisecond
		if _, err := unix.Poll(fds, int(min(ms, 1<<30))); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, err
		}
		if fds[1].Revents != 0 {
			r.woken = true // once what the pipe holds is read
		}
	}
}
