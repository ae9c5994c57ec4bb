package hostfacts

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

// Options say where and how to collect.
type Options struct {
	// Root is the directory the host's files are read under: "/" (the
	// default) for this host, or a host image or test fixture.
	Root string
	// Now stamps the report; nil is time.Now.
	Now func() time.Time
	// Run runs a command (rpm, systemctl) and returns its standard
	// output; it returns an error wrapping exec.ErrNotFound when the
	// command is not installed, which is no warning. Nil runs them with
	// os/exec. Tests give recorded output.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// MaxPackages bounds the packages read; 0 is the package's
	// MaxPackages.
	MaxPackages int
}

// collector is the state of one collection.
type collector struct {
	opts     Options
	root     string // absolute
	live     bool   // root is "/": the running host
	fsys     fs.FS
	warnings []string
}

// Collect gathers a host's facts under opts.Root. It fails only when the
// root cannot be read at all or a bound is passed; what else could not be
// read is in the report's Warnings.
func Collect(ctx context.Context, opts Options) (*Report, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Run == nil {
		opts.Run = runCommand
	}
	if opts.MaxPackages <= 0 || opts.MaxPackages > MaxPackages {
		opts.MaxPackages = MaxPackages
	}
	abs, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("host facts: root %s: %w", opts.Root, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("host facts: %w", err)
	}
	defer root.Close()
	c := &collector{opts: opts, root: abs, live: abs == "/", fsys: root.FS()}
	r := &Report{Version: ReportVersion, CollectedAt: opts.Now().UTC().Truncate(time.Second)}
	c.system(r)
	if err := c.packages(ctx, r); err != nil {
		return nil, err
	}
	c.services(ctx, r)
	c.listeners(ctx, r)
	r.Containers = c.containers()
	if r.Disks == nil {
		r.Disks = []Disk{}
	}
	if r.Packages == nil {
		r.Packages = []Package{}
	}
	if r.Services == nil {
		r.Services = []Service{}
	}
	if r.Listeners == nil {
		r.Listeners = []Listener{}
	}
	if len(c.warnings) > MaxWarnings {
		n := len(c.warnings) - MaxWarnings + 1
		c.warnings = append(c.warnings[:MaxWarnings-1], fmt.Sprintf("and %d more warnings", n))
	}
	r.Warnings = c.warnings
	if r.Hostname == "" {
		r.Hostname = "unknown"
		c.warnf("no hostname in %s: reported as %q", c.path("proc/sys/kernel/hostname"), r.Hostname)
	}
	if _, err := r.Encode(); err != nil {
		return nil, err
	}
	return r, nil
}

func (c *collector) warnf(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// path is how a file under the root is named in messages: as the host
// names it for the live host, with the root before it otherwise.
func (c *collector) path(name string) string {
	return filepath.Join(c.root, filepath.FromSlash(name))
}

// readSmall reads a small file (a /proc or /etc file of a few lines). A
// missing file is "" without a warning: what it describes is absent.
func (c *collector) readSmall(name string) string {
	f, err := c.fsys.Open(name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.warnf("read %s: %v", c.path(name), unwrapPath(err))
		}
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		c.warnf("read %s: %v", c.path(name), unwrapPath(err))
	}
	return string(b)
}

// firstOf reads the first of the files that exists.
func (c *collector) firstOf(names ...string) string {
	for _, n := range names {
		if _, err := fs.Stat(c.fsys, n); err == nil {
			return c.readSmall(n)
		}
	}
	return ""
}

// unwrapPath drops the path of a *fs.PathError, which the caller names
// already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// scanLines calls fn with each line of what a file holds, up to
// maxLine bytes each.
func scanLines(r io.Reader, fn func(string) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if !fn(sc.Text()) {
			return nil
		}
	}
	return sc.Err()
}

// runCommand is the default Options.Run: the command from PATH, with the C
// locale, its error carrying the first line of what it wrote on stderr.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0")
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 4096}
	out, err := cmd.Output()
	if err != nil {
		if line, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n"); line != "" {
			return out, fmt.Errorf("%w: %s", err, line)
		}
		return out, err
	}
	return out, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// schemeOf is the version scheme of an OS whose package database was not
// found, from its ID and ID_LIKE.
func schemeOf(o OS) pkgver.Scheme {
	for _, id := range append([]string{o.ID}, o.IDLike...) {
		switch id {
		case "debian", "ubuntu", "raspbian", "linuxmint", "pop", "kali", "devuan":
			return pkgver.Deb
		case "rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn", "suse", "opensuse", "sles", "mariner", "azurelinux":
			return pkgver.RPM
		}
	}
	return ""
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
