package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// The host inventory (store.Inventory): a report replaces a host's facts
// and records what changed as events; hosts are told apart by machine id
// (else hostname); searches by package (binary or source name) compare
// versions by each host's scheme; stale hosts, services, ports and
// releases filter; history pages newest first; retention forgets old
// events, silent hosts and unused package versions.

// debHost is a Debian 10 host with dnsmasq-base (source dnsmasq) at
// version v, running dnsmasq on port 53.
func debHost(name, machineID, v string) *hostfacts.Report {
	return &hostfacts.Report{
		Version: hostfacts.ReportVersion, CollectedAt: t0.Add(-time.Minute).In(jst), Hostname: name, MachineID: machineID,
		OS:     hostfacts.OS{ID: "debian", VersionID: "10", VersionCodename: "buster", PrettyName: "Debian GNU/Linux 10 (buster)"},
		Kernel: "4.19.0-26-amd64", Arch: "x86_64", Scheme: pkgver.Deb,
		CPU: hostfacts.CPU{Count: 2, Model: "Xeon"}, Memory: hostfacts.Memory{Total: 4 << 30, Available: 1 << 30},
		Disks: []hostfacts.Disk{{Mount: "/", Device: "/dev/vda1", FSType: "ext4"}},
		Packages: []hostfacts.Package{
			{Name: "dnsmasq-base", Version: v + "+b1", Arch: "amd64", Source: "dnsmasq", SourceVersion: v},
			{Name: "libc6", Version: "2.28-10+deb10u2", Arch: "amd64", Source: "glibc", SourceVersion: "2.28-10+deb10u2"},
			{Name: "openssh-server", Version: "1:7.9p1-10+deb10u4", Arch: "amd64", Source: "openssh", SourceVersion: "1:7.9p1-10+deb10u4"},
		},
		Services: []hostfacts.Service{
			{Unit: "dnsmasq.service", Enabled: "enabled", Active: "active", Sub: "running"},
			{Unit: "ssh.service", Enabled: "enabled", Active: "active", Sub: "running"},
		},
		Listeners: []hostfacts.Listener{
			{Proto: "udp", Address: "0.0.0.0", Port: 53, PID: 612, Process: "dnsmasq", Exe: "/usr/sbin/dnsmasq", Package: "dnsmasq-base"},
			{Proto: "tcp", Address: "0.0.0.0", Port: 22, PID: 540, Process: "sshd", Exe: "/usr/sbin/sshd", Package: "openssh-server"},
		},
		Containers: []hostfacts.Runtime{{Name: "docker", Evidence: "/run/docker.sock"}},
	}
}

// rpmHost is a Rocky Linux 9.4 host with dnsmasq at version v, stopped.
func rpmHost(name, machineID, v string) *hostfacts.Report {
	return &hostfacts.Report{
		Version: hostfacts.ReportVersion, CollectedAt: t0, Hostname: name, MachineID: machineID,
		OS:     hostfacts.OS{ID: "rocky", VersionID: "9.4", IDLike: []string{"rhel", "centos", "fedora"}, PrettyName: "Rocky Linux 9.4"},
		Kernel: "5.14.0-427.el9.x86_64", Arch: "x86_64", Scheme: pkgver.RPM,
		Packages: []hostfacts.Package{
			{Name: "dnsmasq", Version: v, Arch: "x86_64", Source: "dnsmasq", SourceVersion: v},
			{Name: "glibc", Version: "2.34-100.el9", Arch: "x86_64"}, // no source: the package's own
		},
		Services: []hostfacts.Service{{Unit: "dnsmasq.service", Enabled: "disabled", Active: "inactive", Sub: "dead"}},
	}
}

func mustReport(t *testing.T, s store.Store, r *hostfacts.Report, now time.Time) (store.Host, []store.HostEvent) {
	t.Helper()
	h, events, err := s.PutHostReport(t.Context(), r, "agent-1", now)
	if err != nil {
		t.Fatalf("PutHostReport(%s): %v", r.Hostname, err)
	}
	return h, events
}

// prepared is r as a store reads it back.
func prepared(t *testing.T, r *hostfacts.Report) *hostfacts.Report {
	t.Helper()
	p, err := store.PrepareHostReport(r)
	if err != nil {
		t.Fatalf("PrepareHostReport: %v", err)
	}
	return p
}

