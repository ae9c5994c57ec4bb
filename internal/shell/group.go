package shell

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// waitGroupExit returns when no live process is left in group pgid, or at
// deadline. It waits on the exit of the members it finds (pidfds, so no
// sleeping) and looks again when they are gone, to catch processes they
// started meanwhile.
//
// kill(-pgid, 0) cannot answer "is the group empty": it counts zombies, and
// an orphan stays a zombie until init reaps it, which some inits do lazily
// and which a tasuki running as PID 1 of a container would never do. Hence
// the scan of /proc, which only runs for attempts that are being stopped.
func waitGroupExit(pgid int, deadline time.Time) {
	for time.Now().Before(deadline) {
		pids := liveMembers(pgid)
		if len(pids) == 0 {
			return
		}
		if !awaitExit(pids, deadline) {
			// No pidfds (Linux before 5.3): fall back to a slow poll.
			time.Sleep(min(50*time.Millisecond, time.Until(deadline)))
		}
	}
}

// awaitExit waits until every process in pids has exited or deadline
// passes. It returns false if it cannot wait on process exits.
func awaitExit(pids []int, deadline time.Time) bool {
	fds := make([]unix.PollFd, 0, len(pids))
	defer func() {
		for _, p := range fds {
			if p.Fd >= 0 {
				_ = unix.Close(int(p.Fd))
			}
		}
	}()
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // already gone
		}
		if err != nil {
			return false
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	for pending := len(fds); pending > 0; {
		ms := time.Until(deadline).Milliseconds() + 1
		if ms <= 0 {
			return true
		}
		n, err := unix.Poll(fds, int(min(ms, 1<<30)))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false
		}
		if n == 0 {
			return true // deadline
		}
		for i := range fds {
			if fds[i].Revents != 0 && fds[i].Fd >= 0 {
				// Exited: stop watching it (a negative fd is ignored by poll).
				_ = unix.Close(int(fds[i].Fd))
				fds[i].Fd, fds[i].Revents = -1, 0
				pending--
			}
		}
	}
	return true
}

// liveMembers lists the processes of group pgid that have not exited
// (zombies excluded), by reading /proc.
func liveMembers(pgid int) []int {
	// A cheap check first: an empty group needs no scan.
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil
	}
	var pids []int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if state, g, ok := procStat(pid); ok && g == pgid && state != "Z" && state != "X" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads a process's state and process group from /proc/pid/stat.
func procStat(pid int) (state string, pgid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// "pid (comm) state ppid pgrp ..."; comm may contain spaces and ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return "", 0, false
	}
	g, err := strconv.Atoi(f[2])
	if err != nil {
		return "", 0, false
	}
	return f[0], g, true
}
