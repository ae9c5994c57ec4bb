package hostfacts

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// system fills the facts of the machine and its operating system.
func (c *collector) system(r *Report) {
	r.Hostname = strings.TrimSpace(c.firstOf("proc/sys/kernel/hostname", "etc/hostname"))
	if r.Hostname == "" && c.live {
		r.Hostname, _ = os.Hostname()
	}
	r.MachineID = strings.TrimSpace(c.firstOf("etc/machine-id", "var/lib/dbus/machine-id"))
	osr := c.firstOf("etc/os-release", "usr/lib/os-release")
	if osr == "" {
		c.warnf("no os-release in %s or %s", c.path("etc/os-release"), c.path("usr/lib/os-release"))
	}
	r.OS = ParseOSRelease(osr)
	r.Kernel = strings.TrimSpace(c.readSmall("proc/sys/kernel/osrelease"))
	r.Arch = strings.TrimSpace(c.readSmall("proc/sys/kernel/arch"))
	if c.live {
		var u unix.Utsname
		if err := unix.Uname(&u); err == nil {
			if r.Arch == "" {
				r.Arch = unix.ByteSliceToString(u.Machine[:])
			}
			if r.Kernel == "" {
				r.Kernel = unix.ByteSliceToString(u.Release[:])
			}
		}
	}
	r.CPU = ParseCPUInfo(c.readSmall("proc/cpuinfo"))
	r.Memory = ParseMeminfo(c.readSmall("proc/meminfo"))
	r.Disks = c.disks()
}

// ParseOSRelease reads the fields of an os-release file (shell-style
// assignments, values optionally quoted) that a report keeps.
func ParseOSRelease(text string) OS {
	var o OS
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		key, val, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		val = unquote(strings.TrimSpace(val))
		switch strings.TrimSpace(key) {
		case "ID":
			o.ID = strings.ToLower(val)
		case "VERSION_ID":
			o.VersionID = val
		case "VERSION_CODENAME":
			o.VersionCodename = val
		case "ID_LIKE":
			o.IDLike = strings.Fields(strings.ToLower(val))
		case "PRETTY_NAME":
			o.PrettyName = val
		}
	}
	return o
}

// unquote removes the quotes of an os-release value: in double quotes a
// backslash escapes the next character; single quotes are taken as they are.
func unquote(v string) string {
	if len(v) < 2 || v[0] != v[len(v)-1] || (v[0] != '"' && v[0] != '\'') {
		return v
	}
	q, v := v[0], v[1:len(v)-1]
	if q == '\'' {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// ParseCPUInfo counts the processors of /proc/cpuinfo and takes the model
// of the first.
func ParseCPUInfo(text string) CPU {
	var c CPU
	for line := range strings.Lines(text) {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "processor":
			c.Count++
		case "model name", "Model", "cpu model":
			if c.Model == "" {
				c.Model = strings.TrimSpace(val)
			}
		}
	}
	return c
}

// ParseMeminfo reads MemTotal and MemAvailable (in kB) from /proc/meminfo.
func ParseMeminfo(text string) Memory {
	var m Memory
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil || n > 1<<53 {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			m.Total = n * 1024
		case "MemAvailable:":
			m.Available = n * 1024
		}
	}
	return m
}

// diskTypes are the file systems reported as disks; pseudo and virtual
// file systems (proc, tmpfs, cgroup, ...) are left out.
var diskTypes = map[string]bool{
	"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "zfs": true, "f2fs": true,
	"vfat": true, "exfat": true, "ntfs": true, "ntfs3": true, "jfs": true, "reiserfs": true,
	"nfs": true, "nfs4": true, "cifs": true, "ceph": true, "glusterfs": true, "fuseblk": true,
}

// disks lists the mounted disks from /proc/mounts, with their sizes when
// this is the live host (statfs on each mount point). A container's root
// (overlay) counts as a disk too: it is where its files are.
func (c *collector) disks() []Disk {
	var out []Disk
	seen := map[string]bool{}
	for line := range strings.Lines(c.readSmall("proc/mounts")) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		d := Disk{Device: unescapeMount(f[0]), Mount: unescapeMount(f[1]), FSType: f[2]}
		if !diskTypes[d.FSType] && d.Mount != "/" || seen[d.Mount] || len(out) == MaxDisks {
			continue
		}
		seen[d.Mount] = true
		if c.live {
			var st unix.Statfs_t
			if err := unix.Statfs(d.Mount, &st); err == nil {
				bs := uint64(st.Bsize)
				d.Size, d.Free = st.Blocks*bs, st.Bavail*bs
				d.Used = (st.Blocks - st.Bfree) * bs
			}
		}
		out = append(out, d)
	}
	return out
}

// unescapeMount undoes the octal escapes of /proc/mounts (\040 for a
// space).
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
