package api

// The host inventory: what each host reports of itself (workers and
// agents POST /worker/hosts with their token), searched by package and
// version, service, port, release, staleness and advisory (GET /hosts),
// one host's facts (GET /hosts/{name}) and history (GET
// /hosts/{name}/events), and the state of the advisories the server
// loaded (GET /advisories). Hosts are not in a namespace: every reading
// route is for global tokens (a confined token gets 403).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Inventory serves the host inventory routes.
type Inventory interface {
	// ReportHost stores a host's report, sent with the worker or agent
	// token named by. A report the store refuses is a 400.
	ReportHost(ctx context.Context, r *hostfacts.Report, by string) (HostReported, error)
	// SearchHosts returns one page of the hosts q selects, by name.
	SearchHosts(ctx context.Context, q HostQuery) (Page[HostMatch], error)
	// Host returns one host's facts: name is its hostname or machine id;
	// a name several hosts share is a 409 that lists their machine ids.
	Host(ctx context.Context, name string) (HostDetail, error)
	// HostEvents returns a page of one host's history, newest first.
	HostEvents(ctx context.Context, name, cursor string, limit int) (Page[HostEvent], error)
	// Advisories says which advisories the server loaded, from where,
	// and what did not load; with id, the advisories of that id or alias.
	Advisories(ctx context.Context, id string) (AdvisoryStatus, error)
}

// WithInventory serves the host inventory routes over inv. Without it they
// answer 503 unavailable.
func WithInventory(inv Inventory) Option {
	return func(h *handler) { h.inventory = inv }
}

// HostReported answers POST /worker/hosts.
type HostReported struct {
	// Host is the name the host is stored under.
	Host string `json:"host"`
	// First is true for the host's first report.
	First bool `json:"first"`
	// Changes is how many events the report recorded in its history.
	Changes    int       `json:"changes"`
	ReportedAt time.Time `json:"reported_at"`
}

// Host is the JSON shape of a host of the inventory, as its last report
// left it.
type Host struct {
	Name      string       `json:"name"`
	MachineID string       `json:"machine_id,omitempty"`
	OS        hostfacts.OS `json:"os"`
	Kernel    string       `json:"kernel,omitempty"`
	Arch      string       `json:"arch,omitempty"`
	// Scheme is how its package versions compare: deb or rpm.
	Scheme string `json:"scheme,omitempty"`
	// Packages is how many packages are installed.
	Packages int `json:"packages"`
	// CollectedAt is when the host collected its last report (by its
	// clock); ReportedAt when the server stored it (by the server's).
	CollectedAt   *time.Time `json:"collected_at,omitempty"`
	ReportedAt    time.Time  `json:"reported_at"`
	FirstReportAt time.Time  `json:"first_report_at"`
	// ReportedBy is the token that sent the last report.
	ReportedBy string `json:"reported_by"`
	// Stale is true when the last report is older than the server's
	// host_stale_after.
	Stale bool `json:"stale"`
}

// HostPackage is an installed package a search matched, with the
// advisories that affect it when the search named one.
type HostPackage struct {
	Name          string            `json:"name"`
	Version       string            `json:"version"`
	Arch          string            `json:"arch,omitempty"`
	Source        string            `json:"source"`
	SourceVersion string            `json:"source_version"`
	Advisories    []AdvisoryFinding `json:"advisories,omitempty"`
}

// AdvisoryFinding is an advisory that affects an installed package.
type AdvisoryFinding struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	Summary string   `json:"summary,omitempty"`
	// Ecosystem and Package are the affected entry that matched
	// ("Debian:10", "dnsmasq": a source package on Debian); Version is
	// the host's version compared (the source version when Package is the
	// source).
	Ecosystem string `json:"ecosystem"`
	Package   string `json:"package"`
	Version   string `json:"version"`
	// Fixed is the first fixed version after Version; absent when the
	// advisory gives none.
	Fixed string `json:"fixed,omitempty"`
}

