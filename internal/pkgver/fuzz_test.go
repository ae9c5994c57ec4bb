package pkgver

import (
	"math/rand/v2"
	"testing"
)

// FuzzCompare checks that both schemes order any strings totally and
// consistently: Compare(a, a) == 0, antisymmetry, and transitivity on the
// triple (every order of it), so that sorting and range checks over stored
// versions behave whatever a host reports. The seeds are the tests' tricky
// pairs and generated near-misses; they run in every test run.
func FuzzCompare(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		a, b := genDebPair(r)
		f.Add(a, b, genDeb(r))
		a, b = genRPMPair(r)
		f.Add(a, b, genRPM(r))
	}
	for _, c := range rpmVectors[:40] {
		f.Add(c.a, c.b, "1.0~rc1^git1")
	}
	f.Add("1.0", "1.0~", "1.0~~")
	f.Add("1:1.0", ":1", "-1:0")
	f.Add("1.0-", "1.0", "1.0-0")
	f.Add("\x00~", "~\x00", "")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, s := range []Scheme{Deb, RPM} {
			vs := []string{a, b, c}
			for _, x := range vs {
				if got := s.Compare(x, x); got != 0 {
					t.Fatalf("%s: Compare(%q, %q) = %d", s, x, x, got)
				}
			}
			for _, x := range vs {
				for _, y := range vs {
					xy, yx := s.Compare(x, y), s.Compare(y, x)
					if xy != -yx || xy < -1 || xy > 1 {
						t.Fatalf("%s: Compare(%q, %q) = %d but Compare(%q, %q) = %d", s, x, y, xy, y, x, yx)
					}
					for _, z := range vs {
						if xy <= 0 && s.Compare(y, z) <= 0 && s.Compare(x, z) > 0 {
							t.Fatalf("%s: %q <= %q <= %q but %q > %q", s, x, y, z, x, z)
						}
					}
				}
			}
		}
	})
}
