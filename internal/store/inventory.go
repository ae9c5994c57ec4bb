package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

// The host inventory: what each host reported last (its facts, installed
// packages, services and listening sockets) and what changed between its
// reports (its events). A report replaces the host's facts whole, in one
// transaction with the events of its changes, so a host is never seen half
// reported, nor its history without the report that explains it.
//
// Installed packages are kept as a table of distinct package versions
// (scheme, name, version, architecture, source and source version), shared
// by every host that has one, and a table of which host has which: a fleet
// of 5,000 hosts of a few releases has tens of thousands of distinct
// versions, not ten million. A search by package reads the versions of a
// name (or source name) from an index, compares them in Go by each
// version's scheme (SQL cannot order dpkg or rpm versions), then reads the
// hosts that have the versions that pass.

// Page sizes of SearchHosts and HostEvents.
const (
	DefaultHostsLimit      = 100
	MaxHostsLimit          = 1000
	DefaultHostEventsLimit = 100
	MaxHostEventsLimit     = 1000
)

// MaxQueryPackages bounds the package names of one HostQuery: an advisory
// names a few packages, a person one.
const MaxQueryPackages = 100

// PruneHostsBatch is how many hosts PruneInventory forgets at most per
// call: each takes its thousands of package rows with it.
const PruneHostsBatch = 10

// Host is one host of the inventory as its last report left it.
type Host struct {
	ID int64
	// Name is the hostname it last reported. Hosts are told apart by
	// MachineID (/etc/machine-id); one without is told apart by its name.
	Name      string
	MachineID string
	OS        hostfacts.OS
	Scheme    pkgver.Scheme
	Kernel    string
	Arch      string
	// Facts are the rest of the report: resources, disks, container
	// runtimes and the warnings of its collection.
	Facts HostFacts
	// Packages is how many packages are installed.
	Packages int
	// CollectedAt is when the host collected the report, by its clock;
	// ReportedAt when the store got it, by the server's (what staleness
	// is judged by); FirstReportAt when the store got its first.
	CollectedAt   time.Time
	ReportedAt    time.Time
	FirstReportAt time.Time
	// ReportedBy is the token that sent the last report.
	ReportedBy string
}

// HostFacts are the facts of a report that are shown but not searched,
// kept with the host as one JSON value.
type HostFacts struct {
	CPU        hostfacts.CPU       `json:"cpu"`
	Memory     hostfacts.Memory    `json:"memory"`
	Disks      []hostfacts.Disk    `json:"disks,omitempty"`
	Containers []hostfacts.Runtime `json:"container_runtimes,omitempty"`
	Warnings   []string            `json:"warnings,omitempty"`
}

// PackageVersion is one distinct installed package version, as hosts of
// its scheme report it.
type PackageVersion struct {
	ID     int64
	Scheme pkgver.Scheme
	hostfacts.Package
}

// Kinds of host event besides the changes hostfacts.Diff finds.
const (
	// HostFirstReport is a host's first report: it joined the inventory.
	HostFirstReport hostfacts.ChangeKind = "first_report"
	// HostRenamed is a host (same machine id) that reports another name.
	HostRenamed hostfacts.ChangeKind = "renamed"
)

// HostEvent is one change of a host, recorded with the report that showed
// it.
type HostEvent struct {
	ID     int64 // assigned by the store, increasing
	HostID int64
	At     time.Time // when the report was stored
	hostfacts.Change
}

// VersionOp is how a VersionBound compares.
type VersionOp string

// The comparisons of a VersionBound: installed version lower than, lower
// than or equal to, equal to the bound's.
const (
	VersionLT VersionOp = "lt"
	VersionLE VersionOp = "le"
	VersionEQ VersionOp = "eq"
)

// VersionBound selects package versions by comparison with Version, by
// the rules of each version's scheme.
type VersionBound struct {
	Op      VersionOp
	Version string
}

// Holds reports whether version v of scheme s passes the bound.
func (b VersionBound) Holds(s pkgver.Scheme, v string) bool {
	c := s.Compare(v, b.Version)
	switch b.Op {
	case VersionLT:
		return c < 0
	case VersionLE:
		return c <= 0
	case VersionEQ:
		return c == 0
	}
	return false
}

// Check refuses a bound with an unknown comparison, or a version that
// neither dpkg's nor rpm's rules accept.
func (b VersionBound) Check() error {
	switch b.Op {
	case VersionLT, VersionLE, VersionEQ:
	default:
		return fmt.Errorf("version comparison %q: expected lt, le or eq", b.Op)
	}
	debErr, rpmErr := pkgver.Deb.Check(b.Version), pkgver.RPM.Check(b.Version)
	if debErr != nil && rpmErr != nil {
		return fmt.Errorf("version %q: %v", b.Version, debErr)
	}
	return nil
}

