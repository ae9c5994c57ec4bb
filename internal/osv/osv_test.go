package osv

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

func loadTestdata(t *testing.T) *DB {
	t.Helper()
	db, bad, err := Load("testdata/advisories")
	if err != nil || len(bad) != 0 {
		t.Fatalf("Load: %v, bad files %v", err, bad)
	}
	return db
}

func ids(advs []*Advisory) []string {
	var out []string
	for _, a := range advs {
		out = append(out, a.ID)
	}
	return out
}

func TestLookup(t *testing.T) {
	db := loadTestdata(t)
	if db.Len() != 5 {
		t.Errorf("%d advisories, want 5", db.Len())
	}
	for name, want := range map[string][]string{
		"CVE-2020-25681":    {"DLA-2604-1", "DSA-4844-1", "USN-4698-1"}, // aliases (Debian), related (Ubuntu)
		"cve-2020-25684":    {"DLA-2604-1", "DSA-4844-1", "RHSA-2021:0153", "USN-4698-1"},
		" DSA-4844-1 ":      {"DSA-4844-1"},
		"RHSA-2021:0153":    {"RHSA-2021:0153"},
		"CVE-1999-0001":     nil,
		"EXAMPLE-2024-0001": {"EXAMPLE-2024-0001"},
	} {
		if got := ids(db.Lookup(name)); !slices.Equal(got, want) {
			t.Errorf("Lookup(%q) = %q, want %q", name, got, want)
		}
	}
	a := db.Lookup("DSA-4844-1")[0]
	if a.Path != filepath.Join("testdata/advisories", "DSA-4844-1.json") || a.Modified != time.Date(2021, 1, 19, 0, 0, 0, 0, time.UTC) {
		t.Errorf("path %q, modified %v", a.Path, a.Modified)
	}
	if got := ids(db.ForPackage("dnsmasq")); len(got) != 5 {
		t.Errorf("ForPackage(dnsmasq) = %q", got)
	}
}

// TestLoadBadFiles: each bad file is reported with its path and reason,
// and the good one beside them loads.
func TestLoadBadFiles(t *testing.T) {
	db, bad, err := Load("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(db.All()); !slices.Equal(got, []string{"GOOD-1"}) {
		t.Errorf("loaded %q", got)
	}
	var got []string
	for _, b := range bad {
		got = append(got, b.Error())
	}
	slices.Sort(got)
	want := []string{
		"testdata/bad/no-id.json: no \"id\"",
		"testdata/bad/truncated.json: not an OSV entry: unexpected EOF",
		"testdata/bad/two-events.json: affected[0].ranges[0].events[0]: 2 of introduced, fixed, last_affected and limit, want exactly one",
	}
	if !slices.Equal(got, want) {
		t.Errorf("bad files:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, _, err := Load("testdata/no-such-dir"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing directory: %v", err)
	}
}

func TestDuplicateIDs(t *testing.T) {
	older := &Advisory{ID: "X-1", Modified: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), Path: "a.json"}
	newer := &Advisory{ID: "x-1", Modified: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), Path: "b.json", Aliases: []string{"CVE-1"}}
	db, dups := build([]*Advisory{newer, older})
	if db.Len() != 1 || db.Lookup("CVE-1")[0] != newer || len(dups) != 1 || dups[0].Path != "a.json" {
		t.Errorf("kept %v, duplicates %v", ids(db.All()), dups)
	}
}