func eventChanges(events []store.HostEvent) []hostfacts.Change {
	out := make([]hostfacts.Change, len(events))
	for i, e := range events {
		out[i] = e.Change
	}
	return out
}

func testInventoryReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := debHost("dns1", "0123456789abcdef0123456789abcdef", "2.80-1")
	h, events, err := s.PutHostReport(ctx, first, "agent-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if h.ID == 0 {
		t.Fatal("PutHostReport returned host ID 0")
	}
	want := store.Host{ID: h.ID, Name: "dns1", MachineID: "0123456789abcdef0123456789abcdef", OS: first.OS, Scheme: pkgver.Deb,
		Kernel: first.Kernel, Arch: "x86_64",
		Facts:    store.HostFacts{CPU: first.CPU, Memory: first.Memory, Disks: first.Disks, Containers: first.Containers},
		Packages: 3, CollectedAt: us(first.CollectedAt), ReportedAt: us(t0), FirstReportAt: us(t0), ReportedBy: "agent-1"}
	check(t, "new host", h, want)
	if len(events) != 1 || events[0].Kind != store.HostFirstReport || events[0].HostID != h.ID || events[0].ID == 0 ||
		!events[0].At.Equal(us(t0)) {
		t.Errorf("events of a first report: %+v", events)
	}
	got, err := s.Host(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "read host", got, want)
	rep, err := s.HostReport(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "stored report", rep, prepared(t, first))
	for _, name := range []string{"dns1", "0123456789abcdef0123456789abcdef"} {
		found, err := s.FindHosts(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		check(t, "hosts found by "+name, found, []store.Host{want})
	}
	if found, err := s.FindHosts(ctx, "dns2"); err != nil || len(found) != 0 {
		t.Errorf("FindHosts(dns2) = %v, %v", found, err)
	}

	// A second report: dnsmasq upgraded, openssh removed, curl installed,
	// dnsmasq stopped, a port opened, a new kernel.
	second := debHost("dns1", "0123456789abcdef0123456789abcdef", "2.80-1+deb10u1")
	second.Packages = append(second.Packages[:2], hostfacts.Package{Name: "curl", Version: "7.64.0-4+deb10u9", Arch: "amd64"})
	second.Services[0].Active, second.Services[0].Sub = "inactive", "dead"
	second.Listeners = append(second.Listeners, hostfacts.Listener{Proto: "tcp6", Address: "::", Port: 8080, PID: 900, Process: "python3"})
	second.Kernel = "4.19.0-27-amd64"
	second.Disks, second.Containers = nil, nil
	at := t0.Add(time.Hour)
	h2, events := mustReport(t, s, second, at)
	want2 := want
	want2.Packages, want2.Kernel, want2.ReportedAt = 3, second.Kernel, us(at)
	want2.Facts.Disks, want2.Facts.Containers = nil, nil
	check(t, "reported again", h2, want2)
	wantChanges := store.HostChanges(prepared(t, first), prepared(t, second))
	check(t, "changes recorded", eventChanges(events), wantChanges)
	kinds := map[hostfacts.ChangeKind]bool{}
	for _, e := range events {
		kinds[e.Kind] = true
		if e.HostID != h.ID || !e.At.Equal(us(at)) {
			t.Errorf("event %+v: want host %d at %v", e, h.ID, at)
		}
	}
	for _, k := range []hostfacts.ChangeKind{hostfacts.PackageUpgraded, hostfacts.PackageRemoved, hostfacts.PackageInstalled,
		hostfacts.ServiceStopped, hostfacts.PortOpened, hostfacts.KernelChanged} {
		if !kinds[k] {
			t.Errorf("no %s event among %v", k, eventChanges(events))
		}
	}
	rep, err = s.HostReport(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "stored second report", rep, prepared(t, second))

	// The same report again changes nothing.
	if _, events := mustReport(t, s, second, at.Add(time.Hour)); len(events) != 0 {
		t.Errorf("an unchanged report recorded %v", eventChanges(events))
	}

	// History, newest first.
	hist, err := s.HostEvents(ctx, h.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(wantChanges)+1 || hist[len(hist)-1].Kind != store.HostFirstReport {
		t.Fatalf("history: %+v", hist)
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].ID >= hist[i-1].ID {
			t.Errorf("history not newest first: %d after %d", hist[i].ID, hist[i-1].ID)
		}
	}
	page, err := s.HostEvents(ctx, h.ID, hist[1].ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "history page", page, hist[2:4])
	if _, err := s.HostEvents(ctx, h.ID+1000, 0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("HostEvents of an unknown host: %v", err)
	}
	if _, err := s.Host(ctx, h.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Host of an unknown id: %v", err)
	}
	if _, err := s.HostReport(ctx, h.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("HostReport of an unknown id: %v", err)
	}
}

