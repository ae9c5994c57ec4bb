package hostfacts

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

// ChangeKind is what changed on a host between two reports.
type ChangeKind string

// The kinds of change, as stored in a host's history.
const (
	PackageInstalled  ChangeKind = "package_installed"
	PackageRemoved    ChangeKind = "package_removed"
	PackageUpgraded   ChangeKind = "package_upgraded"
	PackageDowngraded ChangeKind = "package_downgraded"
	ServiceStarted    ChangeKind = "service_started"
	ServiceStopped    ChangeKind = "service_stopped"
	ServiceEnabled    ChangeKind = "service_enabled"
	ServiceDisabled   ChangeKind = "service_disabled"
	PortOpened        ChangeKind = "port_opened"
	PortClosed        ChangeKind = "port_closed"
	OSUpgraded        ChangeKind = "os_upgraded"
	OSChanged         ChangeKind = "os_changed" // another distribution, or an older release
	KernelChanged     ChangeKind = "kernel_changed"
)

// Change is one thing that changed between two reports of a host.
type Change struct {
	Kind ChangeKind `json:"kind"`
	// Subject is what changed: a package's name (name:arch when the host
	// has it for several architectures), a unit, a listener as
	// "tcp 0.0.0.0:53", or "os" and "kernel".
	Subject string `json:"subject"`
	// From and To are the versions, states, processes or releases before
	// and after; one is "" for what appeared or went away.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

func (c Change) String() string {
	switch {
	case c.From == "" && c.To == "":
		return fmt.Sprintf("%s %s", c.Kind, c.Subject)
	case c.From == "":
		return fmt.Sprintf("%s %s (%s)", c.Kind, c.Subject, c.To)
	case c.To == "":
		return fmt.Sprintf("%s %s (%s)", c.Kind, c.Subject, c.From)
	}
	return fmt.Sprintf("%s %s: %s -> %s", c.Kind, c.Subject, c.From, c.To)
}

// Diff returns what changed from old to new, two reports of one host, in
// a stable order: the OS and kernel, then packages, services and listeners
// each by subject. Package versions compare by new's scheme. A nil old (the
// host's first report) has no changes: its whole state is not history.
func Diff(old, new *Report) []Change {
	if old == nil || new == nil {
		return nil
	}
	var out []Change
	out = append(out, diffOS(old, new)...)
	out = append(out, diffPackages(old.Packages, new.Packages, new.Scheme)...)
	out = append(out, diffServices(old.Services, new.Services)...)
	out = append(out, diffListeners(old.Listeners, new.Listeners)...)
	return out
}

func diffOS(old, new *Report) []Change {
	var out []Change
	from, to := osName(old.OS), osName(new.OS)
	if from != to {
		kind := OSChanged
		if old.OS.ID == new.OS.ID && pkgver.CompareDeb(old.OS.VersionID, new.OS.VersionID) < 0 {
			kind = OSUpgraded // release numbers (11, 22.04, 9.4) order as dpkg orders them
		}
		out = append(out, Change{Kind: kind, Subject: "os", From: from, To: to})
	}
	if old.Kernel != new.Kernel && new.Kernel != "" && old.Kernel != "" {
		out = append(out, Change{Kind: KernelChanged, Subject: "kernel", From: old.Kernel, To: new.Kernel})
	}
	return out
}

func osName(o OS) string {
	return strings.TrimSpace(o.ID + " " + o.VersionID)
}

// packageKeys names each package by name, or name:arch for a name the host
// has for several architectures (in either report).
func packageKeys(old, new []Package) func(Package) string {
	count := map[string]int{}
	for _, list := range [][]Package{old, new} {
		seen := map[string]int{}
		for _, p := range list {
			seen[p.Name]++
		}
		for n, c := range seen {
			count[n] = max(count[n], c)
		}
	}
	return func(p Package) string {
		if count[p.Name] > 1 {
			return p.Name + ":" + p.Arch
		}
		return p.Name
	}
}

func diffPackages(old, new []Package, scheme pkgver.Scheme) []Change {
	key := packageKeys(old, new)
	before := map[string]Package{}
	for _, p := range old {
		before[key(p)] = p
	}
	var out []Change
	for _, p := range new {
		k := key(p)
		o, ok := before[k]
		delete(before, k)
		switch {
		case !ok:
			out = append(out, Change{Kind: PackageInstalled, Subject: k, To: p.Version})
		case o.Version == p.Version:
		case scheme.Compare(o.Version, p.Version) > 0:
			out = append(out, Change{Kind: PackageDowngraded, Subject: k, From: o.Version, To: p.Version})
		default:
			out = append(out, Change{Kind: PackageUpgraded, Subject: k, From: o.Version, To: p.Version})
		}
	}
	for k, o := range before {
		out = append(out, Change{Kind: PackageRemoved, Subject: k, From: o.Version})
	}
	sortChanges(out)
	return out
}

func diffServices(old, new []Service) []Change {
	before := map[string]Service{}
	for _, s := range old {
		before[s.Unit] = s
	}
	var out []Change
	states := func(o, n Service, had bool) {
		wasActive, isActive := had && o.Active == "active", n.Active == "active"
		switch {
		case !wasActive && isActive:
			out = append(out, Change{Kind: ServiceStarted, Subject: n.Unit, From: o.Active, To: n.Active})
		case wasActive && !isActive:
			out = append(out, Change{Kind: ServiceStopped, Subject: n.Unit, From: o.Active, To: n.Active})
		}
		wasEnabled, isEnabled := had && o.Enabled == "enabled", n.Enabled == "enabled"
		switch {
		case !wasEnabled && isEnabled:
			out = append(out, Change{Kind: ServiceEnabled, Subject: n.Unit, From: o.Enabled, To: n.Enabled})
		case wasEnabled && !isEnabled:
			out = append(out, Change{Kind: ServiceDisabled, Subject: n.Unit, From: o.Enabled, To: n.Enabled})
		}
	}
	for _, n := range new {
		o, ok := before[n.Unit]
		delete(before, n.Unit)
		states(o, n, ok)
	}
	for _, o := range before {
		states(o, Service{Unit: o.Unit}, true) // a unit gone: stopped and disabled if it was
	}
	sortChanges(out)
	return out
}

func listenerKey(l Listener) string {
	return fmt.Sprintf("%s %s", l.Proto, netJoin(l.Address, l.Port))
}

// netJoin writes an address and port as 0.0.0.0:53 or [::]:53.
func netJoin(addr string, port int) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func diffListeners(old, new []Listener) []Change {
	before := map[string]Listener{}
	for _, l := range old {
		before[listenerKey(l)] = l
	}
	var out []Change
	for _, l := range new {
		k := listenerKey(l)
		if _, ok := before[k]; ok {
			delete(before, k)
			continue
		}
		out = append(out, Change{Kind: PortOpened, Subject: k, To: l.Process})
	}
	for k, l := range before {
		out = append(out, Change{Kind: PortClosed, Subject: k, From: l.Process})
	}
	sortChanges(out)
	return out
}

func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.Subject, b.Subject), strings.Compare(string(a.Kind), string(b.Kind)))
	})
}
