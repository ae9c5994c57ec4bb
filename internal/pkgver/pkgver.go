package pkgver

import (
	"fmt"
	"strings"
)

// Scheme is a packaging system's version rules: what a host's package
// versions are compared by.
type Scheme string

// The schemes.
const (
	Deb Scheme = "deb" // dpkg: Debian, Ubuntu and their derivatives
	RPM Scheme = "rpm" // rpm: Red Hat, Fedora, AlmaLinux, Rocky, SUSE
)

// ParseScheme reads a scheme's name as users and reports write it.
func ParseScheme(s string) (Scheme, error) {
	switch sc := Scheme(strings.ToLower(strings.TrimSpace(s))); sc {
	case Deb, RPM:
		return sc, nil
	}
	return "", fmt.Errorf("version scheme %q: expected deb or rpm", s)
}

// Valid reports whether s is one of the schemes.
func (s Scheme) Valid() bool { return s == Deb || s == RPM }

// Compare returns -1, 0 or +1 as a is older than, the same as or newer than
// b by the scheme's rules. It takes any strings and always answers, so that
// a search over stored versions never stops at one odd value: on versions
// Check accepts it is exactly the tool's answer; on others it is still a
// total order (see CompareDeb and CompareRPM). A Scheme that is not Deb or
// RPM compares the strings byte by byte.
func (s Scheme) Compare(a, b string) int {
	switch s {
	case Deb:
		return CompareDeb(a, b)
	case RPM:
		return CompareRPM(a, b)
	}
	return strings.Compare(a, b)
}

// Check returns an error, saying what is wrong, if v is not a well-formed
// version of the scheme.
func (s Scheme) Check(v string) error {
	switch s {
	case Deb:
		_, err := ParseDeb(v)
		return err
	case RPM:
		_, err := ParseEVR(v)
		return err
	}
	return fmt.Errorf("version scheme %q: expected deb or rpm", string(s))
}

// VersionError is a version string a scheme refuses, with the reason in
// the tool's own words where it has some.
type VersionError struct {
	Scheme  Scheme
	Version string
	Reason  string
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("%s version %q: %s", e.Scheme, e.Version, e.Reason)
}

// sign maps a difference to -1, 0 or +1.
func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
