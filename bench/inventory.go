package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/inventory"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// The host inventory at the size of the issue: 5,000 hosts of 2,000
// installed packages each, reported through the store's API (one
// PutHostReport per host, as the server stores a report), then the
// question `tasuki hosts --package dnsmasq --version-lt 2.83` asked of
// a real server by the real CLI, on SQLite and on PostgreSQL.

// inventoryQueryReps is how many times each question is asked.
const inventoryQueryReps = 7

// fleetRelease is a release hosts of the fleet run, with its share of
// the fleet.
type fleetRelease struct {
	os     hostfacts.OS
	scheme pkgver.Scheme
	share  int // percent
	// dnsmasq is the package (name, source) and its versions, by host:
	// versions[i % len] for the hosts that have it.
	dnsmasq  [2]string
	versions []string
}

var fleetReleases = []fleetRelease{
	{hostfacts.OS{ID: "debian", VersionID: "11", VersionCodename: "bullseye"}, pkgver.Deb, 35,
		[2]string{"dnsmasq-base", "dnsmasq"}, []string{"2.80-1+deb10u1", "2.85-1", "2.85-1"}}, // upgraded from 10, one in three not yet
	{hostfacts.OS{ID: "debian", VersionID: "12", VersionCodename: "bookworm"}, pkgver.Deb, 35,
		[2]string{"dnsmasq-base", "dnsmasq"}, []string{"2.89-1"}},
	{hostfacts.OS{ID: "ubuntu", VersionID: "22.04", VersionCodename: "jammy"}, pkgver.Deb, 20,
		[2]string{"dnsmasq-base", "dnsmasq"}, []string{"2.86-1.1ubuntu0.3", "2.80-1.1ubuntu1.4"}},
	{hostfacts.OS{ID: "rocky", VersionID: "9.4", IDLike: []string{"rhel", "centos", "fedora"}}, pkgver.RPM, 10,
		[2]string{"dnsmasq", "dnsmasq"}, []string{"2.79-31.el9", "2.85-16.el9_4", "2.85-16.el9_4", "2.85-16.el9_4"}},
}

// fleetHost makes the report of host i of a fleet of hosts with npkg
// packages each: a release by share, the release's version of every
// package except one in twenty a patch level behind (hosts do not all
// upgrade at once), dnsmasq on three hosts in five with one of its
// release's versions, 150 services and 20 listening sockets.
func fleetHost(i, npkg int, at time.Time) *hostfacts.Report {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	rel := fleetReleases[len(fleetReleases)-1]
	for n, pick := 0, i%100; ; n++ {
		if pick < fleetReleases[n].share {
			rel = fleetReleases[n]
			break
		}
		pick -= fleetReleases[n].share
	}
	rep := &hostfacts.Report{
		Version: hostfacts.ReportVersion, CollectedAt: at, Hostname: fmt.Sprintf("host-%05d.example.internal", i),
		MachineID: fmt.Sprintf("%032x", uint64(i)*2654435761+1), OS: rel.os, Kernel: "6.1.0-18-amd64", Arch: "x86_64",
		CPU: hostfacts.CPU{Count: 8, Model: "Xeon"}, Memory: hostfacts.Memory{Total: 32 << 30, Available: 20 << 30},
		Disks:  []hostfacts.Disk{{Mount: "/", Device: "/dev/vda1", FSType: "ext4", Size: 100 << 30, Used: 40 << 30, Free: 60 << 30}},
		Scheme: rel.scheme,
	}
	arch := "amd64"
	if rel.scheme == pkgver.RPM {
		arch = "x86_64"
	}
	hasDNS := i%5 < 3
	for p := range npkg - 1 {
		name := fmt.Sprintf("pkg%04d", p)
		source := name
		if p%4 == 0 {
			source = fmt.Sprintf("src%04d", p/4) // a source package built into several binaries
		}
		patch := 2
		if r.IntN(20) == 0 {
			patch = 1
		}
		v := fmt.Sprintf("%d.%d.%d-%d", 1+p%7, p%13, patch, 1+len(rel.os.ID)%3)
		if rel.scheme == pkgver.RPM {
			v = fmt.Sprintf("%d.%d.%d-%d.el9", 1+p%7, p%13, patch, 1+p%5)
		}
		rep.Packages = append(rep.Packages, hostfacts.Package{Name: name, Version: v, Arch: arch, Source: source, SourceVersion: v})
	}
	dnsVersion := rel.versions[i%len(rel.versions)]
	if hasDNS {
		bin := dnsVersion
		if rel.scheme == pkgver.Deb {
			bin += "+b1"
		}
		rep.Packages = append(rep.Packages, hostfacts.Package{Name: rel.dnsmasq[0], Version: bin, Arch: arch, Source: rel.dnsmasq[1], SourceVersion: dnsVersion})
	}
	for s := range 150 {
		rep.Services = append(rep.Services, hostfacts.Service{Unit: fmt.Sprintf("svc%03d.service", s), Enabled: "enabled", Active: "active", Sub: "running"})
	}
	if hasDNS {
		rep.Services = append(rep.Services, hostfacts.Service{Unit: "dnsmasq.service", Enabled: "enabled", Active: "active", Sub: "running"})
		rep.Listeners = append(rep.Listeners, hostfacts.Listener{Proto: "udp", Address: "0.0.0.0", Port: 53, PID: 812, Process: "dnsmasq",
			Exe: "/usr/sbin/dnsmasq", Package: rel.dnsmasq[0]})
	}
	for l := len(rep.Listeners); l < 20; l++ {
		rep.Listeners = append(rep.Listeners, hostfacts.Listener{Proto: "tcp", Address: "0.0.0.0", Port: 8000 + l, PID: 1000 + l, Process: "svc"})
	}
	return rep
}

