// Package storetest is the conformance suite every store.Store driver must
// pass. Drivers call Run from their own tests against a real database (a
// SQLite file, a PostgreSQL server), so the engine, scheduler and API can rely
// on one behaviour whichever database is underneath.
//
// The suite pins down what the store.Store documentation promises: every field
// round-trips (times in UTC, truncated to the microsecond; nil and non-nil
// exit codes; JSON compared by value), Apply is all-or-nothing, lists are
// ordered and paginated by cursor, missing rows are store.ErrNotFound, and
// concurrent writers do not lose each other's changes. For the server (see
// server.go): a reload never resets a schedule, a scheduled tick creates its
// run exactly once however many writers race for it (ErrConflict for the
// others, with nothing written), a backfill and its runs are written whole or
// not at all, queue reads page in both directions, and pruning removes only
// finished runs, with everything that hangs off them. For several servers
// and remote workers (see scaleout.go): one leader at a time however many
// race for the lease, a term that moves on exactly when the holder changes,
// a deposed leader's fenced batch refused whole (store.ErrFenced), and worker
// tokens found by hash only while they are valid. For values not every
// database can hold as given (see text.go): free text stored with U+FFFD in
// place of NUL bytes and invalid UTF-8, names that are not valid text and
// JSON with \u0000 refused, alike in every driver. For datasets (see
// datasets.go): updates page by ID in both directions and by time, the
// newest of each dataset is found, a task's success and its updates commit
// together or not at all, a follower with an ID cursor misses no update
// however many writers race, and a set of updates starts exactly one run
// (the dataset cursor's compare-and-set, alone or with the schedule's).
// For map tasks (see maps.go): an expansion's values come back byte for
// byte from the chunks that hold them, infos round-trip exactly, item rows
// page by item and by state, and a batch's map changes are written with
// the rest of it, as if applied one at a time, or not at all. For the
// content cache (see cache.go): entries are replaced whole and never read
// half written, however many servers write the same keys; expired entries
// are not looked up; eviction takes the expired first, then the least
// recently used past the size bound, a batch at a time. For artifact refs
// (see artifacts.go): a success's files replace what its task (or item)
// recorded before, with the rest of its batch or not at all, and the
// digests refs and cache entries name page in order, each once, until
// their run is pruned or their entry goes. RunTwoStores looks at one
// database through two stores: durations a store records late reach the
// other when their run ends or the store closes.
package storetest
