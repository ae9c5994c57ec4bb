package hostfacts

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

func TestDiff(t *testing.T) {
	old := &Report{
		OS: OS{ID: "debian", VersionID: "11"}, Kernel: "5.10.0-28-amd64", Scheme: pkgver.Deb,
		Packages: []Package{
			{Name: "dnsmasq-base", Version: "2.85-1", Arch: "amd64"},
			{Name: "libc6", Version: "2.31-13", Arch: "amd64"},
			{Name: "libc6", Version: "2.31-13", Arch: "i386"},
			{Name: "rsync", Version: "3.2.3-4"},
			{Name: "tzdata", Version: "2024a-0+deb11u1"},
		},
		Services: []Service{
			{Unit: "dnsmasq.service", Enabled: "enabled", Active: "active"},
			{Unit: "rsync.service", Enabled: "enabled", Active: "active"},
			{Unit: "ssh.service", Enabled: "disabled", Active: "inactive"},
		},
		Listeners: []Listener{
			{Proto: "udp", Address: "0.0.0.0", Port: 53, Process: "dnsmasq"},
			{Proto: "tcp", Address: "0.0.0.0", Port: 873, Process: "rsync"},
		},
	}
	new := &Report{
		OS: OS{ID: "debian", VersionID: "12"}, Kernel: "6.1.0-18-amd64", Scheme: pkgver.Deb,
		Packages: []Package{
			{Name: "dnsmasq-base", Version: "2.89-1", Arch: "amd64"},
			{Name: "libc6", Version: "2.36-9", Arch: "amd64"},
			{Name: "libc6", Version: "2.31-13", Arch: "i386"},
			{Name: "openssh-server", Version: "1:9.2p1-2"},
			{Name: "tzdata", Version: "2024a-0+deb11u1~x"}, // older: ~ sorts first
		},
		Services: []Service{
			{Unit: "dnsmasq.service", Enabled: "enabled", Active: "active"},
			{Unit: "ssh.service", Enabled: "enabled", Active: "active"},
		},
		Listeners: []Listener{
			{Proto: "udp", Address: "0.0.0.0", Port: 53, Process: "dnsmasq"},
			{Proto: "tcp6", Address: "::", Port: 22, Process: "sshd"},
		},
	}
	var got []string
	for _, c := range Diff(old, new) {
		got = append(got, c.String())
	}
	want := []string{
		"os_upgraded os: debian 11 -> debian 12",
		"kernel_changed kernel: 5.10.0-28-amd64 -> 6.1.0-18-amd64",
		"package_upgraded dnsmasq-base: 2.85-1 -> 2.89-1",
		"package_upgraded libc6:amd64: 2.31-13 -> 2.36-9",
		"package_installed openssh-server (1:9.2p1-2)",
		"package_removed rsync (3.2.3-4)",
		"package_downgraded tzdata: 2024a-0+deb11u1 -> 2024a-0+deb11u1~x",
		"service_disabled rsync.service: enabled -> ",
		"service_stopped rsync.service: active -> ",
		"service_enabled ssh.service: disabled -> enabled",
		"service_started ssh.service: inactive -> active",
		"port_closed tcp 0.0.0.0:873 (rsync)",
		"port_opened tcp6 [::]:22 (sshd)",
	}
	// String drops an empty To; the two rsync lines read "(enabled)".
	want[7], want[8] = "service_disabled rsync.service (enabled)", "service_stopped rsync.service (active)"
	if !slices.Equal(got, want) {
		t.Errorf("Diff:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := Diff(nil, new); d != nil {
		t.Errorf("first report: %v", d)
	}
	if d := Diff(new, new); len(d) != 0 {
		t.Errorf("no change: %v", d)
	}
	changed := *new
	changed.OS = OS{ID: "ubuntu", VersionID: "24.04"}
	if d := Diff(new, &changed); len(d) != 1 || d[0].Kind != OSChanged {
		t.Errorf("another distribution: %v", d)
	}
}

func TestReportEncodeDecode(t *testing.T) {
	r, err := Collect(t.Context(), Options{Root: "testdata/root-debian", Run: noCommands})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := back.Encode(); !bytes.Equal(again, b) {
		t.Error("a decoded report encodes differently")
	}
	// A newer collector's extra field is ignored.
	var m map[string]any
	json.Unmarshal(b, &m)
	m["gpu"] = "none"
	extra, _ := json.Marshal(m)
	if _, err := Decode(bytes.NewReader(extra)); err != nil {
		t.Errorf("an unknown field: %v", err)
	}
	for name, c := range map[string]struct {
		in   string
		want string
	}{
		"version":  {`{"version":2,"hostname":"a"}`, "version 2, this server reads version 1"},
		"hostname": {`{"version":1}`, "no hostname"},
		"scheme":   {`{"version":1,"hostname":"a","scheme":"apk"}`, `version scheme "apk"`},
		"package":  {`{"version":1,"hostname":"a","packages":[{"name":"x"}]}`, "package 1: no name or version"},
		"trailing": {`{"version":1,"hostname":"a"} {}`, "data after the JSON object"},
		"syntax":   {`{"version":`, "unexpected EOF"},
	} {
		if _, err := Decode(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
	big := `{"version":1,"hostname":"` + strings.Repeat("x", MaxReportBytes) + `"}`
	if _, err := Decode(strings.NewReader(big)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: err = %v", err)
	}
	many := &Report{Version: ReportVersion, Hostname: "a", Packages: make([]Package, MaxPackages+1)}
	if _, err := many.Encode(); err == nil || !strings.Contains(err.Error(), "packages, more than") {
		t.Errorf("too many packages: err = %v", err)
	}
}