func testInventoryIdentity(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, _ := mustReport(t, s, debHost("web1", "aaaa", "2.80-1"), t0)
	// The same machine under another name is the same host, renamed.
	b, events := mustReport(t, s, debHost("web1-new", "aaaa", "2.80-1"), t0.Add(time.Minute))
	if b.ID != a.ID || b.Name != "web1-new" || b.FirstReportAt != a.FirstReportAt {
		t.Errorf("renamed host: %+v, was %+v", b, a)
	}
	check(t, "rename events", eventChanges(events), []hostfacts.Change{{Kind: store.HostRenamed, Subject: "hostname", From: "web1", To: "web1-new"}})
	if found, _ := s.FindHosts(ctx, "web1"); len(found) != 0 {
		t.Errorf("the old name still finds %v", found)
	}
	// Hosts without a machine id are told apart by name; two hosts may
	// share a name.
	c, _ := mustReport(t, s, debHost("web1-new", "", "2.80-1"), t0)
	d, _ := mustReport(t, s, debHost("web1-new", "", "2.80-1"), t0.Add(time.Minute))
	if c.ID == a.ID || d.ID != c.ID {
		t.Errorf("hosts without machine id: %d, %d (the one with: %d)", c.ID, d.ID, a.ID)
	}
	found, err := s.FindHosts(ctx, "web1-new")
	if err != nil || len(found) != 2 || found[0].ID != a.ID || found[1].ID != c.ID {
		t.Errorf("FindHosts of a shared name: %v, %v", found, err)
	}
}

func testInventoryRejects(t *testing.T, s store.Store) {
	bad := map[string]func(r *hostfacts.Report){
		"no hostname":                 func(r *hostfacts.Report) { r.Hostname = "" },
		"version 2":                   func(r *hostfacts.Report) { r.Version = 2 },
		"NUL in a package":            func(r *hostfacts.Report) { r.Packages[0].Name = "dns\x00masq" },
		"invalid UTF-8 unit":          func(r *hostfacts.Report) { r.Services[0].Unit = "a\xffb.service" },
		"no scheme":                   func(r *hostfacts.Report) { r.Scheme = "" },
		"unknown scheme":              func(r *hostfacts.Report) { r.Scheme = "apk" },
		"a package without a version": func(r *hostfacts.Report) { r.Packages[1].Version = "" },
		"port out of range":           func(r *hostfacts.Report) { r.Listeners[0].Port = 70000 },
	}
	for name, f := range bad {
		r := debHost("bad", "bbbb", "2.80-1")
		f(r)
		if _, _, err := s.PutHostReport(t.Context(), r, "agent-1", t0); !errors.Is(err, store.ErrInvalidReport) {
			t.Errorf("%s: %v, want ErrInvalidReport", name, err)
		}
	}
	if found, err := s.FindHosts(t.Context(), "bad"); err != nil || len(found) != 0 {
		t.Errorf("a refused report stored %v (%v)", found, err)
	}
	// Free text is kept storable rather than refused.
	r := debHost("odd", "cccc", "2.80-1")
	r.Listeners[0].Exe = "/usr/bin/\xff\x00odd"
	r.Warnings = []string{"bad\x00warning"}
	if _, _, err := s.PutHostReport(t.Context(), r, "agent-1", t0); err != nil {
		t.Fatalf("free text: %v", err)
	}
}

