// Package sqlite is the store.Store driver for a single SQLite file: the store
// a laptop, a CI job or a single server uses without running a database.
//
// It uses modernc.org/sqlite, a SQLite compiled to Go, so tasuki stays one
// static binary without cgo. SQLite allows one writer at a time, so the driver
// is built around that instead of fighting it:
//
//   - the file is in WAL mode, so readers never wait for the writer;
//   - all writes go through one connection (a *sql.DB with MaxOpenConns(1))
//     whose transactions start with BEGIN IMMEDIATE, so two writers queue in
//     Go instead of failing with SQLITE_BUSY halfway through a transaction;
//   - reads use a separate pool of read-only (query_only) connections;
//   - synchronous=NORMAL: in WAL mode a power loss may drop the last
//     committed transactions but never corrupts the file, and commits do not
//     wait for an fsync each;
//   - temp_store=MEMORY on the writer: SQLite keeps a statement journal for
//     each statement of a transaction that could fail halfway (any INSERT
//     into a table with constraints), in a temporary file by default; in
//     memory, writes batched in one transaction (Apply, CreateBackfill) are
//     about twice as fast;
//   - every write is one transaction, so nothing is ever half-written.
//
// The database holds the parameters and environments of runs, so its file
// (and the -wal and -shm files SQLite creates with the same permissions) is
// readable and writable by its owner only, whatever the umask. OpenFor also
// takes a lock beside it that keeps a server's store its own (see Use).
//
// Times are INTEGER microseconds since the Unix epoch (UTC), NULL for the zero
// time; see the migrations directory for the schema.
package sqlite
