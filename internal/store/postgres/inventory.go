package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// The host inventory (see store.Inventory): the hosts, package_versions,
// host_packages, host_services, host_listeners and host_events tables of
// migration 0013. Lists go to PostgreSQL as array parameters, so a host's
// two thousand packages are one statement.
//
// Several servers take reports at once. A report locks its host's row
// first (an upsert that changes nothing), so two reports of one host are
// applied one after the other, each diffed with the state the other left.
// New package versions are inserted in key order, so two reports adding
// the same ones never wait for each other in a cycle. A package version
// that PruneInventory deleted between a report's look-up and its insert
// of the host's rows fails the foreign key: the report is then applied
// again from the start.

// reportAttempts is how many times PutHostReport applies a report that
// lost a race with a prune or a deadlock.
const reportAttempts = 3

const hostCols = `id, name, machine_id, os_id, os_version, os_codename, os_like, os_name, scheme, kernel, arch, facts::text,
	packages, collected_at, reported_at, first_reported_at, reported_by`

// scanHost reads a host row of hostColumns, then the columns of more.
func scanHost(row pgx.Row, more ...any) (store.Host, error) {
	var h store.Host
	var like, scheme string
	var facts json.RawMessage
	dest := []any{&h.ID, &h.Name, &h.MachineID, &h.OS.ID, &h.OS.VersionID, &h.OS.VersionCodename, &like, &h.OS.PrettyName,
		&scheme, &h.Kernel, &h.Arch, jsonCol{&facts}, &h.Packages, timeCol{&h.CollectedAt}, timeCol{&h.ReportedAt},
		timeCol{&h.FirstReportAt}, &h.ReportedBy}
	err := row.Scan(append(dest, more...)...)
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

func collectHosts(rows pgx.Rows) ([]store.Host, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Host, error) { return scanHost(row) })
}

const packageCols = `pv.id, pv.scheme, pv.name, pv.version, pv.arch, pv.source, pv.source_version`

func scanPackage(row pgx.Row) (store.PackageVersion, error) {
	var pv store.PackageVersion
	var scheme string
	err := row.Scan(&pv.ID, &scheme, &pv.Name, &pv.Version, &pv.Arch, &pv.Source, &pv.SourceVersion)
	pv.Scheme = pkgver.Scheme(scheme)
	return pv, err
}

func collectPackages(rows pgx.Rows) ([]store.PackageVersion, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.PackageVersion, error) { return scanPackage(row) })
}