func TestCheck(t *testing.T) {
	db := loadTestdata(t)
	buster := Host{Distro: "debian", Release: "10", Scheme: pkgver.Deb}
	for _, c := range []struct {
		name string
		host Host
		pkg  InstalledPackage
		want []string // advisory@ecosystem package version fixed
	}{
		{"source package matches: dnsmasq-base of dnsmasq (binNMU)", buster,
			InstalledPackage{Name: "dnsmasq-base", Version: "2.80-1+b1", Source: "dnsmasq", SourceVersion: "2.80-1"},
			[]string{"DSA-4844-1@Debian:10 dnsmasq 2.80-1 fixed 2.80-1+deb10u1"}},
		{"fixed version is not affected", buster,
			InstalledPackage{Name: "dnsmasq-base", Version: "2.80-1+deb10u1", Source: "dnsmasq"}, nil},
		{"a backport before the fix (~) is affected", buster,
			InstalledPackage{Name: "dnsmasq", Version: "2.80-1+deb10u1~bpo1"},
			[]string{"DSA-4844-1@Debian:10 dnsmasq 2.80-1+deb10u1~bpo1 fixed 2.80-1+deb10u1"}},
		{"another release's advisory does not apply", Host{Distro: "debian", Release: "9", Scheme: pkgver.Deb},
			InstalledPackage{Name: "dnsmasq", Version: "2.80-1"}, nil}, // DLA fixed 2.76-5+deb9u3 < 2.80-1
		{"stretch", Host{Distro: "debian", Release: "9", Scheme: pkgver.Deb},
			InstalledPackage{Name: "dnsmasq-base", Version: "2.76-5+deb9u2", Source: "dnsmasq"},
			[]string{"DLA-2604-1@Debian:9 dnsmasq 2.76-5+deb9u2 fixed 2.76-5+deb9u3"}},
		{"bookworm has no advisory here", Host{Distro: "debian", Release: "12", Scheme: pkgver.Deb},
			InstalledPackage{Name: "dnsmasq", Version: "2.80-1"}, nil},
		{"ubuntu focal", Host{Distro: "ubuntu", Release: "20.04", Scheme: pkgver.Deb},
			InstalledPackage{Name: "dnsmasq-base", Version: "2.80-1.1ubuntu1.1", Source: "dnsmasq"},
			[]string{"USN-4698-1@Ubuntu:20.04:LTS dnsmasq 2.80-1.1ubuntu1.1 fixed 2.80-1.1ubuntu1.2"}},
		{"rhel 8.3, binary names, epoch 0 in the advisory", Host{Distro: "rhel", Release: "8.3", Scheme: pkgver.RPM},
			InstalledPackage{Name: "dnsmasq-utils", Version: "2.79-13.el8", Source: "dnsmasq", SourceVersion: "2.79-13.el8"},
			[]string{"RHSA-2021:0153@Red Hat:enterprise_linux:8::appstream dnsmasq-utils 2.79-13.el8 fixed 0:2.79-13.el8_3.1"}},
		{"rhel: a binary the advisory does not list, by its source", Host{Distro: "rhel", Release: "8.3", Scheme: pkgver.RPM},
			InstalledPackage{Name: "dnsmasq-langpack", Version: "2.79-13.el8", Source: "dnsmasq", SourceVersion: "2.79-13.el8"},
			[]string{"RHSA-2021:0153@Red Hat:enterprise_linux:8::appstream dnsmasq 2.79-13.el8 fixed 0:2.79-13.el8_3.1"}},
		{"rhel fixed", Host{Distro: "rhel", Release: "8.4", Scheme: pkgver.RPM},
			InstalledPackage{Name: "dnsmasq", Version: "2.79-15.el8"}, nil},
		{"rocky 9.4 by major release", Host{Distro: "rocky", Release: "9.4", Scheme: pkgver.RPM},
			InstalledPackage{Name: "dnsmasq", Version: "2.85-16.el9_4"},
			[]string{"EXAMPLE-2024-0001@Rocky Linux:9 dnsmasq 2.85-16.el9_4 fixed 2.85-16.el9_4.1"}},
		{"a deb host never matches an rpm ecosystem", Host{Distro: "rocky", Release: "9.4", Scheme: pkgver.Deb},
			InstalledPackage{Name: "dnsmasq", Version: "2.85-16.el9_4"}, nil},
		{"an unknown distribution", Host{Distro: "alpine", Release: "3.19", Scheme: ""},
			InstalledPackage{Name: "dnsmasq", Version: "2.80-r0"}, nil},
	} {
		var got []string
		for _, f := range db.Check(c.host, c.pkg) {
			got = append(got, f.Advisory.ID+"@"+f.Ecosystem+" "+f.Package+" "+f.Version+" fixed "+f.Fixed)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	withdrawn := &Advisory{ID: "W-1", Withdrawn: &time.Time{}, Affected: []Affected{{Package: Package{Ecosystem: "Debian:10", Name: "dnsmasq"},
		Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}}}}}}}
	if f := withdrawn.Check(buster, InstalledPackage{Name: "dnsmasq", Version: "1"}); f != nil {
		t.Errorf("a withdrawn advisory affects %v", f)
	}
}

