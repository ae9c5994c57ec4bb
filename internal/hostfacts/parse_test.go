package hostfacts

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseDpkgStatus(t *testing.T) {
	in := "Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n y\n .\n z\n" +
		"\n\n\nPackage: b\r\nStatus: install ok installed\r\nVersion: 2:3-4\r\nSource: bsrc\r\n" + // CRLF, extra blank lines
		"\nPackage: c\nStatus: install ok half-installed\nVersion: 1\n" +
		"\nno colon here\nPackage: d\nStatus: install ok installed\nVersion: 5\nSource: dsrc (4)\n" +
		"\nPackage: e\nStatus: install ok installed\n" + // no version
		"\nPackage: f\nStatus: install ok installed\nVersion: 6" // no final newline
	got, err := ParseDpkgStatus(strings.NewReader(in), 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Name: "a", Version: "1.0", Arch: "amd64", Source: "a", SourceVersion: "1.0"},
		{Name: "b", Version: "2:3-4", Source: "bsrc", SourceVersion: "2:3-4"},
		{Name: "d", Version: "5", Source: "dsrc", SourceVersion: "4"},
		{Name: "f", Version: "6", Source: "f", SourceVersion: "6"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := ParseDpkgStatus(strings.NewReader(in), 3); !errors.Is(err, ErrTooManyPackages) {
		t.Errorf("4 packages, bound 3: err = %v", err)
	}
	long := "Package: a\nStatus: install ok installed\nVersion: 1\nDescription: " + strings.Repeat("x", 2<<20) + "\n"
	if _, err := ParseDpkgStatus(strings.NewReader(long), 100); err == nil {
		t.Error("a line of 2 MiB is read")
	}
}

// FuzzParseDpkgStatus feeds the status parser anything: it must not panic,
// must keep its bound, and every package it returns is complete.
func FuzzParseDpkgStatus(f *testing.F) {
	status, err := os.ReadFile("testdata/root-debian/var/lib/dpkg/status")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(status))
	f.Add("Package: x\nStatus: install ok installed\nVersion: 1\nSource: y (\n")
	f.Add("Package:\nStatus:\n\n\n:\n \n\t")
	f.Add("Source: (1)\nPackage: p\nVersion: 1\nStatus: a b installed")
	f.Fuzz(func(t *testing.T, in string) {
		pkgs, err := ParseDpkgStatus(strings.NewReader(in), 5)
		if len(pkgs) > 5 {
			t.Fatalf("%d packages past a bound of 5 (err %v)", len(pkgs), err)
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Source == "" || p.SourceVersion == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}

func TestParseRPMQuery(t *testing.T) {
	in := "gpg-pubkey\t(none)\tfd431d51\t4ae0493b\t(none)\t(none)\n" +
		"openssl-libs\t1\t3.0.7\t27.el9\tx86_64\topenssl-3.0.7-27.el9.src.rpm\n" +
		"odd\t(none)\t1\t2\tnoarch\t(none)\n" +
		"broken line\n" +
		"dnsmasq-utils\t(none)\t2.85\t16.el9_4\tx86_64\tdnsmasq-2.85-16.el9_4.src.rpm\n"
	got, err := ParseRPMQuery(strings.NewReader(in), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Name: "dnsmasq-utils", Version: "2.85-16.el9_4", Arch: "x86_64", Source: "dnsmasq", SourceVersion: "2.85-16.el9_4"},
		{Name: "odd", Version: "1-2", Arch: "noarch", Source: "odd", SourceVersion: "1-2"},
		{Name: "openssl-libs", Version: "1:3.0.7-27.el9", Arch: "x86_64", Source: "openssl", SourceVersion: "1:3.0.7-27.el9"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := ParseRPMQuery(strings.NewReader(in), 2); !errors.Is(err, ErrTooManyPackages) {
		t.Errorf("bound 2: err = %v", err)
	}
}

func TestParseProcNet(t *testing.T) {
	in := "  sl  local_address ...\n" +
		"   0: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 0 0 0 0 0 11\n" +
		"   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0 12\n" +
		"   2: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 13\n" +
		"   3: zz:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 14\n"
	got, err := ParseProcNet(strings.NewReader(in), "tcp6")
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Listener{Proto: "tcp6", Address: "::1", Port: 631}, 11},
		{Listener{Proto: "tcp6", Address: "127.0.0.1", Port: 8080}, 12}, // ::ffff:127.0.0.1
		{Listener{Proto: "tcp6", Address: "2001:db8::1", Port: 80}, 13},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseOSRelease(t *testing.T) {
	got := ParseOSRelease("# comment\nID=\"ubuntu\"\nID_LIKE=debian\nVERSION_ID='22.04'\nPRETTY_NAME=\"Ubuntu \\\"Jammy\\\" 22.04.4 LTS\"\nVERSION_CODENAME=jammy\nbad line\n")
	want := OS{ID: "ubuntu", IDLike: []string{"debian"}, VersionID: "22.04", PrettyName: `Ubuntu "Jammy" 22.04.4 LTS`, VersionCodename: "jammy"}
	if got.ID != want.ID || !slices.Equal(got.IDLike, want.IDLike) || got.VersionID != want.VersionID || got.PrettyName != want.PrettyName || got.VersionCodename != want.VersionCodename {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSystemctlJSON(t *testing.T) {
	if _, err := ParseSystemctlUnits([]byte("System has not been booted with systemd")); err == nil {
		t.Error("text read as JSON")
	}
	files, err := ParseSystemctlUnitFiles([]byte(`[{"unit_file":"a.service","state":"enabled","preset":null},{"unit_file":"","state":"x"}]`))
	if err != nil || !slices.Equal(files, []Service{{Unit: "a.service", Enabled: "enabled"}}) {
		t.Errorf("files = %+v, %v", files, err)
	}
}