// HostCursor is where a page of SearchHosts starts: after this host, in
// (name, id) order.
type HostCursor struct {
	Name string
	ID   int64
}

// HostQuery selects hosts for SearchHosts. The filters combine with AND;
// results are in (name, id) order.
type HostQuery struct {
	// Packages selects hosts with an installed package of one of these
	// names, binary or source ("dnsmasq" finds dnsmasq-base, built from
	// the dnsmasq source package). None: every host.
	Packages []string
	// Version, with Packages, keeps only the package versions it holds
	// for: the binary version for a package found by its name, the source
	// version for one found by its source's name.
	Version *VersionBound
	// OS selects the distribution (os-release ID: debian, rocky) and,
	// with OSVersion, its release: VERSION_ID equal to it, or starting
	// with it and a dot (9 selects 9.4).
	OS        string
	OSVersion string
	// Service selects hosts with this systemd unit ("dnsmasq" is
	// dnsmasq.service), active ones only with Active.
	Service string
	Active  bool
	// Port selects hosts listening on this TCP or UDP port (0: any).
	Port int
	// ReportedBefore keeps hosts whose last report is older (stale
	// hosts); ReportedSince those reported since. Zero: no bound.
	ReportedBefore time.Time
	ReportedSince  time.Time
	After          HostCursor
	Limit          int // DefaultHostsLimit, MaxHostsLimit
}

// HostMatch is a host SearchHosts found, with what made it match.
type HostMatch struct {
	Host
	// Packages are its installed package versions that match
	// HostQuery.Packages and Version, by name.
	Packages []PackageVersion
	// Services are its units named by HostQuery.Service, or else named
	// after a matched package or its source (dnsmasq.service for
	// dnsmasq-base), by unit.
	Services []hostfacts.Service
	// Listeners are its sockets on HostQuery.Port, of a matched package's
	// executable, or of a process named like a matched service, in the
	// order reported.
	Listeners []hostfacts.Listener
}

// InventoryPruned is what one call of PruneInventory deleted.
type InventoryPruned struct {
	Events   int // host events older than the bound
	Hosts    int // hosts not reported since the bound, with all they had
	Packages int // package versions no host has any more
}

// Inventory keeps the host inventory.
type Inventory interface {
	// PutHostReport stores a host's report as its current facts and
	// appends what changed since its previous report (hostfacts.Diff, a
	// rename, or HostFirstReport for a new host) as its events, in one
	// transaction. The host is the one with the report's machine id, or,
	// for a report without one, its hostname. by is the token that sent
	// it, now the server's time (zero: the current time). The report must
	// pass PrepareHostReport. It returns the host as stored and the
	// events recorded.
	PutHostReport(ctx context.Context, r *hostfacts.Report, by string, now time.Time) (Host, []HostEvent, error)
	// Host returns one host by id (ErrNotFound).
	Host(ctx context.Context, id int64) (Host, error)
	// FindHosts returns the hosts whose name or machine id is name, by
	// (name, id): usually one, several when hosts share a hostname.
	FindHosts(ctx context.Context, name string) ([]Host, error)
	// HostReport returns a host's stored facts as the report they came
	// from: packages by name and architecture, services by unit,
	// listeners in the order reported (ErrNotFound).
	HostReport(ctx context.Context, id int64) (*hostfacts.Report, error)
	// HostEvents returns up to limit events of a host with an ID below
	// beforeID (0: from the newest), newest first (limit as
	// DefaultHostEventsLimit and MaxHostEventsLimit say). ErrNotFound for
	// an unknown host.
	HostEvents(ctx context.Context, hostID, beforeID int64, limit int) ([]HostEvent, error)
	// SearchHosts returns one page of the hosts q selects, in (name, id)
	// order after q.After. With q.Packages, the package versions of those
	// names are read from the name and source-name indexes, compared with
	// q.Version in Go, and the hosts read from those versions' index of
	// hosts: the cost is the number of hosts having them, whatever the
	// size of the rest of the inventory. q must pass PrepareHostQuery.
	SearchHosts(ctx context.Context, q HostQuery) ([]HostMatch, error)
	// PruneInventory deletes, in one transaction, up to limit host events
	// older than before, up to PruneHostsBatch hosts whose last report is
	// older than before (with their packages, services, listeners and
	// events), and up to limit package versions no host has. Callers loop
	// while a count comes back as large as its bound.
	PruneInventory(ctx context.Context, before time.Time, limit int) (InventoryPruned, error)
}

