package shell

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// killWait bounds how long a cage waits for killed processes to be gone
// before it gives up on removing its cgroup. SIGKILL is not delayed by the
// process; only one stuck in the kernel (uninterruptible I/O) takes longer.
const killWait = 10 * time.Second

// newCgroup2 checks that attempts' cgroups can be made under dir, a
// directory of a cgroup v2 hierarchy, by making and removing one.
func newCgroup2(dir string) (*container, error) {
	c := &container{info: Containment{Mechanism: Cgroup2, Path: dir}, pool: &cgroupPool{}}
	probe := filepath.Join(dir, c.cageName())
	if err := os.Mkdir(probe, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2 at %s: %w", dir, err)
	}
	defer os.Remove(probe)
	if _, err := os.Stat(filepath.Join(probe, "cgroup.kill")); err != nil {
		return nil, fmt.Errorf("cgroup v2 at %s: no cgroup.kill (needs Linux 5.14): %w", dir, err)
	}
	fd, err := unix.Open(probe, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroup v2 at %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := tryCloneInto(fd); err != nil {
		return nil, fmt.Errorf("cgroup v2 at %s: %w", dir, err)
	}
	return c, nil
}

// tryCloneInto starts a process in the cgroup open as fd, the way Run
// will. A system can let tasuki make cgroups and still refuse clone3 (the
// default seccomp profiles of container runtimes answer ENOSYS), and os/exec
// does not fall back: without this check, every attempt would fail to
// start. The program run is DefaultShell; if it is missing, the clone has
// still succeeded, which is what is being asked.
func tryCloneInto(fd int) error {
	pid, err := syscall.ForkExec(DefaultShell, []string{DefaultShell, "-c", ":"}, &syscall.ProcAttr{
		Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd},
	})
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ENOEXEC):
		return nil // exec failed, after the clone succeeded
	case err != nil:
		return fmt.Errorf("start a process in a cgroup (clone3 with CLONE_INTO_CGROUP): %w", err)
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, syscall.EINTR) {
			return nil
		}
	}
}

// cgroup2Cage is an attempt's cgroup v2.
type cgroup2Cage struct {
	dir  string
	fd   int         // the directory, open for CLONE_INTO_CGROUP until start
	pool *cgroupPool // where the cgroup goes when empty; nil: removed
	// killed is set once cgroup.kill was written. Such a cgroup is not
	// reused: Linux (seen on 6.18) then kills every process started into
	// it with CLONE_INTO_CGROUP.
	killed atomic.Bool
	// empty is set once cgroup.events said no process is left, after the
	// main process started. It stays so (nothing joins the cgroup but by
	// tasuki's doing, at start), so kill, finish and close do not read
	// the file again: three reads per attempt were one.
	empty atomic.Bool
}

// openCgroup2 makes the cgroup dir, or takes an empty one from pool.
func openCgroup2(dir string, pool *cgroupPool) (*cgroup2Cage, error) {
	dir, err := pool.take(dir)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("open attempt cgroup: %w", err)
	}
	return &cgroup2Cage{dir: dir, fd: fd, pool: pool}, nil
}

func (g *cgroup2Cage) start(cmd *exec.Cmd) error {
	// The child is created inside the cgroup: nothing it forks can be
	// outside it, not even for an instant.
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = g.fd
	err := cmd.Start()
	_ = unix.Close(g.fd)
	g.fd = -1
	return err
}

func (g *cgroup2Cage) signal(pgid int, sig syscall.Signal) {
	pids, _ := readPids(filepath.Join(g.dir, "cgroup.procs"))
	signalOutsideGroup(pids, pgid, sig)
}

func (g *cgroup2Cage) kill(pgid int) {
	// Writing cgroup.kill costs about ten times reading cgroup.events, and
	// most attempts leave nothing behind. A cgroup found empty stays so:
	// its processes are gone and nothing else joins it.
	if g.wait(pgid, time.Time{}) {
		return
	}
	g.killed.Store(true)
	_ = writeFile(filepath.Join(g.dir, "cgroup.kill"), "1")
}

func (g *cgroup2Cage) wait(pgid int, deadline time.Time) bool {
	if g.empty.Load() {
		return true
	}
	if !awaitUnpopulated(filepath.Join(g.dir, "cgroup.events"), deadline) {
		return false
	}
	if pgid != 0 {
		// Before the start (pgid 0), empty says nothing about later.
		g.empty.Store(true)
	}
	return true
}

