package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// The host inventory (see store.Inventory): the hosts, package_versions,
// host_packages, host_services, host_listeners and host_events tables of
// migration 0013. Lists of ids and keys go to SQLite as one JSON array
// parameter read with json_each, so a host's two thousand packages are
// one statement, not two thousand, and no list meets the limit on
// parameters.

const hostCols = `id, name, machine_id, os_id, os_version, os_codename, os_like, os_name, scheme, kernel, arch, facts,
	packages, collected_at, reported_at, first_reported_at, reported_by`

func scanHost(row scanner) (store.Host, error) {
	var h store.Host
	var like, scheme string
	var facts json.RawMessage
	err := row.Scan(&h.ID, &h.Name, &h.MachineID, &h.OS.ID, &h.OS.VersionID, &h.OS.VersionCodename, &like, &h.OS.PrettyName,
		&scheme, &h.Kernel, &h.Arch, jsonCol{&facts}, &h.Packages, timeCol{&h.CollectedAt}, timeCol{&h.ReportedAt},
		timeCol{&h.FirstReportAt}, &h.ReportedBy)
	if err != nil {
		return h, err
	}
	h.Scheme = pkgver.Scheme(scheme)
	h.OS.IDLike = strings.Fields(like)
	if len(h.OS.IDLike) == 0 {
		h.OS.IDLike = nil
	}
	if err := json.Unmarshal(facts, &h.Facts); err != nil {
		return h, fmt.Errorf("facts of host %d: %w", h.ID, err)
	}
	return h, nil
}

const packageCols = `pv.id, pv.scheme, pv.name, pv.version, pv.arch, pv.source, pv.source_version`

func scanPackage(row scanner) (store.PackageVersion, error) {
	var pv store.PackageVersion
	var scheme string
	err := row.Scan(&pv.ID, &scheme, &pv.Name, &pv.Version, &pv.Arch, &pv.Source, &pv.SourceVersion)
	pv.Scheme = pkgver.Scheme(scheme)
	return pv, err
}

func scanService(row scanner) (hostfacts.Service, error) {
	var s hostfacts.Service
	err := row.Scan(&s.Unit, &s.Enabled, &s.Active, &s.Sub)
	return s, err
}

func scanListener(row scanner) (hostfacts.Listener, error) {
	var l hostfacts.Listener
	err := row.Scan(&l.Proto, &l.Address, &l.Port, &l.PID, &l.Process, &l.Exe, &l.Package)
	return l, err
}

// jsonList is a list as the JSON array parameter json_each reads.
func jsonList[T any](list []T) (string, error) {
	if list == nil {
		list = []T{}
	}
	b, err := json.Marshal(list)
	return string(b), err
}

