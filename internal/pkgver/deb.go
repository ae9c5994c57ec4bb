package pkgver

import (
	"math"
	"strconv"
	"strings"
)

// DebVersion is a Debian package version: [epoch:]upstream[-revision].
type DebVersion struct {
	Epoch    int
	Upstream string
	Revision string // "" when the version has no hyphen
}

// String writes the version back as dpkg does: the epoch only when it is
// not 0, the revision only when there is one.
func (v DebVersion) String() string {
	s := v.Upstream
	if v.Epoch != 0 {
		s = strconv.Itoa(v.Epoch) + ":" + s
	}
	if v.Revision != "" {
		s += "-" + v.Revision
	}
	return s
}

// Compare returns -1, 0 or +1 as v is older than, the same as or newer
// than w, by dpkg's rules: the epochs as numbers, then the upstream
// versions, then the revisions, the last two by verrevcmp.
func (v DebVersion) Compare(w DebVersion) int {
	switch {
	case v.Epoch > w.Epoch:
		return 1
	case v.Epoch < w.Epoch:
		return -1
	}
	if c := verrevcmp(v.Upstream, w.Upstream); c != 0 {
		return c
	}
	return verrevcmp(v.Revision, w.Revision)
}

// ParseDeb reads a Debian version and checks it as dpkg does (parseversion
// in lib/dpkg/parsehelp.c), with dpkg's messages. What dpkg only warns
// about (an upstream version not starting with a digit, a character no
// version may hold) is an error here too: no package in a dpkg database
// has such a version, so one given to compare with is a mistake.
// Leading and trailing blanks are ignored, as dpkg ignores them.
func ParseDeb(s string) (DebVersion, error) {
	v, reason := parseDeb(s)
	if reason != "" {
		return DebVersion{}, &VersionError{Scheme: Deb, Version: s, Reason: reason}
	}
	return v, nil
}

// CompareDeb compares two version strings by dpkg's rules. Versions
// ParseDeb refuses are compared as well, so the order stays total: the
// epoch is taken only when it is a valid one ending at the first colon,
// and the revision is what follows the last hyphen.
func CompareDeb(a, b string) int {
	return lenientDeb(a).Compare(lenientDeb(b))
}

func lenientDeb(s string) DebVersion {
	if v, reason := parseDeb(s); reason == "" {
		return v
	}
	s = strings.Trim(s, " \t")
	var v DebVersion
	if colon := strings.IndexByte(s, ':'); colon >= 0 {
		if e, reason := debEpoch(s[:colon]); reason == "" {
			v.Epoch, s = e, s[colon+1:]
		}
	}
	v.Upstream = s
	if h := strings.LastIndexByte(s, '-'); h >= 0 {
		v.Upstream, v.Revision = s[:h], s[h+1:]
	}
	return v
}

// parseDeb is ParseDeb without the error value: the reason is "" when s
// is valid.
func parseDeb(s string) (DebVersion, string) {
	str := strings.TrimLeft(s, " \t")
	if str == "" {
		return DebVersion{}, "version string is empty"
	}
	end := strings.IndexAny(str, " \t")
	if end >= 0 {
		if strings.TrimLeft(str[end:], " \t") != "" {
			return DebVersion{}, "version string has embedded spaces"
		}
		str = str[:end]
	}
	var v DebVersion
	if colon := strings.IndexByte(str, ':'); colon >= 0 {
		e, reason := debEpoch(str[:colon])
		if reason != "" {
			return DebVersion{}, reason
		}
		if colon+1 == len(str) {
			return DebVersion{}, "nothing after colon in version number"
		}
		v.Epoch, str = e, str[colon+1:]
	}
	v.Upstream = str
	if h := strings.LastIndexByte(str, '-'); h >= 0 {
		v.Upstream, v.Revision = str[:h], str[h+1:]
		if v.Revision == "" {
			return DebVersion{}, "revision number is empty"
		}
	}
	if v.Upstream == "" {
		return DebVersion{}, "version number is empty"
	}
	if !isDigit(v.Upstream[0]) {
		return DebVersion{}, "version number does not start with digit"
	}
	for i := 1; i < len(v.Upstream); i++ {
		if c := v.Upstream[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".-+~:", rune(c)) {
			return DebVersion{}, "invalid character in version number"
		}
	}
	for i := 0; i < len(v.Revision); i++ {
		if c := v.Revision[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".+~", rune(c)) {
			return DebVersion{}, "invalid character in revision number"
		}
	}
	return v, ""
}

// debEpoch reads the text before a version's first colon as dpkg does,
// with strtol: leading white space and a sign are allowed, then decimal
// digits that must reach the colon.
func debEpoch(s string) (int, string) {
	i := 0
	for i < len(s) && strings.IndexByte(" \t\n\v\f\r", s[i]) >= 0 {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	n, big := 0, false
	for i < len(s) && isDigit(s[i]) {
		if n > (math.MaxInt64-9)/10 {
			big = true
		} else {
			n = n*10 + int(s[i]-'0')
		}
		i++
	}
	switch {
	case i == start:
		return 0, "epoch in version is empty"
	case i != len(s):
		return 0, "epoch in version is not number"
	case neg && (n != 0 || big):
		return 0, "epoch in version is negative"
	case big || n > math.MaxInt32:
		return 0, "epoch in version is too big"
	}
	return n, ""
}

// debOrder is the weight of a character in a run of non-digits: ~ before
// the end of the string (and a digit, which ends the run), the end before
// letters, letters before everything else.
func debOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	switch c := s[i]; {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	default:
		return int(c) + 256
	}
}

// verrevcmp compares upstream versions or revisions as dpkg does:
// alternately a run of non-digits, character by character by debOrder, and
// a run of digits as a number (leading zeros ignored, an empty run 0).
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			if ac, bc := debOrder(a, i), debOrder(b, j); ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		firstDiff := 0
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}