// HostMatch is a host a search found, with what made it match: the
// packages of the package (or advisory) searched, the services named by
// the search (or after a matched package), and the sockets on the port
// searched (or of a matched package or service).
type HostMatch struct {
	Host      Host                 `json:"host"`
	Packages  []HostPackage        `json:"packages"`
	Services  []hostfacts.Service  `json:"services"`
	Listeners []hostfacts.Listener `json:"listeners"`
}

// HostDetail answers GET /hosts/{name}: the host and its last report as
// stored.
type HostDetail struct {
	Host   Host              `json:"host"`
	Report *hostfacts.Report `json:"report"`
}

// HostEvent is one change of a host, recorded with the report that showed
// it: first_report, renamed, or one of hostfacts' change kinds
// (package_upgraded, service_stopped, port_opened, ...).
type HostEvent struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
}

// AdvisoryStatus answers GET /advisories.
type AdvisoryStatus struct {
	// Dir is the directory of the advisories setting; "" when none is
	// configured.
	Dir string `json:"dir"`
	// LoadedAt is when the directory was last loaded; Advisories how many
	// advisories it holds.
	LoadedAt   *time.Time `json:"loaded_at,omitempty"`
	Advisories int        `json:"advisories"`
	// Errors are the files that did not load, with why.
	Errors []AdvisoryLoadError `json:"errors"`
	// Error says why the directory itself could not be read at the last
	// try (the advisories loaded before are kept).
	Error string `json:"error,omitempty"`
	// Matches are the advisories of the id asked for (?id=), by id.
	Matches []Advisory `json:"matches,omitempty"`
}

// AdvisoryLoadError is a file of the advisories directory that did not
// load.
type AdvisoryLoadError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Advisory is the JSON shape of a loaded advisory.
type Advisory struct {
	ID        string             `json:"id"`
	Aliases   []string           `json:"aliases,omitempty"`
	Summary   string             `json:"summary,omitempty"`
	Modified  time.Time          `json:"modified"`
	Withdrawn *time.Time         `json:"withdrawn,omitempty"`
	Path      string             `json:"path"`
	Affected  []AdvisoryAffected `json:"affected"`
}

// AdvisoryAffected is one package an advisory affects in one ecosystem,
// with the versions that fix it.
type AdvisoryAffected struct {
	Ecosystem string   `json:"ecosystem"`
	Package   string   `json:"package"`
	Fixed     []string `json:"fixed,omitempty"`
}

// HostQuery selects hosts for GET /hosts; the filters combine with AND.
type HostQuery struct {
	// Package is a binary or source package name; Op and Version, with
	// it, keep the versions lower than (lt), at most (le) or equal to
	// (eq) Version, by each host's rules (dpkg's or rpm's).
	Package string
	Op      store.VersionOp
	Version string
	// Service is a systemd unit (dnsmasq is dnsmasq.service); Active
	// keeps hosts where it is active.
	Service string
	Active  bool
	// Port is a listening TCP or UDP port (0: any).
	Port int
	// OS is a distribution, with a release after a colon: debian,
	// debian:12, rocky:9 (9.4 is a release of 9).
	OS string
	// Stale keeps only hosts whose last report is older than the server's
	// host_stale_after.
	Stale bool
	// Advisory is an advisory id or a CVE it names: the hosts it affects,
	// with the fixed versions.
	Advisory string
	Cursor   string // from Page.Next
	Limit    int    // 0: store.DefaultHostsLimit; at most store.MaxHostsLimit
}

// ParseOS reads an OS filter: DISTRO or DISTRO:RELEASE.
func ParseOS(s string) (distro, release string, err error) {
	distro, release, _ = strings.Cut(s, ":")
	if distro == "" || strings.ContainsAny(s, " \t\x00") || strings.Contains(release, ":") {
		return "", "", invalid("os %q: expected a distribution as os-release names it, and a release after a colon: debian, debian:12, rocky:9", clip(s, 80))
	}
	return distro, release, nil
}