// querier is what the inventory reads through: the read pool, or the
// writer's transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// hostLists reads a host's packages, services and listeners.
func hostLists(ctx context.Context, q querier, id int64) ([]store.PackageVersion, []hostfacts.Service, []hostfacts.Listener, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+packageCols+` FROM host_packages hp
		JOIN package_versions pv ON pv.id = hp.package_id WHERE hp.host_id = ?`, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("packages of host %d: %w", id, err)
	}
	pvs, err := collect(rows, fmt.Sprintf("packages of host %d", id), scanPackage)
	if err != nil {
		return nil, nil, nil, err
	}
	rows, err = q.QueryContext(ctx, `SELECT unit, enabled, active, sub FROM host_services WHERE host_id = ? ORDER BY unit`, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("services of host %d: %w", id, err)
	}
	services, err := collect(rows, fmt.Sprintf("services of host %d", id), scanService)
	if err != nil {
		return nil, nil, nil, err
	}
	rows, err = q.QueryContext(ctx, `SELECT proto, address, port, pid, process, exe, package FROM host_listeners
		WHERE host_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listeners of host %d: %w", id, err)
	}
	listeners, err := collect(rows, fmt.Sprintf("listeners of host %d", id), scanListener)
	if err != nil {
		return nil, nil, nil, err
	}
	return pvs, services, listeners, nil
}

// PutHostReport replaces a host's facts and appends its changes in one
// write transaction: the previous report is read back from the rows it
// left, diffed with the new one, and only the package rows that changed
// are written (a host that upgraded nothing writes its host row only).
func (db *DB) PutHostReport(ctx context.Context, r *hostfacts.Report, by string, now time.Time) (store.Host, []store.HostEvent, error) {
	rep, err := store.PrepareHostReport(r)
	if err != nil {
		return store.Host{}, nil, fmt.Errorf("put host report: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	h := store.NewHost(rep, by, now)
	facts, err := json.Marshal(h.Facts)
	if err != nil {
		return store.Host{}, nil, fmt.Errorf("put host report of %s: %w", rep.Hostname, err)
	}
	fail := func(err error) (store.Host, []store.HostEvent, error) {
		return store.Host{}, nil, fmt.Errorf("put host report of %s: %w", rep.Hostname, err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	old, err := scanHost(tx.QueryRowContext(ctx, `SELECT `+hostCols+` FROM hosts WHERE identity = ?`, store.HostIdentity(rep)))
	var before *hostfacts.Report
	had := map[store.PackageVersion]int64{} // the host's package versions (ID 0) and their ids
	var oldIDs []int64
	switch {
	case err == nil:
		pvs, services, listeners, err := hostLists(ctx, tx, old.ID)
		if err != nil {
			return fail(err)
		}
		for _, pv := range pvs {
			oldIDs = append(oldIDs, pv.ID)
			had[store.PackageVersion{Scheme: pv.Scheme, Package: pv.Package}] = pv.ID
		}
		before = old.AsReport(pvs, services, listeners)
		h.ID, h.FirstReportAt = old.ID, old.FirstReportAt
		_, err = tx.ExecContext(ctx, `UPDATE hosts SET name = ?, machine_id = ?, os_id = ?, os_version = ?, os_codename = ?,
			os_like = ?, os_name = ?, scheme = ?, kernel = ?, arch = ?, facts = ?, packages = ?, collected_at = ?,
			reported_at = ?, reported_by = ? WHERE id = ?`,
			h.Name, h.MachineID, h.OS.ID, h.OS.VersionID, h.OS.VersionCodename, strings.Join(h.OS.IDLike, " "), h.OS.PrettyName,
			string(h.Scheme), h.Kernel, h.Arch, string(facts), h.Packages, timeArg(h.CollectedAt), timeArg(h.ReportedAt),
			h.ReportedBy, h.ID)
		if err != nil {
			return fail(err)
		}
	case errors.Is(err, sql.ErrNoRows):
		h.FirstReportAt = h.ReportedAt
		err = tx.QueryRowContext(ctx, `INSERT INTO hosts (identity, name, machine_id, os_id, os_version, os_codename, os_like,
			os_name, scheme, kernel, arch, facts, packages, collected_at, reported_at, first_reported_at, reported_by)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id`,
			store.HostIdentity(rep), h.Name, h.MachineID, h.OS.ID, h.OS.VersionID, h.OS.VersionCodename,
			strings.Join(h.OS.IDLike, " "), h.OS.PrettyName, string(h.Scheme), h.Kernel, h.Arch, string(facts), h.Packages,
			timeArg(h.CollectedAt), timeArg(h.ReportedAt), timeArg(h.FirstReportAt), h.ReportedBy).Scan(&h.ID)
		if err != nil {
			return fail(err)
		}
	default:
		return fail(err)
	}

	ids, err := packageIDs(ctx, tx, rep, had)
	if err != nil {
		return fail(err)
	}
	added, removed := store.IDChanges(oldIDs, ids)
	if len(removed) > 0 {
		list, err := jsonList(removed)
		if err != nil {
			return fail(err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM host_packages WHERE host_id = ? AND package_id IN (SELECT value FROM json_each(?))`,
			h.ID, list); err != nil {
			return fail(fmt.Errorf("remove %d packages: %w", len(removed), err))
		}
	}
	if len(added) > 0 {
		list, err := jsonList(added)
		if err != nil {
			return fail(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO host_packages (host_id, package_id) SELECT ?, value FROM json_each(?)`,
			h.ID, list); err != nil {
			return fail(fmt.Errorf("add %d packages: %w", len(added), err))
		}
	}
	if before == nil || !slices.Equal(before.Services, rep.Services) {
		if err := putServices(ctx, tx, h.ID, rep.Services); err != nil {
			return fail(err)
		}
	}
	if before == nil || !slices.Equal(before.Listeners, rep.Listeners) {
		if err := putListeners(ctx, tx, h.ID, rep.Listeners); err != nil {
			return fail(err)
		}
	}
	events, err := putHostEvents(ctx, tx, h.ID, h.ReportedAt, store.HostChanges(before, rep))
	if err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	return h, events, nil
}

// lookupPackagesSQL finds the ids of package versions given as a JSON
// array of [name, version, arch, source, source_version] (with a scheme),
// each one probe of the unique index.
const lookupPackagesSQL = `SELECT j.key, pv.id FROM json_each(?) j
	JOIN package_versions pv ON pv.name = j.value->>0 AND pv.version = j.value->>1 AND pv.arch = j.value->>2
		AND pv.source = j.value->>3 AND pv.source_version = j.value->>4 AND pv.scheme = ?`

// packageVersionsSQL reads the package versions of a JSON array of names,
// by name and by source name.
const packageVersionsSQL = `SELECT ` + packageCols + ` FROM package_versions pv
	WHERE pv.name IN (SELECT value FROM json_each(?1)) OR pv.source IN (SELECT value FROM json_each(?1))`

// packageIDs returns the ids of a report's package versions, in its
// order: those the host had from had, the others looked up by their key,
// or inserted.
func packageIDs(ctx context.Context, tx *sql.Tx, rep *hostfacts.Report, had map[store.PackageVersion]int64) ([]int64, error) {
	ids := make([]int64, len(rep.Packages))
	var missing []int
	var keys [][5]string
	for i, p := range rep.Packages {
		if id, ok := had[store.PackageVersion{Scheme: rep.Scheme, Package: p}]; ok {
			ids[i] = id
			continue
		}
		missing = append(missing, i)
		keys = append(keys, [5]string{p.Name, p.Version, p.Arch, p.Source, p.SourceVersion})
	}
	if len(missing) == 0 {
		return ids, nil
	}
	list, err := jsonList(keys)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, lookupPackagesSQL, list, string(rep.Scheme))
	if err != nil {
		return nil, fmt.Errorf("look up %d package versions: %w", len(keys), err)
	}
	found, err := collect(rows, "look up package versions", func(row scanner) ([2]int64, error) {
		var kv [2]int64
		err := row.Scan(&kv[0], &kv[1])
		return kv, err
	})
	if err != nil {
		return nil, err
	}
	for _, kv := range found {
		ids[missing[kv[0]]] = kv[1]
	}
	var insert *sql.Stmt
	for _, i := range missing {
		if ids[i] != 0 {
			continue
		}
		if insert == nil {
			if insert, err = tx.PrepareContext(ctx, `INSERT INTO package_versions (name, version, arch, source, source_version, scheme)
				VALUES (?, ?, ?, ?, ?, ?) RETURNING id`); err != nil {
				return nil, fmt.Errorf("add package versions: %w", err)
			}
			defer insert.Close()
		}
		p := rep.Packages[i]
		if err := insert.QueryRowContext(ctx, p.Name, p.Version, p.Arch, p.Source, p.SourceVersion, string(rep.Scheme)).Scan(&ids[i]); err != nil {
			return nil, fmt.Errorf("add package version %s %s: %w", p.Name, p.Version, err)
		}
	}
	return ids, nil
}

func putServices(ctx context.Context, tx *sql.Tx, hostID int64, services []hostfacts.Service) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM host_services WHERE host_id = ?`, hostID); err != nil {
		return fmt.Errorf("replace services: %w", err)
	}
	if len(services) == 0 {
		return nil
	}
	list, err := jsonList(services)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO host_services (host_id, unit, enabled, active, sub)
		SELECT ?, value->>'unit', coalesce(value->>'enabled', ''), coalesce(value->>'active', ''), coalesce(value->>'sub', '')
		FROM json_each(?)`, hostID, list)
	if err != nil {
		return fmt.Errorf("replace %d services: %w", len(services), err)
	}
	return nil
}

func putListeners(ctx context.Context, tx *sql.Tx, hostID int64, listeners []hostfacts.Listener) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM host_listeners WHERE host_id = ?`, hostID); err != nil {
		return fmt.Errorf("replace listeners: %w", err)
	}
	if len(listeners) == 0 {
		return nil
	}
	list, err := jsonList(listeners)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO host_listeners (host_id, seq, proto, address, port, pid, process, exe, package)
		SELECT ?, key, value->>'proto', value->>'address', value->>'port', coalesce(value->>'pid', 0),
			coalesce(value->>'process', ''), coalesce(value->>'exe', ''), coalesce(value->>'package', '')
		FROM json_each(?)`, hostID, list)
	if err != nil {
		return fmt.Errorf("replace %d listeners: %w", len(listeners), err)
	}
	return nil
}

func putHostEvents(ctx context.Context, tx *sql.Tx, hostID int64, at time.Time, changes []hostfacts.Change) ([]store.HostEvent, error) {
	events := make([]store.HostEvent, len(changes))
	if len(changes) == 0 {
		return events, nil
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO host_events (host_id, at, kind, subject, from_value, to_value)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`)
	if err != nil {
		return nil, fmt.Errorf("record events: %w", err)
	}
	defer ins.Close()
	for i, c := range changes {
		c.Subject, c.From, c.To = store.Text(c.Subject), store.Text(c.From), store.Text(c.To)
		events[i] = store.HostEvent{HostID: hostID, At: at, Change: c}
		if err := ins.QueryRowContext(ctx, hostID, timeArg(at), string(c.Kind), c.Subject, c.From, c.To).Scan(&events[i].ID); err != nil {
			return nil, fmt.Errorf("record event %s: %w", c, err)
		}
	}
	return events, nil
}

