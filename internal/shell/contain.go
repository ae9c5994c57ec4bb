package shell

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mechanism names how Run keeps every process of an attempt together, so
// that all of them end with the attempt, including those that left its
// process group (setsid, daemons).
type Mechanism string

const (
	// Cgroup2 gives each attempt a cgroup v2 of its own. The main process
	// is started inside it (clone3 with CLONE_INTO_CGROUP), so nothing can
	// be forked outside it, and everything in it is ended with cgroup.kill.
	// It needs a writable cgroup v2 hierarchy and Linux 5.14.
	Cgroup2 Mechanism = "cgroup2"
	// Freezer gives each attempt a cgroup of the v1 freezer hierarchy. The
	// main process is forked from a thread that has joined it; everything
	// in it is frozen, sent SIGKILL and thawed.
	Freezer Mechanism = "cgroup1-freezer"
	// Subreaper makes tasuki a child subreaper (PR_SET_CHILD_SUBREAPER):
	// orphans of an attempt become tasuki's children instead of init's,
	// so every process the attempt started stays a descendant of tasuki.
	// Those descending from the attempt's main process, or carrying its
	// tag (AttemptTagEnv, in their environment), are ended with it. It
	// costs a scan of /proc when an attempt ends.
	Subreaper Mechanism = "subreaper"
	// ProcessGroup only ends the attempt's process group. It is what is
	// left when none of the others can be used.
	ProcessGroup Mechanism = "process-group"
)

// CgroupRootEnv overrides the cgroup directory under which attempts get
// their cgroups: a directory of a cgroup v2 hierarchy, or of the v1 freezer
// hierarchy. Unset, tasuki uses its own cgroup of the v2 hierarchy, then of
// the v1 freezer hierarchy. Set to "none", no cgroup is used.
const CgroupRootEnv = "TASUKI_CGROUP_ROOT"

// AttemptTagEnv is set in the environment of an attempt's processes when the
// subreaper mechanism is in use: it tells tasuki which attempt an adopted
// orphan belongs to.
const AttemptTagEnv = "TASUKI_ATTEMPT_TAG"

// Containment says how this tasuki process contains attempts: the mechanism,
// the cgroup directory if one is used, and why stronger mechanisms were not.
type Containment struct {
	Mechanism Mechanism
	// Path is the cgroup directory under which each attempt gets a cgroup
	// named tasuki-<tasuki's pid>-<n>; empty without cgroups.
	Path string
	// Reason says why the cgroup mechanisms are not used; empty when one is.
	Reason string
	// Swept counts the cgroups of tasuki processes that are gone (killed
	// outright) that were emptied and removed when the mechanism was chosen;
	// SweepErr says what of them could not be.
	Swept    int
	SweepErr error
}

// String describes the containment in one line for logs and status output.
func (c Containment) String() string {
	s := string(c.Mechanism)
	if c.Path != "" {
		s += " under " + c.Path
	}
	if c.Reason != "" {
		s += " (" + c.Reason + ")"
	}
	return s
}

// CurrentContainment reports how Run contains attempts in this process. The
// mechanism is chosen at first use (of this or of Run) and then kept: the
// strongest that works here, in the order Cgroup2, Freezer, Subreaper,
// ProcessGroup. Run itself logs nothing: the caller says it where its users
// look (the server's log at start, 'tasuki version').
func CurrentContainment() Containment { return processContainer().info }

// processContainer is the container every Run of this process uses. It is
// process-wide by nature: the cgroup tasuki runs in and the subreaper flag
// belong to the process, not to a caller.
var processContainer = sync.OnceValue(func() *container {
	c := probe(os.Getenv(CgroupRootEnv))
	c.info.Swept, c.info.SweepErr = c.sweep()
	return c
})

// container is a chosen mechanism and its state.
type container struct {
	info Containment
	seq  atomic.Uint64 // numbers the attempts' cgroups
	home string        // Freezer: the cgroup a thread returns to after a start
	pool *cgroupPool   // Cgroup2, Freezer: empty cgroups for reuse
	reap *reaper       // Subreaper
	// watch is the watchdog of this process's attempts, if one runs
	// (StartWatchdog): Run tells it the process groups it starts.
	watch atomic.Pointer[Watchdog]
}

