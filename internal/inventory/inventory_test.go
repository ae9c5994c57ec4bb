package inventory_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/inventory"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stores are the drivers the service is tested on: a real SQLite file and
// a real PostgreSQL schema.
func stores(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store {
			db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tasuki.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		"postgres": func(t *testing.T) store.Store {
			db, err := postgres.Open(context.Background(), pgtest.DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	}
}

// fixture collects one of hostfacts' fixture roots, as `tasuki hosts
// collect --root` would (rpm's answer recorded).
func fixture(t *testing.T, root string) *hostfacts.Report {
	t.Helper()
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
	r, err := hostfacts.Collect(t.Context(), hostfacts.Options{Root: "../hostfacts/testdata/" + root, Run: run})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(t *testing.T, st store.Store, c *clock) *inventory.Service {
	adv := inventory.NewAdvisories("../osv/testdata/advisories", quiet)
	if _, err := adv.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &inventory.Service{Store: st, AdvisoryDB: adv, StaleAfter: 3 * time.Hour, Now: c.now, Log: quiet}
}

func names(page api.Page[api.HostMatch]) []string {
	var out []string
	for _, m := range page.Items {
		out = append(out, m.Host.Name)
	}
	return out
}

func apiStatus(err error) int {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// TestFixtures reports the Debian and Rocky fixture roots and asks the
// questions of the issue: which hosts run dnsmasq older than 2.83 (the
// Debian host has only its source package's name in common with the
// question for dnsmasq-base), and which does CVE-2020-25681 affect.
func TestFixtures(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			c := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
			s := newService(t, open(t), c)
			deb, rocky := fixture(t, "root-debian"), fixture(t, "root-rocky")
			for _, r := range []*hostfacts.Report{deb, rocky} {
				got, err := s.ReportHost(ctx, r, "agent-1")
				if err != nil {
					t.Fatal(err)
				}
				if !got.First || got.Host != r.Hostname || got.Changes != 0 {
					t.Errorf("first report of %s: %+v", r.Hostname, got)
				}
			}

			page, err := s.SearchHosts(ctx, api.HostQuery{Package: "dnsmasq", Op: store.VersionLT, Version: "2.83"})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(page); !slices.Equal(got, []string{deb.Hostname}) {
				t.Fatalf("dnsmasq < 2.83: %v", got)
			}
			m := page.Items[0]
			var pkgs []string
			for _, p := range m.Packages {
				pkgs = append(pkgs, p.Name+" "+p.Version)
			}
			if !slices.Equal(pkgs, []string{"dnsmasq 2.80-1", "dnsmasq-base 2.80-1+b1"}) {
				t.Errorf("matched packages: %v", pkgs)
			}
			if m.Host.OS.ID != "debian" || m.Host.OS.VersionID != "10" || m.Host.Stale || m.Host.ReportedBy != "agent-1" {
				t.Errorf("host: %+v", m.Host)
			}
			if len(m.Services) == 0 || m.Services[0].Unit != "dnsmasq.service" {
				t.Errorf("services: %+v", m.Services)
			}
			ports := map[int]bool{}
			for _, l := range m.Listeners {
				ports[l.Port] = true
			}
			if !ports[53] {
				t.Errorf("listeners: %+v", m.Listeners)
			}

			// The advisory: DSA-4844-1 names CVE-2020-25681 and fixes
			// dnsmasq in Debian 10 at 2.80-1+deb10u1.
			page, err = s.SearchHosts(ctx, api.HostQuery{Advisory: "CVE-2020-25681"})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(page); !slices.Equal(got, []string{deb.Hostname}) {
				t.Fatalf("CVE-2020-25681: %v", got)
			}
			var findings []string
			for _, p := range page.Items[0].Packages {
				for _, f := range p.Advisories {
					findings = append(findings, p.Name+": "+f.ID+" fixed "+f.Fixed)
				}
			}
			if !slices.Contains(findings, "dnsmasq-base: DSA-4844-1 fixed 2.80-1+deb10u1") {
				t.Errorf("findings: %v", findings)
			}
			page, err = s.SearchHosts(ctx, api.HostQuery{Advisory: "EXAMPLE-2024-0001"})
			if err != nil || !slices.Equal(names(page), []string{rocky.Hostname}) {
				t.Errorf("EXAMPLE-2024-0001: %v, %v", names(page), err)
			}
			if _, err := s.SearchHosts(ctx, api.HostQuery{Advisory: "CVE-1999-0001"}); apiStatus(err) != http.StatusNotFound {
				t.Errorf("unknown advisory: %v", err)
			}

			// A second report of the Debian host with dnsmasq upgraded:
			// recorded in its history, and no longer found.
			fixed := *deb
			fixed.Packages = slices.Clone(deb.Packages)
			for i, p := range fixed.Packages {
				if p.Source == "dnsmasq" {
					fixed.Packages[i].Version = strings.Replace(p.Version, "2.80-1", "2.80-1+deb10u1", 1)
					fixed.Packages[i].SourceVersion = "2.80-1+deb10u1"
				}
			}
			c.t = c.t.Add(time.Hour)
			got, err := s.ReportHost(ctx, &fixed, "agent-1")
			if err != nil || got.First || got.Changes != 2 {
				t.Fatalf("second report: %+v, %v", got, err)
			}
			events, err := s.HostEvents(ctx, deb.Hostname, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, e := range events.Items {
				kinds = append(kinds, e.Kind+" "+e.Subject+" "+e.From+" "+e.To)
			}
			want := []string{"package_upgraded dnsmasq 2.80-1 2.80-1+deb10u1", "package_upgraded dnsmasq-base 2.80-1+b1 2.80-1+deb10u1+b1",
				"first_report " + deb.Hostname + "  "}
			slices.Sort(kinds[:2])
			if !slices.Equal(kinds, want) {
				t.Errorf("history:\n%s", strings.Join(kinds, "\n"))
			}
			if page, err := s.SearchHosts(ctx, api.HostQuery{Advisory: "CVE-2020-25681"}); err != nil || len(page.Items) != 0 {
				t.Errorf("after the upgrade: %v, %v", names(page), err)
			}

			// Stale: the Rocky host has not reported for four hours.
			c.t = c.t.Add(3 * time.Hour)
			page, err = s.SearchHosts(ctx, api.HostQuery{Stale: true})
			if err != nil || !slices.Equal(names(page), []string{rocky.Hostname}) || !page.Items[0].Host.Stale {
				t.Errorf("stale: %v, %v", names(page), err)
			}
			d, err := s.Host(ctx, rocky.Hostname)
			if err != nil || !d.Host.Stale || d.Report.Hostname != rocky.Hostname || len(d.Report.Packages) != len(rocky.Packages) {
				t.Errorf("host %s: %+v, %v", rocky.Hostname, d.Host, err)
			}
			if _, err := s.Host(ctx, "nowhere"); apiStatus(err) != http.StatusNotFound {
				t.Errorf("unknown host: %v", err)
			}
			if _, err := s.SearchHosts(ctx, api.HostQuery{Cursor: "garbage"}); apiStatus(err) != http.StatusBadRequest {
				t.Errorf("bad cursor: %v", err)
			}
		})
	}
}

// TestPagingAndAmbiguity pages a search and an advisory search one host at
// a time, and refuses a hostname two hosts share.
func TestPagingAndAmbiguity(t *testing.T) {
	ctx := t.Context()
	st := stores(t)["sqlite"](t)
	c := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	s := newService(t, st, c)
	deb := fixture(t, "root-debian")
	for i, name := range []string{"a", "b", "c", "c"} {
		r := *deb
		r.Hostname, r.MachineID = name, strings.Repeat(string(rune('0'+i)), 32)
		if _, err := s.ReportHost(ctx, &r, "agent"); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []api.HostQuery{{Package: "dnsmasq"}, {Advisory: "DSA-4844-1"}} {
		var got []string
		q.Limit = 1
		for range 10 {
			page, err := s.SearchHosts(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, names(page)...)
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		if !slices.Equal(got, []string{"a", "b", "c", "c"}) {
			t.Errorf("%+v: pages found %v", q, got)
		}
	}
	if _, err := s.Host(ctx, "c"); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "22222222") {
		t.Errorf("a shared name: %v", err)
	}
	if d, err := s.Host(ctx, strings.Repeat("3", 32)); err != nil || d.Host.Name != "c" {
		t.Errorf("by machine id: %+v, %v", d.Host, err)
	}
}

// TestAdvisoriesReload loads a directory, then sees a file added, a file
// that does not load, and the directory gone (the advisories loaded
// before are kept).
func TestAdvisoriesReload(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	copyFile := func(name string) {
		b, err := os.ReadFile(filepath.Join("../osv/testdata/advisories", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("DSA-4844-1.json")
	a := inventory.NewAdvisories(dir, quiet)
	if changed, err := a.Load(ctx); !changed || err != nil {
		t.Fatalf("first load: %v, %v", changed, err)
	}
	if changed, err := a.Load(ctx); changed || err != nil {
		t.Errorf("an unchanged directory loaded again: %v, %v", changed, err)
	}
	copyFile("USN-4698-1.json")
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"id":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := a.Load(ctx); !changed || err != nil {
		t.Fatalf("after a new file: %v, %v", changed, err)
	}
	db, st := a.Current()
	if st.Count != 2 || len(db.Lookup("CVE-2020-25681")) != 2 || len(st.Errors) != 1 || !strings.HasSuffix(st.Errors[0].Path, "broken.json") {
		t.Errorf("status after a new file: %+v", st)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(ctx); err == nil {
		t.Fatal("a missing directory loaded")
	}
	if _, st := a.Current(); st.Count != 2 || st.Err == nil {
		t.Errorf("status after the directory went: %+v", st)
	}
	s := &inventory.Service{AdvisoryDB: a}
	out, err := s.Advisories(ctx, "CVE-2020-25681")
	if err != nil || out.Error == "" || len(out.Matches) != 2 || out.Matches[0].Affected[0].Fixed[0] == "" {
		t.Errorf("GET /advisories: %+v, %v", out, err)
	}
}