// querier is what the inventory reads through: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// hostLists reads a host's packages, services and listeners.
func hostLists(ctx context.Context, q querier, id int64) ([]store.PackageVersion, []hostfacts.Service, []hostfacts.Listener, error) {
	rows, err := q.Query(ctx, `SELECT `+packageCols+` FROM host_packages hp
		JOIN package_versions pv ON pv.id = hp.package_id WHERE hp.host_id = $1`, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("packages of host %d: %w", id, err)
	}
	pvs, err := collectPackages(rows)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("packages of host %d: %w", id, err)
	}
	rows, err = q.Query(ctx, `SELECT unit, enabled, active, sub FROM host_services WHERE host_id = $1 ORDER BY unit`, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("services of host %d: %w", id, err)
	}
	services, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (hostfacts.Service, error) {
		var s hostfacts.Service
		err := row.Scan(&s.Unit, &s.Enabled, &s.Active, &s.Sub)
		return s, err
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("services of host %d: %w", id, err)
	}
	rows, err = q.Query(ctx, `SELECT proto, address, port, pid, process, exe, package FROM host_listeners
		WHERE host_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listeners of host %d: %w", id, err)
	}
	listeners, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (hostfacts.Listener, error) {
		var l hostfacts.Listener
		err := row.Scan(&l.Proto, &l.Address, &l.Port, &l.PID, &l.Process, &l.Exe, &l.Package)
		return l, err
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listeners of host %d: %w", id, err)
	}
	return pvs, services, listeners, nil
}

// PutHostReport replaces a host's facts and appends its changes in one
// transaction, applied again when it lost a race (see the top of this
// file).
func (db *DB) PutHostReport(ctx context.Context, r *hostfacts.Report, by string, now time.Time) (store.Host, []store.HostEvent, error) {
	rep, err := store.PrepareHostReport(r)
	if err != nil {
		return store.Host{}, nil, fmt.Errorf("put host report: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	for attempt := 1; ; attempt++ {
		h, events, err := db.putHostReport(ctx, rep, by, now)
		if err == nil || attempt == reportAttempts || !retryable(err) {
			if err != nil {
				return store.Host{}, nil, fmt.Errorf("put host report of %s: %w", rep.Hostname, err)
			}
			return h, events, nil
		}
	}
}

// retryable reports whether a report's transaction failed for a race it
// may win when applied again.
func retryable(err error) bool {
	e := pgErr(err)
	return e != nil && (e.Code == sqlstateForeignKeyViolation && e.ConstraintName == "host_packages_package_id_fkey" ||
		e.Code == "40P01" || e.Code == "40001")
}

func (db *DB) putHostReport(ctx context.Context, rep *hostfacts.Report, by string, now time.Time) (store.Host, []store.HostEvent, error) {
	h := store.NewHost(rep, by, now)
	facts, err := json.Marshal(h.Facts)
	if err != nil {
		return store.Host{}, nil, err
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return store.Host{}, nil, err
	}
	defer rollback(tx)
	// Lock the host's row, creating it if it is new; a new row comes back
	// with xmax 0.
	var inserted bool
	old, err := scanHostLocked(tx.QueryRow(ctx, `INSERT INTO hosts AS h (identity, name, machine_id, os_id, os_version,
			os_codename, os_like, os_name, scheme, kernel, arch, facts, packages, collected_at, reported_at,
			first_reported_at, reported_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15, $15, $16)
		ON CONFLICT (identity) DO UPDATE SET identity = h.identity
		RETURNING `+hostCols+`, (xmax = 0)`, store.HostIdentity(rep), h.Name, h.MachineID, h.OS.ID, h.OS.VersionID,
		h.OS.VersionCodename, strings.Join(h.OS.IDLike, " "), h.OS.PrettyName, string(h.Scheme), h.Kernel, h.Arch, string(facts),
		h.Packages, timeArg(h.CollectedAt), h.ReportedAt, h.ReportedBy), &inserted)
	if err != nil {
		return store.Host{}, nil, fmt.Errorf("lock host: %w", err)
	}
	h.ID, h.FirstReportAt = old.ID, old.FirstReportAt
	var before *hostfacts.Report
	had := map[store.PackageVersion]int64{}
	var oldIDs []int64
	if !inserted {
		pvs, services, listeners, err := hostLists(ctx, tx, old.ID)
		if err != nil {
			return store.Host{}, nil, err
		}
		for _, pv := range pvs {
			oldIDs = append(oldIDs, pv.ID)
			had[store.PackageVersion{Scheme: pv.Scheme, Package: pv.Package}] = pv.ID
		}
		before = old.AsReport(pvs, services, listeners)
		_, err = tx.Exec(ctx, `UPDATE hosts SET name = $1, machine_id = $2, os_id = $3, os_version = $4, os_codename = $5,
			os_like = $6, os_name = $7, scheme = $8, kernel = $9, arch = $10, facts = $11::jsonb, packages = $12,
			collected_at = $13, reported_at = $14, reported_by = $15 WHERE id = $16`,
			h.Name, h.MachineID, h.OS.ID, h.OS.VersionID, h.OS.VersionCodename, strings.Join(h.OS.IDLike, " "), h.OS.PrettyName,
			string(h.Scheme), h.Kernel, h.Arch, string(facts), h.Packages, timeArg(h.CollectedAt), h.ReportedAt, h.ReportedBy, h.ID)
		if err != nil {
			return store.Host{}, nil, fmt.Errorf("update host: %w", err)
		}
	}
	ids, err := packageIDs(ctx, tx, rep, had)
	if err != nil {
		return store.Host{}, nil, err
	}
	added, removed := store.IDChanges(oldIDs, ids)
	if len(removed) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM host_packages WHERE host_id = $1 AND package_id = ANY($2::bigint[])`, h.ID, removed); err != nil {
			return store.Host{}, nil, fmt.Errorf("remove %d packages: %w", len(removed), err)
		}
	}
	if len(added) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO host_packages (host_id, package_id) SELECT $1, unnest($2::bigint[])`, h.ID, added); err != nil {
			return store.Host{}, nil, fmt.Errorf("add %d packages: %w", len(added), err)
		}
	}
	if before == nil || !slices.Equal(before.Services, rep.Services) {
		if err := putServices(ctx, tx, h.ID, rep.Services); err != nil {
			return store.Host{}, nil, err
		}
	}
	if before == nil || !slices.Equal(before.Listeners, rep.Listeners) {
		if err := putListeners(ctx, tx, h.ID, rep.Listeners); err != nil {
			return store.Host{}, nil, err
		}
	}
	events, err := putHostEvents(ctx, tx, h.ID, h.ReportedAt, store.HostChanges(before, rep))
	if err != nil {
		return store.Host{}, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Host{}, nil, fmt.Errorf("commit: %w", err)
	}
	return h, events, nil
}

// scanHostLocked scans the host row the locking upsert returns, and
// whether it inserted it.
func scanHostLocked(row pgx.Row, inserted *bool) (store.Host, error) {
	return scanHost(row, inserted)
}

// packageIDs returns the ids of a report's package versions, in its
// order: those the host had from had, the others inserted when missing
// (in key order) and looked up.
func packageIDs(ctx context.Context, tx pgx.Tx, rep *hostfacts.Report, had map[store.PackageVersion]int64) ([]int64, error) {
	ids := make([]int64, len(rep.Packages))
	var missing []int
	var name, version, arch, source, sourceVersion []string
	for i, p := range rep.Packages {
		if id, ok := had[store.PackageVersion{Scheme: rep.Scheme, Package: p}]; ok {
			ids[i] = id
			continue
		}
		missing = append(missing, i)
		name, version, arch = append(name, p.Name), append(version, p.Version), append(arch, p.Arch)
		source, sourceVersion = append(source, p.Source), append(sourceVersion, p.SourceVersion)
	}
	if len(missing) == 0 {
		return ids, nil
	}
	const keys = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
		AS u(name, version, arch, source, source_version, ord)`
	args := []any{name, version, arch, source, sourceVersion, string(rep.Scheme)}
	if _, err := tx.Exec(ctx, `INSERT INTO package_versions (name, version, arch, source, source_version, scheme)
		SELECT u.name, u.version, u.arch, u.source, u.source_version, $6 FROM `+keys+`
		ORDER BY u.name, u.version, u.arch, u.source, u.source_version
		ON CONFLICT DO NOTHING`, args...); err != nil {
		return nil, fmt.Errorf("add package versions: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT u.ord, pv.id FROM `+keys+`
		JOIN package_versions pv ON pv.name = u.name AND pv.version = u.version AND pv.arch = u.arch
			AND pv.source = u.source AND pv.source_version = u.source_version AND pv.scheme = $6`, args...)
	if err != nil {
		return nil, fmt.Errorf("look up %d package versions: %w", len(missing), err)
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]int64, error) {
		var kv [2]int64
		err := row.Scan(&kv[0], &kv[1])
		return kv, err
	})
	if err != nil {
		return nil, fmt.Errorf("look up %d package versions: %w", len(missing), err)
	}
	for _, kv := range found {
		ids[missing[kv[0]-1]] = kv[1]
	}
	for _, i := range missing {
		if ids[i] == 0 {
			p := rep.Packages[i]
			return nil, fmt.Errorf("package version %s %s vanished while it was added", p.Name, p.Version)
		}
	}
	return ids, nil
}

func putServices(ctx context.Context, tx pgx.Tx, hostID int64, services []hostfacts.Service) error {
	if _, err := tx.Exec(ctx, `DELETE FROM host_services WHERE host_id = $1`, hostID); err != nil {
		return fmt.Errorf("replace services: %w", err)
	}
	if len(services) == 0 {
		return nil
	}
	n := len(services)
	unit, enabled, active, sub := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, s := range services {
		unit[i], enabled[i], active[i], sub[i] = s.Unit, s.Enabled, s.Active, s.Sub
	}
	_, err := tx.Exec(ctx, `INSERT INTO host_services (host_id, unit, enabled, active, sub)
		SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])`, hostID, unit, enabled, active, sub)
	if err != nil {
		return fmt.Errorf("replace %d services: %w", n, err)
	}
	return nil
}

func putListeners(ctx context.Context, tx pgx.Tx, hostID int64, listeners []hostfacts.Listener) error {
	if _, err := tx.Exec(ctx, `DELETE FROM host_listeners WHERE host_id = $1`, hostID); err != nil {
		return fmt.Errorf("replace listeners: %w", err)
	}
	if len(listeners) == 0 {
		return nil
	}
	n := len(listeners)
	proto, addr, process, exe, pkg := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	port, pid := make([]int32, n), make([]int32, n)
	for i, l := range listeners {
		proto[i], addr[i], process[i], exe[i], pkg[i] = l.Proto, l.Address, l.Process, l.Exe, l.Package
		port[i], pid[i] = int32(l.Port), int32(l.PID)
	}
	_, err := tx.Exec(ctx, `INSERT INTO host_listeners (host_id, seq, proto, address, port, pid, process, exe, package)
		SELECT $1, u.ord - 1, u.proto, u.address, u.port, u.pid, u.process, u.exe, u.package
		FROM unnest($2::text[], $3::text[], $4::int4[], $5::int4[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
			AS u(proto, address, port, pid, process, exe, package, ord)`, hostID, proto, addr, port, pid, process, exe, pkg)
	if err != nil {
		return fmt.Errorf("replace %d listeners: %w", n, err)
	}
	return nil
}

func putHostEvents(ctx context.Context, tx pgx.Tx, hostID int64, at time.Time, changes []hostfacts.Change) ([]store.HostEvent, error) {
	events := make([]store.HostEvent, len(changes))
	if len(changes) == 0 {
		return events, nil
	}
	n := len(changes)
	kind, subject, from, to := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, c := range changes {
		c.Subject, c.From, c.To = store.Text(c.Subject), store.Text(c.From), store.Text(c.To)
		events[i] = store.HostEvent{HostID: hostID, At: at, Change: c}
		kind[i], subject[i], from[i], to[i] = string(c.Kind), c.Subject, c.From, c.To
	}
	rows, err := tx.Query(ctx, `INSERT INTO host_events (host_id, at, kind, subject, from_value, to_value)
		SELECT $1, $2, u.kind, u.subject, u.from_value, u.to_value
		FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS u(kind, subject, from_value, to_value, ord)
		ORDER BY u.ord RETURNING id`, hostID, at, kind, subject, from, to)
	if err != nil {
		return nil, fmt.Errorf("record %d events: %w", n, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("record %d events: %w", n, err)
	}
	// Identity values are drawn in the order the rows are inserted.
	slices.Sort(ids)
	for i := range events {
		events[i].ID = ids[i]
	}
	return events, nil
}

// Host reads one host row.
func (db *DB) Host(ctx context.Context, id int64) (store.Host, error) {
	h, err := scanHost(db.pool.QueryRow(ctx, `SELECT `+hostCols+` FROM hosts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := db.pool.Query(ctx, `SELECT `+hostCols+` FROM hosts WHERE name = $1
		UNION SELECT `+hostCols+` FROM hosts WHERE machine_id = $1 AND machine_id <> '' ORDER BY name, id`, name)
	if err != nil {
		return nil, fmt.Errorf("find hosts named %q: %w", name, err)
	}
	out, err := collectHosts(rows)
	if err != nil {
		return nil, fmt.Errorf("find hosts named %q: %w", name, err)
	}
	if out == nil {
		out = []store.Host{}
	}
	return out, nil
}

// readTx begins a read-only transaction that sees one snapshot.
func (db *DB) readTx(ctx context.Context) (pgx.Tx, error) {
	return db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
}

// HostReport reads a host and its lists in one snapshot.
func (db *DB) HostReport(ctx context.Context, id int64) (*hostfacts.Report, error) {
	tx, err := db.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("report of host %d: %w", id, err)
	}
	defer rollback(tx)
	h, err := scanHost(tx.QueryRow(ctx, `SELECT `+hostCols+` FROM hosts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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

// HostEvents reads a page of a host's history from (host_id, id).
func (db *DB) HostEvents(ctx context.Context, hostID, beforeID int64, limit int) ([]store.HostEvent, error) {
	if limit <= 0 {
		limit = store.DefaultHostEventsLimit
	}
	limit = min(limit, store.MaxHostEventsLimit)
	if beforeID <= 0 {
		beforeID = math.MaxInt64
	}
	out := []store.HostEvent{}
	rows, err := db.pool.Query(ctx, `SELECT `+hostEventCols+` FROM host_events WHERE host_id = $1 AND id < $2
		ORDER BY id DESC LIMIT $3`, hostID, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("events of host %d: %w", hostID, err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.HostEvent, error) {
		var e store.HostEvent
		var kind string
		err := row.Scan(&e.ID, &e.HostID, timeCol{&e.At}, &kind, &e.Subject, &e.From, &e.To)
		e.Kind = hostfacts.ChangeKind(kind)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("events of host %d: %w", hostID, err)
	}
	if len(events) == 0 {
		var exists bool
		if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hosts WHERE id = $1)`, hostID).Scan(&exists); err != nil {
			return nil, fmt.Errorf("events of host %d: %w", hostID, err)
		}
		if !exists {
			return nil, fmt.Errorf("host %d: %w", hostID, store.ErrNotFound)
		}
	}
	return append(out, events...), nil
}

