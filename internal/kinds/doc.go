// Package kinds assembles the registry of every kind of work and every wait
// condition this build of tasuki runs: shell commands (internal/attempt),
// HTTP requests (internal/httptask), SQL statements (internal/sqltask), and
// the waits for files, HTTP answers and SQL conditions. The waits for other
// pipelines' runs and for datasets read the store, so executors that have
// one (the server, 'tasuki run') add them with WithStore.
//
// It is its own package because package attempt, which defines the seam,
// cannot import the packages that implement it.
package kinds
