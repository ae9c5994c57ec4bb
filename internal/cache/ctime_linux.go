package cache

import (
	"io/fs"
	"syscall"
)

// changeTime is a file's status change time (ctime), which every write
// moves and no one can set back: a file rewritten with its size and
// modification time restored still shows as changed.
func changeTime(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano()
	}
	return 0
}