// SearchHosts reads the package versions of the names (name index, source
// index), keeps those q.Version holds for, then reads a page of hosts in
// (name, id) order with the filters as semi-joins, and the matched rows of
// the page's hosts, in one snapshot.
func (db *DB) SearchHosts(ctx context.Context, q store.HostQuery) ([]store.HostMatch, error) {
	q, err := store.PrepareHostQuery(q)
	if err != nil {
		return nil, fmt.Errorf("search hosts: %w", err)
	}
	tx, err := db.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("search hosts: %w", err)
	}
	defer rollback(tx)
	var cands []store.PackageVersion
	var candIDs []int64
	if len(q.Packages) > 0 {
		rows, err := tx.Query(ctx, `SELECT `+packageCols+` FROM package_versions pv
			WHERE pv.name = ANY($1::text[]) OR pv.source = ANY($1::text[])`, q.Packages)
		if err != nil {
			return nil, fmt.Errorf("search hosts: package versions: %w", err)
		}
		all, err := collectPackages(rows)
		if err != nil {
			return nil, fmt.Errorf("search hosts: package versions: %w", err)
		}
		if cands = store.MatchPackages(all, q); len(cands) == 0 {
			return []store.HostMatch{}, nil
		}
		for _, pv := range cands {
			candIDs = append(candIDs, pv.ID)
		}
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	name := arg(q.After.Name)
	where = append(where, `(h.name > `+name+` OR h.name = `+name+` AND h.id > `+arg(q.After.ID)+`)`)
	if candIDs != nil {
		where = append(where, `h.id IN (SELECT host_id FROM host_packages WHERE package_id = ANY(`+arg(candIDs)+`::bigint[]))`)
	}
	if q.OS != "" {
		where = append(where, `h.os_id = `+arg(q.OS))
	}
	if q.OSVersion != "" {
		where = append(where, `(h.os_version = `+arg(q.OSVersion)+` OR starts_with(h.os_version, `+arg(q.OSVersion+".")+`))`)
	}
	if q.Service != "" {
		cond := `h.id IN (SELECT host_id FROM host_services WHERE unit = ANY(` + arg(store.ServiceUnits(q.Service)) + `::text[])`
		if q.Active {
			cond += ` AND active = 'active'`
		}
		where = append(where, cond+`)`)
	}
	if q.Port != 0 {
		where = append(where, `h.id IN (SELECT host_id FROM host_listeners WHERE port = `+arg(q.Port)+`)`)
	}
	if !q.ReportedBefore.IsZero() {
		where = append(where, `h.reported_at < `+arg(q.ReportedBefore))
	}
	if !q.ReportedSince.IsZero() {
		where = append(where, `h.reported_at >= `+arg(q.ReportedSince))
	}
	rows, err := tx.Query(ctx, `SELECT `+prefixed("h.", hostCols)+` FROM hosts h WHERE `+strings.Join(where, " AND ")+
		` ORDER BY h.name, h.id LIMIT `+arg(q.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("search hosts: %w", err)
	}
	hosts, err := collectHosts(rows)
	if err != nil {
		return nil, fmt.Errorf("search hosts: %w", err)
	}
	out := make([]store.HostMatch, len(hosts))
	if len(hosts) == 0 {
		return out, nil
	}
	at := map[int64]*store.HostMatch{}
	page := make([]int64, len(hosts))
	for i, h := range hosts {
		out[i].Host = h
		at[h.ID] = &out[i]
		page[i] = h.ID
	}
	if candIDs != nil {
		rows, err := tx.Query(ctx, `SELECT hp.host_id, `+packageCols+` FROM host_packages hp
			JOIN package_versions pv ON pv.id = hp.package_id
			WHERE hp.host_id = ANY($1::bigint[]) AND hp.package_id = ANY($2::bigint[])`, page, candIDs)
		if err != nil {
			return nil, fmt.Errorf("search hosts: matched packages: %w", err)
		}
		var host int64
		var pv store.PackageVersion
		var scheme string
		_, err = pgx.ForEachRow(rows, []any{&host, &pv.ID, &scheme, &pv.Name, &pv.Version, &pv.Arch, &pv.Source, &pv.SourceVersion}, func() error {
			pv.Scheme = pkgver.Scheme(scheme)
			at[host].Packages = append(at[host].Packages, pv)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("search hosts: matched packages: %w", err)
		}
	}
	units, packages, processes := store.MatchDetails(q, cands)
	services := map[int64][]hostfacts.Service{}
	if len(units) > 0 {
		rows, err := tx.Query(ctx, `SELECT host_id, unit, enabled, active, sub FROM host_services
			WHERE host_id = ANY($1::bigint[]) AND unit = ANY($2::text[]) ORDER BY host_id, unit`, page, units)
		if err != nil {
			return nil, fmt.Errorf("search hosts: services: %w", err)
		}
		var id int64
		var s hostfacts.Service
		_, err = pgx.ForEachRow(rows, []any{&id, &s.Unit, &s.Enabled, &s.Active, &s.Sub}, func() error {
			services[id] = append(services[id], s)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("search hosts: services: %w", err)
		}
	}
	listeners := map[int64][]hostfacts.Listener{}
	if q.Port != 0 || len(packages) > 0 || len(processes) > 0 {
		if packages == nil {
			packages = []string{}
		}
		if processes == nil {
			processes = []string{}
		}
		rows, err := tx.Query(ctx, `SELECT host_id, proto, address, port, pid, process, exe, package FROM host_listeners
			WHERE host_id = ANY($1::bigint[]) AND (port = $2 OR package = ANY($3::text[]) OR process = ANY($4::text[]))
			ORDER BY host_id, seq`, page, q.Port, packages, processes)
		if err != nil {
			return nil, fmt.Errorf("search hosts: listeners: %w", err)
		}
		var id int64
		var l hostfacts.Listener
		_, err = pgx.ForEachRow(rows, []any{&id, &l.Proto, &l.Address, &l.Port, &l.PID, &l.Process, &l.Exe, &l.Package}, func() error {
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

// PruneInventory deletes old events (from the at index), hosts silent
// since before (from the reported_at index; their rows go by the
// cascades) and package versions no host has, in one transaction. Rows
// another transaction holds are left to the next call (SKIP LOCKED).
func (db *DB) PruneInventory(ctx context.Context, before time.Time, limit int) (store.InventoryPruned, error) {
	var n store.InventoryPruned
	if limit <= 0 {
		limit = store.MaxHostEventsLimit
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return n, fmt.Errorf("prune the inventory: %w", err)
	}
	defer rollback(tx)
	tag, err := tx.Exec(ctx, `DELETE FROM host_events WHERE id = ANY(ARRAY(
		SELECT id FROM host_events WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED))`, before, limit)
	if err != nil {
		return n, fmt.Errorf("prune host events: %w", err)
	}
	n.Events = int(tag.RowsAffected())
	tag, err = tx.Exec(ctx, `DELETE FROM hosts WHERE id = ANY(ARRAY(
		SELECT id FROM hosts WHERE reported_at < $1 ORDER BY reported_at LIMIT $2 FOR UPDATE SKIP LOCKED))`,
		before, store.PruneHostsBatch)
	if err != nil {
		return n, fmt.Errorf("forget silent hosts: %w", err)
	}
	n.Hosts = int(tag.RowsAffected())
	tag, err = tx.Exec(ctx, `DELETE FROM package_versions WHERE id = ANY(ARRAY(
		SELECT id FROM package_versions pv WHERE NOT EXISTS (SELECT 1 FROM host_packages hp WHERE hp.package_id = pv.id)
		LIMIT $1 FOR UPDATE SKIP LOCKED))`, limit)
	if err != nil {
		return n, fmt.Errorf("prune package versions: %w", err)
	}
	n.Packages = int(tag.RowsAffected())
	if err := tx.Commit(ctx); err != nil {
		return n, fmt.Errorf("prune the inventory: commit: %w", err)
	}
	return n, nil
}
