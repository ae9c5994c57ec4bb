package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// KindName is the kind of an inventory task's attempts (spec.Task.Kind).
const KindName = "inventory"

// Task is the inventory kind: a search of the host inventory with the
// filters of 'tasuki hosts' (spec.Inventory), whose result is the matching
// hosts, one flat JSON object each (SweepHost), so a map can fan out over
// them. It reads the server's store, so it is server-only
// (attempt.ServerOnly): no remote worker ever gets its attempts.
type Task struct {
	// Service answers the search; nil where no inventory is kept ('tasuki
	// run'), where attempts fail saying so.
	Service *Service
}

var _ attempt.ServerOnly = Task{}

// Name implements attempt.Kind.
func (Task) Name() string { return KindName }

// ServerOnly implements attempt.ServerOnly: the inventory is in the
// server's store.
func (Task) ServerOnly() bool { return true }

// taskBody is the Spec.Body of an inventory attempt: the task's filters as
// written (${VAR} not yet replaced) and its bounds.
type taskBody struct {
	Package     string `json:"package,omitempty"`
	VersionLT   string `json:"version_lt,omitempty"`
	VersionLE   string `json:"version_le,omitempty"`
	VersionEQ   string `json:"version_eq,omitempty"`
	Service     string `json:"service,omitempty"`
	Active      bool   `json:"active,omitempty"`
	Port        int    `json:"port,omitempty"`
	OS          string `json:"os,omitempty"`
	Stale       bool   `json:"stale,omitempty"`
	Advisory    string `json:"advisory,omitempty"`
	FailIfFound bool   `json:"fail_if_found,omitempty"`
	MaxHosts    int    `json:"max_hosts"`
}

// Body implements attempt.Kind.
func (Task) Body(t *spec.Task) (json.RawMessage, error) {
	inv := t.Inventory
	if inv == nil {
		return nil, errors.New("the task has no inventory")
	}
	maxHosts := inv.MaxHosts
	if maxHosts == 0 {
		maxHosts = spec.DefaultInventoryMaxHosts
	}
	if maxHosts < 1 || maxHosts > spec.MaxInventoryMaxHosts {
		return nil, fmt.Errorf("inventory: max_hosts must be between 1 and %d, not %d", spec.MaxInventoryMaxHosts, inv.MaxHosts)
	}
	return json.Marshal(taskBody{Package: inv.Package, VersionLT: inv.VersionLT, VersionLE: inv.VersionLE, VersionEQ: inv.VersionEQ,
		Service: inv.Service, Active: inv.Active, Port: inv.Port, OS: inv.OS, Stale: inv.Stale, Advisory: inv.Advisory,
		FailIfFound: inv.FailIfFound, MaxHosts: maxHosts})
}

// SweepHost is one host of an inventory task's result: flat, so each key
// reaches a map item as TASUKI_ITEM_<KEY> (TASUKI_ITEM_HOST). The package
// fields are those of the first package the search matched (by package or
// advisory), Packages lists them all; Advisory and Fixed are the first
// finding of that package.
type SweepHost struct {
	Host          string    `json:"host"`
	MachineID     string    `json:"machine_id,omitempty"`
	OS            string    `json:"os"`
	Release       string    `json:"release"`
	Scheme        string    `json:"scheme,omitempty"`
	Package       string    `json:"package,omitempty"`
	Version       string    `json:"version,omitempty"`
	Source        string    `json:"source,omitempty"`
	SourceVersion string    `json:"source_version,omitempty"`
	Packages      string    `json:"packages,omitempty"` // "dnsmasq-base 2.80-1+b1, dnsmasq 2.80-1"
	Advisory      string    `json:"advisory,omitempty"`
	Fixed         string    `json:"fixed,omitempty"`
	Services      string    `json:"services,omitempty"` // "dnsmasq.service active"
	Ports         string    `json:"ports,omitempty"`    // "udp/53,tcp/53"
	ReportedAt    time.Time `json:"reported_at"`
	ReportedBy    string    `json:"reported_by,omitempty"`
	Stale         bool      `json:"stale"`
}

