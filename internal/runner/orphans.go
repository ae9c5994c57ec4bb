package runner

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// reapOrphans kills what is left of attempts that a killed tasuki process
// could not end itself. An attempt's first process dies with tasuki (its
// parent-death signal), but its children live on in the attempt's process
// group; they are found by the variables every attempt carries in its
// environment, and their whole process groups are killed. It returns the
// number of process groups killed.
//
// Only processes of the same data directory, run, task and attempt match, so
// runs of other data directories on the same machine are never touched.
// Processes whose task, item (TASUKI_ITEM_INDEX, "" for none) and attempt
// are spared (orphanKey) are left: a remote worker on this machine runs
// them, for an attempt adopted at recovery.
func reapOrphans(home string, runID int64, lost map[string]int, spared map[string]bool) int {
	if len(lost) == 0 {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	wantHome := []byte("TASUKI_HOME=" + home)
	wantRun := []byte("TASUKI_RUN_ID=" + strconv.FormatInt(runID, 10))
	groups := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		vars := bytes.Split(env, []byte{0})
		if !hasVar(vars, wantHome) || !hasVar(vars, wantRun) {
			continue
		}
		task, attempt := varValue(vars, "TASUKI_TASK_ID="), varValue(vars, "TASUKI_ATTEMPT=")
		// Attempt 0 stands for any attempt: the items of a map that was
		// running are all orphans, whichever attempt each was on.
		if n, ok := lost[task]; !ok || (n != 0 && strconv.Itoa(n) != attempt) {
			continue
		}
		if spared[orphanKey(task, varValue(vars, "TASUKI_ITEM_INDEX="), attempt)] {
			continue
		}
		pgid, err := syscall.Getpgid(pid)
		if err != nil {
			continue
		}
		groups[pgid] = true
	}
	killed := 0
	for pgid := range groups {
		if pgid <= 1 || pgid == syscall.Getpgrp() {
			continue
		}
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil || !errors.Is(err, syscall.ESRCH) {
			killed++
		}
	}
	return killed
}

func hasVar(vars [][]byte, want []byte) bool {
	for _, v := range vars {
		if bytes.Equal(v, want) {
			return true
		}
	}
	return false
}

func varValue(vars [][]byte, prefix string) string {
	for _, v := range vars {
		if bytes.HasPrefix(v, []byte(prefix)) {
			return string(v[len(prefix):])
		}
	}
	return ""
}

// orphanKey names the processes of an attempt of a task (and item) for
// reapOrphans.
func orphanKey(task, item, attempt string) string { return task + "\x00" + item + "\x00" + attempt }