// HostIdentity is what tells a reporting host apart: its machine id, or
// "hostname:" and its name when it has none (a machine id is hex, so the
// two never meet).
func HostIdentity(r *hostfacts.Report) string {
	if r.MachineID != "" {
		return r.MachineID
	}
	return "hostname:" + r.Hostname
}

// ErrInvalidReport wraps what PrepareHostReport refuses, so a server can
// answer 400 to what a host sent.
var ErrInvalidReport = errors.New("invalid host report")

// PrepareHostReport checks a report a driver is about to store and returns
// it as every driver reads it back: hostfacts' own checks (Report.Check);
// names that are compared (hostname, machine id, os-release fields,
// kernel, architecture, packages, units and their states) valid UTF-8
// without NUL bytes, refused otherwise; free text (process names,
// executables, disks, warnings) made storable (Text); packages sorted by
// name, architecture and version, exact duplicates dropped; services by
// unit, the first of a unit kept; CollectedAt normalised (NormTime).
// Errors wrap ErrInvalidReport. r is not changed.
func PrepareHostReport(r *hostfacts.Report) (*hostfacts.Report, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: no report", ErrInvalidReport)
	}
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReport, err)
	}
	out := *r
	bad := func(err error) (*hostfacts.Report, error) {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReport, err)
	}
	for _, f := range []struct{ what, v string }{
		{"hostname", r.Hostname}, {"machine id", r.MachineID}, {"os id", r.OS.ID}, {"os version", r.OS.VersionID},
		{"os codename", r.OS.VersionCodename}, {"kernel", r.Kernel}, {"architecture", r.Arch},
	} {
		if err := CheckText(f.what, f.v); err != nil {
			return bad(err)
		}
	}
	out.OS.IDLike = nil
	for _, l := range r.OS.IDLike {
		if err := CheckText("os id_like", l); err != nil {
			return bad(err)
		}
		if l != "" && !strings.ContainsAny(l, " \t") {
			out.OS.IDLike = append(out.OS.IDLike, l)
		}
	}
	out.OS.PrettyName = Text(r.OS.PrettyName)
	if len(r.Packages) > 0 && r.Scheme == "" {
		return bad(errors.New("packages without a version scheme (deb or rpm)"))
	}
	out.Packages = make([]hostfacts.Package, 0, len(r.Packages))
	for _, p := range r.Packages {
		if p.Source == "" {
			p.Source = p.Name
		}
		if p.SourceVersion == "" {
			p.SourceVersion = p.Version
		}
		for _, f := range []struct{ what, v string }{
			{"package name", p.Name}, {"package version", p.Version}, {"package architecture", p.Arch},
			{"source package", p.Source}, {"source version", p.SourceVersion},
		} {
			if err := CheckText(f.what, f.v); err != nil {
				return bad(err)
			}
		}
		out.Packages = append(out.Packages, p)
	}
	slices.SortFunc(out.Packages, comparePackages)
	out.Packages = slices.Compact(out.Packages)
	out.Services = make([]hostfacts.Service, 0, len(r.Services))
	for _, s := range r.Services {
		for _, f := range []string{s.Unit, s.Enabled, s.Active, s.Sub} {
			if err := CheckText("service", f); err != nil {
				return bad(err)
			}
		}
		if s.Unit == "" {
			return bad(errors.New("a service without a unit name"))
		}
		out.Services = append(out.Services, s)
	}
	slices.SortStableFunc(out.Services, func(a, b hostfacts.Service) int { return strings.Compare(a.Unit, b.Unit) })
	out.Services = slices.CompactFunc(out.Services, func(a, b hostfacts.Service) bool { return a.Unit == b.Unit })
	out.Listeners = make([]hostfacts.Listener, len(r.Listeners))
	for i, l := range r.Listeners {
		for _, f := range []string{l.Proto, l.Address} {
			if err := CheckText("listener", f); err != nil {
				return bad(err)
			}
		}
		if l.Port < 0 || l.Port > 65535 || l.PID < 0 {
			return bad(fmt.Errorf("listener %s %s:%d: port or pid out of range", l.Proto, l.Address, l.Port))
		}
		l.Process, l.Exe, l.Package = Text(l.Process), Text(l.Exe), Text(l.Package)
		out.Listeners[i] = l
	}
	out.Disks = make([]hostfacts.Disk, len(r.Disks))
	for i, d := range r.Disks {
		d.Mount, d.Device, d.FSType = Text(d.Mount), Text(d.Device), Text(d.FSType)
		out.Disks[i] = d
	}
	out.Containers = make([]hostfacts.Runtime, len(r.Containers))
	for i, c := range r.Containers {
		out.Containers[i] = hostfacts.Runtime{Name: Text(c.Name), Evidence: Text(c.Evidence)}
	}
	out.Warnings = nil
	for _, w := range r.Warnings {
		out.Warnings = append(out.Warnings, Text(w))
	}
	out.CPU.Model = Text(r.CPU.Model)
	out.CollectedAt = NormTime(r.CollectedAt)
	return &out, nil
}

