// Package sqltask runs SQL in the executor's own process: the sql task kind
// (statements in one transaction) and the sql wait condition (a query
// checked until its first column is true), against PostgreSQL,
// MySQL/MariaDB and SQLite.
//
// Without it, a pipeline would run SQL through a shell and a database
// client: one more program to install on every worker, parameters spliced
// into the text by quoting in sh (an injection waiting for a quote in a
// value), a password on a command line, and no transaction across
// statements unless the script remembers one. Here a parameter's value is
// always bound (":name" becomes the driver's placeholder; the scanner steps
// over strings, quoted names, comments and dollar quotes so a ':' inside
// them stays text), the statements commit together or not at all, a
// password never appears in a message or a log line, and a stopped attempt
// rolls back before it is reported, so nothing it started changes data
// afterwards.
//
// A wait is checked every few seconds for as long as it waits; a Pool keeps
// one *sql.DB per database across checks and attempts so that each check
// does not pay for a new connection.
package sqltask