// spoil keeps the cgroup from reuse as if tasuki had written cgroup.kill:
// the watchdog may have.
func (g *cgroup2Cage) spoil() { g.killed.Store(true) }

func (g *cgroup2Cage) close(pgid int) error {
	if g.fd >= 0 {
		_ = unix.Close(g.fd)
		g.fd = -1
	}
	// Run has killed everything (cgroup.kill also gets processes forked
	// while it runs); what is left is dying.
	deadline := time.Now().Add(killWait)
	if g.wait(pgid, deadline) {
		if g.killed.Load() {
			return removeCgroup(g.dir, deadline)
		}
		return g.pool.put(g.dir)
	}
	g.kill(pgid)
	return removeCgroup(g.dir, deadline)
}

// awaitUnpopulated returns true once the cgroup whose cgroup.events file is
// at path has no process left ("populated 0"), or false at deadline. The
// kernel wakes poll(2) on the file when its content changes, so this does
// not poll on a timer.
func awaitUnpopulated(path string, deadline time.Time) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Is(err, unix.ENOENT) // no cgroup, no process
	}
	defer unix.Close(fd)
	buf := make([]byte, 256)
	for {
		// Reading re-arms the notification, so read before each poll.
		n, err := unix.Pread(fd, buf, 0)
		if err != nil {
			return false
		}
		if !populated(buf[:n]) {
			return true
		}
		ms := time.Until(deadline).Milliseconds()
		if ms <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		if _, err := unix.Poll(fds, int(min(ms, 1<<30))); err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
	}
}

// populated reads the populated key of cgroup.events.
func populated(events []byte) bool {
	for line := range bytes.Lines(events) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("populated ")); ok {
			return string(v) != "0"
		}
	}
	return false
}

// newFreezer checks that attempts' cgroups can be made under dir, a
// directory of the cgroup v1 freezer hierarchy, and that a thread of tasuki
// can join one and return to home, tasuki's own freezer cgroup (found from
// /proc/self/cgroup when empty).
func newFreezer(dir, home string) (*container, error) {
	if home == "" {
		_, own, err := ownCgroups()
		if err != nil {
			return nil, err
		}
		if own == "" {
			return nil, fmt.Errorf("cgroup v1 freezer at %s: tasuki is in no freezer cgroup", dir)
		}
		home = own
	}
	c := &container{info: Containment{Mechanism: Freezer, Path: dir}, home: home, pool: &cgroupPool{}}
	g, err := openFreezer(filepath.Join(dir, c.cageName()), home, nil)
	if err != nil {
		return nil, fmt.Errorf("cgroup v1 freezer at %s: %w", dir, err)
	}
	defer g.close(0)
	if _, err := os.Stat(filepath.Join(g.dir, "freezer.state")); err != nil {
		return nil, fmt.Errorf("cgroup v1 freezer at %s: %w", dir, err)
	}
	if err := g.onThreadInside(func() error { return nil }); err != nil {
		return nil, fmt.Errorf("cgroup v1 freezer at %s: %w", dir, err)
	}
	return c, nil
}

// freezerCage is an attempt's cgroup in the v1 freezer hierarchy.
type freezerCage struct {
	dir, home string
	pool      *cgroupPool // where the cgroup goes when empty; nil: removed
	spoiled   atomic.Bool // not for reuse (spoil)
}

// openFreezer makes the cgroup dir, or takes an empty one from pool.
func openFreezer(dir, home string, pool *cgroupPool) (*freezerCage, error) {
	dir, err := pool.take(dir)
	if err != nil {
		return nil, err
	}
	return &freezerCage{dir: dir, home: home, pool: pool}, nil
}

