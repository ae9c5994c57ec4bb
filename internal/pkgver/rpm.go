package pkgver

import "strings"

// EVR is an RPM package version: [epoch:]version[-release].
type EVR struct {
	Epoch   string // digits; "" when the string has none, which compares as 0
	Version string
	// Release is what follows the last hyphen; HasRelease tells an empty
	// release ("1.0-") from none ("1.0"), which rpm orders apart: a
	// version without a release is older than the same with one.
	Release    string
	HasRelease bool
}

// String writes the EVR back in the form it was read.
func (v EVR) String() string {
	s := v.Version
	if v.Epoch != "" {
		s = v.Epoch + ":" + s
	}
	if v.HasRelease {
		s += "-" + v.Release
	}
	return s
}

// Compare returns -1, 0 or +1 as v is older than, the same as or newer
// than w, as rpm's rpmverCmp does (which rpm's Lua rpm.vercmp, used by its
// own tests, calls): the epochs (a missing one is 0), then the versions,
// then the releases, each by Vercmp; a missing release is older than any
// release.
func (v EVR) Compare(w EVR) int {
	ve, we := v.Epoch, w.Epoch
	if ve == "" {
		ve = "0"
	}
	if we == "" {
		we = "0"
	}
	if c := Vercmp(ve, we); c != 0 {
		return c
	}
	if c := Vercmp(v.Version, w.Version); c != 0 {
		return c
	}
	switch {
	case v.HasRelease && w.HasRelease:
		return Vercmp(v.Release, w.Release)
	case v.HasRelease:
		return 1
	case w.HasRelease:
		return -1
	}
	return 0
}

// splitEVR splits s as rpm's parseEVR does: leading digits followed by a
// colon are the epoch (an empty one is "0"), the last hyphen after them
// starts the release.
func splitEVR(s string) EVR {
	var v EVR
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	v.Version = s
	if i < len(s) && s[i] == ':' {
		v.Epoch, v.Version = s[:i], s[i+1:]
		if v.Epoch == "" {
			v.Epoch = "0"
		}
	}
	if h := strings.LastIndexByte(v.Version, '-'); h >= 0 {
		v.Version, v.Release, v.HasRelease = v.Version[:h], v.Version[h+1:], true
	}
	return v
}

// ParseEVR reads an RPM version and checks it: an epoch, if any, of
// digits; a version and, if there is a hyphen, a release, each non-empty
// and made of the characters rpm allows in them (letters, digits and
// . _ + ~ ^). rpm itself compares any string; these are the rules
// rpmbuild enforces on the packages it makes.
func ParseEVR(s string) (EVR, error) {
	bad := func(reason string) (EVR, error) {
		return EVR{}, &VersionError{Scheme: RPM, Version: s, Reason: reason}
	}
	if s == "" {
		return bad("version string is empty")
	}
	v := splitEVR(s)
	if strings.ContainsRune(s, ':') && v.Epoch == "" {
		return bad("epoch in version is not a number")
	}
	if s[0] == ':' {
		return bad("epoch in version is empty")
	}
	if v.Version == "" {
		return bad("version number is empty")
	}
	if v.HasRelease && v.Release == "" {
		return bad("release number is empty")
	}
	if len(v.Epoch) > 10 || len(v.Epoch) == 10 && v.Epoch > "4294967295" {
		return bad("epoch in version is too big")
	}
	for _, part := range []struct{ what, s string }{{"version", v.Version}, {"release", v.Release}} {
		for i := 0; i < len(part.s); i++ {
			if c := part.s[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune("._+~^", rune(c)) {
				if c == '-' {
					return bad("more than one hyphen: the version and release may not hold one")
				}
				return bad("invalid character in " + part.what + " number")
			}
		}
	}
	return v, nil
}

// CompareRPM compares two version strings as rpm does: split as rpm splits
// them (parseEVR), then EVR.Compare. It answers for any strings, as rpm
// does.
func CompareRPM(a, b string) int {
	return splitEVR(a).Compare(splitEVR(b))
}

// Vercmp is rpm's rpmvercmp: compares two version or release strings
// segment by segment. Characters other than ASCII letters, digits, ~ and ^
// only separate segments. ~ sorts before anything, the end of the string
// included; ^ sorts after the end of the string but before anything else.
// A segment is a run of digits (compared as a number, leading zeros
// ignored) or of letters (compared as bytes); a numeric segment is newer
// than an alphabetic one. When all segments compared equal, the string with
// segments left is newer.
func Vercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		ca, cb := at(a, i), at(b, j)
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca == '^' || cb == '^' {
			switch {
			case i == len(a):
				return -1
			case j == len(b):
				return 1
			case ca != '^':
				return 1
			case cb != '^':
				return -1
			}
			i++
			j++
			continue
		}
		if i == len(a) || j == len(b) {
			break
		}
		si, sj := i, j
		isNum := isDigit(a[i])
		if isNum {
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
		} else {
			for i < len(a) && isAlpha(a[i]) {
				i++
			}
			for j < len(b) && isAlpha(b[j]) {
				j++
			}
		}
		if sj == j {
			// The segments are of different kinds: b's is empty of a's.
			if isNum {
				return 1
			}
			return -1
		}
		sa, sb := a[si:i], b[sj:j]
		if isNum {
			sa, sb = strings.TrimLeft(sa, "0"), strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				return sign(len(sa) - len(sb))
			}
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}

// at is s[i], or 0 past its end (C's terminating NUL).
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
