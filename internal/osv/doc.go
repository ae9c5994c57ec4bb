// Package osv reads security advisories in the OSV format (the schema at
// ossf.github.io/osv-schema, in which Debian, Ubuntu, AlmaLinux, Rocky
// Linux, Red Hat and others publish theirs) and tells whether a host's
// installed package is affected, and by which fixed version.
//
// A DB is loaded from a directory of OSV JSON files, offline: a file that
// cannot be read or is not a valid advisory is reported with its path and
// the reason, and the others still load. Advisories are found by id or by
// alias (CVE-2020-25681 finds DSA-4844-1 and every other advisory that
// lists it).
//
// Matching follows how distributions key their advisories: an affected
// entry names an ecosystem with a release ("Debian:10", "Ubuntu:22.04:LTS",
// "Rocky Linux:9") and a package. Debian-family advisories name source
// packages (a DSA lists dnsmasq, which covers dnsmasq-base), so on deb hosts
// the source package and its version are compared first; RPM-family ones
// name binary packages. Versions are compared by the ecosystem's rules
// (internal/pkgver), and ECOSYSTEM ranges are evaluated as the OSV schema
// says: sorted events, introduced "0" before everything, a version affected
// from an introduced event until the next fixed one (or past a
// last_affected).
package osv