// searchFleet reports a fleet: Debian 10 hosts with dnsmasq-base of three
// source versions, a Rocky 9.4 host with dnsmasq older than 2.83 and one
// newer, a host without dnsmasq, and one silent since long ago.
func searchFleet(t *testing.T, s store.Store) map[string]store.Host {
	hosts := map[string]store.Host{}
	put := func(r *hostfacts.Report, at time.Time) {
		h, _ := mustReport(t, s, r, at)
		hosts[r.Hostname] = h
	}
	put(debHost("deb-a", "0a", "2.80-1"), t0)
	put(debHost("deb-b", "0b", "2.80-1+deb10u1"), t0)
	put(debHost("deb-c", "0c", "2.85-1"), t0)
	put(rpmHost("rocky-old", "0d", "2.79-31.el9"), t0)
	put(rpmHost("rocky-new", "0e", "2.85-16.el9_4"), t0)
	plain := debHost("plain", "0f", "2.80-1")
	plain.Packages = plain.Packages[1:]
	plain.Services, plain.Listeners = plain.Services[1:], plain.Listeners[1:]
	put(plain, t0)
	put(debHost("silent", "10", "2.80-1"), t0.Add(-30*24*time.Hour))
	return hosts
}

// search returns the names of the hosts q finds, every page of limit.
func search(t *testing.T, s store.Store, q store.HostQuery) ([]string, []store.HostMatch) {
	t.Helper()
	var names []string
	var all []store.HostMatch
	for range 100 {
		page, err := s.SearchHosts(t.Context(), q)
		if err != nil {
			t.Fatalf("SearchHosts(%+v): %v", q, err)
		}
		for _, m := range page {
			names = append(names, m.Name)
		}
		all = append(all, page...)
		if q.Limit == 0 || len(page) < q.Limit {
			return names, all
		}
		last := page[len(page)-1]
		q.After = store.HostCursor{Name: last.Name, ID: last.ID}
	}
	t.Fatal("SearchHosts does not end")
	return nil, nil
}

