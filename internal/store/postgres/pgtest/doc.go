// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the test server, dropped when the test ends. Any package's tests
// can use it (the store driver's conformance tests, server and chaos tests),
// and tests in parallel, or in parallel packages, never see each other's
// rows.
//
// The server is found through $TASUKI_TEST_POSTGRES, by default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable (the project's
// machines run PostgreSQL there with trust authentication). When it cannot
// be reached the test is skipped with a message saying how to enable it,
// except under CI=true, where it fails: CI must never pass by silently
// skipping the PostgreSQL tests.
//
// Tests that stop, restart or cut off PostgreSQL never touch that shared
// server: Private starts one of the test's own (initdb and pg_ctl in a
// temporary directory, on a free port), and NewProxy puts a TCP proxy in
// front of a server that the test can cut, restore, or have lose the answer
// of a COMMIT.
package pgtest