// cage holds the processes of one attempt.
type cage interface {
	// start starts cmd inside the cage. The main process it starts leads
	// the process group whose id the other methods get as pgid; that is 0
	// if it never started.
	start(cmd *exec.Cmd) error
	// signal sends sig to every process in the cage that is not in the
	// main process's group, which the caller signals in one call.
	signal(pgid int, sig syscall.Signal)
	// kill ends every process in the cage at once (SIGKILL).
	kill(pgid int)
	// wait returns true once no process is left in the cage, or false at
	// deadline.
	wait(pgid int, deadline time.Time) bool
	// close kills whatever is left, waits for it to be gone and releases
	// the cage. Run calls it last, after the main process was reaped. It
	// reports what it could not do.
	close(pgid int) error
	// spoil says that something outside this process may have ended the
	// cage (the watchdog, while this process did not answer it): close is
	// not to keep it for reuse.
	spoil()
}

// probe chooses the mechanism. root is CgroupRootEnv's value.
func probe(root string) *container {
	var reasons []string
	if root == "none" {
		reasons = append(reasons, CgroupRootEnv+"=none")
	} else {
		c, err := probeCgroups(root)
		if err == nil {
			return c
		}
		reasons = append(reasons, err.Error())
	}
	if c, err := newSubreaper(); err == nil {
		c.info.Reason = strings.Join(reasons, "; ")
		return c
	} else {
		reasons = append(reasons, err.Error())
	}
	return &container{info: Containment{Mechanism: ProcessGroup, Reason: strings.Join(reasons, "; ")}}
}

// probeCgroups finds a cgroup directory tasuki can create attempts' cgroups
// in: root if given, else tasuki's own cgroup of the v2 hierarchy, else of
// the v1 freezer hierarchy.
func probeCgroups(root string) (*container, error) {
	if root != "" {
		var st unix.Statfs_t
		if err := unix.Statfs(root, &st); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", CgroupRootEnv, root, err)
		}
		switch st.Type {
		case unix.CGROUP2_SUPER_MAGIC:
			return newCgroup2(root)
		case unix.CGROUP_SUPER_MAGIC:
			return newFreezer(root, "")
		}
		return nil, fmt.Errorf("%s=%s: not a cgroup directory", CgroupRootEnv, root)
	}
	v2, v1, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	var errs []string
	if v2 != "" {
		c, err := newCgroup2(v2)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err.Error())
	} else {
		errs = append(errs, "no cgroup v2 hierarchy")
	}
	if v1 != "" {
		c, err := newFreezer(v1, "")
		if err == nil {
			return c, nil
		}
		errs = append(errs, err.Error())
	} else {
		errs = append(errs, "no cgroup v1 freezer hierarchy")
	}
	return nil, errors.New(strings.Join(errs, "; "))
}

// ownCgroups returns the directories of tasuki's own cgroup in the v2
// hierarchy and in the v1 freezer hierarchy, empty where there is none. The
// mounts come from /proc/self/mountinfo, the memberships from
// /proc/self/cgroup.
func ownCgroups() (v2, freezer string, err error) {
	member := map[string]string{} // "" for v2, "freezer" for v1 freezer
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", fmt.Errorf("read own cgroups: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(strings.TrimRight(line, "\n"), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			member[""] = f[2]
		}
		for ctl := range strings.SplitSeq(f[1], ",") {
			if ctl == "freezer" {
				member["freezer"] = f[2]
			}
		}
	}
	mf, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("read mounts: %w", err)
	}
	defer mf.Close()
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		// id parent major:minor root mount-point options [optional...] - type source super-options
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+4 {
			continue
		}
		mroot, mpoint, fstype, super := unescapeMount(fields[3]), unescapeMount(fields[4]), fields[sep+1], fields[sep+3]
		var key string
		switch {
		case fstype == "cgroup2":
			key = ""
		case fstype == "cgroup" && hasOption(super, "freezer"):
			key = "freezer"
		default:
			continue
		}
		path, ok := member[key]
		if !ok {
			continue
		}
		// The mount shows the hierarchy from mroot down; tasuki's cgroup
		// must be inside it to be reachable.
		rel, ok := strings.CutPrefix(path, mroot)
		if !ok || (rel != "" && mroot != "/" && !strings.HasPrefix(rel, "/")) {
			continue
		}
		dir := filepath.Join(mpoint, rel)
		if key == "" && v2 == "" {
			v2 = dir
		}
		if key == "freezer" && freezer == "" {
			freezer = dir
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("read mounts: %w", err)
	}
	return v2, freezer, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasOption(opts, name string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == name {
			return true
		}
	}
	return false
}

