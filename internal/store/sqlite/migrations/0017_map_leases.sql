-- 0017: which remote worker was handed which items of a map (store.MapLease),
-- so a server taking over from a leader that died adopts the items workers
-- still run instead of running them again. Mirrors
-- internal/store/postgres/migrations/0017_map_leases.sql; conventions as in
-- 0001.
--
-- One row per hand-out (a bundle of a map's items, or a lease of items
-- alone), written when the broker hands it out (internal/lease/adopt.go
-- says when exactly): a row per lease request of a worker, not per item. units is a JSON array of store.LeasedUnit. Rows are
-- deleted with their map's end, a new expansion, or their run (cascading
-- from task_maps); meanwhile the item rows say which of their units ended.
CREATE TABLE map_leases (
    run_id     INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    id         TEXT    NOT NULL CHECK (id <> ''),
    worker     TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    units      TEXT    NOT NULL CHECK (json_valid(units)),
    PRIMARY KEY (run_id, idx, id),
    FOREIGN KEY (run_id, idx) REFERENCES task_maps (run_id, idx) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
