package shell

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reaper is the Subreaper mechanism. With PR_SET_CHILD_SUBREAPER, a process
// whose parent dies is re-parented to tasuki rather than to init, so every
// process an attempt started is, while it lives, a descendant of tasuki:
// either of the attempt's main process, or of a child tasuki adopted. A
// process is attributed to an attempt by its ancestry when it descends from
// the attempt's main process, and otherwise by AttemptTagEnv in its
// environment (/proc/<pid>/environ, the environment it was started with) or
// the nearest ancestor's that has one.
//
// Reaping adopted children must not take the exit status of a process that
// os/exec is waiting for. Run registers every process it starts (under
// startMu, so that no scan can see a child before it is registered), and so
// does StartWatchdog; every other child of tasuki is an adopted orphan.
// Within tasuki, shell.Run and StartWatchdog are the only code that starts
// processes.
type reaper struct {
	// startMu is held shared while Run starts a process and registers it,
	// and exclusively while a scan decides which children are adopted.
	startMu sync.RWMutex
	mu      sync.Mutex
	own     map[int]bool // started by Run, reaped by os/exec
	running int          // attempts between open and close
	seq     uint64
}

// newSubreaper makes this process a child subreaper.
func newSubreaper() (*container, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become a child subreaper: %w", err)
	}
	return &container{info: Containment{Mechanism: Subreaper}, reap: &reaper{own: map[int]bool{}}}, nil
}

func (r *reaper) open() *reaperCage {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running++
	r.seq++
	return &reaperCage{r: r, tag: strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(r.seq, 10)}
}

// reaperCage is an attempt under the Subreaper mechanism.
type reaperCage struct {
	r   *reaper
	tag string
	// gone is set once a kill found nothing of the attempt alive after the
	// main process exited: nothing is left that could start a process, so
	// later kills and waits need no scan.
	gone atomic.Bool
}

func (g *reaperCage) start(cmd *exec.Cmd) error {
	// A fresh slice: the caller's Env is not to be written to.
	cmd.Env = append(slices.Clip(cmd.Env), AttemptTagEnv+"="+g.tag)
	return g.r.startOwn(cmd)
}

// startOwn starts cmd as a child whose exit status os/exec collects: no
// scan takes it for an adopted orphan, of an attempt or not. forget undoes
// it once the child is reaped.
func (r *reaper) startOwn(cmd *exec.Cmd) error {
	r.startMu.RLock()
	defer r.startMu.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	r.mu.Lock()
	r.own[cmd.Process.Pid] = true
	r.mu.Unlock()
	return nil
}

// forget drops pid, reaped, from the children startOwn started.
func (r *reaper) forget(pid int) {
	r.mu.Lock()
	delete(r.own, pid)
	r.mu.Unlock()
}

func (g *reaperCage) signal(pgid int, sig syscall.Signal) {
	signalOutsideGroup(g.r.members(pgid, g.tag, false), pgid, sig)
}

// kill sends SIGKILL to the group and every other process of the attempt.
// One that forked meanwhile leaves a child that the next round finds; the
// rounds end when a scan finds nothing alive.
func (g *reaperCage) kill(pgid int) {
	if g.gone.Load() {
		return
	}
	deadline := time.Now().Add(killWait)
	for {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		mainExited := exited(pgid)
		pids := g.r.members(pgid, g.tag, g.r.alone())
		if len(pids) == 0 {
			g.gone.Store(mainExited)
			return
		}
		if !time.Now().Before(deadline) {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if !awaitExit(pids, deadline) {
			time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
		}
	}
}

func (g *reaperCage) wait(pgid int, deadline time.Time) bool {
	if g.gone.Load() {
		return true
	}
	for {
		pids := g.r.members(pgid, g.tag, false)
		if len(pids) == 0 {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		if !awaitExit(pids, deadline) {
			time.Sleep(min(50*time.Millisecond, time.Until(deadline)))
		}
	}
}

// spoil does nothing: a subreaper's cage is not reused.
func (g *reaperCage) spoil() {}

// close ends what is left of the attempt: Run has reaped the main process.
func (g *reaperCage) close(pgid int) error {
	if pgid != 0 {
		g.kill(pgid)
	}
	g.r.mu.Lock()
	delete(g.r.own, pgid)
	g.r.running--
	g.r.mu.Unlock()
	if pgid != 0 && !g.wait(pgid, time.Now()) {
		return fmt.Errorf("processes of attempt %s outlived it", g.tag)
	}
	return nil
}

// exited reports whether process pid has exited (a zombie, or reaped).
func exited(pid int) bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		// Linux sets si_signo to SIGCHLD when it found the child exited and
		// to 0 when it has not; ECHILD means it is reaped already.
		return err != nil || info.Signo != 0
	}
}

