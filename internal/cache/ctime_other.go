//go:build !linux

package cache

import "io/fs"

// changeTime is not read here: the inode, size and modification time
// decide whether a file changed.
func changeTime(fs.FileInfo) int64 { return 0 }
