package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/inventory"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// TestInventoryFleet loads a small fleet of the hosts-… rows' kind into a
// real SQLite store and asks their question: what the rows report is
// known to be measured on a fleet whose answer is right.
func TestInventoryFleet(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const hosts, npkg = 200, 100
	if _, err := loadFleet(ctx, st, hosts, npkg, 1, "test"); err != nil {
		t.Fatal(err)
	}
	want := fleetAffected(hosts, npkg)
	if want < hosts/10 || want > hosts/2 {
		t.Fatalf("%d of %d hosts affected: the fleet should have some, not all", want, hosts)
	}
	svc := &inventory.Service{Store: st}
	n, err := searchAll(ctx, svc, api.HostQuery{Package: "dnsmasq", Op: store.VersionLT, Version: "2.83", Limit: 7})
	if err != nil || n != want {
		t.Fatalf("found %d hosts (%v), want %d", n, err, want)
	}
	page, err := svc.SearchHosts(ctx, api.HostQuery{OS: "rocky:9", Limit: 1000})
	if err != nil || len(page.Items) != hosts/10 {
		t.Errorf("rocky hosts: %d (%v), want %d", len(page.Items), err, hosts/10)
	}
	// A report of the same host again changes nothing.
	if _, events, err := st.PutHostReport(ctx, fleetHost(3, npkg, time.Now()), "bench", time.Time{}); err != nil || len(events) != 0 {
		t.Errorf("the same report again: %d events, %v", len(events), err)
	}
}
