-- 0011: fan-out: the items of map tasks, the content cache, and the
-- artifact files tasks produced. Mirrors
-- internal/store/postgres/migrations/0011_fanout.sql; conventions as in
-- 0001.
--
-- None of the rows of a run here has a foreign key to its run's rows
-- except task_maps: a map of a million items would pay a parent lookup per
-- item row written. Apply checks the map (or the task) once per change
-- instead, and PruneRuns deletes them with their run.

-- One row per expanded map task of a run: the number of items, the
-- dispatch cursor, the counts by state (a JSON object) and the slowest
-- items (a JSON array of store.SlowItem), as the coordinator last wrote
-- them. A status request reads this row, never the item rows.
CREATE TABLE task_maps (
    run_id     INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    items      INTEGER NOT NULL CHECK (items >= 0),
    next       INTEGER NOT NULL CHECK (next >= 0),
    counts     TEXT    CHECK (counts IS NULL OR json_valid(counts)),
    slowest    TEXT    CHECK (slowest IS NULL OR json_valid(slowest)),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, idx),
    FOREIGN KEY (run_id, idx) REFERENCES tasks (run_id, idx) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The item values of a map, written once when it is expanded:
-- store.MapChunkItems values a row, one compact JSON value a line, so a
-- page of values reads one or two rows. Rows are large (a chunk of a
-- million-item map is some 15 kB): a rowid table, not a clustered one.
CREATE TABLE map_chunks (
    run_id INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    chunk  INTEGER NOT NULL CHECK (chunk >= 0),
    data   TEXT    NOT NULL,
    PRIMARY KEY (run_id, idx, chunk)
) STRICT;

-- One row per item whose state is worth keeping (it ended, or waits for a
-- retry), clustered by item, so a map's rows are one range of the key in
-- item order. cached_from: the run whose cached result the item reused,
-- NULL when it ran.
CREATE TABLE map_items (
    run_id      INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    item        INTEGER NOT NULL CHECK (item >= 0),
    state       TEXT    NOT NULL CHECK (state <> ''),
    attempt     INTEGER NOT NULL DEFAULT 0,
    spent       INTEGER NOT NULL DEFAULT 0,
    worker      TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER,
    finished_at INTEGER,
    ready_at    INTEGER,
    exit_code   INTEGER,
    message     TEXT    NOT NULL DEFAULT '',
    result      TEXT    CHECK (result IS NULL OR json_valid(result)),
    cached_from INTEGER,
    log         TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, idx, item)
) STRICT, WITHOUT ROWID;

-- The items of a map in one state, in item order: a page of the failed
-- items of a million reads the page.
CREATE INDEX map_items_by_state ON map_items (run_id, idx, state, item);

-- The content cache: one row per key (hex SHA-256 of what a result depends
-- on), replaced whole when written again. run_id is not a foreign key: an
-- entry outlives the run that computed it. outputs is a JSON array of
-- artifact files. size is what the entry counts against the cache's bound.
CREATE TABLE cache_entries (
    key        TEXT    PRIMARY KEY CHECK (key <> ''),
    pipeline   TEXT    NOT NULL,
    task_id    TEXT    NOT NULL,
    run_id     INTEGER NOT NULL,
    item       INTEGER NOT NULL CHECK (item >= -1),
    result     TEXT    CHECK (result IS NULL OR json_valid(result)),
    outputs    TEXT    CHECK (outputs IS NULL OR json_valid(outputs)),
    size       INTEGER NOT NULL CHECK (size >= 0),
    created_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;

-- Eviction: the least recently used first; size in the index so the
-- cache's total is summed from the index alone.
CREATE INDEX cache_entries_lru ON cache_entries (used_at, size);
-- Eviction of expired entries: only entries with an expiry are in it.
CREATE INDEX cache_entries_expiry ON cache_entries (expires_at) WHERE expires_at IS NOT NULL;
-- ListCache and PurgeCache by pipeline, and by pipeline and task, in key
-- order.
CREATE INDEX cache_entries_by_pipeline ON cache_entries (pipeline, key);
CREATE INDEX cache_entries_by_task ON cache_entries (pipeline, task_id, key);

-- The digests an entry's outputs name, so a sweep of the artifact store
-- reads an index of digests instead of the JSON of every entry. Deleted
-- with their entry.
CREATE TABLE cache_outputs (
    key    TEXT NOT NULL REFERENCES cache_entries (key) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    PRIMARY KEY (key, digest)
) STRICT, WITHOUT ROWID;
CREATE INDEX cache_outputs_by_digest ON cache_outputs (digest);

-- The output files of a task (item -1) or of an item of a map, written
-- with its success, deleted with its run. mode: permission bits, 0 for
-- 0644.
CREATE TABLE artifacts (
    run_id INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    item   INTEGER NOT NULL CHECK (item >= -1),
    path   TEXT    NOT NULL CHECK (path <> ''),
    digest TEXT    NOT NULL CHECK (digest <> ''),
    size   INTEGER NOT NULL CHECK (size >= 0),
    mode   INTEGER NOT NULL DEFAULT 0 CHECK (mode >= 0),
    PRIMARY KEY (run_id, idx, item, path)
) STRICT, WITHOUT ROWID;

-- What a sweep of the artifact store must keep: the distinct digests, in
-- order (together with cache_outputs_by_digest).
CREATE INDEX artifacts_by_digest ON artifacts (digest);
