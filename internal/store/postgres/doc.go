// Package postgres is the store.Store driver for PostgreSQL: the store for
// teams that run several tasuki servers (for availability) and remote workers
// against one database, where SQLite's single file and single writer are not
// enough.
//
// It uses github.com/jackc/pgx/v5 directly (not database/sql) for what makes
// PostgreSQL fast from Go: a connection pool (pgxpool), statements prepared
// once per connection and cached, pipelined batches (pgx.Batch) and the COPY
// protocol. The driver is built around a few rules:
//
//   - Every write is one transaction, so nothing is ever half-written, and a
//     write costs few round trips: Apply sends all of its statements in one
//     pipelined batch whatever the number of changes, and writes the rows of
//     a large batch with set-based statements over arrays (UPDATE ... FROM
//     unnest(...)), so 64 task completions are five statements, not two
//     hundred.
//   - Large writes stream: the tasks of a big run and the runs of a backfill
//     go through COPY.
//   - The database enforces what several servers could otherwise race on:
//     the unique index on (pipeline, interval_start) of scheduled runs, and
//     the compare-and-set of a pipeline's next fire time, which PostgreSQL
//     re-checks on the newest row version after waiting for its lock.
//   - Apply locks the runs it changes, in id order, before touching their
//     tasks: writers of the same run queue up instead of deadlocking, and a
//     run's events become visible in the order of their seq, so Events with
//     afterSeq is a safe resume cursor.
//   - Lists are index range reads bounded by the page size (the same indexes
//     as SQLite); nothing a page, a count of active runs or a prune does
//     grows with the history.
//
// Schema changes are embedded, numbered migrations (see the migrations
// directory), applied by Open. Each runs in its own transaction under an
// advisory lock, so several servers starting at once against a new or old
// database migrate it exactly once.
//
// Ids (run ids, event seqs) come from sequences and are assigned when a row
// is inserted, not when its transaction commits, so with concurrent writers
// a smaller id can become visible after a larger one. A cursor kept across
// calls (ListRuns with AfterID, Events across runs) can therefore pass over
// a row that commits late; within one run, Apply's run lock keeps events in
// seq order, so Events(runID, afterSeq) is a safe resume cursor.
//
// The one difference from SQLite that callers may notice: jsonb normalises
// JSON (key order, whitespace; the contract compares JSON by value). What
// PostgreSQL cannot store as given (the JSON escape \u0000; NUL bytes and
// invalid UTF-8 in text) is handled by the rules every driver shares (see
// store.CheckJSON, store.CheckText and store.Text), so both drivers accept,
// refuse and read back the same values.
package postgres
