package inventory

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/osv"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// DefaultStaleAfter is how long after its last report a host counts as
// stale when the server sets nothing else: three missed hourly reports.
const DefaultStaleAfter = 3 * time.Hour

// advisoryBatch is how many candidate hosts an advisory search reads from
// the store at a time while it fills a page.
const advisoryBatch = 500

// Service is the host inventory as the API serves it (api.Inventory), over
// a store and the advisories of a directory.
type Service struct {
	Store store.Inventory
	// AdvisoryDB is the advisories searches may name; nil when the
	// server has none.
	AdvisoryDB *Advisories
	// StaleAfter is how long after its last report a host is stale
	// (DefaultStaleAfter when 0).
	StaleAfter time.Duration
	// Now is the clock (time.Now when nil); Log where reports are logged
	// (slog.Default() when nil).
	Now func() time.Time
	Log *slog.Logger
}

var _ api.Inventory = (*Service)(nil)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) staleAfter() time.Duration {
	if s.StaleAfter > 0 {
		return s.StaleAfter
	}
	return DefaultStaleAfter
}

// ReportHost stores a report; by is the token that sent it.
func (s *Service) ReportHost(ctx context.Context, r *hostfacts.Report, by string) (api.HostReported, error) {
	h, events, err := s.Store.PutHostReport(ctx, r, by, s.now())
	if err != nil {
		return api.HostReported{}, err
	}
	out := api.HostReported{Host: h.Name, Changes: len(events), ReportedAt: h.ReportedAt}
	if len(events) > 0 && events[0].Kind == store.HostFirstReport {
		out.First, out.Changes = true, len(events)-1
		s.log().Info("inventory: a new host reported", "host", h.Name, "machine_id", h.MachineID, "packages", h.Packages, "token", by)
	} else if len(events) > 0 {
		s.log().Debug("inventory: a host changed", "host", h.Name, "changes", len(events), "token", by)
	}
	return out, nil
}

// host is the API's view of a stored host, stale by the server's clock.
func (s *Service) host(h store.Host, now time.Time) api.Host {
	return api.Host{
		Name: h.Name, MachineID: h.MachineID, OS: h.OS, Kernel: h.Kernel, Arch: h.Arch, Scheme: string(h.Scheme),
		Packages: h.Packages, CollectedAt: api.TimePtr(h.CollectedAt), ReportedAt: h.ReportedAt, FirstReportAt: h.FirstReportAt,
		ReportedBy: h.ReportedBy, Stale: h.ReportedAt.Before(now.Add(-s.staleAfter())),
	}
}

func (s *Service) match(m store.HostMatch, now time.Time) api.HostMatch {
	out := api.HostMatch{Host: s.host(m.Host, now), Packages: make([]api.HostPackage, len(m.Packages)),
		Services: m.Services, Listeners: m.Listeners}
	for i, pv := range m.Packages {
		out.Packages[i] = api.HostPackage{Name: pv.Name, Version: pv.Version, Arch: pv.Arch, Source: pv.Source, SourceVersion: pv.SourceVersion}
	}
	return out
}

// encodeCursor makes the opaque cursor of the page after host h.
func encodeCursor(h store.Host) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(h.ID, 10) + ":" + h.Name))
}