// Sweep flattens a search's match into a result item.
func Sweep(m api.HostMatch) SweepHost {
	h := SweepHost{Host: m.Host.Name, MachineID: m.Host.MachineID, OS: m.Host.OS.ID, Release: m.Host.OS.VersionID,
		Scheme: m.Host.Scheme, ReportedAt: m.Host.ReportedAt, ReportedBy: m.Host.ReportedBy, Stale: m.Host.Stale,
		Services: servicesText(m.Services), Ports: portsText(m.Listeners)}
	if len(m.Packages) > 0 {
		p := m.Packages[0]
		h.Package, h.Version, h.Source, h.SourceVersion = p.Name, p.Version, p.Source, p.SourceVersion
		if len(p.Advisories) > 0 {
			h.Advisory, h.Fixed = p.Advisories[0].ID, p.Advisories[0].Fixed
		}
		all := make([]string, len(m.Packages))
		for i, p := range m.Packages {
			all[i] = p.Name + " " + p.Version
		}
		h.Packages = strings.Join(all, ", ")
	}
	return h
}

func servicesText(ss []hostfacts.Service) string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		state := s.Active
		if state == "" {
			state = s.Enabled
		}
		if state == "" {
			state = "?"
		}
		out = append(out, s.Unit+" "+state)
	}
	return strings.Join(out, ", ")
}