// sweep ends and removes the cgroups that a tasuki process which is no
// longer running left under the container's directory: when tasuki is
// killed outright, Pdeathsig ends each attempt's main process, but what it
// started lives on in the attempt's cgroup, found here by its name. A
// cgroup whose tasuki is alive, or whose name is not tasuki's, is left
// alone.
func (c *container) sweep() (int, error) {
	dirs, err := c.ownedCages(func(owner int) bool {
		if owner == os.Getpid() {
			return false
		}
		_, err := os.Stat("/proc/" + strconv.Itoa(owner))
		return err != nil // alive (or the pid was reused): leave it be
	})
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, dir := range dirs {
		g := c.foreignCage(dir)
		g.kill(0)
		if err := g.close(0); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// ownedCages lists the attempts' cgroups under the container's directory
// whose tasuki process (by pid, from the name: cageName) is one of those
// owner accepts. Without cgroups, there are none.
func (c *container) ownedCages(owner func(pid int) bool) ([]string, error) {
	if c.info.Mechanism != Cgroup2 && c.info.Mechanism != Freezer {
		return nil, nil
	}
	entries, err := os.ReadDir(c.info.Path)
	if err != nil {
		return nil, fmt.Errorf("list cgroups: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if pid, ok := cageOwner(e.Name()); ok && e.IsDir() && owner(pid) {
			dirs = append(dirs, filepath.Join(c.info.Path, e.Name()))
		}
	}
	return dirs, nil
}

// foreignCage is the cage of an attempt's cgroup dir that this process did
// not open: another tasuki's, ended from outside (sweep, the watchdog). Its
// methods take 0 for the group, which they do not know.
func (c *container) foreignCage(dir string) cage {
	if c.info.Mechanism == Freezer {
		return &freezerCage{dir: dir, home: c.home}
	}
	return &cgroup2Cage{dir: dir, fd: -1}
}

// cageOwner reads the pid of the tasuki process from the name of an
// attempt's cgroup (cageName).
func cageOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "tasuki-")
	if !ok {
		return 0, false
	}
	pid, seq, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(pid)
	if _, err2 := strconv.ParseUint(seq, 10, 64); err != nil || err2 != nil || p <= 0 {
		return 0, false
	}
	return p, true
}

// cageName names the cgroup of an attempt: tasuki's pid tells whose it is
// (and whether its owner is still alive), n makes it unique.
func (c *container) cageName() string {
	return "tasuki-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(c.seq.Add(1), 10)
}

// open makes the cage of one attempt.
func (c *container) open() (cage, error) {
	switch c.info.Mechanism {
	case Cgroup2:
		return openCgroup2(filepath.Join(c.info.Path, c.cageName()), c.pool)
	case Freezer:
		return openFreezer(filepath.Join(c.info.Path, c.cageName()), c.home, c.pool)
	case Subreaper:
		return c.reap.open(), nil
	}
	return groupCage{}, nil
}

// groupCage is the ProcessGroup mechanism: the cage is the process group.
type groupCage struct{}

func (groupCage) start(cmd *exec.Cmd) error  { return cmd.Start() }
func (groupCage) signal(int, syscall.Signal) {}
func (groupCage) kill(pgid int)              { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
func (groupCage) close(int) error            { return nil }
func (groupCage) spoil()                     {}
func (groupCage) wait(pgid int, deadline time.Time) bool {
	waitGroupExit(pgid, deadline)
	return len(liveMembers(pgid)) == 0
}

// writeFile writes s to a cgroup control file, which takes one write.
func writeFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readPids reads a cgroup.procs or tasks file.
func readPids(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// signalOutsideGroup sends sig to those of pids that are not in group pgid.
func signalOutsideGroup(pids []int, pgid int, sig syscall.Signal) {
	for _, pid := range pids {
		if _, g, ok := procStat(pid); ok && g == pgid {
			continue
		}
		_ = syscall.Kill(pid, sig)
	}
}

// removeCgroup removes an attempt's cgroup directory. A process that is
// still dying (stuck in the kernel) keeps it busy for a while; the removal
// is retried until deadline.
func removeCgroup(dir string, deadline time.Time) error {
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || !time.Now().Before(deadline) {
			return fmt.Errorf("remove attempt cgroup %s: %w", dir, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
