package hostfacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"slices"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

// Where the package databases are under a root.
const dpkgStatus = "var/lib/dpkg/status"

// rpmDBPaths are the directories rpm keeps its database in: the newer
// place first (Fedora 36+, RHEL 10), then the older.
var rpmDBPaths = []string{"usr/lib/sysimage/rpm", "var/lib/rpm"}

// rpmQueryFormat is what rpm prints per package: the fields ParseRPMQuery
// reads, tab-separated. %{EPOCH} is "(none)" without an epoch.
const rpmQueryFormat = `%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n`

// packages reads the installed packages and decides the host's scheme: the
// dpkg database when it has packages, else the rpm database through rpm,
// else the scheme os-release implies (a host with no package read).
func (c *collector) packages(ctx context.Context, r *Report) error {
	pkgs, err := c.dpkg()
	if err != nil {
		return err
	}
	if len(pkgs) > 0 {
		r.Scheme, r.Packages = pkgver.Deb, pkgs
		return nil
	}
	if pkgs, err = c.rpm(ctx); err != nil {
		return err
	}
	if len(pkgs) > 0 {
		r.Scheme, r.Packages = pkgver.RPM, pkgs
		return nil
	}
	r.Scheme = schemeOf(r.OS)
	return nil
}

func (c *collector) dpkg() ([]Package, error) {
	f, err := c.fsys.Open(dpkgStatus)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.warnf("read %s: %v", c.path(dpkgStatus), unwrapPath(err))
		}
		return nil, nil
	}
	defer f.Close()
	pkgs, err := ParseDpkgStatus(f, c.opts.MaxPackages)
	if errors.Is(err, ErrTooManyPackages) {
		return nil, fmt.Errorf("host facts: %s: %w", c.path(dpkgStatus), err)
	}
	if err != nil {
		c.warnf("read %s: %v", c.path(dpkgStatus), err)
	}
	return pkgs, nil
}

// rpm asks rpm for the packages of the root's rpm database, if it has one.
func (c *collector) rpm(ctx context.Context) ([]Package, error) {
	db := ""
	for _, p := range rpmDBPaths {
		if entries, err := fs.ReadDir(c.fsys, p); err == nil && len(entries) > 0 {
			db = p
			break
		}
	}
	if db == "" {
		return nil, nil
	}
	out, err := c.opts.Run(ctx, "rpm", "--root", c.root, "--dbpath", "/"+db, "-qa", "--queryformat", rpmQueryFormat)
	switch {
	case errors.Is(err, exec.ErrNotFound):
		c.warnf("%s holds an rpm database, but rpm is not installed here to read it", c.path(db))
		return nil, nil
	case err != nil:
		c.warnf("rpm -qa: %v", err)
		return nil, nil
	}
	pkgs, err := ParseRPMQuery(strings.NewReader(string(out)), c.opts.MaxPackages)
	if errors.Is(err, ErrTooManyPackages) {
		return nil, fmt.Errorf("host facts: rpm -qa: %w", err)
	}
	if err != nil {
		c.warnf("rpm -qa: %v", err)
	}
	return pkgs, nil
}

// ErrTooManyPackages is returned when a database holds more packages than
// the bound given.
var ErrTooManyPackages = errors.New("too many installed packages")

