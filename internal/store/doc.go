// Package store defines how tasuki keeps pipelines, runs, tasks, attempts and
// the event timeline durably. One interface, one driver per database (SQLite in
// internal/store/sqlite, PostgreSQL in internal/store/postgres), and one
// conformance suite in internal/store/storetest that every driver must pass.
//
// Every state change is written together with the timeline records that
// explain it, in one transaction (Apply), so a run's history is never missing
// the reason for its state.
//
// For several servers sharing one database, the store also keeps the
// leadership lease (AcquireLeadership; writes only the leader may make are
// fenced with its term, ApplyFenced) and the hashes of remote workers'
// tokens (CreateToken, TokenByHash).
//
// Datasets are recorded as their updates (RecordDatasetUpdate, or with a
// producing task's success in Apply), read by dataset and time
// (DatasetUpdates, LatestDatasetUpdates). A pipeline started by dataset
// updates keeps a cursor of those it consumed, moved by compare-and-set with
// the run it starts (NewRun.Datasets), as a scheduled run moves its
// schedule: each set of updates starts one run, however many servers see it.
//
// Times are stored in UTC and truncated to the microsecond (the precision of
// PostgreSQL's timestamptz; SQLite keeps integer microseconds to match), so
// every driver returns the same value. Reads return times in time.UTC; the
// zero time.Time means "not set" and round-trips as the zero time.
package store
