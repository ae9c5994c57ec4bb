package pkgver

import (
	"math/rand/v2"
	"strings"
)

// The generators of random versions for the oracle tests and the fuzz
// seeds. They build versions from the characters where the rules are
// subtle (digits with leading zeros, letters, ~, +, ., - and :; for rpm
// also ^ and _) and make most pairs near each other, since two random
// strings usually differ at their first character and test little.

const (
	debUpstreamChars = "0000111229abzAZ~~+..-:"
	debRevisionChars = "00112349abzZ~~++.."
	rpmChars         = "000112239abzAZ~~^^.._+"
)

func pick(r *rand.Rand, chars string) byte { return chars[r.IntN(len(chars))] }

// genDeb returns a version ParseDeb accepts (and so dpkg, without warning).
func genDeb(r *rand.Rand) string {
	for {
		if v := rawDeb(r); validDeb(v) {
			return v
		}
	}
}

func rawDeb(r *rand.Rand) string {
	var b strings.Builder
	hasEpoch := r.IntN(5) == 0
	if hasEpoch {
		b.WriteString([]string{"0", "1", "2", "01", "10", "00"}[r.IntN(6)] + ":")
	}
	hasRev := r.IntN(5) < 3
	b.WriteByte(pick(r, "0123456789"))
	for n := r.IntN(9); n > 0; n-- {
		c := pick(r, debUpstreamChars)
		if c == '-' && !hasRev || c == ':' && !hasEpoch {
			c = '.'
		}
		b.WriteByte(c)
	}
	if hasRev {
		b.WriteByte('-')
		for n := 1 + r.IntN(6); n > 0; n-- {
			b.WriteByte(pick(r, debRevisionChars))
		}
	}
	return b.String()
}

func validDeb(v string) bool { _, err := ParseDeb(v); return err == nil }

// mutate changes s a little: one character replaced, inserted or removed,
// or a suffix added that the rules treat specially.
func mutate(r *rand.Rand, s, chars string) string {
	i := r.IntN(len(s) + 1)
	switch r.IntN(8) {
	case 0, 1:
		if i < len(s) {
			return s[:i] + string(pick(r, chars)) + s[i+1:]
		}
		return s + string(pick(r, chars))
	case 2, 3:
		return s[:i] + string(pick(r, chars)) + s[i:]
	case 4:
		if i < len(s) {
			return s[:i] + s[i+1:]
		}
		return s
	case 5:
		return s + []string{"~", "~~", "+", ".0", "0", "a", "~1", "^", "^1", ".", "-1", "00"}[r.IntN(12)]
	case 6:
		return s[:i] + "0" + s[i:]
	}
	return s + string(pick(r, chars)) + string(pick(r, chars))
}

// genPair returns two versions to compare: usually the second a mutation
// of the first, sometimes the same, sometimes unrelated.
func genPair(r *rand.Rand, gen func(*rand.Rand) string, valid func(string) bool, chars string) (string, string) {
	a := gen(r)
	switch n := r.IntN(20); {
	case n == 0:
		return a, a
	case n < 5:
		return a, gen(r)
	}
	for range 20 {
		b := a
		for k := 1 + r.IntN(2); k > 0; k-- {
			b = mutate(r, b, chars)
		}
		if valid(b) {
			return a, b
		}
	}
	return a, gen(r)
}

func genDebPair(r *rand.Rand) (string, string) {
	return genPair(r, genDeb, validDeb, debUpstreamChars)
}

// genRPM returns an EVR that ParseEVR accepts.
func genRPM(r *rand.Rand) string {
	for {
		if v := rawRPM(r); validRPM(v) {
			return v
		}
	}
}

func rawRPM(r *rand.Rand) string {
	var b strings.Builder
	if r.IntN(5) == 0 {
		b.WriteString([]string{"0", "1", "2", "01", "10"}[r.IntN(5)] + ":")
	}
	for n := 1 + r.IntN(8); n > 0; n-- {
		b.WriteByte(pick(r, rpmChars))
	}
	if r.IntN(5) < 3 {
		b.WriteByte('-')
		for n := 1 + r.IntN(6); n > 0; n-- {
			b.WriteByte(pick(r, rpmChars))
		}
	}
	return b.String()
}

func validRPM(v string) bool { _, err := ParseEVR(v); return err == nil }

func genRPMPair(r *rand.Rand) (string, string) {
	return genPair(r, genRPM, validRPM, rpmChars+"-:")
}
