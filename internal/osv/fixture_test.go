package osv_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/osv"
)

// TestFixtureHosts runs the whole question on the hostfacts fixtures: the
// host's report, then every package against the advisories, as the
// server's search will. The Debian 10 host has dnsmasq 2.80-1 and
// dnsmasq-base built from it; the Rocky 9.4 host answers rpm -qa with a
// recorded output.
func TestFixtureHosts(t *testing.T) {
	db, bad, err := osv.Load("testdata/advisories")
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	rpm, err := os.ReadFile("../hostfacts/testdata/rpm-qa.txt")
	if err != nil {
		t.Fatal(err)
	}
	run := func(_ context.Context, name string, args ...string) ([]byte, error) {
		if name == "rpm" && slices.Contains(args, "-qa") {
			return rpm, nil
		}
		return nil, exec.ErrNotFound
	}
	for _, c := range []struct {
		root string
		want []string
	}{
		{"../hostfacts/testdata/root-debian", []string{
			"dnsmasq 2.80-1: DSA-4844-1 (Debian:10 dnsmasq, fixed 2.80-1+deb10u1)",
			"dnsmasq-base 2.80-1+b1: DSA-4844-1 (Debian:10 dnsmasq, fixed 2.80-1+deb10u1)",
		}},
		{"../hostfacts/testdata/root-rocky", []string{
			"dnsmasq 2.85-16.el9_4: EXAMPLE-2024-0001 (Rocky Linux:9 dnsmasq, fixed 2.85-16.el9_4.1)",
			"dnsmasq-utils 2.85-16.el9_4: EXAMPLE-2024-0001 (Rocky Linux:9 dnsmasq, fixed 2.85-16.el9_4.1)",
		}},
	} {
		r, err := hostfacts.Collect(t.Context(), hostfacts.Options{Root: c.root, Run: run})
		if err != nil {
			t.Fatal(err)
		}
		host := osv.Host{Distro: r.OS.ID, Release: r.OS.VersionID, Scheme: r.Scheme}
		var got []string
		for _, p := range r.Packages {
			for _, f := range db.Check(host, osv.InstalledPackage{Name: p.Name, Version: p.Version, Source: p.Source, SourceVersion: p.SourceVersion}) {
				got = append(got, fmt.Sprintf("%s %s: %s (%s %s, fixed %s)", p.Name, p.Version, f.Advisory.ID, f.Ecosystem, f.Package, f.Fixed))
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.root, got, c.want)
		}
	}
}