func TestApplies(t *testing.T) {
	for _, c := range []struct {
		eco     string
		distro  string
		release string
		want    bool
	}{
		{"Debian:10", "debian", "10", true},
		{"Debian:10", "debian", "11", false},
		{"Debian", "debian", "13", true},
		{"Debian:10", "ubuntu", "10", false},
		{"Ubuntu:22.04:LTS", "ubuntu", "22.04", true},
		{"Ubuntu:Pro:22.04:LTS", "ubuntu", "22.04", true},
		{"Ubuntu:22.04:LTS", "ubuntu", "24.04", false},
		{"Rocky Linux:9", "rocky", "9.4", true},
		{"Rocky Linux:9", "rocky", "8.9", false},
		{"AlmaLinux:8", "almalinux", "8.10", true},
		{"Red Hat:enterprise_linux:9::appstream", "rhel", "9.4", true},
		{"Red Hat:rhel_eus:8.6::baseos", "rhel", "8.6", true},
		{"Red Hat:rhel_eus:8.6::baseos", "rhel", "8.8", false},
		{"Debian:10", "debian", "", false},
		{"Alpine:v3.19", "alpine", "3.19.1", false},
	} {
		if got := Applies(c.eco, Host{Distro: c.distro, Release: c.release}); got != c.want {
			t.Errorf("Applies(%q, %s %s) = %v, want %v", c.eco, c.distro, c.release, got, c.want)
		}
	}
}

// TestIncludes evaluates ranges as the OSV schema says.
func TestIncludes(t *testing.T) {
	ev := func(kind, v string) Event {
		switch kind {
		case "i":
			return Event{Introduced: v}
		case "f":
			return Event{Fixed: v}
		case "l":
			return Event{LastAffected: v}
		}
		return Event{Limit: v}
	}
	for _, c := range []struct {
		events  []Event
		version string
		want    bool
		fixed   string
	}{
		{[]Event{ev("i", "0"), ev("f", "2.0")}, "1.9", true, "2.0"},
		{[]Event{ev("i", "0"), ev("f", "2.0")}, "2.0", false, ""},
		{[]Event{ev("i", "0"), ev("f", "2.0")}, "2.0~rc1", true, "2.0"},
		{[]Event{ev("f", "2.0"), ev("i", "1.5")}, "1.4", false, ""}, // unsorted in the file
		{[]Event{ev("f", "2.0"), ev("i", "1.5")}, "1.5", true, "2.0"},
		{[]Event{ev("i", "1.0"), ev("f", "1.2"), ev("i", "1.5"), ev("f", "1.7")}, "1.3", false, ""},
		{[]Event{ev("i", "1.0"), ev("f", "1.2"), ev("i", "1.5"), ev("f", "1.7")}, "1.6", true, "1.7"},
		{[]Event{ev("i", "1.0"), ev("f", "1.2"), ev("i", "1.5"), ev("f", "1.7")}, "1.1", true, "1.2"},
		{[]Event{ev("i", "0"), ev("l", "1.5")}, "1.5", true, ""},
		{[]Event{ev("i", "0"), ev("l", "1.5")}, "1.5.1", false, ""},
		{[]Event{ev("i", "0"), ev("f", "0")}, "1.0", false, ""},     // Debian's "not affected"
		{[]Event{ev("f", "1.0"), ev("i", "1.0")}, "1.0", false, ""}, // at equal versions introduced comes first
		{[]Event{ev("i", "0"), ev("lim", "1.2")}, "1.3", false, ""},
		{[]Event{ev("i", "0"), ev("lim", "1.2")}, "1.1", true, ""},
		{[]Event{ev("i", "1:0")}, "2.0", false, ""}, // epochs count
	} {
		af := Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: c.events}}}
		got, fixed := af.Includes(pkgver.Deb, c.version)
		if got != c.want || fixed != c.fixed {
			t.Errorf("%v includes %q = %v, %q; want %v, %q", c.events, c.version, got, fixed, c.want, c.fixed)
		}
	}
	git := Affected{Ranges: []Range{{Type: "GIT", Events: []Event{{Introduced: "0"}}}}, Versions: []string{"1.0-1"}}
	if hit, _ := git.Includes(pkgver.Deb, "2.0"); hit {
		t.Error("a GIT range is evaluated")
	}
	if hit, _ := git.Includes(pkgver.Deb, "1.0-1"); !hit {
		t.Error("a listed version is not affected")
	}
}
