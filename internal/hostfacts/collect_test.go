package hostfacts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata")

var fixtureTime = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// noCommands is an Options.Run on a host where neither rpm nor systemctl
// is installed.
func noCommands(context.Context, string, ...string) ([]byte, error) {
	return nil, fmt.Errorf("exec: %w", exec.ErrNotFound)
}

// recorded answers commands with the recorded outputs in testdata, and
// remembers what was run.
type recorded struct {
	calls   []string
	outputs map[string]string // "name arg" -> testdata file, for a command with that argument
}

func (r *recorded) run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.calls = append(r.calls, name+" "+strings.Join(args, " "))
	for _, a := range args {
		if file, ok := r.outputs[name+" "+a]; ok {
			return os.ReadFile(file)
		}
	}
	return nil, fmt.Errorf("exec: %w", exec.ErrNotFound)
}

// checkGolden compares a report with its golden JSON (rewritten with
// -update), so that a change of what is collected shows in review.
func checkGolden(t *testing.T, r *Report, file string) {
	t.Helper()
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the report differs from %s (go test -update rewrites it):\n%s", file, got)
	}
}

// TestCollectDebianFixture collects the fake Debian root: every fact, read
// through the root, with no command installed.
func TestCollectDebianFixture(t *testing.T) {
	r, err := Collect(t.Context(), Options{Root: "testdata/root-debian", Now: func() time.Time { return fixtureTime }, Run: noCommands})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, r, "testdata/root-debian.json")

	if r.Hostname != "dns1.example.internal" || r.OS.ID != "debian" || r.OS.VersionID != "10" || r.Scheme != pkgver.Deb {
		t.Errorf("host = %q, os = %+v, scheme %q", r.Hostname, r.OS, r.Scheme)
	}
	names := map[string]Package{}
	for _, p := range r.Packages {
		names[p.Name+":"+p.Arch] = p
	}
	if p := names["dnsmasq-base:amd64"]; p.Source != "dnsmasq" || p.SourceVersion != "2.80-1" || p.Version != "2.80-1+b1" {
		t.Errorf("dnsmasq-base = %+v, want source dnsmasq 2.80-1 (from Source: dnsmasq (2.80-1))", p)
	}
	if p := names["openssh-server:amd64"]; p.Version != "1:7.9p1-10+deb10u4" || p.Source != "openssh" {
		t.Errorf("openssh-server (held, installed) = %+v", p)
	}
	if _, ok := names["rsync:amd64"]; ok {
		t.Error("rsync, removed with its configuration files left, is reported as installed")
	}
	if len(r.Packages) != 7 {
		t.Errorf("%d packages, want 7 (apt, dnsmasq, dnsmasq-base, libc6 twice, openssh-server, tzdata)", len(r.Packages))
	}
	dns := r.Listeners[slices.IndexFunc(r.Listeners, func(l Listener) bool { return l.Proto == "udp" && l.Port == 53 })]
	if dns.PID != 812 || dns.Process != "dnsmasq" || dns.Exe != "/usr/sbin/dnsmasq" || dns.Package != "dnsmasq-base" || dns.Address != "0.0.0.0" {
		t.Errorf("udp 53 = %+v", dns)
	}
	if len(r.Warnings) != 0 {
		t.Errorf("warnings: %q", r.Warnings)
	}
}

// TestCollectRPMHost collects a root with an rpm database, rpm answering
// with the recorded output of rpm -qa (made by rpm 4.18 from a database of
// packages built for the purpose).
func TestCollectRPMHost(t *testing.T) {
	rec := &recorded{outputs: map[string]string{"rpm -qa": "testdata/rpm-qa.txt"}}
	root, err := filepath.Abs("testdata/root-rocky")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Collect(t.Context(), Options{Root: "testdata/root-rocky", Now: func() time.Time { return fixtureTime }, Run: rec.run})
	if err != nil {
		t.Fatal(err)
	}
	if want := "rpm --root " + root + " --dbpath /usr/lib/sysimage/rpm -qa --queryformat " + rpmQueryFormat; !slices.Contains(rec.calls, want) {
		t.Errorf("commands run: %q; want %q", rec.calls, want)
	}
	if r.Scheme != pkgver.RPM || r.OS.ID != "rocky" || !slices.Equal(r.OS.IDLike, []string{"rhel", "centos", "fedora"}) || r.Hostname != "rocky1" {
		t.Errorf("scheme %q, os %+v, host %q", r.Scheme, r.OS, r.Hostname)
	}
	checkGolden(t, r, "testdata/root-rocky.json")
}