func decodeCursor(c string) (store.HostCursor, error) {
	if c == "" {
		return store.HostCursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	id, name, ok := strings.Cut(string(b), ":")
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err != nil || !ok || err2 != nil || n <= 0 || name == "" {
		return store.HostCursor{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: not a cursor of this search (use the next of the previous page)", c)
	}
	return store.HostCursor{Name: name, ID: n}, nil
}

// SearchHosts answers GET /hosts.
func (s *Service) SearchHosts(ctx context.Context, q api.HostQuery) (api.Page[api.HostMatch], error) {
	var page api.Page[api.HostMatch]
	now := s.now()
	sq := store.HostQuery{Service: q.Service, Active: q.Active, Port: q.Port, Limit: q.Limit}
	if sq.Limit <= 0 {
		sq.Limit = store.DefaultHostsLimit
	}
	sq.Limit = min(sq.Limit, store.MaxHostsLimit)
	if q.Package != "" {
		sq.Packages = []string{q.Package}
	}
	if q.Op != "" {
		sq.Version = &store.VersionBound{Op: q.Op, Version: q.Version}
	}
	var err error
	if q.OS != "" {
		if sq.OS, sq.OSVersion, err = api.ParseOS(q.OS); err != nil {
			return page, err
		}
	}
	if q.Stale {
		sq.ReportedBefore = now.Add(-s.staleAfter())
	}
	if sq.After, err = decodeCursor(q.Cursor); err != nil {
		return page, err
	}
	if q.Advisory != "" {
		return s.searchAdvisory(ctx, q, sq, now)
	}
	if _, err := store.PrepareHostQuery(sq); err != nil {
		return page, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "%v", err)
	}
	found, err := s.Store.SearchHosts(ctx, sq)
	if err != nil {
		return page, err
	}
	page.Items = make([]api.HostMatch, len(found))
	for i, m := range found {
		page.Items[i] = s.match(m, now)
	}
	if len(found) == sq.Limit {
		page.Next = encodeCursor(found[len(found)-1].Host)
	}
	return page, nil
}

// searchAdvisory fills a page with the hosts the advisory affects: the
// hosts with a package it names (or q.Package) are read from the store a
// batch at a time, in name order, and each of their packages checked by
// the advisory with the host's distribution, release and rules.
func (s *Service) searchAdvisory(ctx context.Context, q api.HostQuery, sq store.HostQuery, now time.Time) (api.Page[api.HostMatch], error) {
	var page api.Page[api.HostMatch]
	advs, err := s.lookup(q.Advisory)
	if err != nil {
		return page, err
	}
	if len(sq.Packages) == 0 {
		for _, a := range advs {
			for _, af := range a.Affected {
				if !slices.Contains(sq.Packages, af.Package.Name) {
					sq.Packages = append(sq.Packages, af.Package.Name)
				}
			}
		}
		if len(sq.Packages) > store.MaxQueryPackages {
			return page, api.Errorf(http.StatusBadRequest, api.CodeInvalid,
				"advisory %s names %d packages; give package to search one of them", q.Advisory, len(sq.Packages))
		}
		if len(sq.Packages) == 0 {
			page.Items = []api.HostMatch{}
			return page, nil
		}
	}
	limit := sq.Limit
	sq.Limit = max(limit, advisoryBatch)
	if _, err := store.PrepareHostQuery(sq); err != nil {
		return page, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "%v", err)
	}
	page.Items = []api.HostMatch{}
	for {
		found, err := s.Store.SearchHosts(ctx, sq)
		if err != nil {
			return page, err
		}
		for _, m := range found {
			host := osv.Host{Distro: m.OS.ID, Release: m.OS.VersionID, Scheme: m.Scheme}
			am := s.match(m, now)
			am.Packages = am.Packages[:0]
			for _, pv := range m.Packages {
				p := osv.InstalledPackage{Name: pv.Name, Version: pv.Version, Source: pv.Source, SourceVersion: pv.SourceVersion}
				var findings []api.AdvisoryFinding
				for _, a := range advs {
					for _, f := range a.Check(host, p) {
						findings = append(findings, api.AdvisoryFinding{ID: a.ID, Aliases: a.Aliases, Summary: a.Summary,
							Ecosystem: f.Ecosystem, Package: f.Package, Version: f.Version, Fixed: f.Fixed})
					}
				}
				if len(findings) > 0 {
					am.Packages = append(am.Packages, api.HostPackage{Name: pv.Name, Version: pv.Version, Arch: pv.Arch,
						Source: pv.Source, SourceVersion: pv.SourceVersion, Advisories: findings})
				}
			}
			if len(am.Packages) == 0 {
				continue
			}
			page.Items = append(page.Items, am)
			if len(page.Items) == limit {
				page.Next = encodeCursor(m.Host)
				return page, nil
			}
		}
		if len(found) < sq.Limit {
			return page, nil
		}
		last := found[len(found)-1].Host
		sq.After = store.HostCursor{Name: last.Name, ID: last.ID}
	}
}

// lookup finds the advisories of an id or alias, or says why there are
// none.
func (s *Service) lookup(id string) ([]*osv.Advisory, error) {
	if s.AdvisoryDB == nil {
		return nil, api.Errorf(http.StatusBadRequest, api.CodeInvalid,
			"this server has no advisories: set advisories in its configuration to a directory of OSV files")
	}
	db, st := s.AdvisoryDB.Current()
	advs := db.Lookup(id)
	if len(advs) == 0 {
		return nil, api.NotFound("no advisory %q among the %d loaded from %s", id, st.Count, st.Dir)
	}
	return advs, nil
}

// find returns the one host a name (hostname or machine id) names.
func (s *Service) find(ctx context.Context, name string) (store.Host, error) {
	hosts, err := s.Store.FindHosts(ctx, name)
	if err != nil {
		return store.Host{}, err
	}
	switch len(hosts) {
	case 0:
		return store.Host{}, api.NotFound("no host named %q", name)
	case 1:
		return hosts[0], nil
	}
	ids := make([]string, len(hosts))
	for i, h := range hosts {
		ids[i] = h.MachineID
		if ids[i] == "" {
			ids[i] = "(none)"
		}
	}
	return store.Host{}, api.Errorf(http.StatusConflict, api.CodeConflict,
		"%d hosts are named %q (machine ids %s): name one by its machine id", len(hosts), name, strings.Join(ids, ", "))
}