// alone reports whether only one attempt is running: then an adopted child
// without any tag (it cleared its environment) can only be that attempt's.
func (r *reaper) alone() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running <= 1
}

// members lists the live processes of the attempt whose main process is
// (or was) main and whose tag is tag, except main itself: descendants of
// main, and adopted processes attributed to tag (with untagged, also those
// with no tag at all). Adopted children that have exited, whatever their
// attempt, are reaped on the way.
func (r *reaper) members(main int, tag string, untagged bool) []int {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	procs := readProcs()
	self := os.Getpid()
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	var (
		pids    []int
		zombies []int
	)
	// visit walks the tree below pid; owner is the tag the process is
	// attributed to ("" for none yet), mine whether it descends from main.
	var visit func(pid int, owner string, mine bool)
	visit = func(pid int, owner string, mine bool) {
		p := procs[pid]
		if p.dead() {
			return
		}
		if !mine {
			if env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ"); err == nil {
				if t := envTag(env); t != "" {
					owner = t
				}
			}
		}
		if mine || owner == tag || (untagged && owner == "") {
			pids = append(pids, pid)
		}
		for _, c := range children[pid] {
			visit(c, owner, mine)
		}
	}
	for _, pid := range children[self] {
		switch {
		case pid == main:
			for _, c := range children[pid] {
				visit(c, tag, true)
			}
		case r.isOwn(pid):
			// Another attempt's main process; its tree is its own.
		case procs[pid].dead():
			zombies = append(zombies, pid)
		default:
			visit(pid, "", false)
		}
	}
	r.reapExited(zombies)
	return pids
}

func (r *reaper) isOwn(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.own[pid]
}

// reapExited collects the exit status of those of pids, adopted children,
// that have exited.
func (r *reaper) reapExited(pids []int) {
	for _, pid := range pids {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
}

// procInfo is what a scan of /proc needs of a process.
type procInfo struct {
	state string
	ppid  int
}

func (p procInfo) dead() bool { return p.state == "Z" || p.state == "X" }

// readProcs reads the state and parent of every process.
func readProcs() map[int]procInfo {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil
	}
	procs := make(map[int]procInfo, len(names))
	buf := make([]byte, 512) // the fields up to ppid come first
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		// Plain syscalls: this runs for every process on the system, and
		// os.ReadFile's extra fstat and growing buffer show.
		fd, err := unix.Open("/proc/"+name+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		n, err := unix.Read(fd, buf)
		_ = unix.Close(fd)
		if err != nil || n <= 0 {
			continue
		}
		b := buf[:n]
		// "pid (comm) state ppid ..."; comm may contain spaces and ")".
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(string(f[1]))
		if err != nil {
			continue
		}
		procs[pid] = procInfo{state: string(f[0]), ppid: ppid}
	}
	return procs
}

// envTag returns the value of AttemptTagEnv in a NUL-separated environment
// block, or "" if it has none.
func envTag(env []byte) string {
	prefix := []byte(AttemptTagEnv + "=")
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, prefix); ok {
			return string(v)
		}
	}
	return ""
}
