// Package inventory serves the host inventory: it stores what workers and
// agents report of their hosts (store.Inventory), answers searches by
// package and version, service, port, release, staleness and advisory, and
// keeps the advisories of a directory of OSV files loaded, loading them
// again when the directory changes.
//
// Versions are compared where SQL cannot: the store finds the package
// versions of a name from its indexes, and they are compared in Go by each
// host's rules (internal/pkgver). An advisory is matched the same way: its
// package names select the candidate hosts from the store, and each
// candidate's packages are checked by the advisory (internal/osv) with the
// host's distribution and release, so a new advisory file or a new report
// counts at the next search, with nothing stored to recompute.
//
// A host is stale when its last report is older than StaleAfter, judged by
// the server's clock when the report was stored, never by the host's.
package inventory
