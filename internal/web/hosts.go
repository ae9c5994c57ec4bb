package web

// The host inventory's pages: a search form with the filters of 'tasuki
// hosts' and the hosts it finds, and one host's facts with its history.
// Hosts are in no namespace: a viewer confined to one gets 403, as the
// API's confined tokens do.

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/store"
)

func hostRoutes() []page {
	return []page{
		{"GET /hosts", viewer, (*UI).hosts},
		{"GET /hosts/{name}", viewer, (*UI).host},
	}
}

// Page sizes of the hosts pages.
const (
	hostsPage      = 100
	hostEventsPage = 50
)

// hostForm is the search form: its values as given, so the page shows
// them back, and an error by field name.
type hostForm struct {
	Package  string
	Op       string // lt, le or eq
	Version  string
	Service  string
	Active   bool
	Port     string
	OS       string
	Stale    bool
	Advisory string
	Errors   map[string]string
	Any      bool // a filter is set
}

// readHostForm reads the form from the query: the fields of GET
// /api/v1/hosts, with the version bound also as op and version (the form's
// select and field), checked as the API checks them, each error beside
// its field.
func readHostForm(r *http.Request) (hostForm, api.HostQuery) {
	v := r.URL.Query()
	f := hostForm{Package: v.Get("package"), Op: v.Get("op"), Version: v.Get("version"), Service: v.Get("service"),
		Port: v.Get("port"), OS: v.Get("os"), Advisory: v.Get("advisory"), Errors: map[string]string{}}
	for _, op := range []string{"lt", "le", "eq"} {
		if s := v.Get("version_" + op); s != "" {
			if f.Version != "" && (f.Op != op || f.Version != s) {
				f.Errors["version"] = "give one version bound"
			}
			f.Op, f.Version = op, s
		}
	}
	if f.Op == "" {
		f.Op = "lt"
	}
	var q api.HostQuery
	text := func(field, s string) string {
		if len(s) > 200 || strings.ContainsAny(s, "\x00") {
			f.Errors[field] = "at most 200 characters of text"
		}
		return strings.TrimSpace(s)
	}
	f.Package, f.Service, f.Advisory, f.Version = text("package", f.Package), text("service", f.Service), text("advisory", f.Advisory), text("version", f.Version)
	q.Package, q.Service, q.Advisory = f.Package, f.Service, f.Advisory
	flag := func(field string) bool {
		switch s := v.Get(field); s {
		case "", "false":
			return false
		case "true", "on", "1":
			return true
		default:
			f.Errors[field] = fmt.Sprintf("%q: expected true or false", clip(s, 20))
			return false
		}
	}
	f.Active, f.Stale = flag("active"), flag("stale")
	q.Active, q.Stale = f.Active, f.Stale
	if f.Version != "" {
		switch op := store.VersionOp(f.Op); op {
		case store.VersionLT, store.VersionLE, store.VersionEQ:
			q.Op, q.Version = op, f.Version
			if f.Package == "" && f.Advisory == "" {
				f.Errors["version"] = "a version bound needs a package: the version of which package?"
			} else if err := (store.VersionBound{Op: op, Version: f.Version}).Check(); err != nil {
				f.Errors["version"] = fmt.Sprintf("not a version by dpkg's or rpm's rules: %v", err)
			}
		default:
			f.Errors["version"] = fmt.Sprintf("compare with %q: expected lower than, at most or equal to", clip(f.Op, 20))
		}
	}
	if f.Active && f.Service == "" {
		f.Errors["service"] = "active needs a service: which service should be active?"
	}
	if f.Port = strings.TrimSpace(f.Port); f.Port != "" {
		n, err := strconv.Atoi(f.Port)
		if err != nil || n < 1 || n > 65535 {
			f.Errors["port"] = "a port from 1 to 65535"
		}
		q.Port = n
	}
	if f.OS = strings.TrimSpace(f.OS); f.OS != "" {
		if _, _, err := api.ParseOS(f.OS); err != nil {
			f.Errors["os"] = "a distribution, and a release after a colon: debian, debian:12, rocky:9"
		}
		q.OS = f.OS
	}
	f.Any = q.Package != "" || q.Service != "" || q.Port != 0 || q.OS != "" || q.Stale || q.Advisory != ""
	return f, q
}