// Host answers GET /hosts/{name}.
func (s *Service) Host(ctx context.Context, name string) (api.HostDetail, error) {
	h, err := s.find(ctx, name)
	if err != nil {
		return api.HostDetail{}, err
	}
	rep, err := s.Store.HostReport(ctx, h.ID)
	if errors.Is(err, store.ErrNotFound) {
		return api.HostDetail{}, api.NotFound("no host named %q", name) // forgotten meanwhile
	}
	if err != nil {
		return api.HostDetail{}, err
	}
	return api.HostDetail{Host: s.host(h, s.now()), Report: rep}, nil
}

// HostEvents answers GET /hosts/{name}/events: the cursor is the id of
// the last event of the previous page.
func (s *Service) HostEvents(ctx context.Context, name, cursor string, limit int) (api.Page[api.HostEvent], error) {
	var page api.Page[api.HostEvent]
	var before int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n <= 0 {
			return page, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: expected the next of the previous page", cursor)
		}
		before = n
	}
	if limit <= 0 {
		limit = store.DefaultHostEventsLimit
	}
	h, err := s.find(ctx, name)
	if err != nil {
		return page, err
	}
	events, err := s.Store.HostEvents(ctx, h.ID, before, limit)
	if errors.Is(err, store.ErrNotFound) {
		return page, api.NotFound("no host named %q", name)
	}
	if err != nil {
		return page, err
	}
	page.Items = make([]api.HostEvent, len(events))
	for i, e := range events {
		page.Items[i] = api.HostEvent{ID: e.ID, At: e.At, Kind: string(e.Kind), Subject: e.Subject, From: e.From, To: e.To}
	}
	if len(events) == limit {
		page.Next = strconv.FormatInt(events[len(events)-1].ID, 10)
	}
	return page, nil
}

// Advisories answers GET /advisories.
func (s *Service) Advisories(_ context.Context, id string) (api.AdvisoryStatus, error) {
	out := api.AdvisoryStatus{Errors: []api.AdvisoryLoadError{}}
	if s.AdvisoryDB == nil {
		if id != "" {
			return out, api.NotFound("no advisory %q: this server has no advisories (set advisories in its configuration)", id)
		}
		return out, nil
	}
	db, st := s.AdvisoryDB.Current()
	out.Dir, out.LoadedAt, out.Advisories = st.Dir, api.TimePtr(st.LoadedAt), st.Count
	for _, e := range st.Errors {
		out.Errors = append(out.Errors, api.AdvisoryLoadError{Path: e.Path, Error: e.Err.Error()})
	}
	if st.Err != nil {
		out.Error = st.Err.Error()
	}
	if id == "" {
		return out, nil
	}
	advs := db.Lookup(id)
	if len(advs) == 0 {
		return out, api.NotFound("no advisory %q among the %d loaded from %s", id, st.Count, st.Dir)
	}
	for _, a := range advs {
		out.Matches = append(out.Matches, advisoryJSON(a))
	}
	return out, nil
}

func advisoryJSON(a *osv.Advisory) api.Advisory {
	out := api.Advisory{ID: a.ID, Aliases: a.Aliases, Summary: a.Summary, Modified: a.Modified, Withdrawn: a.Withdrawn, Path: a.Path,
		Affected: []api.AdvisoryAffected{}}
	for _, af := range a.Affected {
		aa := api.AdvisoryAffected{Ecosystem: af.Package.Ecosystem, Package: af.Package.Name}
		for _, r := range af.Ranges {
			for _, e := range r.Events {
				if e.Fixed != "" && !slices.Contains(aa.Fixed, e.Fixed) {
					aa.Fixed = append(aa.Fixed, e.Fixed)
				}
			}
		}
		out.Affected = append(out.Affected, aa)
	}
	return out
}

// Prune deletes host events older than before, hosts not reported since
// before, and package versions no host has, a batch at a time, and
// returns how many of each went.
func (s *Service) Prune(ctx context.Context, before time.Time) (store.InventoryPruned, error) {
	const batch = 1000
	var total store.InventoryPruned
	for {
		n, err := s.Store.PruneInventory(ctx, before, batch)
		total.Events += n.Events
		total.Hosts += n.Hosts
		total.Packages += n.Packages
		if err != nil {
			return total, fmt.Errorf("prune the inventory: %w", err)
		}
		if n.Events < batch && n.Hosts < store.PruneHostsBatch && n.Packages < batch {
			return total, nil
		}
	}
}