func TestCollectRPMNotInstalled(t *testing.T) {
	r, err := Collect(t.Context(), Options{Root: "testdata/root-rocky", Run: noCommands})
	if err != nil {
		t.Fatal(err)
	}
	if r.Scheme != pkgver.RPM || len(r.Packages) != 0 {
		t.Errorf("scheme %q (from ID_LIKE), %d packages", r.Scheme, len(r.Packages))
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "holds an rpm database, but rpm is not installed here") {
		t.Errorf("warnings = %q", r.Warnings)
	}
}

// TestCollectSystemctl merges the recorded outputs of systemctl's unit
// files (--root, no systemd needed) and units (the running systemd's
// states, asked on the live host only).
func TestCollectSystemctl(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads this Linux host")
	}
	rec := &recorded{outputs: map[string]string{
		"systemctl list-unit-files": "testdata/systemctl-list-unit-files.json",
		"systemctl list-units":      "testdata/systemctl-list-units.json",
	}}
	r, err := Collect(t.Context(), Options{Run: rec.run})
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{
		{Unit: "apt-daily.service", Enabled: "static", Active: "inactive", Sub: "dead"},
		{Unit: "autovt@.service", Enabled: "alias"},
		{Unit: "console-getty.service", Enabled: "disabled"},
		{Unit: "cryptdisks.service", Enabled: "masked"},
		{Unit: "getty@.service", Enabled: "enabled"},
		{Unit: "getty@tty1.service", Active: "active", Sub: "running"},
		{Unit: "mariadb.service", Enabled: "enabled", Active: "active", Sub: "running"},
		{Unit: "postgresql.service", Enabled: "enabled", Active: "active", Sub: "exited"},
		{Unit: "redis-server.service", Enabled: "enabled", Active: "failed", Sub: "failed"},
		{Unit: "systemd-journald.service", Active: "active", Sub: "running"},
	}
	if !slices.Equal(r.Services, want) {
		t.Errorf("services:\n got %+v\nwant %+v", r.Services, want)
	}
}

// TestCollectLive collects this host as tasuki hosts collect does.
func TestCollectLive(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads this Linux host")
	}
	r, err := Collect(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Hostname == "" || r.Kernel == "" || r.CPU.Count == 0 || r.Memory.Total == 0 {
		t.Errorf("host %q, kernel %q, cpu %+v, memory %+v", r.Hostname, r.Kernel, r.CPU, r.Memory)
	}
	if _, err := os.Stat("/var/lib/dpkg/status"); err == nil && (r.Scheme != pkgver.Deb || len(r.Packages) == 0) {
		t.Errorf("a dpkg host: scheme %q, %d packages", r.Scheme, len(r.Packages))
	}
	t.Logf("%d packages, %d services, %d listeners, warnings %q", len(r.Packages), len(r.Services), len(r.Listeners), r.Warnings)

	// Without systemctl the unit files are read, following the links of
	// /etc/systemd/system (often absolute) under the root.
	r, err = Collect(t.Context(), Options{Run: noCommands})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range r.Warnings {
		if strings.Contains(w, "escapes") || strings.Contains(w, "systemd") {
			t.Errorf("warning: %s", w)
		}
	}
	if _, err := os.Stat("/etc/systemd/system"); err == nil && len(r.Services) == 0 {
		t.Error("no services read from the unit files")
	}
}

func TestCollectBounds(t *testing.T) {
	_, err := Collect(t.Context(), Options{Root: "testdata/root-debian", Run: noCommands, MaxPackages: 3})
	if !errors.Is(err, ErrTooManyPackages) || !strings.Contains(err.Error(), "testdata/root-debian/var/lib/dpkg/status: too many installed packages: more than 3") {
		t.Errorf("err = %v", err)
	}
	if _, err := Collect(t.Context(), Options{Root: "testdata/no-such-root"}); err == nil {
		t.Error("a missing root is no error")
	}
}

// TestUnitFilesAgreeWithSystemctl checks the reading of unit files, used
// where systemctl is missing, against systemctl --root on the fixture.
func TestUnitFilesAgreeWithSystemctl(t *testing.T) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("systemctl is not installed")
	}
	root, err := filepath.Abs("testdata/root-debian")
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCommand(t.Context(), "systemctl", "--root="+root, "list-unit-files", "--type=service", "--output=json", "--no-pager")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseSystemctlUnitFiles(out)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Collect(t.Context(), Options{Root: root, Run: noCommands})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Services, want) {
		t.Errorf("unit files read: %+v\nsystemctl: %+v", r.Services, want)
	}
}
