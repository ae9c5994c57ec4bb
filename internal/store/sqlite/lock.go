package sqlite

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Use says how a process uses a store, which decides the lock it takes on
// the lock file beside the database (tasuki.db.lock). The locks are flock(2)
// locks: the kernel drops them when the process ends, however it ends, so a
// crash never leaves a store locked.
type Use int

const (
	// Inspect takes no lock: commands that read a store, or change one run
	// through the run's own lock, work beside anything.
	Inspect Use = iota
	// Local is a process that executes runs itself ('tasuki run', and
	// resume, retry or rerun without a server). Any number of them share a
	// store, SQLite ordering their writes, but none starts beside a server
	// (a shared lock).
	Local
	// Server is a 'tasuki server', which schedules and executes every run of
	// the store: it owns the store alone (an exclusive lock). A second server
	// on the same store would start the same schedules and fight over the
	// same runs.
	Server
)

// ErrInUse is returned (as an *InUseError) by OpenFor when the store is
// owned by a process that excludes this use.
var ErrInUse = errors.New("store is in use by another process")

// InUseError says who holds a store that OpenFor could not lock.
type InUseError struct {
	// Lock is the lock file.
	Lock string
	// Server is true when a server owns the store; false when local runs
	// hold it (and a server was asked for).
	Server bool
	// PID and Command name the server, when it could be read from the lock
	// file (0 and "" otherwise, or for local runs).
	PID     int
	Command string
}

func (e *InUseError) Error() string {
	if !e.Server {
		return fmt.Sprintf("the store is in use by processes executing runs here ('tasuki run', or resume, retry, rerun without a server), which hold %s", e.Lock)
	}
	who := "a tasuki server"
	if e.PID > 0 {
		who = fmt.Sprintf("a tasuki server (process %d: %s)", e.PID, e.Command)
	}
	return fmt.Sprintf("the store is owned by %s, which holds %s", who, e.Lock)
}

// Unwrap lets errors.Is(err, ErrInUse) hold.
func (e *InUseError) Unwrap() error { return ErrInUse }

// lockPath is the lock file of the database at abs.
func lockPath(abs string) string { return abs + ".lock" }

// lock takes the lock of use on the store at abs and returns the open lock
// file (closing it releases the lock), or nil for Inspect. The server writes
// its process id and command line into the file, so that whoever is refused
// learns which process to look at.
func lock(abs string, use Use) (*os.File, error) {
	if use == Inspect {
		return nil, nil
	}
	path := lockPath(abs)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	how := syscall.LOCK_SH
	if use == Server {
		how = syscall.LOCK_EX
	}
	err = flock(f, how|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		err = awaitDeadHolder(f, how)
	}
	if err != nil {
		defer f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// A shared lock is refused only beside a server. An exclusive one
		// is refused beside a server or beside local runs: a shared lock
		// tells which.
		e := &InUseError{Lock: path, Server: use == Local || flock(f, syscall.LOCK_SH|syscall.LOCK_NB) != nil}
		if e.Server {
			e.PID, e.Command = readHolder(f)
		}
		return nil, e
	}
	if use == Server {
		if err := writeHolder(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return f, nil
}

// holderGone bounds how long lock waits for the lock of a server that is
// no longer running to be released.
const holderGone = 5 * time.Second

// awaitDeadHolder tries the lock again for a few seconds when the server
// the lock file names is gone. A server killed with SIGKILL can leave its
// lock held for a moment after its death: a child it was forking holds the
// lock's open file until it execs (closing it, O_CLOEXEC) or dies of its
// parent's death; a supervisor restarting the server at once must not
// find its store "owned" by a dead process. A live holder is refused at
// once, as before.
func awaitDeadHolder(f *os.File, how int) error {
	deadline := time.Now().Add(holderGone)
	for {
		pid, _ := readHolder(f)
		if pid <= 0 || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH || !time.Now().Before(deadline) {
			return syscall.EWOULDBLOCK
		}
		time.Sleep(20 * time.Millisecond) // a release cannot be awaited: flock has no notification
		if err := flock(f, how|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
	}
}

// flock calls flock(2), again when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// writeHolder replaces the lock file's content with this process's id and
// command line.
func writeHolder(f *os.File) error {
	cmd := strings.Join(os.Args, " ")
	cmd = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, cmd)
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"+cmd+"\n"), 0); err != nil {
		return err
	}
	return nil
}

// readHolder reads the process id and command line a server wrote, or 0
// and "" when the file holds none (or the server is still writing it).
func readHolder(f *os.File) (int, string) {
	sc := bufio.NewScanner(io.NewSectionReader(f, 0, 64<<10))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	if !sc.Scan() {
		return 0, ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || pid <= 0 {
		return 0, ""
	}
	cmd := ""
	if sc.Scan() {
		cmd = strings.TrimSpace(sc.Text())
	}
	return pid, cmd
}
