// Package pkgver compares the versions of installed packages the way each
// packaging system does, so that "is this host's dnsmasq older than the
// fixed one?" gets the answer the host's own package manager would give.
//
// Two schemes are implemented, each to the letter of its tool:
//
//   - Deb: dpkg's rules (lib/dpkg/version.c): [epoch:]upstream[-revision];
//     the epoch compared as a number, then upstream and revision each as
//     alternating runs of non-digits (compared character by character, with
//     ~ before the end of the string, the end before letters, letters before
//     every other character) and of digits (compared as numbers). ParseDeb
//     validates as dpkg does and returns its messages.
//   - RPM: rpm's rpmvercmp and EVR comparison (rpmio/rpmver.c): the epoch,
//     the version and the release, each split into alphabetic and numeric
//     segments (separators ignored), a numeric segment newer than an
//     alphabetic one, ~ older than anything including the end, ^ newer than
//     the end but older than anything else.
//
// Both are checked against the real tools: dpkg --compare-versions on
// 100,000 random pairs of the tricky alphabet, recorded in testdata and
// replayed by every test run (a live sample runs when dpkg is installed), and
// rpm's own published vectors plus the real rpm when it is installed.
//
// Scheme names the rules a host follows ("deb" or "rpm"); Scheme.Compare
// is what search and advisory matching call.
package pkgver