// Host reads one host row.
func (db *DB) Host(ctx context.Context, id int64) (store.Host, error) {
	h, err := scanHost(db.r.QueryRowContext(ctx, `SELECT `+hostCols+` FROM hosts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Host{}, fmt.Errorf("host %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("host %d: %w", id, err)
	}
	return h, nil
}

// FindHosts reads the hosts of a name from the name index, and of a
// machine id from its own.
func (db *DB) FindHosts(ctx context.Context, name string) ([]store.Host, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+hostCols+` FROM hosts WHERE name = ?
		UNION SELECT `+hostCols+` FROM hosts WHERE machine_id = ? AND machine_id <> '' ORDER BY name, id`, name, name)
	if err != nil {
		return nil, fmt.Errorf("find hosts named %q: %w", name, err)
	}
	out, err := collect(rows, fmt.Sprintf("find hosts named %q", name), scanHost)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.Host{}
	}
	return out, nil
}

// HostReport reads a host and its lists in one read transaction, so they
// are of one report.
func (db *DB) HostReport(ctx context.Context, id int64) (*hostfacts.Report, error) {
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("report of host %d: %w", id, err)
	}
	defer tx.Rollback()
	h, err := scanHost(tx.QueryRowContext(ctx, `SELECT `+hostCols+` FROM hosts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("host %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("report of host %d: %w", id, err)
	}
	pvs, services, listeners, err := hostLists(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return h.AsReport(pvs, services, listeners), nil
}

const hostEventCols = `id, host_id, at, kind, subject, from_value, to_value`

func scanHostEvent(row scanner) (store.HostEvent, error) {
	var e store.HostEvent
	var kind string
	err := row.Scan(&e.ID, &e.HostID, timeCol{&e.At}, &kind, &e.Subject, &e.From, &e.To)
	e.Kind = hostfacts.ChangeKind(kind)
	return e, err
}

// HostEvents reads a page of a host's history from (host_id, id).
func (db *DB) HostEvents(ctx context.Context, hostID, beforeID int64, limit int) ([]store.HostEvent, error) {
	if limit <= 0 {
		limit = store.DefaultHostEventsLimit
	}
	limit = min(limit, store.MaxHostEventsLimit)
	if beforeID <= 0 {
		beforeID = math.MaxInt64
	}
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("events of host %d: %w", hostID, err)
	}
	defer tx.Rollback()
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM hosts WHERE id = ?`, hostID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("host %d: %w", hostID, store.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("events of host %d: %w", hostID, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+hostEventCols+` FROM host_events WHERE host_id = ? AND id < ?
		ORDER BY id DESC LIMIT ?`, hostID, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("events of host %d: %w", hostID, err)
	}
	out, err := collect(rows, fmt.Sprintf("events of host %d", hostID), scanHostEvent)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.HostEvent{}
	}
	return out, nil
}

// SearchHosts reads the package versions of the names (name index, source
// index), keeps those q.Version holds for, then reads a page of hosts in
// (name, id) order with the filters as semi-joins, and the matched rows of
// the page's hosts. It runs in one read transaction.
func (db *DB) SearchHosts(ctx context.Context, q store.HostQuery) ([]store.HostMatch, error) {
	q, err := store.PrepareHostQuery(q)
	if err != nil {
		return nil, fmt.Errorf("search hosts: %w", err)
	}
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("search hosts: %w", err)
	}
	defer tx.Rollback()
	var cands []store.PackageVersion
	var candIDs string
	if len(q.Packages) > 0 {
		names, err := jsonList(q.Packages)
		if err != nil {
			return nil, err
		}
		rows, err := tx.QueryContext(ctx, packageVersionsSQL, names)
		if err != nil {
			return nil, fmt.Errorf("search hosts: package versions: %w", err)
		}
		all, err := collect(rows, "search hosts: package versions", scanPackage)
		if err != nil {
			return nil, err
		}
		if cands = store.MatchPackages(all, q); len(cands) == 0 {
			return []store.HostMatch{}, nil
		}
		ids := make([]int64, len(cands))
		for i, pv := range cands {
			ids[i] = pv.ID
		}
		if candIDs, err = jsonList(ids); err != nil {
			return nil, err
		}
	}
	hq, args, err := searchHostsQuery(q, candIDs)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, hq, args...)
	if err != nil {
		return nil, fmt.Errorf("search hosts: %w", err)
	}
	hosts, err := collect(rows, "search hosts", scanHost)
	if err != nil {
		return nil, err
	}
	out := make([]store.HostMatch, len(hosts))
	if len(hosts) == 0 {
		return out, nil
	}
	at := map[int64]*store.HostMatch{}
	ids := make([]int64, len(hosts))
	for i, h := range hosts {
		out[i].Host = h
		at[h.ID] = &out[i]
		ids[i] = h.ID
	}
	page, err := jsonList(ids)
	if err != nil {
		return nil, err
	}
	if candIDs != "" {
		rows, err := tx.QueryContext(ctx, `SELECT hp.host_id, `+packageCols+` FROM host_packages hp
			JOIN package_versions pv ON pv.id = hp.package_id
			WHERE hp.host_id IN (SELECT value FROM json_each(?)) AND hp.package_id IN (SELECT value FROM json_each(?))`, page, candIDs)
		if err != nil {
			return nil, fmt.Errorf("search hosts: matched packages: %w", err)
		}
		type hostPackage struct {
			host int64
			pv   store.PackageVersion
		}
		found, err := collect(rows, "search hosts: matched packages", func(row scanner) (hostPackage, error) {
			var hp hostPackage
			var scheme string
			err := row.Scan(&hp.host, &hp.pv.ID, &scheme, &hp.pv.Name, &hp.pv.Version, &hp.pv.Arch, &hp.pv.Source, &hp.pv.SourceVersion)
			hp.pv.Scheme = pkgver.Scheme(scheme)
			return hp, err
		})
		if err != nil {
			return nil, err
		}
		for _, hp := range found {
			at[hp.host].Packages = append(at[hp.host].Packages, hp.pv)
		}
	}
	units, packages, processes := store.MatchDetails(q, cands)
	services := map[int64][]hostfacts.Service{}
	if len(units) > 0 {
		list, err := jsonList(units)
		if err != nil {
			return nil, err
		}
		rows, err := tx.QueryContext(ctx, `SELECT host_id, unit, enabled, active, sub FROM host_services
			WHERE host_id IN (SELECT value FROM json_each(?)) AND unit IN (SELECT value FROM json_each(?)) ORDER BY host_id, unit`, page, list)
		if err != nil {
			return nil, fmt.Errorf("search hosts: services: %w", err)
		}
		err = each(rows, func(row scanner) error {
			var id int64
			var s hostfacts.Service
			if err := row.Scan(&id, &s.Unit, &s.Enabled, &s.Active, &s.Sub); err != nil {
				return err
			}
			services[id] = append(services[id], s)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("search hosts: services: %w", err)
		}
	}
	listeners := map[int64][]hostfacts.Listener{}
	if q.Port != 0 || len(packages) > 0 || len(processes) > 0 {
		pl, err := jsonList(packages)
		if err != nil {
			return nil, err
		}
		procs, err := jsonList(processes)
		if err != nil {
			return nil, err
		}
		rows, err := tx.QueryContext(ctx, `SELECT host_id, proto, address, port, pid, process, exe, package FROM host_listeners
			WHERE host_id IN (SELECT value FROM json_each(?)) AND (port = ? OR package IN (SELECT value FROM json_each(?))
				OR process IN (SELECT value FROM json_each(?))) ORDER BY host_id, seq`, page, q.Port, pl, procs)
		if err != nil {
			return nil, fmt.Errorf("search hosts: listeners: %w", err)
		}
		err = each(rows, func(row scanner) error {
			var id int64
			var l hostfacts.Listener
			if err := row.Scan(&id, &l.Proto, &l.Address, &l.Port, &l.PID, &l.Process, &l.Exe, &l.Package); err != nil {
				return err
			}
			listeners[id] = append(listeners[id], l)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("search hosts: listeners: %w", err)
		}
	}
	for i := range out {
		store.FillMatch(&out[i], q, services[out[i].ID], listeners[out[i].ID])
	}
	return out, nil
}

// searchHostsQuery is the query of a page of hosts: the hosts_by_name
// index read from the cursor in order, each filter a semi-join on the
// index of what it names (candIDs: the JSON array of the package versions
// that passed).
func searchHostsQuery(q store.HostQuery, candIDs string) (string, []any, error) {
	where := []string{`(h.name > ? OR h.name = ? AND h.id > ?)`}
	args := []any{q.After.Name, q.After.Name, q.After.ID}
	if candIDs != "" {
		where = append(where, `h.id IN (SELECT host_id FROM host_packages WHERE package_id IN (SELECT value FROM json_each(?)))`)
		args = append(args, candIDs)
	}
	if q.OS != "" {
		where = append(where, `h.os_id = ?`)
		args = append(args, q.OS)
	}
	if q.OSVersion != "" {
		where = append(where, `(h.os_version = ? OR substr(h.os_version, 1, ?) = ?)`)
		args = append(args, q.OSVersion, len(q.OSVersion)+1, q.OSVersion+".")
	}
	if q.Service != "" {
		units, err := jsonList(store.ServiceUnits(q.Service))
		if err != nil {
			return "", nil, err
		}
		cond := `h.id IN (SELECT host_id FROM host_services WHERE unit IN (SELECT value FROM json_each(?))`
		if q.Active {
			cond += ` AND active = 'active'`
		}
		where = append(where, cond+`)`)
		args = append(args, units)
	}
	if q.Port != 0 {
		where = append(where, `h.id IN (SELECT host_id FROM host_listeners WHERE port = ?)`)
		args = append(args, q.Port)
	}
	if !q.ReportedBefore.IsZero() {
		where = append(where, `h.reported_at < ?`)
		args = append(args, timeArg(q.ReportedBefore))
	}
	if !q.ReportedSince.IsZero() {
		where = append(where, `h.reported_at >= ?`)
		args = append(args, timeArg(q.ReportedSince))
	}
	return `SELECT ` + prefixed("h.", hostCols) + ` FROM hosts h INDEXED BY hosts_by_name WHERE ` +
		strings.Join(where, " AND ") + ` ORDER BY h.name, h.id LIMIT ?`, append(args, q.Limit), nil
}

// each calls fn for every row of rows and closes them.
func each(rows *sql.Rows, fn func(scanner) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// prefixed qualifies each column of a column list with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// PruneInventory deletes old events (from the at index), hosts silent
// since before (from the reported_at index; their rows go by the
// cascades) and package versions no host has, in one write transaction.
func (db *DB) PruneInventory(ctx context.Context, before time.Time, limit int) (store.InventoryPruned, error) {
	var n store.InventoryPruned
	if limit <= 0 {
		limit = store.MaxHostEventsLimit
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return n, fmt.Errorf("prune the inventory: %w", err)
	}
	defer tx.Rollback()
	count := func(dst *int, q string, args ...any) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		d, err := res.RowsAffected()
		*dst = int(d)
		return err
	}
	at := before.UnixMicro()
	if err := count(&n.Events, `DELETE FROM host_events WHERE id IN (
		SELECT id FROM host_events INDEXED BY host_events_by_at WHERE at < ? ORDER BY at LIMIT ?)`, at, limit); err != nil {
		return n, fmt.Errorf("prune host events: %w", err)
	}
	if err := count(&n.Hosts, `DELETE FROM hosts WHERE id IN (
		SELECT id FROM hosts INDEXED BY hosts_by_reported_at WHERE reported_at < ? ORDER BY reported_at LIMIT ?)`,
		at, store.PruneHostsBatch); err != nil {
		return n, fmt.Errorf("forget silent hosts: %w", err)
	}
	if err := count(&n.Packages, `DELETE FROM package_versions WHERE id IN (
		SELECT id FROM package_versions pv WHERE NOT EXISTS (SELECT 1 FROM host_packages hp WHERE hp.package_id = pv.id) LIMIT ?)`,
		limit); err != nil {
		return n, fmt.Errorf("prune package versions: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return n, fmt.Errorf("prune the inventory: commit: %w", err)
	}
	return n, nil
}