// values is q as query parameters.
func (q HostQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("package", q.Package)
	if q.Op != "" {
		set("version_"+string(q.Op), q.Version)
	}
	set("service", q.Service)
	if q.Active {
		v.Set("active", "true")
	}
	if q.Port != 0 {
		v.Set("port", strconv.Itoa(q.Port))
	}
	set("os", q.OS)
	if q.Stale {
		v.Set("stale", "true")
	}
	set("advisory", q.Advisory)
	set("cursor", q.Cursor)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func (h *handler) inventoryService() (Inventory, error) {
	if h.inventory == nil {
		return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server keeps no host inventory")
	}
	return h.inventory, nil
}

// reportHost reads a host report: at most hostfacts.MaxReportBytes of one
// JSON object, keys neither given twice nor in another case than the
// field's, then hostfacts.Decode, which checks it (unknown fields are
// ignored, so newer workers can report to this server).
func (h *handler) reportHost(w http.ResponseWriter, r *http.Request) error {
	inv, err := h.inventoryService()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, hostfacts.MaxReportBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "host report over %d bytes", hostfacts.MaxReportBytes)
	}
	if err != nil {
		return invalid("read the host report: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return invalid("missing JSON request body: a host report (tasuki hosts collect -o json)")
	}
	if i := invalidText(data); i >= 0 {
		return invalid("malformed host report at byte %d: not UTF-8 text, or a lone UTF-16 surrogate", i)
	}
	if err := checkKeys(data, &hostfacts.Report{}); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return err
		}
		return invalid("malformed host report: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	rep, err := hostfacts.Decode(bytes.NewReader(data))
	if err != nil {
		return invalid("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	out, err := inv.ReportHost(r.Context(), rep, who(r))
	if errors.Is(err, store.ErrInvalidReport) {
		return invalid("%s", err.Error())
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// hostQuery reads the query parameters of GET /hosts.
func hostQuery(r *http.Request) (HostQuery, error) {
	var q HostQuery
	var err error
	for _, p := range []struct {
		name string
		dst  *string
	}{{"package", &q.Package}, {"service", &q.Service}, {"os", &q.OS}, {"advisory", &q.Advisory}, {"cursor", &q.Cursor}} {
		if *p.dst, err = queryValue(r, p.name); err != nil {
			return q, err
		}
		if strings.ContainsRune(*p.dst, 0) || len(*p.dst) > 200 {
			return q, invalid("query parameter %s=%q: expected at most 200 characters of text", p.name, clip(*p.dst, 80))
		}
	}
	for _, op := range []store.VersionOp{store.VersionLT, store.VersionLE, store.VersionEQ} {
		v, err := queryValue(r, "version_"+string(op))
		if err != nil {
			return q, err
		}
		if v == "" {
			continue
		}
		if q.Op != "" {
			return q, invalid("version_%s and version_%s: give one version bound", q.Op, op)
		}
		q.Op, q.Version = op, v
	}
	if q.Op != "" {
		if q.Package == "" && q.Advisory == "" {
			return q, invalid("version_%s needs package: the version of which package?", q.Op)
		}
		if err := (store.VersionBound{Op: q.Op, Version: q.Version}).Check(); err != nil {
			return q, invalid("version_%s=%q: not a version by dpkg's or rpm's rules: %v", q.Op, clip(q.Version, 80), pkgverReason(q.Version))
		}
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"active", &q.Active}, {"stale", &q.Stale}} {
		s, err := queryValue(r, b.name)
		if err != nil {
			return q, err
		}
		switch s {
		case "", "false":
		case "true":
			*b.dst = true
		default:
			return q, invalid("query parameter %s=%q: expected true or false", b.name, clip(s, 20))
		}
	}
	if q.Active && q.Service == "" {
		return q, invalid("active needs service: which service should be active?")
	}
	port, err := queryInt(r, "port", 1, 65535, 0)
	if err != nil {
		return q, err
	}
	q.Port = int(port)
	if q.OS != "" {
		if _, _, err := ParseOS(q.OS); err != nil {
			return q, err
		}
	}
	limit, err := queryInt(r, "limit", 1, store.MaxHostsLimit, store.DefaultHostsLimit)
	if err != nil {
		return q, err
	}
	q.Limit = int(limit)
	return q, nil
}

// pkgverReason says why dpkg refuses a version (rpm accepts nearly
// anything, so dpkg's reason is the useful one).
func pkgverReason(v string) error {
	return pkgver.Deb.Check(v)
}

func (h *handler) searchHosts(w http.ResponseWriter, r *http.Request) error {
	inv, err := h.inventoryService()
	if err != nil {
		return err
	}
	q, err := hostQuery(r)
	if err != nil {
		return err
	}
	page, err := inv.SearchHosts(r.Context(), q)
	if err != nil {
		return err
	}
	page.Items = nonNil(page.Items)
	for i := range page.Items {
		m := &page.Items[i]
		m.Packages, m.Services, m.Listeners = nonNil(m.Packages), nonNil(m.Services), nonNil(m.Listeners)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// hostName reads the {name} of a host route: a hostname or machine id.
func hostName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
		return "", invalid("host %q: expected a hostname or a machine id", clip(name, 80))
	}
	return name, nil
}

func (h *handler) host(w http.ResponseWriter, r *http.Request) error {
	inv, err := h.inventoryService()
	if err != nil {
		return err
	}
	name, err := hostName(r)
	if err != nil {
		return err
	}
	d, err := inv.Host(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (h *handler) hostEvents(w http.ResponseWriter, r *http.Request) error {
	inv, err := h.inventoryService()
	if err != nil {
		return err
	}
	name, err := hostName(r)
	if err != nil {
		return err
	}
	cursor, err := queryValue(r, "cursor")
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 1, store.MaxHostEventsLimit, store.DefaultHostEventsLimit)
	if err != nil {
		return err
	}
	page, err := inv.HostEvents(r.Context(), name, cursor, int(limit))
	if err != nil {
		return err
	}
	page.Items = nonNil(page.Items)
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (h *handler) advisories(w http.ResponseWriter, r *http.Request) error {
	inv, err := h.inventoryService()
	if err != nil {
		return err
	}
	id, err := queryValue(r, "id")
	if err != nil {
		return err
	}
	if len(id) > 200 || strings.ContainsRune(id, 0) {
		return invalid("query parameter id=%q: expected an advisory id or a CVE", clip(id, 80))
	}
	st, err := inv.Advisories(r.Context(), id)
	if err != nil {
		return err
	}
	st.Errors = nonNil(st.Errors)
	writeJSON(w, http.StatusOK, st)
	return nil
}

// ReportHost sends a host's report (the worker protocol: a client made
// with a worker token).
func (c *Client) ReportHost(ctx context.Context, r *hostfacts.Report) (HostReported, error) {
	body, err := r.Encode()
	if err != nil {
		return HostReported{}, err
	}
	var out HostReported
	err = c.do(ctx, request{method: http.MethodPost, path: "/worker/hosts", body: json.RawMessage(body)}, &out)
	return out, err
}

// SearchHosts returns a page of the hosts q selects; pass the page's Next
// as q.Cursor for the next.
func (c *Client) SearchHosts(ctx context.Context, q HostQuery) (Page[HostMatch], error) {
	var p Page[HostMatch]
	err := c.do(ctx, request{method: http.MethodGet, path: "/hosts", query: q.values()}, &p)
	return p, err
}

// Host returns a host's facts, by hostname or machine id.
func (c *Client) Host(ctx context.Context, name string) (HostDetail, error) {
	var d HostDetail
	err := c.do(ctx, request{method: http.MethodGet, path: "/hosts/" + seg(name)}, &d)
	return d, err
}

// HostEvents returns a page of a host's history, newest first.
func (c *Client) HostEvents(ctx context.Context, name, cursor string, limit int) (Page[HostEvent], error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p Page[HostEvent]
	err := c.do(ctx, request{method: http.MethodGet, path: "/hosts/" + seg(name) + "/events", query: q}, &p)
	return p, err
}

// Advisories returns the state of the server's advisories, and those of
// id when it is not "".
func (c *Client) Advisories(ctx context.Context, id string) (AdvisoryStatus, error) {
	q := url.Values{}
	if id != "" {
		q.Set("id", id)
	}
	var s AdvisoryStatus
	err := c.do(ctx, request{method: http.MethodGet, path: "/advisories", query: q}, &s)
	return s, err
}