// onThreadInside runs f on an OS thread that is in the cage's cgroup, so
// that a process it forks starts there (cgroup v1 has no
// CLONE_INTO_CGROUP; moving the child after it started would let it fork
// outside first). The thread returns to home afterwards. If it cannot, it
// is retired with its goroutine: a tasuki thread left in the cage would be
// frozen with it.
func (g *freezerCage) onThreadInside(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := strconv.Itoa(unix.Gettid())
		if err := writeFile(filepath.Join(g.dir, "tasks"), tid); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("join attempt cgroup: %w", err)
			return
		}
		err := f()
		if berr := writeFile(filepath.Join(g.home, "tasks"), tid); berr != nil {
			// Exit locked: the runtime ends the thread.
			done <- errors.Join(err, fmt.Errorf("leave attempt cgroup: %w", berr))
			return
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

func (g *freezerCage) start(cmd *exec.Cmd) error {
	err := g.onThreadInside(cmd.Start)
	if err != nil {
		if cmd.Process != nil {
			// Started, but tasuki's thread could not leave: the thread is
			// gone, so Pdeathsig has already killed the child. Reap it.
			_ = cmd.Wait()
		}
		return err
	}
	return nil
}

func (g *freezerCage) signal(pgid int, sig syscall.Signal) {
	pids, _ := readPids(filepath.Join(g.dir, "cgroup.procs"))
	signalOutsideGroup(pids, pgid, sig)
}

// kill freezes the cgroup, so nothing in it can fork while it is being
// emptied, sends SIGKILL to every task and thaws it, which lets them die.
func (g *freezerCage) kill(pgid int) {
	state := filepath.Join(g.dir, "freezer.state")
	frozen := writeFile(state, "FROZEN") == nil
	if frozen {
		// Freezing is asynchronous and v1 sends no notification: poll
		// the state, briefly. Killing without it is still right, only
		// a task forked meanwhile may be missed until the next round.
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
			b, err := os.ReadFile(state)
			if err != nil || string(bytes.TrimSpace(b)) == "FROZEN" {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	pids, _ := readPids(filepath.Join(g.dir, "tasks"))
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if frozen {
		_ = writeFile(state, "THAWED")
	}
}

func (g *freezerCage) wait(pgid int, deadline time.Time) bool {
	for {
		pids, err := readPids(filepath.Join(g.dir, "tasks"))
		if err != nil || len(pids) == 0 {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		if !awaitExit(pids, deadline) {
			time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
		}
	}
}

// spoil keeps the cgroup from reuse: the watchdog may have frozen it, and
// may be about to thaw it.
func (g *freezerCage) spoil() { g.spoiled.Store(true) }

func (g *freezerCage) close(pgid int) error {
	// Run has killed everything; what is left is dying, or was forked
	// while the kill was under way and needs another.
	deadline := time.Now().Add(killWait)
	for {
		round := time.Now().Add(100 * time.Millisecond)
		if round.After(deadline) {
			round = deadline
		}
		if g.wait(pgid, round) {
			if b, err := os.ReadFile(filepath.Join(g.dir, "freezer.state")); err != nil || string(bytes.TrimSpace(b)) != "THAWED" || g.spoiled.Load() {
				// Not for reuse: the next attempt would freeze.
				return removeCgroup(g.dir, deadline)
			}
			return g.pool.put(g.dir)
		}
		if !time.Now().Before(deadline) {
			return removeCgroup(g.dir, deadline)
		}
		g.kill(pgid)
	}
}

// poolSize bounds the empty cgroups a process keeps for reuse: about the
// attempts it runs at once, beyond which a burst's cgroups are removed.
const poolSize = 32

// cgroupPool keeps the cgroups of finished attempts, empty, for the next
// attempts: making and removing a cgroup costs about 0.3 ms, a quarter of
// starting a process, and an empty cgroup keeps nothing of its last
// attempt that matters (no process can join it but by tasuki's doing).
// The cgroups left in it when tasuki exits are removed by the next
// tasuki's sweep. A nil pool keeps nothing.
type cgroupPool struct {
	mu   sync.Mutex
	free []string
}

// take returns an empty cgroup from the pool, or makes dir.
func (p *cgroupPool) take(dir string) (string, error) {
	if p != nil {
		p.mu.Lock()
		if n := len(p.free); n > 0 {
			dir = p.free[n-1]
			p.free = p.free[:n-1]
			p.mu.Unlock()
			return dir, nil
		}
		p.mu.Unlock()
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("make attempt cgroup: %w", err)
	}
	return dir, nil
}

// put keeps the empty cgroup dir for reuse, or removes it when the pool
// is full.
func (p *cgroupPool) put(dir string) error {
	if p != nil {
		p.mu.Lock()
		if len(p.free) < poolSize {
			p.free = append(p.free, dir)
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
	}
	return removeCgroup(dir, time.Now().Add(killWait))
}

// drain removes the pooled cgroups.
func (p *cgroupPool) drain() error {
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	var errs []error
	for _, dir := range free {
		if err := removeCgroup(dir, time.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