func testSearchHosts(t *testing.T, s store.Store) {
	hosts := searchFleet(t, s)
	lt := func(v string) *store.VersionBound { return &store.VersionBound{Op: store.VersionLT, Version: v} }
	cases := []struct {
		name string
		q    store.HostQuery
		want []string
	}{
		{"all", store.HostQuery{}, []string{"deb-a", "deb-b", "deb-c", "plain", "rocky-new", "rocky-old", "silent"}},
		{"source name", store.HostQuery{Packages: []string{"dnsmasq"}},
			[]string{"deb-a", "deb-b", "deb-c", "rocky-new", "rocky-old", "silent"}},
		{"binary name", store.HostQuery{Packages: []string{"dnsmasq-base"}}, []string{"deb-a", "deb-b", "deb-c", "silent"}},
		{"older than 2.83", store.HostQuery{Packages: []string{"dnsmasq"}, Version: lt("2.83")},
			[]string{"deb-a", "deb-b", "rocky-old", "silent"}},
		{"older than the fix", store.HostQuery{Packages: []string{"dnsmasq"}, Version: lt("2.80-1+deb10u1")},
			[]string{"deb-a", "rocky-old", "silent"}},
		{"binary version", store.HostQuery{Packages: []string{"dnsmasq-base"}, Version: &store.VersionBound{Op: store.VersionEQ, Version: "2.80-1+b1"}},
			[]string{"deb-a", "silent"}},
		{"at most", store.HostQuery{Packages: []string{"dnsmasq"}, Version: &store.VersionBound{Op: store.VersionLE, Version: "2.80-1+deb10u1"}},
			[]string{"deb-a", "deb-b", "rocky-old", "silent"}},
		{"two names", store.HostQuery{Packages: []string{"glibc", "nothing"}}, []string{"deb-a", "deb-b", "deb-c", "plain", "rocky-new", "rocky-old", "silent"}},
		{"no such package", store.HostQuery{Packages: []string{"nothing"}}, nil},
		{"distribution", store.HostQuery{OS: "rocky"}, []string{"rocky-new", "rocky-old"}},
		{"major release", store.HostQuery{OS: "rocky", OSVersion: "9"}, []string{"rocky-new", "rocky-old"}},
		{"exact release", store.HostQuery{OS: "rocky", OSVersion: "9.4"}, []string{"rocky-new", "rocky-old"}},
		{"not a prefix", store.HostQuery{OS: "debian", OSVersion: "1"}, nil},
		{"service", store.HostQuery{Service: "dnsmasq"}, []string{"deb-a", "deb-b", "deb-c", "rocky-new", "rocky-old", "silent"}},
		{"active service", store.HostQuery{Service: "dnsmasq.service", Active: true}, []string{"deb-a", "deb-b", "deb-c", "silent"}},
		{"port", store.HostQuery{Port: 53}, []string{"deb-a", "deb-b", "deb-c", "silent"}},
		{"stale", store.HostQuery{ReportedBefore: t0.Add(-time.Hour)}, []string{"silent"}},
		{"fresh", store.HostQuery{ReportedSince: t0.Add(-time.Hour), Packages: []string{"dnsmasq"}, Version: lt("2.83")},
			[]string{"deb-a", "deb-b", "rocky-old"}},
		{"combined", store.HostQuery{Packages: []string{"dnsmasq"}, Version: lt("2.83"), OS: "debian", OSVersion: "10", Port: 53,
			Service: "dnsmasq", Active: true}, []string{"deb-a", "deb-b", "silent"}},
	}
	for _, c := range cases {
		for _, limit := range []int{0, 1, 2} {
			q := c.q
			q.Limit = limit
			got, _ := search(t, s, q)
			if !slices.Equal(got, c.want) {
				t.Errorf("%s (limit %d): %v, want %v", c.name, limit, got, c.want)
			}
		}
	}

	// What a match shows: the matched packages, the service named after
	// the package's source, and the sockets of its executable.
	_, found := search(t, s, store.HostQuery{Packages: []string{"dnsmasq"}, Version: lt("2.83"), Limit: 1})
	a := found[0]
	check(t, "match's host", a.Host, hosts["deb-a"])
	if len(a.Packages) != 1 || a.Packages[0].Name != "dnsmasq-base" || a.Packages[0].SourceVersion != "2.80-1" ||
		a.Packages[0].Scheme != pkgver.Deb || a.Packages[0].ID == 0 {
		t.Errorf("matched packages: %+v", a.Packages)
	}
	check(t, "matched services", a.Services, []hostfacts.Service{{Unit: "dnsmasq.service", Enabled: "enabled", Active: "active", Sub: "running"}})
	check(t, "matched listeners", a.Listeners, []hostfacts.Listener{{Proto: "udp", Address: "0.0.0.0", Port: 53, PID: 612, Process: "dnsmasq",
		Exe: "/usr/sbin/dnsmasq", Package: "dnsmasq-base"}})
	old := found[2]
	if old.Name != "rocky-old" || len(old.Packages) != 1 || old.Packages[0].Name != "dnsmasq" || old.Packages[0].Scheme != pkgver.RPM ||
		len(old.Services) != 1 || old.Services[0].Active != "inactive" || len(old.Listeners) != 0 {
		t.Errorf("rocky-old match: %+v", old)
	}
	_, found = search(t, s, store.HostQuery{Port: 22})
	for _, m := range found {
		if len(m.Packages) != 0 || len(m.Listeners) != 1 || m.Listeners[0].Port != 22 {
			t.Errorf("port match %s: %+v", m.Name, m)
		}
	}

	for name, q := range map[string]store.HostQuery{
		"version without package": {Version: lt("2.83")},
		"bad version":             {Packages: []string{"dnsmasq"}, Version: lt("a:b:c")},
		"bad comparison":          {Packages: []string{"dnsmasq"}, Version: &store.VersionBound{Op: "gt", Version: "2.83"}},
		"active without service":  {Active: true},
		"release without os":      {OSVersion: "10"},
		"bad port":                {Port: 65536},
		"empty name":              {Packages: []string{""}},
		"NUL":                     {Packages: []string{"a\x00"}},
	} {
		if _, err := s.SearchHosts(t.Context(), q); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func testPruneInventory(t *testing.T, s store.Store) {
	ctx := t.Context()
	old, _ := mustReport(t, s, debHost("old", "01", "2.80-1"), t0.Add(-100*24*time.Hour))
	kept, _ := mustReport(t, s, debHost("kept", "02", "2.80-1"), t0.Add(-100*24*time.Hour))
	// kept upgrades dnsmasq now: its first report's event is old, this
	// one's new, and the old version of dnsmasq is left to old only.
	_, events := mustReport(t, s, debHost("kept", "02", "2.85-1"), t0)
	if len(events) != 1 {
		t.Fatalf("upgrade events: %v", eventChanges(events))
	}
	var total store.InventoryPruned
	for range 10 {
		n, err := s.PruneInventory(ctx, t0.Add(-90*24*time.Hour), 1)
		if err != nil {
			t.Fatal(err)
		}
		total.Events, total.Hosts, total.Packages = total.Events+n.Events, total.Hosts+n.Hosts, total.Packages+n.Packages
		if n == (store.InventoryPruned{}) {
			break
		}
	}
	// Events: old's first report went with old, kept's by age. Hosts: old.
	// Packages: dnsmasq-base 2.80-1+b1, which only old had.
	if total.Hosts != 1 || total.Packages != 1 || total.Events < 1 {
		t.Errorf("pruned %+v", total)
	}
	if _, err := s.Host(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a silent host was kept: %v", err)
	}
	hist, err := s.HostEvents(ctx, kept.ID, 0, 0)
	if err != nil || len(hist) != 1 || hist[0].Kind != hostfacts.PackageUpgraded {
		t.Errorf("kept's history: %+v, %v", hist, err)
	}
	if got, _ := search(t, s, store.HostQuery{Packages: []string{"dnsmasq-base"}, Version: &store.VersionBound{Op: store.VersionLT, Version: "2.83"}}); len(got) != 0 {
		t.Errorf("found %v with the old version", got)
	}
	// The pruned version comes back with the next host that has it.
	mustReport(t, s, debHost("new", "03", "2.80-1"), t0)
	if got, _ := search(t, s, store.HostQuery{Packages: []string{"dnsmasq"}, Version: &store.VersionBound{Op: store.VersionLT, Version: "2.83"}}); !slices.Equal(got, []string{"new"}) {
		t.Errorf("after a new report: %v", got)
	}
	if n, err := s.PruneInventory(ctx, t0.Add(-90*24*time.Hour), 100); err != nil || n != (store.InventoryPruned{}) {
		t.Errorf("nothing left to prune: %+v, %v", n, err)
	}
}

// testConcurrentHostReports reports many hosts that share package versions
// at once, some of them twice at once, with prunes running: every host
// ends with its last report, every version is stored once.
func testConcurrentHostReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	const hosts = 12
	versions := []string{"2.80-1", "2.80-1+deb10u1", "2.85-1"}
	var wg sync.WaitGroup
	errs := make(chan error, hosts*3+10)
	for i := range hosts {
		for rep := range 2 {
			wg.Go(func() {
				r := debHost(fmt.Sprintf("h%02d", i), fmt.Sprintf("%032x", i), versions[(i+rep)%len(versions)])
				r.Packages = append(r.Packages, hostfacts.Package{Name: fmt.Sprintf("extra%d", rep), Version: "1.0", Arch: "all"})
				if _, _, err := s.PutHostReport(ctx, r, "agent", t0.Add(time.Duration(rep)*time.Second)); err != nil {
					errs <- err
				}
			})
		}
	}
	for range 5 {
		wg.Go(func() {
			if _, err := s.PruneInventory(ctx, t0.Add(-time.Hour), 100); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, found := search(t, s, store.HostQuery{Packages: []string{"dnsmasq"}, Limit: 5})
	if len(all) != hosts {
		t.Fatalf("found %d hosts: %v", len(all), all)
	}
	ids := map[int64]string{}
	for _, m := range found {
		if len(m.Packages) != 1 {
			t.Errorf("%s has %d dnsmasq packages", m.Name, len(m.Packages))
			continue
		}
		pv := m.Packages[0]
		if other, ok := ids[pv.ID]; ok && other != pv.Version {
			t.Errorf("version id %d is %s and %s", pv.ID, other, pv.Version)
		}
		ids[pv.ID] = pv.Version
		rep, err := s.HostReport(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Packages) != 4 {
			t.Errorf("%s has %d packages after two concurrent reports: %v", m.Name, len(rep.Packages), rep.Packages)
		}
	}
	if len(ids) > len(versions) {
		t.Errorf("%d stored versions of dnsmasq-base for %d distinct", len(ids), len(versions))
	}
}