// fleetAffected counts the hosts of a fleet with dnsmasq older than 2.83,
// by the rules, to check the answers against.
func fleetAffected(hosts, npkg int) int {
	n := 0
	for i := range hosts {
		for _, p := range fleetHost(i, npkg, time.Time{}).Packages {
			if p.Source == "dnsmasq" && (store.VersionBound{Op: store.VersionLT, Version: "2.83"}).Holds(fleetScheme(i), p.SourceVersion) {
				n++
			}
		}
	}
	return n
}

func fleetScheme(i int) pkgver.Scheme {
	if i%100 >= 90 {
		return pkgver.RPM
	}
	return pkgver.Deb
}

// loadFleet reports every host of the fleet into st with `writers`
// reports at once, and returns how long it took.
func loadFleet(ctx context.Context, st store.Store, hosts, npkg, writers int, label string) (time.Duration, error) {
	start := time.Now()
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= hosts || ctx.Err() != nil {
					return
				}
				if _, _, err := st.PutHostReport(ctx, fleetHost(i, npkg, start), "bench", time.Time{}); err != nil {
					errs <- fmt.Errorf("report host %d: %w", i, err)
					return
				}
				if n := done.Add(1); n%1000 == 0 {
					progress("%s: %d of %d hosts reported (%s)", label, n, hosts, time.Since(start).Round(time.Second))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return time.Since(start), ctx.Err()
}

// searchAll asks the inventory for every page of the dnsmasq question and
// returns the hosts found.
func searchAll(ctx context.Context, svc *inventory.Service, q api.HostQuery) (int, error) {
	n := 0
	for {
		page, err := svc.SearchHosts(ctx, q)
		if err != nil {
			return n, err
		}
		n += len(page.Items)
		if page.Next == "" {
			return n, nil
		}
		q.Cursor = page.Next
	}
}

// inventoryRows measures the inventory on SQLite and on PostgreSQL. The
// rows load ten million package rows per store (half an hour on two busy
// cores), so they run only when -rows names them.
func inventoryRows(ctx context.Context, o *options) ([]row, error) {
	if o.rows.String() == "" {
		progress("host inventory rows skipped: they run only when asked for (-rows hosts-)")
		return nil, nil
	}
	hosts, npkg := 5000, 2000
	if o.quick {
		hosts = 500
	}
	var rows []row
	for _, driver := range []string{"sqlite", "postgres"} {
		key := fmt.Sprintf("hosts-%dx%d-%s", hosts, npkg, driver)
		if !o.want(key) {
			continue
		}
		r, err := inventoryRow(ctx, o, key, driver, hosts, npkg)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", key, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func inventoryRow(ctx context.Context, o *options, key, driver string, hosts, npkg int) (row, error) {
	home := filepath.Join(o.work, key)
	pipelines := filepath.Join(home, "pipelines")
	if err := os.MkdirAll(pipelines, 0o755); err != nil {
		return row{}, err
	}
	var (
		st      store.Store
		err     error
		writers = 1 // SQLite has one writer
		dbArgs  []string
		where   = "SQLite (one file, WAL)"
		pgDSN   string
	)
	if driver == "postgres" {
		db, err := createDatabase(ctx)
		if err != nil {
			return row{}, err
		}
		defer db.drop()
		if st, err = postgres.Open(ctx, db.dsn); err != nil {
			return row{}, err
		}
		writers, dbArgs, where, pgDSN = 4, []string{"--db", db.dsn}, "PostgreSQL at "+db.host, db.dsn
	} else if st, err = sqlite.Open(ctx, filepath.Join(home, "tasuki.db")); err != nil {
		return row{}, err
	}
	progress("%s: reporting %d hosts of %d packages into %s, %d at once", key, hosts, npkg, where, writers)
	load, err := loadFleet(ctx, st, hosts, npkg, writers, key)
	if err != nil {
		st.Close()
		return row{}, err
	}
	if driver == "postgres" {
		// What autovacuum does to a table after a bulk load, done now
		// rather than at an unknown time during the measurements.
		if err := vacuumAnalyze(ctx, pgDSN); err != nil {
			st.Close()
			return row{}, err
		}
	}
	want := fleetAffected(hosts, npkg)
	// The question in-process, on the store (what the server does for one
	// request, without HTTP).
	svc := &inventory.Service{Store: st}
	q := api.HostQuery{Package: "dnsmasq", Op: store.VersionLT, Version: "2.83", Limit: store.MaxHostsLimit}
	var inproc []time.Duration
	for range inventoryQueryReps {
		t0 := time.Now()
		n, err := searchAll(ctx, svc, q)
		if err != nil {
			st.Close()
			return row{}, err
		}
		inproc = append(inproc, time.Since(t0))
		if n != want {
			st.Close()
			return row{}, fmt.Errorf("the store found %d hosts with dnsmasq < 2.83, want %d", n, want)
		}
	}
	if err := st.Close(); err != nil {
		return row{}, err
	}

	// The question as people ask it: the real CLI against a real server.
	s, err := startServer(ctx, o, home, pipelines, key, append([]string{"--workers", "0"}, dbArgs...)...)
	if err != nil {
		return row{}, err
	}
	defer s.stop()
	var cliTimes []time.Duration
	var out []byte
	for range inventoryQueryReps {
		cmd := exec.CommandContext(ctx, o.bin, "hosts", "--server", strings.TrimSuffix(s.api, "/api/v1"), "--token", s.token,
			"--package", "dnsmasq", "--version-lt", "2.83", "-o", "csv")
		cmd.Env = cleanEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t0 := time.Now()
		out, err = cmd.Output()
		cliTimes = append(cliTimes, time.Since(t0))
		if err != nil {
			return row{}, fmt.Errorf("tasuki hosts: %v: %s", err, stderr.String())
		}
	}
	if got := bytes.Count(out, []byte("\n")) - 1; got != want {
		return row{}, fmt.Errorf("tasuki hosts printed %d rows, want %d", got, want)
	}
	sorted := slices.Clone(cliTimes)
	slices.Sort(sorted)
	inSorted := slices.Clone(inproc)
	slices.Sort(inSorted)
	total := hosts * npkg
	r := row{
		key:    key,
		name:   fmt.Sprintf("host inventory, %s: `tasuki hosts --package dnsmasq --version-lt 2.83` over %d hosts × %d packages", driver, hosts, npkg),
		value:  secs(best(cliTimes)),
		target: "< 200 ms",
		met:    "yes",
		notes: []string{
			fmt.Sprintf("%d hosts match (dnsmasq or dnsmasq-base, by source, older than 2.83 by each host's rules), printed as CSV by the CLI process", want),
			fmt.Sprintf("CLI process wall time over %d asks: best %s, median %s, worst %s (start, HTTP to a real server on %s, %d page(s) of up to 1,000)",
				inventoryQueryReps, secs(sorted[0]), secs(sorted[len(sorted)/2]), secs(sorted[len(sorted)-1]), where, max(1, (want+999)/1000)),
			fmt.Sprintf("the same search in-process on the store (inventory.Service, every page): best %s, median %s",
				secs(inSorted[0]), secs(inSorted[len(inSorted)/2])),
			fmt.Sprintf("load: %d reports (%d package rows) through PutHostReport, %d at once, in %s (%.0f hosts/s, %.0f package rows/s)",
				hosts, total, writers, secs(load), float64(hosts)/load.Seconds(), float64(total)/load.Seconds()),
		},
	}
	if driver == "postgres" {
		r.notes = append(r.notes, "VACUUM ANALYZE of the inventory's tables after the load, as autovacuum would do at some point after it")
	}
	if best(cliTimes) >= 200*time.Millisecond {
		r.met = "**NO**"
	}
	if driver == "sqlite" {
		if fi, err := os.Stat(filepath.Join(home, "tasuki.db")); err == nil {
			r.notes = append(r.notes, fmt.Sprintf("the SQLite file holds %s after the load", mb(fi.Size())))
		}
	}
	return r, nil
}

// vacuumAnalyze runs VACUUM ANALYZE on the inventory's tables of the
// PostgreSQL database at dsn.
func vacuumAnalyze(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "VACUUM (ANALYZE) hosts, package_versions, host_packages, host_services, host_listeners, host_events")
	return err
}