// ParseDpkgStatus reads dpkg's status database (/var/lib/dpkg/status): one
// stanza of "Field: value" lines per package, stanzas separated by blank
// lines, continuation lines starting with a space. It returns the packages
// whose state is "installed" (the third word of Status: "install ok
// installed", but also "hold ok installed", a held package, whose files
// are there all the same), sorted by name and architecture. A Source field
// may carry the source version in parentheses ("Source: dnsmasq
// (2.80-1)") when it differs from the package's. Malformed lines are
// skipped; more than max packages is ErrTooManyPackages.
func ParseDpkgStatus(r io.Reader, max int) ([]Package, error) {
	var (
		pkgs    []Package
		cur     Package
		status  string
		inStanz bool
	)
	flush := func() error {
		defer func() { cur, status, inStanz = Package{}, "", false }()
		if !inStanz || cur.Name == "" || cur.Version == "" {
			return nil
		}
		if f := strings.Fields(status); len(f) != 3 || f[2] != "installed" {
			return nil
		}
		if cur.Source == "" {
			cur.Source = cur.Name
		}
		if cur.SourceVersion == "" {
			cur.SourceVersion = cur.Version
		}
		if len(pkgs) == max {
			return fmt.Errorf("%w: more than %d", ErrTooManyPackages, max)
		}
		pkgs = append(pkgs, cur)
		return nil
	}
	var ferr error
	err := scanLines(r, func(line string) bool {
		if strings.TrimSpace(line) == "" {
			ferr = flush()
			return ferr == nil
		}
		inStanz = true
		if line[0] == ' ' || line[0] == '\t' {
			return true // a continuation: of no field read here
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return true
		}
		val = strings.TrimSpace(val)
		switch strings.ToLower(key) {
		case "package":
			cur.Name = val
		case "version":
			cur.Version = val
		case "architecture":
			cur.Arch = val
		case "status":
			status = val
		case "source":
			name, ver, _ := strings.Cut(val, " ")
			cur.Source = name
			if ver = strings.TrimSpace(ver); strings.HasPrefix(ver, "(") && strings.HasSuffix(ver, ")") {
				cur.SourceVersion = strings.TrimSpace(ver[1 : len(ver)-1])
			}
		}
		return true
	})
	if ferr == nil && err == nil {
		ferr = flush()
	}
	sortPackages(pkgs)
	if ferr != nil {
		return nil, ferr
	}
	if err != nil {
		return pkgs, err
	}
	return pkgs, nil
}

// ParseRPMQuery reads what rpm -qa --queryformat rpmQueryFormat prints:
// name, epoch ("(none)" for none), version, release, architecture and
// source RPM, tab-separated, one package a line. The version is
// [epoch:]version-release; the source package's name and version come from
// the source RPM's file name (dnsmasq-2.85-16.el9_4.src.rpm), with the
// package's epoch, which source and binary share. gpg-pubkey entries (keys
// rpm keeps as pseudo-packages) are skipped.
func ParseRPMQuery(r io.Reader, max int) ([]Package, error) {
	var (
		pkgs []Package
		ferr error
	)
	err := scanLines(r, func(line string) bool {
		f := strings.Split(line, "\t")
		if len(f) != 6 || f[0] == "" || f[2] == "" || f[0] == "gpg-pubkey" {
			return true
		}
		none := func(s string) string {
			if s == "(none)" {
				return ""
			}
			return s
		}
		epoch := none(f[1])
		p := Package{Name: f[0], Version: f[2] + "-" + f[3], Arch: none(f[4])}
		if epoch != "" && epoch != "0" {
			p.Version = epoch + ":" + p.Version
		}
		p.Source, p.SourceVersion = p.Name, p.Version
		if name, ver, rel, ok := splitSourceRPM(none(f[5])); ok {
			p.Source, p.SourceVersion = name, ver+"-"+rel
			if epoch != "" && epoch != "0" {
				p.SourceVersion = epoch + ":" + p.SourceVersion
			}
		}
		if len(pkgs) == max {
			ferr = fmt.Errorf("%w: more than %d", ErrTooManyPackages, max)
			return false
		}
		pkgs = append(pkgs, p)
		return true
	})
	if ferr != nil {
		return nil, ferr
	}
	sortPackages(pkgs)
	return pkgs, err
}

// splitSourceRPM splits name-version-release.src.rpm (or .nosrc.rpm).
func splitSourceRPM(s string) (name, version, release string, ok bool) {
	s, ok = strings.CutSuffix(s, ".src.rpm")
	if !ok {
		if s, ok = strings.CutSuffix(s, ".nosrc.rpm"); !ok {
			return "", "", "", false
		}
	}
	r := strings.LastIndexByte(s, '-')
	if r <= 0 {
		return "", "", "", false
	}
	v := strings.LastIndexByte(s[:r], '-')
	if v <= 0 || v+1 == r || r+1 == len(s) {
		return "", "", "", false
	}
	return s[:v], s[v+1 : r], s[r+1:], true
}

func sortPackages(pkgs []Package) {
	slices.SortFunc(pkgs, func(a, b Package) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Arch, b.Arch)
	})
}