func (u *UI) hosts(w http.ResponseWriter, r *http.Request) error {
	if err := global(r.Context(), "hosts"); err != nil {
		return err
	}
	cursor, err := cursorParam(r)
	if err != nil {
		return err
	}
	f, q := readHostForm(r)
	d := struct {
		Form  hostForm
		Rows  []api.HostMatch
		Pager pager
		None  string // why there is no inventory to search
	}{Form: f}
	status := http.StatusOK
	switch {
	case u.o.Inventory == nil:
		d.None = "This server keeps no host inventory."
	case len(f.Errors) > 0:
		status = http.StatusBadRequest
	default:
		q.Cursor, q.Limit = cursor, hostsPage
		page, err := u.o.Inventory.SearchHosts(r.Context(), q)
		if e, ok := errors.AsType[*api.Error](err); ok && e.Status == http.StatusBadRequest {
			// What the form does not check (an advisory id, a cursor):
			// beside the form.
			d.Form.Errors["form"] = e.Message
			status = http.StatusBadRequest
			break
		}
		if err != nil {
			return err
		}
		d.Rows, d.Pager = page.Items, newPager(r, cursor, page.Next)
	}
	return u.render(w, r, status, "hosts", viewData{Title: "Hosts", Nav: "hosts", Data: d})
}

// hostName reads the {name} of a host page.
func hostName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
		return "", api.NotFound("there is no host %q", clip(name, 80))
	}
	return name, nil
}

func (u *UI) host(w http.ResponseWriter, r *http.Request) error {
	if err := global(r.Context(), "hosts"); err != nil {
		return err
	}
	if u.o.Inventory == nil {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "this server keeps no host inventory")
	}
	name, err := hostName(r)
	if err != nil {
		return err
	}
	cursor, err := cursorParam(r)
	if err != nil {
		return err
	}
	d, err := u.o.Inventory.Host(r.Context(), name)
	if err != nil {
		return err
	}
	events, err := u.o.Inventory.HostEvents(r.Context(), name, cursor, hostEventsPage)
	if err != nil {
		return err
	}
	rep := d.Report
	if rep == nil {
		rep = &hostfacts.Report{}
	}
	services := slices.Clone(rep.Services)
	// Failed units first, then active ones, then the rest, each by name.
	rank := func(s hostfacts.Service) int {
		switch s.Active {
		case "failed":
			return 0
		case "active":
			return 1
		}
		return 2
	}
	slices.SortStableFunc(services, func(a, b hostfacts.Service) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.Unit, b.Unit)
	})
	var disks []diskRow
	for _, dk := range rep.Disks {
		row := diskRow{Disk: dk}
		if dk.Size > 0 {
			row.Size, row.Used, row.Free = sizeText(dk.Size), sizeText(dk.Used), sizeText(dk.Free)
		}
		disks = append(disks, row)
	}
	return u.render(w, r, http.StatusOK, "host", viewData{Title: "Host " + d.Host.Name, Nav: "hosts", Data: struct {
		H         api.Host
		R         *hostfacts.Report
		Memory    string
		Available string
		Disks     []diskRow
		Services  []hostfacts.Service
		Events    []api.HostEvent
		Pager     pager
	}{d.Host, rep, sizeText(rep.Memory.Total), sizeText(rep.Memory.Available), disks, services, events.Items, newPager(r, cursor, events.Next)}})
}

// diskRow is a mounted file system with its sizes as text ("" when not
// known).
type diskRow struct {
	hostfacts.Disk
	Size, Used, Free string
}

// sizeText writes a disk's size in bytes as humanBytes does.
func sizeText(n uint64) string { return humanBytes(int64(min(n, 1<<63-1))) }