func portsText(ls []hostfacts.Listener) string {
	var out []string
	for _, l := range ls {
		p := strings.TrimSuffix(l.Proto, "6") + "/" + strconv.Itoa(l.Port)
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// query makes the search of a body, its ${VAR} replaced by the attempt's
// variables, checked as the API checks GET /hosts.
func (b taskBody) query(s *attempt.Spec) (api.HostQuery, error) {
	q := api.HostQuery{Active: b.Active, Port: b.Port, Stale: b.Stale}
	for _, f := range []struct {
		key       string
		src       string
		dst       *string
		versionOp store.VersionOp
	}{
		{"package", b.Package, &q.Package, ""}, {"service", b.Service, &q.Service, ""}, {"os", b.OS, &q.OS, ""},
		{"advisory", b.Advisory, &q.Advisory, ""},
		{"version_lt", b.VersionLT, nil, store.VersionLT}, {"version_le", b.VersionLE, nil, store.VersionLE},
		{"version_eq", b.VersionEQ, nil, store.VersionEQ},
	} {
		if f.src == "" {
			continue
		}
		v, err := s.Expand(f.src)
		if err != nil {
			return q, fmt.Errorf("inventory.%s: %v", f.key, err)
		}
		if f.dst != nil {
			*f.dst = v
			continue
		}
		if q.Op != "" {
			return q, fmt.Errorf("inventory.%s: give one version bound", f.key)
		}
		q.Op, q.Version = f.versionOp, v
	}
	if q.Op != "" {
		if q.Package == "" && q.Advisory == "" {
			return q, fmt.Errorf("inventory.version_%s needs package (or advisory)", q.Op)
		}
		if err := (store.VersionBound{Op: q.Op, Version: q.Version}).Check(); err != nil {
			return q, fmt.Errorf("inventory.version_%s: %v", q.Op, err)
		}
	}
	if q.Active && q.Service == "" {
		return q, errors.New("inventory.active needs service")
	}
	if q.OS != "" {
		if _, _, err := api.ParseOS(q.OS); err != nil {
			return q, fmt.Errorf("inventory.%v", err)
		}
	}
	return q, nil
}

// describe says what a search looks for, for the log: the filters given.
func describe(q api.HostQuery) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("package", q.Package)
	if q.Op != "" {
		add("version_"+string(q.Op), q.Version)
	}
	add("service", q.Service)
	if q.Active {
		add("active", "true")
	}
	if q.Port != 0 {
		add("port", strconv.Itoa(q.Port))
	}
	add("os", q.OS)
	if q.Stale {
		add("stale", "true")
	}
	add("advisory", q.Advisory)
	if len(parts) == 0 {
		return "every host"
	}
	return strings.Join(parts, " ")
}

// Run implements attempt.Kind: it searches the inventory, page after page,
// and publishes the matching hosts (at most max_hosts: more fail the
// attempt rather than leave hosts out of what a pipeline acts on). With
// fail_if_found, a match fails the attempt, with the hosts still its
// result.
func (k Task) Run(ctx context.Context, s *attempt.Spec, h *attempt.Host) attempt.Result {
	if k.Service == nil {
		return attempt.Failedf("inventory tasks run on a server, which keeps the host inventory ('tasuki server'); this executor has none")
	}
	var b taskBody
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return attempt.Failedf("read the inventory task of the attempt: %v", err)
	}
	maxHosts := b.MaxHosts
	if maxHosts < 1 || maxHosts > spec.MaxInventoryMaxHosts {
		maxHosts = spec.DefaultInventoryMaxHosts
	}
	q, err := b.query(s)
	if err != nil {
		return attempt.Failedf("%v", err)
	}
	out := h.Stdout
	if out == nil {
		out = io.Discard
	}
	what := describe(q)
	runCtx := ctx
	if d := s.Timeout.D(); d > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, d, errTimedOut)
		defer cancel()
	}
	began := time.Now()
	q.Limit = min(maxHosts+1, store.MaxHostsLimit)
	hosts := []SweepHost{}
	for {
		page, err := k.Service.SearchHosts(runCtx, q)
		if err != nil {
			if runCtx.Err() != nil {
				return stopped(runCtx, s.Timeout, "searching the inventory for "+what)
			}
			if e, ok := errors.AsType[*api.Error](err); ok {
				return attempt.Failedf("inventory search %s: %s", what, e.Message)
			}
			return attempt.Failedf("inventory search %s: %v", what, err)
		}
		for _, m := range page.Items {
			hosts = append(hosts, Sweep(m))
		}
		if len(hosts) > maxHosts {
			return attempt.Failedf("inventory search %s: more than max_hosts (%d) hosts match; narrow the search or raise max_hosts (at most %d)",
				what, maxHosts, spec.MaxInventoryMaxHosts)
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	result, err := json.Marshal(hosts)
	if err != nil {
		return attempt.Failedf("inventory search %s: encode the result: %v", what, err)
	}
	if len(result) > shell.MaxResultSize {
		return attempt.Failedf("inventory search %s: %d hosts are %d bytes of JSON, more than a result may hold (%d); narrow the search or lower max_hosts",
			what, len(hosts), len(result), shell.MaxResultSize)
	}
	count := fmt.Sprintf("%d hosts match", len(hosts))
	if len(hosts) == 1 {
		count = "1 host matches"
	}
	fmt.Fprintf(out, "inventory search %s: %s (%s)\n", what, count, time.Since(began).Round(time.Millisecond))
	for _, x := range hosts {
		line := x.Host
		if x.OS != "" {
			line += "  " + strings.TrimSpace(x.OS+" "+x.Release)
		}
		if x.Package != "" {
			line += "  " + x.Package + " " + x.Version
		}
		if x.Advisory != "" {
			line += "  " + x.Advisory
			if x.Fixed != "" {
				line += " fixed in " + x.Fixed
			}
		}
		if x.Stale {
			line += "  (stale)"
		}
		fmt.Fprintln(out, "  "+line)
	}
	msg := count + " " + what
	if b.FailIfFound && len(hosts) > 0 {
		names := make([]string, 0, 5)
		for _, x := range hosts[:min(5, len(hosts))] {
			names = append(names, x.Host)
		}
		if len(hosts) > 5 {
			names = append(names, "...")
		}
		return attempt.Result{Outcome: attempt.Failed, Message: msg + " (fail_if_found): " + strings.Join(names, ", "), Result: result}
	}
	return attempt.Result{Outcome: attempt.Succeeded, Message: msg, Result: result}
}

// errTimedOut is the cause of an attempt's context ending at its timeout.
var errTimedOut = errors.New("the attempt's timeout passed")

// stopped is the result of an attempt whose context ended during the
// search: timed out, cancelled or handed back.
func stopped(ctx context.Context, timeout attempt.Duration, what string) attempt.Result {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errTimedOut):
		return attempt.Result{Outcome: attempt.TimedOut, Message: fmt.Sprintf("timed out after %s %s", timeout, what)}
	case errors.Is(cause, attempt.ErrLost), errors.Is(cause, attempt.ErrPreempted):
		return attempt.Result{Outcome: attempt.Preempted, Message: "handed back while " + what}
	}
	return attempt.Result{Outcome: attempt.Cancelled, Message: "cancelled while " + what}
}