func comparePackages(a, b hostfacts.Package) int {
	return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Arch, b.Arch), strings.Compare(a.Version, b.Version),
		strings.Compare(a.Source, b.Source), strings.Compare(a.SourceVersion, b.SourceVersion))
}

// SortPackageVersions sorts package versions as reports list them: by
// name, architecture and version.
func SortPackageVersions(pvs []PackageVersion) {
	slices.SortFunc(pvs, func(a, b PackageVersion) int { return comparePackages(a.Package, b.Package) })
}

// NewHost is the host row a prepared report makes, as every driver writes
// it (ID, Packages count and FirstReportAt are the driver's).
func NewHost(r *hostfacts.Report, by string, now time.Time) Host {
	h := Host{
		Name: r.Hostname, MachineID: r.MachineID, OS: r.OS, Scheme: r.Scheme, Kernel: r.Kernel, Arch: r.Arch,
		Facts:    HostFacts{CPU: r.CPU, Memory: r.Memory, Disks: r.Disks, Containers: r.Containers, Warnings: r.Warnings},
		Packages: len(r.Packages), CollectedAt: r.CollectedAt, ReportedAt: NormTime(now), ReportedBy: Text(by),
	}
	// Empty lists are absent, as the JSON of the facts keeps them.
	if len(h.Facts.Disks) == 0 {
		h.Facts.Disks = nil
	}
	if len(h.Facts.Containers) == 0 {
		h.Facts.Containers = nil
	}
	if len(h.Facts.Warnings) == 0 {
		h.Facts.Warnings = nil
	}
	if len(h.OS.IDLike) == 0 {
		h.OS.IDLike = nil
	}
	return h
}

// AsReport is the report a host row and its stored lists make again.
func (h Host) AsReport(pvs []PackageVersion, services []hostfacts.Service, listeners []hostfacts.Listener) *hostfacts.Report {
	r := &hostfacts.Report{
		Version: hostfacts.ReportVersion, CollectedAt: h.CollectedAt, Hostname: h.Name, MachineID: h.MachineID,
		OS: h.OS, Kernel: h.Kernel, Arch: h.Arch, CPU: h.Facts.CPU, Memory: h.Facts.Memory, Disks: h.Facts.Disks,
		Scheme: h.Scheme, Containers: h.Facts.Containers, Warnings: h.Facts.Warnings,
		Packages: make([]hostfacts.Package, len(pvs)), Services: services, Listeners: listeners,
	}
	SortPackageVersions(pvs)
	for i, p := range pvs {
		r.Packages[i] = p.Package
	}
	if r.Disks == nil {
		r.Disks = []hostfacts.Disk{}
	}
	if r.Containers == nil {
		r.Containers = []hostfacts.Runtime{}
	}
	if r.Services == nil {
		r.Services = []hostfacts.Service{}
	}
	if r.Listeners == nil {
		r.Listeners = []hostfacts.Listener{}
	}
	return r
}

// HostChanges are the events a report makes of a host's previous state
// (old; nil for a new host): HostFirstReport for a new host, else a
// rename and the changes hostfacts.Diff finds.
func HostChanges(old, new *hostfacts.Report) []hostfacts.Change {
	if old == nil {
		return []hostfacts.Change{{Kind: HostFirstReport, Subject: new.Hostname}}
	}
	var out []hostfacts.Change
	if old.Hostname != new.Hostname {
		out = append(out, hostfacts.Change{Kind: HostRenamed, Subject: "hostname", From: old.Hostname, To: new.Hostname})
	}
	return append(out, hostfacts.Diff(old, new)...)
}

