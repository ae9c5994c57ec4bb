package osv

import (
	"slices"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

// Host is what matching needs of a host: its distribution and release
// as os-release gives them (ID, VERSION_ID) and its version scheme.
type Host struct {
	Distro  string        // debian, ubuntu, rocky
	Release string        // 10, 22.04, 9.4
	Scheme  pkgver.Scheme // deb, rpm
}

// InstalledPackage is a package as a host reports it.
type InstalledPackage struct {
	Name          string
	Version       string
	Source        string // "" is Name
	SourceVersion string // "" is Version
}

// Finding is a package found affected by an advisory.
type Finding struct {
	Advisory  *Advisory
	Ecosystem string // of the affected entry that matched: "Debian:10"
	Package   string // the name the advisory lists: a source package on Debian
	Version   string // the host's version compared: the source version when Package is the source
	// Fixed is the first fixed version after Version, "" when the
	// advisory gives none (not fixed yet, or only a last affected version).
	Fixed string
}

// distros maps os-release IDs to OSV ecosystem names and their schemes.
var distros = map[string]struct {
	ecosystem string
	scheme    pkgver.Scheme
}{
	"debian":    {"Debian", pkgver.Deb},
	"ubuntu":    {"Ubuntu", pkgver.Deb},
	"almalinux": {"AlmaLinux", pkgver.RPM},
	"rocky":     {"Rocky Linux", pkgver.RPM},
	"rhel":      {"Red Hat", pkgver.RPM},
}

// EcosystemScheme is the version scheme of an OSV ecosystem ("Debian:10"
// is deb), or "" for one this package does not evaluate.
func EcosystemScheme(ecosystem string) pkgver.Scheme {
	base, _, _ := strings.Cut(ecosystem, ":")
	for _, d := range distros {
		if d.ecosystem == base {
			return d.scheme
		}
	}
	return ""
}

// Applies reports whether an OSV ecosystem describes the host's
// distribution and release. The ecosystem's base name must be the
// distribution's ("Debian" for ID=debian); if it names releases, one of
// its colon-separated parts must be the host's VERSION_ID or that
// version's major number: "Debian:10" for 10, "Ubuntu:22.04:LTS" and
// "Ubuntu:Pro:22.04:LTS" for 22.04, "Rocky Linux:9" for 9.4,
// "Red Hat:enterprise_linux:9::appstream" for 9.x. An ecosystem with no
// release applies to every release.
func Applies(ecosystem string, h Host) bool {
	d, ok := distros[strings.ToLower(h.Distro)]
	if !ok {
		return false
	}
	parts := strings.Split(ecosystem, ":")
	if parts[0] != d.ecosystem {
		return false
	}
	major, _, _ := strings.Cut(h.Release, ".")
	rest := slices.DeleteFunc(parts[1:], func(s string) bool { return s == "" })
	if len(rest) == 0 {
		return true
	}
	return h.Release != "" && (slices.Contains(rest, h.Release) || slices.Contains(rest, major))
}

// Check returns the ways the advisory affects the package on the host:
// for each affected entry of the host's ecosystem that names the package,
// whether its version is in the entry's ranges or versions. On deb hosts
// the package's source name (with the source version) is looked for first,
// and its own name only if no entry lists the source; on rpm hosts the
// other way round. A withdrawn advisory affects nothing.
func (a *Advisory) Check(h Host, p InstalledPackage) []Finding {
	if a.Withdrawn != nil {
		return nil
	}
	var out []Finding
	for _, c := range candidates(h.Scheme, p) {
		listed := false
		for _, af := range a.Affected {
			scheme := EcosystemScheme(af.Package.Ecosystem)
			if c.name != af.Package.Name || scheme == "" || scheme != h.Scheme || !Applies(af.Package.Ecosystem, h) {
				continue
			}
			listed = true
			if hit, fixed := af.Includes(scheme, c.version); hit {
				out = append(out, Finding{Advisory: a, Ecosystem: af.Package.Ecosystem, Package: c.name, Version: c.version, Fixed: fixed})
			}
		}
		if listed {
			break
		}
	}
	return out
}

type candidate struct{ name, version string }

// candidates are the names an advisory may list a package under, with the
// version to compare for each, in the order they are tried.
func candidates(s pkgver.Scheme, p InstalledPackage) []candidate {
	src, srcVer := p.Source, p.SourceVersion
	if src == "" {
		src = p.Name
	}
	if srcVer == "" || src == p.Name && p.Source == "" {
		srcVer = p.Version
	}
	bin := candidate{p.Name, p.Version}
	source := candidate{src, srcVer}
	switch {
	case src == p.Name && s == pkgver.Deb:
		return []candidate{source}
	case src == p.Name:
		return []candidate{bin}
	case s == pkgver.Deb:
		return []candidate{source, bin}
	}
	return []candidate{bin, source}
}

// Check returns the findings of every advisory on the package, in
// advisory id order.
func (db *DB) Check(h Host, p InstalledPackage) []Finding {
	var seen []*Advisory
	for _, name := range []string{p.Source, p.Name} {
		for _, a := range db.ForPackage(name) {
			if !slices.Contains(seen, a) {
				seen = append(seen, a)
			}
		}
	}
	slices.SortFunc(seen, func(x, y *Advisory) int { return strings.Compare(x.ID, y.ID) })
	var out []Finding
	for _, a := range seen {
		out = append(out, a.Check(h, p)...)
	}
	return out
}

// Includes reports whether version is affected by the entry, compared by
// scheme, and the fixed version that ends the affected range it is in
// ("" if none). A version listed in Versions is affected; so is one inside
// an ECOSYSTEM range, evaluated as the OSV schema says: events sorted by
// version (an introduced "0" first, and at equal versions introduced before
// the others), the version affected after an introduced event at or below
// it, unaffected again after a fixed event at or below it or a
// last_affected event below it; a limit at or below it excludes it.
func (af *Affected) Includes(scheme pkgver.Scheme, version string) (bool, string) {
	for _, r := range af.Ranges {
		if r.Type != "ECOSYSTEM" {
			continue
		}
		if hit, fixed := rangeIncludes(scheme, r.Events, version); hit {
			return true, fixed
		}
	}
	for _, v := range af.Versions {
		if scheme.Compare(v, version) == 0 {
			return true, ""
		}
	}
	return false, ""
}

func rangeIncludes(s pkgver.Scheme, events []Event, v string) (bool, string) {
	type ev struct {
		kind int // order at equal versions: introduced, last_affected, fixed, limit
		ver  string
	}
	const (
		introduced = iota
		lastAffected
		fixed
		limit
	)
	evs := make([]ev, 0, len(events))
	for _, e := range events {
		switch {
		case e.Introduced != "":
			evs = append(evs, ev{introduced, e.Introduced})
		case e.LastAffected != "":
			evs = append(evs, ev{lastAffected, e.LastAffected})
		case e.Fixed != "":
			evs = append(evs, ev{fixed, e.Fixed})
		case e.Limit != "":
			evs = append(evs, ev{limit, e.Limit})
		}
	}
	cmpVer := func(a, b ev) int {
		az, bz := a.kind == introduced && a.ver == "0", b.kind == introduced && b.ver == "0"
		switch {
		case az && bz:
			return 0
		case az:
			return -1
		case bz:
			return 1
		}
		return s.Compare(a.ver, b.ver)
	}
	slices.SortStableFunc(evs, func(a, b ev) int {
		if c := cmpVer(a, b); c != 0 {
			return c
		}
		return a.kind - b.kind
	})
	affected := false
	for i, e := range evs {
		var at int // e's version against v
		if e.kind == introduced && e.ver == "0" {
			at = -1
		} else {
			at = s.Compare(e.ver, v)
		}
		switch e.kind {
		case limit:
			if at <= 0 {
				return false, ""
			}
		case introduced:
			if at <= 0 {
				affected = true
			}
		case fixed:
			if at <= 0 {
				affected = false
			}
		case lastAffected:
			if at < 0 {
				affected = false
			}
		}
		if at > 0 {
			// Every later event is above v: the state stands. The fix
			// that ends it is the first fixed event from here on.
			if !affected {
				return false, ""
			}
			for _, f := range evs[i:] {
				if f.kind == fixed && s.Compare(f.ver, v) > 0 {
					return true, f.ver
				}
				if f.kind == introduced || f.kind == lastAffected {
					break
				}
			}
			return true, ""
		}
	}
	return affected, ""
}
