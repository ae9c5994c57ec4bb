-- 0013: the host inventory: what each host last reported of itself, and
-- what changed between its reports. Mirrors
-- internal/store/sqlite/migrations/0013_inventory.sql; conventions as in
-- 0001.

-- One row per host, told apart by identity: its machine id, or
-- 'hostname:' and its name when it has none. The os-release fields that
-- searches filter on are columns; what is only shown (resources, disks,
-- container runtimes, warnings) is the JSON object facts. os_like is
-- ID_LIKE, space-separated. reported_at is the server's time of the last
-- report (staleness is judged by it), collected_at the host's.
CREATE TABLE hosts (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identity          text        COLLATE "C" NOT NULL UNIQUE CHECK (identity <> ''),
    name              text        COLLATE "C" NOT NULL CHECK (name <> ''),
    machine_id        text        COLLATE "C" NOT NULL,
    os_id             text        COLLATE "C" NOT NULL,
    os_version        text        COLLATE "C" NOT NULL,
    os_codename       text        COLLATE "C" NOT NULL,
    os_like           text        COLLATE "C" NOT NULL,
    os_name           text        NOT NULL,
    scheme            text        COLLATE "C" NOT NULL,
    kernel            text        COLLATE "C" NOT NULL,
    arch              text        COLLATE "C" NOT NULL,
    facts             jsonb       NOT NULL,
    packages          integer     NOT NULL CHECK (packages >= 0),
    collected_at      timestamptz,
    reported_at       timestamptz NOT NULL,
    first_reported_at timestamptz NOT NULL,
    reported_by       text        NOT NULL
);

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
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text   COLLATE "C" NOT NULL CHECK (name <> ''),
    version        text   COLLATE "C" NOT NULL CHECK (version <> ''),
    arch           text   COLLATE "C" NOT NULL,
    source         text   COLLATE "C" NOT NULL,
    source_version text   COLLATE "C" NOT NULL,
    scheme         text   COLLATE "C" NOT NULL,
    UNIQUE (name, version, arch, source, source_version, scheme)
);
CREATE INDEX package_versions_by_source ON package_versions (source);

-- Which host has which package version: a host's rows are one range of
-- the key, a version's hosts one range of the index.
CREATE TABLE host_packages (
    host_id    bigint NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    package_id bigint NOT NULL REFERENCES package_versions (id),
    PRIMARY KEY (host_id, package_id)
);
CREATE INDEX host_packages_by_package ON host_packages (package_id, host_id);

-- A host's systemd services, replaced with each report.
CREATE TABLE host_services (
    host_id bigint NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    unit    text   COLLATE "C" NOT NULL CHECK (unit <> ''),
    enabled text   COLLATE "C" NOT NULL,
    active  text   COLLATE "C" NOT NULL,
    sub     text   COLLATE "C" NOT NULL,
    PRIMARY KEY (host_id, unit)
);
CREATE INDEX host_services_by_unit ON host_services (unit, host_id);

-- A host's listening sockets, replaced with each report, in the order
-- reported (seq): several processes may share a port.
CREATE TABLE host_listeners (
    host_id bigint  NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    proto   text    COLLATE "C" NOT NULL,
    address text    COLLATE "C" NOT NULL,
    port    integer NOT NULL,
    pid     integer NOT NULL,
    process text    NOT NULL,
    exe     text    NOT NULL,
    package text    COLLATE "C" NOT NULL,
    PRIMARY KEY (host_id, seq)
);
CREATE INDEX host_listeners_by_port ON host_listeners (port, host_id);

-- What changed on a host, report by report (store.HostEvent): a host's
-- history is read newest first from (host_id, id); retention deletes by
-- time.
CREATE TABLE host_events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id    bigint      NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL,
    kind       text        COLLATE "C" NOT NULL CHECK (kind <> ''),
    subject    text        NOT NULL,
    from_value text        NOT NULL,
    to_value   text        NOT NULL
);
CREATE INDEX host_events_by_host ON host_events (host_id, id);
CREATE INDEX host_events_by_at ON host_events (at);