// PrepareHostQuery checks a query and fills in its limit.
func PrepareHostQuery(q HostQuery) (HostQuery, error) {
	if len(q.Packages) > MaxQueryPackages {
		return q, fmt.Errorf("%d package names: at most %d", len(q.Packages), MaxQueryPackages)
	}
	for _, p := range q.Packages {
		if p == "" {
			return q, errors.New("an empty package name")
		}
		if err := CheckText("package name", p); err != nil {
			return q, err
		}
	}
	if q.Version != nil {
		if len(q.Packages) == 0 {
			return q, errors.New("a version bound needs a package name")
		}
		if err := q.Version.Check(); err != nil {
			return q, err
		}
	}
	if q.OSVersion != "" && q.OS == "" {
		return q, errors.New("an os version needs its distribution")
	}
	if q.Active && q.Service == "" {
		return q, errors.New("active needs a service")
	}
	if q.Port < 0 || q.Port > 65535 {
		return q, fmt.Errorf("port %d: expected 1 to 65535", q.Port)
	}
	for _, f := range []struct{ what, v string }{
		{"os", q.OS}, {"os version", q.OSVersion}, {"service", q.Service}, {"cursor", q.After.Name},
	} {
		if err := CheckText(f.what, f.v); err != nil {
			return q, err
		}
	}
	q.ReportedBefore, q.ReportedSince = NormTime(q.ReportedBefore), NormTime(q.ReportedSince)
	if q.Limit <= 0 {
		q.Limit = DefaultHostsLimit
	}
	q.Limit = min(q.Limit, MaxHostsLimit)
	return q, nil
}

// MatchPackages keeps the package versions that pass q's package filter:
// those with one of q.Packages as name or source, and, with q.Version, a
// version that holds for it (the binary version when the name matched, the
// source version when only the source did).
func MatchPackages(pvs []PackageVersion, q HostQuery) []PackageVersion {
	out := pvs[:0:0]
	for _, pv := range pvs {
		for _, name := range q.Packages {
			v := ""
			switch name {
			case pv.Name:
				v = pv.Version
			case pv.Source:
				v = pv.SourceVersion
			default:
				continue
			}
			if q.Version == nil || q.Version.Holds(pv.Scheme, v) {
				out = append(out, pv)
				break
			}
		}
	}
	return out
}

// ServiceUnits are the unit names a query's Service may be stored as:
// "dnsmasq" is dnsmasq.service (and a unit literally named dnsmasq).
func ServiceUnits(service string) []string {
	if service == "" {
		return nil
	}
	if strings.Contains(service, ".") {
		return []string{service}
	}
	return []string{service, service + ".service"}
}

// MatchDetails says which services and listeners of a page's hosts a
// HostMatch shows, given the package versions that matched: units (the
// query's service, else those named after a matched package or its
// source) and, for listeners, the ports, executables' packages and
// process names that count. The drivers read the rows these name.
func MatchDetails(q HostQuery, matched []PackageVersion) (units, packages, processes []string) {
	seen := map[string]bool{}
	add := func(list *[]string, v string) {
		if k := fmt.Sprintf("%p/%s", list, v); v != "" && !seen[k] {
			seen[k] = true
			*list = append(*list, v)
		}
	}
	units = ServiceUnits(q.Service)
	if q.Service == "" {
		for _, pv := range matched {
			add(&units, pv.Name+".service")
			add(&units, pv.Source+".service")
		}
	}
	for _, pv := range matched {
		add(&packages, pv.Name)
	}
	for _, u := range units {
		add(&processes, strings.TrimSuffix(u, ".service"))
	}
	return units, packages, processes
}

// FillMatch keeps, of the services and listeners read for a host, those
// MatchDetails named, so both drivers answer alike.
func FillMatch(m *HostMatch, q HostQuery, services []hostfacts.Service, listeners []hostfacts.Listener) {
	units, packages, processes := MatchDetails(q, m.Packages)
	m.Services = []hostfacts.Service{}
	for _, s := range services {
		if slices.Contains(units, s.Unit) {
			m.Services = append(m.Services, s)
		}
	}
	m.Listeners = []hostfacts.Listener{}
	for _, l := range listeners {
		if q.Port != 0 && l.Port == q.Port || l.Package != "" && slices.Contains(packages, l.Package) ||
			l.Process != "" && slices.Contains(processes, l.Process) {
			m.Listeners = append(m.Listeners, l)
		}
	}
	SortPackageVersions(m.Packages)
}

// IDChanges returns the ids of next not in prev and of prev not in next,
// each sorted: the package versions a host's report adds and removes, as
// both drivers write them.
func IDChanges(prev, next []int64) (added, removed []int64) {
	in := make(map[int64]bool, len(prev))
	for _, id := range prev {
		in[id] = true
	}
	for _, id := range next {
		if in[id] {
			delete(in, id)
		} else {
			added = append(added, id)
		}
	}
	for id := range in {
		removed = append(removed, id)
	}
	slices.Sort(added)
	slices.Sort(removed)
	return slices.Compact(added), removed
}
