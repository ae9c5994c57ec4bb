package hostfacts

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
)

// maxFDs bounds the file descriptors looked at to find the processes
// behind sockets: a host with more leaves some listeners without one.
const maxFDs = 1_000_000

// Socket states in /proc/net/*: a TCP socket listening, a UDP socket not
// connected (bound, receiving from anyone).
const (
	tcpListen   = "0A"
	udpUnconned = "07"
)

// listeners lists the listening sockets, each with its process and that
// process's package where they can be found.
func (c *collector) listeners(ctx context.Context, r *Report) {
	byInode := map[uint64][]int{} // inode -> indexes in ls
	var ls []Listener
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		name := "proc/net/" + proto
		f, err := c.fsys.Open(name)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				c.warnf("read %s: %v", c.path(name), unwrapPath(err))
			}
			continue
		}
		socks, err := ParseProcNet(f, proto)
		f.Close()
		if err != nil {
			c.warnf("read %s: %v", c.path(name), err)
		}
		for _, s := range socks {
			if len(ls) == MaxListeners {
				c.warnf("more than %d listening sockets: the rest are left out", MaxListeners)
				break
			}
			if s.Inode != 0 {
				byInode[s.Inode] = append(byInode[s.Inode], len(ls))
			}
			ls = append(ls, s.Listener)
		}
	}
	if len(byInode) > 0 {
		c.owners(byInode, ls)
		c.exePackages(ctx, r, ls)
	}
	slices.SortFunc(ls, func(a, b Listener) int {
		return cmp.Or(strings.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port),
			strings.Compare(a.Address, b.Address), cmp.Compare(a.PID, b.PID))
	})
	// Sockets sharing an address (SO_REUSEPORT, or one per worker) are one
	// listener: the first process.
	r.Listeners = slices.CompactFunc(ls, func(a, b Listener) bool {
		return a.Proto == b.Proto && a.Address == b.Address && a.Port == b.Port
	})
}

// Socket is a line of /proc/net/{tcp,tcp6,udp,udp6} that listens.
type Socket struct {
	Listener
	Inode uint64
}

// ParseProcNet reads the listening (TCP) or unconnected bound (UDP)
// sockets of a /proc/net table. Addresses are printed by the kernel as
// 32-bit words in the host's byte order. Malformed lines are skipped.
func ParseProcNet(r io.Reader, proto string) ([]Socket, error) {
	want := tcpListen
	if strings.HasPrefix(proto, "udp") {
		want = udpUnconned
	}
	var out []Socket
	err := scanLines(r, func(line string) bool {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != want {
			return true
		}
		addr, port, ok := parseHexAddr(f[1])
		if !ok {
			return true
		}
		if _, rport, ok := parseHexAddr(f[2]); !ok || rport != 0 {
			return true // a connected UDP socket
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return true
		}
		out = append(out, Socket{Listener: Listener{Proto: proto, Address: addr.String(), Port: port}, Inode: inode})
		return true
	})
	return out, err
}

// parseHexAddr reads "0100007F:0035" (127.0.0.1:53) or its 32-digit IPv6
// form.
func parseHexAddr(s string) (netip.Addr, int, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || (len(a) != 8 && len(a) != 32) {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return addr.Unmap(), int(port), true
}

// owners finds the process of each socket: the /proc/PID/fd link that
// reads socket:[INODE], then the process's command name and executable.
func (c *collector) owners(byInode map[uint64][]int, ls []Listener) {
	procs, err := fs.ReadDir(c.fsys, "proc")
	if err != nil {
		return
	}
	left, fds, denied := len(byInode), 0, 0
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := path.Join("proc", p.Name(), "fd")
		entries, err := fs.ReadDir(c.fsys, dir)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				denied++
			}
			continue
		}
		var proc *Listener
		for _, e := range entries {
			if fds++; fds > maxFDs {
				c.warnf("more than %d open files on this host: some listening sockets are left without their process", maxFDs)
				return
			}
			target, err := fs.ReadLink(c.fsys, path.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			num, ok := strings.CutPrefix(target, "socket:[")
			num, ok2 := strings.CutSuffix(num, "]")
			if !ok || !ok2 {
				continue
			}
			inode, err := strconv.ParseUint(num, 10, 64)
			idx := byInode[inode]
			if err != nil || len(idx) == 0 || ls[idx[0]].PID != 0 {
				continue
			}
			if proc == nil {
				proc = &Listener{PID: pid, Process: strings.TrimSpace(c.readSmall(path.Join("proc", p.Name(), "comm")))}
				if exe, err := fs.ReadLink(c.fsys, path.Join("proc", p.Name(), "exe")); err == nil {
					proc.Exe = strings.TrimSuffix(exe, " (deleted)")
				}
			}
			for _, i := range idx {
				ls[i].PID, ls[i].Process, ls[i].Exe = proc.PID, proc.Process, proc.Exe
			}
			if left--; left == 0 {
				return
			}
		}
	}
	if denied > 0 {
		c.warnf("the open files of %d processes could not be read (run as root to find the process of every listening socket)", denied)
	}
}

// exePackages sets the package of each listener's executable: from dpkg's
// file lists (/var/lib/dpkg/info/*.list) on a deb host, from rpm -qf on an
// rpm host.
func (c *collector) exePackages(ctx context.Context, r *Report, ls []Listener) {
	want := map[string]string{} // a path the package may list -> the executable
	for _, l := range ls {
		if l.Exe == "" {
			continue
		}
		for _, p := range usrMergeAliases(l.Exe) {
			want[p] = l.Exe
		}
	}
	if len(want) == 0 {
		return
	}
	found := map[string]string{} // executable -> package
	switch r.Scheme {
	case "deb":
		c.dpkgOwners(want, found)
	case "rpm":
		for _, exe := range sortedKeys(want) {
			if want[exe] != exe || found[exe] != "" {
				continue
			}
			out, err := c.opts.Run(ctx, "rpm", "--root", c.root, "-qf", "--queryformat", `%{NAME}\n`, exe)
			if err == nil {
				if name, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); name != "" {
					found[exe] = name
				}
			}
		}
	}
	for i := range ls {
		ls[i].Package = found[ls[i].Exe]
	}
}

// usrMergeAliases are the paths an executable may be listed under by its
// package: on a merged-/usr system /sbin/x is /usr/sbin/x and a package may
// name either.
func usrMergeAliases(exe string) []string {
	out := []string{exe}
	for _, d := range []string{"/bin/", "/sbin/", "/lib/", "/lib64/"} {
		if rest, ok := strings.CutPrefix(exe, "/usr"+d); ok {
			out = append(out, d+rest)
		} else if rest, ok := strings.CutPrefix(exe, d); ok {
			out = append(out, "/usr"+d+rest)
		}
	}
	return out
}

// dpkgOwners reads dpkg's file lists until every wanted path is found.
func (c *collector) dpkgOwners(want map[string]string, found map[string]string) {
	lists, err := fs.Glob(c.fsys, "var/lib/dpkg/info/*.list")
	if err != nil {
		return
	}
	left := len(want)
	for _, l := range lists {
		f, err := c.fsys.Open(l)
		if err != nil {
			continue
		}
		pkg := strings.TrimSuffix(path.Base(l), ".list")
		pkg, _, _ = strings.Cut(pkg, ":") // libc6:amd64.list
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if exe, ok := want[sc.Text()]; ok && found[exe] == "" {
				found[exe] = pkg
				left--
			}
		}
		f.Close()
		if left <= 0 {
			return
		}
	}
}
