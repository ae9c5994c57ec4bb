package apitest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Inventory is a fake api.Inventory in memory, for the tests of the host
// routes: it keeps the last report of each hostname, records who sent
// each and the queries it was asked, and answers searches by package name
// only. The real inventory (versions by scheme, advisories, history) is
// internal/inventory's, tested on real stores.
type Inventory struct {
	mu      sync.Mutex
	reports map[string]*hostfacts.Report
	// By are the token names of the reports, in order; Queries the
	// searches asked.
	By      []string
	Queries []api.HostQuery
	// Err, when set, fails every call.
	Err error
}

var _ api.Inventory = (*Inventory)(nil)

// NewInventory returns an empty fake.
func NewInventory() *Inventory { return &Inventory{reports: map[string]*hostfacts.Report{}} }

// ReportHost implements api.Inventory.
func (f *Inventory) ReportHost(_ context.Context, r *hostfacts.Report, by string) (api.HostReported, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.HostReported{}, f.Err
	}
	if _, err := store.PrepareHostReport(r); err != nil {
		return api.HostReported{}, err
	}
	_, had := f.reports[r.Hostname]
	f.reports[r.Hostname] = r
	f.By = append(f.By, by)
	return api.HostReported{Host: r.Hostname, First: !had, ReportedAt: time.Now().UTC()}, nil
}

func (f *Inventory) host(r *hostfacts.Report) api.Host {
	return api.Host{Name: r.Hostname, MachineID: r.MachineID, OS: r.OS, Kernel: r.Kernel, Arch: r.Arch, Scheme: string(r.Scheme),
		Packages: len(r.Packages), ReportedAt: r.CollectedAt, FirstReportAt: r.CollectedAt}
}

// SearchHosts implements api.Inventory: the hosts with a package of that
// name (binary or source), or every host.
func (f *Inventory) SearchHosts(_ context.Context, q api.HostQuery) (api.Page[api.HostMatch], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Queries = append(f.Queries, q)
	if f.Err != nil {
		return api.Page[api.HostMatch]{}, f.Err
	}
	var out api.Page[api.HostMatch]
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range f.reports {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		r := f.reports[n]
		m := api.HostMatch{Host: f.host(r)}
		for _, p := range r.Packages {
			if p.Name == q.Package || p.Source == q.Package {
				m.Packages = append(m.Packages, api.HostPackage{Name: p.Name, Version: p.Version, Arch: p.Arch, Source: p.Source, SourceVersion: p.SourceVersion})
			}
		}
		if q.Package == "" || len(m.Packages) > 0 {
			out.Items = append(out.Items, m)
		}
	}
	return out, nil
}

// Host implements api.Inventory.
func (f *Inventory) Host(_ context.Context, name string) (api.HostDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.HostDetail{}, f.Err
	}
	r, ok := f.reports[name]
	if !ok {
		return api.HostDetail{}, api.NotFound("no host named %q", name)
	}
	return api.HostDetail{Host: f.host(r), Report: r}, nil
}

// HostEvents implements api.Inventory: a known host has no history.
func (f *Inventory) HostEvents(_ context.Context, name, _ string, _ int) (api.Page[api.HostEvent], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.Page[api.HostEvent]{}, f.Err
	}
	if _, ok := f.reports[name]; !ok {
		return api.Page[api.HostEvent]{}, api.NotFound("no host named %q", name)
	}
	return api.Page[api.HostEvent]{Items: []api.HostEvent{}}, nil
}

// Advisories implements api.Inventory: none configured.
func (f *Inventory) Advisories(context.Context, string) (api.AdvisoryStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.AdvisoryStatus{}, f.Err
	}
	return api.AdvisoryStatus{Errors: []api.AdvisoryLoadError{}}, nil
}
