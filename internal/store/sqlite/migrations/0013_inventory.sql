-- 0013: the host inventory: what each host last reported of itself, and
-- what changed between its reports. Mirrors
-- internal/store/postgres/migrations/0013_inventory.sql; conventions as in
-- 0001.

-- One row per host, told apart by identity: its machine id, or
-- 'hostname:' and its name when it has none. The os-release fields that
-- searches filter on are columns; what is only shown (resources, disks,
-- container runtimes, warnings) is the JSON object facts. os_like is
-- ID_LIKE, space-separated. reported_at is the server's time of the last
-- report (staleness is judged by it), collected_at the host's.
CREATE TABLE hosts (
    id                INTEGER PRIMARY KEY,
    identity          TEXT    NOT NULL UNIQUE CHECK (identity <> ''),
    name              TEXT    NOT NULL CHECK (name <> ''),
    machine_id        TEXT    NOT NULL,
    os_id             TEXT    NOT NULL,
    os_version        TEXT    NOT NULL,
    os_codename       TEXT    NOT NULL,
    os_like           TEXT    NOT NULL,
    os_name           TEXT    NOT NULL,
    scheme            TEXT    NOT NULL,
    kernel            TEXT    NOT NULL,
    arch              TEXT    NOT NULL,
    facts             TEXT    NOT NULL CHECK (json_valid(facts)),
    packages          INTEGER NOT NULL CHECK (packages >= 0),
    collected_at      INTEGER,
    reported_at       INTEGER NOT NULL,
    first_reported_at INTEGER NOT NULL,
    reported_by       TEXT    NOT NULL
) STRICT;

-- Searches page in (name, id) order; a host is also found by its name or
-- machine id.
CREATE INDEX hosts_by_name ON hosts (name, id);
CREATE INDEX hosts_by_machine_id ON hosts (machine_id) WHERE machine_id <> '';
-- Stale hosts, and the hosts retention forgets.
CREATE INDEX hosts_by_reported_at ON hosts (reported_at);

-- Each distinct installed package version, shared by every host that has
-- it: a fleet of a few releases has tens of thousands, not a row per host
-- and package. Found by name (the unique index starts with it) and by
-- source name; versions are compared in Go, by scheme.
CREATE TABLE package_versions (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL CHECK (name <> ''),
    version        TEXT NOT NULL CHECK (version <> ''),
    arch           TEXT NOT NULL,
    source         TEXT NOT NULL,
    source_version TEXT NOT NULL,
    scheme         TEXT NOT NULL,
    UNIQUE (name, version, arch, source, source_version, scheme)
) STRICT;
CREATE INDEX package_versions_by_source ON package_versions (source);

-- Which host has which package version: a host's rows are one range of
-- the key, a version's hosts one range of the index.
CREATE TABLE host_packages (
    host_id    INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    package_id INTEGER NOT NULL REFERENCES package_versions (id),
    PRIMARY KEY (host_id, package_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX host_packages_by_package ON host_packages (package_id, host_id);

-- A host's systemd services, replaced with each report.
CREATE TABLE host_services (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    unit    TEXT    NOT NULL CHECK (unit <> ''),
    enabled TEXT    NOT NULL,
    active  TEXT    NOT NULL,
    sub     TEXT    NOT NULL,
    PRIMARY KEY (host_id, unit)
) STRICT, WITHOUT ROWID;
CREATE INDEX host_services_by_unit ON host_services (unit, host_id);

-- A host's listening sockets, replaced with each report, in the order
-- reported (seq): several processes may share a port.
CREATE TABLE host_listeners (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    proto   TEXT    NOT NULL,
    address TEXT    NOT NULL,
    port    INTEGER NOT NULL,
    pid     INTEGER NOT NULL,
    process TEXT    NOT NULL,
    exe     TEXT    NOT NULL,
    package TEXT    NOT NULL,
    PRIMARY KEY (host_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX host_listeners_by_port ON host_listeners (port, host_id);

-- What changed on a host, report by report (store.HostEvent): a host's
-- history is read newest first from (host_id, id); retention deletes by
-- time.
CREATE TABLE host_events (
    id         INTEGER PRIMARY KEY,
    host_id    INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind <> ''),
    subject    TEXT    NOT NULL,
    from_value TEXT    NOT NULL,
    to_value   TEXT    NOT NULL
) STRICT;
CREATE INDEX host_events_by_host ON host_events (host_id, id);
CREATE INDEX host_events_by_at ON host_events (at);
