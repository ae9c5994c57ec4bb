package pkgver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The comparisons are checked against the real tools. Running dpkg
// 100,000 times takes minutes, too long for every test run, so its answers
// are recorded once, with -update-oracle (which needs dpkg, and rpm for the
// rpm file), and replayed by every run; a small live sample on fresh random
// pairs runs whenever the tools are installed, so a recording that went
// stale, or a generator that stopped making hard pairs, still meets the
// real tool.
//
//	go test ./internal/pkgver/ -run Oracle -update-oracle -v

var updateOracle = flag.Bool("update-oracle", false, "run the real dpkg and rpm on the recorded pairs' generators and rewrite testdata/*-oracle.txt.gz")

const (
	dpkgOracleFile  = "testdata/dpkg-oracle.txt.gz"
	dpkgOraclePairs = 100_000
	dpkgOracleSeed  = 15
	rpmOracleFile   = "testdata/rpm-oracle.txt.gz"
	rpmOraclePairs  = 20_000
	rpmOracleSeed   = 15
)

// pair is two versions and the tool's answer for them.
type pair struct {
	a, b string
	want int
}

func TestDpkgOracle(t *testing.T) {
	if *updateOracle {
		recordOracle(t, dpkgOracleFile, "dpkg --compare-versions", dpkgOraclePairs, dpkgOracleSeed, genDebPair, dpkgCompareAll)
	}
	pairs := readOracle(t, dpkgOracleFile)
	if len(pairs) < dpkgOraclePairs {
		t.Fatalf("%s holds %d pairs, want at least %d", dpkgOracleFile, len(pairs), dpkgOraclePairs)
	}
	checkPairs(t, Deb, pairs)
}

func TestRPMOracle(t *testing.T) {
	if *updateOracle {
		recordOracle(t, rpmOracleFile, "rpm.vercmp (rpm --eval)", rpmOraclePairs, rpmOracleSeed, genRPMPair, rpmCompareAll)
	}
	pairs := readOracle(t, rpmOracleFile)
	if len(pairs) < rpmOraclePairs {
		t.Fatalf("%s holds %d pairs, want at least %d", rpmOracleFile, len(pairs), rpmOraclePairs)
	}
	checkPairs(t, RPM, pairs)
}

// TestDpkgLive asks the installed dpkg about a fresh random sample.
func TestDpkgLive(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg is not installed: the recorded answers (TestDpkgOracle) still ran")
	}
	livePairs(t, Deb, 300, genDebPair, dpkgCompareAll)
}

// TestRPMLive asks the installed rpm about a fresh random sample (one rpm
// process answers them all, so the sample is larger than dpkg's).
func TestRPMLive(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm is not installed (apt-get install rpm): the recorded answers (TestRPMOracle) and rpm's vectors still ran")
	}
	livePairs(t, RPM, 3000, genRPMPair, rpmCompareAll)
}

func livePairs(t *testing.T, s Scheme, n int, gen func(*rand.Rand) (string, string), tool func(context.Context, []pair) error) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	pairs := make([]pair, n)
	for i := range pairs {
		pairs[i].a, pairs[i].b = gen(r)
	}
	if err := tool(t.Context(), pairs); err != nil {
		t.Fatal(err)
	}
	checkPairs(t, s, pairs)
}

func checkPairs(t *testing.T, s Scheme, pairs []pair) {
	t.Helper()
	bad := 0
	for _, p := range pairs {
		if err := s.Check(p.a); err != nil {
			t.Errorf("recorded version refused: %v", err)
		}
		got, back := s.Compare(p.a, p.b), s.Compare(p.b, p.a)
		if got != p.want || back != -p.want {
			t.Errorf("%s: Compare(%q, %q) = %d (reversed %d), the tool says %d", s, p.a, p.b, got, back, p.want)
			if bad++; bad == 20 {
				t.Fatal("too many differences")
			}
		}
	}
}

// recordOracle generates pairs from seed, asks the tool and writes them.
func recordOracle(t *testing.T, file, tool string, n int, seed uint64, gen func(*rand.Rand) (string, string), ask func(context.Context, []pair) error) {
	r := rand.New(rand.NewPCG(seed, 0))
	pairs := make([]pair, n)
	for i := range pairs {
		pairs[i].a, pairs[i].b = gen(r)
	}
	start := time.Now()
	if err := ask(t.Context(), pairs); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	fmt.Fprintf(zw, "# %s answers, %d pairs from seed %d, recorded by go test -update-oracle; one pair a line: A TAB B TAB <|=|>\n", tool, n, seed)
	for _, p := range pairs {
		fmt.Fprintf(zw, "%s\t%s\t%s\n", p.a, p.b, symbol(p.want))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d pairs in %s (%d bytes)", file, n, time.Since(start).Round(time.Second), buf.Len())
}

func symbol(c int) string { return [...]string{"<", "=", ">"}[c+1] }

func readOracle(t *testing.T, file string) []pair {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []pair
	sc := bufio.NewScanner(zr)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		want := strings.Index("<=>", f[len(f)-1]) - 1
		if len(f) != 3 || len(f[2]) != 1 || want < -1 {
			t.Fatalf("%s:%d: malformed line %q", file, n, line)
		}
		pairs = append(pairs, pair{a: f[0], b: f[1], want: want})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return pairs
}

// dpkgCompareAll asks dpkg about every pair, a few processes at a time.
func dpkgCompareAll(ctx context.Context, pairs []pair) error {
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range max(2, runtime.NumCPU()) {
		wg.Go(func() {
			for i := range work {
				c, err := dpkgCompare(ctx, pairs[i].a, pairs[i].b)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				pairs[i].want = c
			}
		})
	}
	for i := range pairs {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// dpkgCompare is dpkg --compare-versions: "lt", then if false "gt". A
// warning (on stderr) is an error: the pairs must be versions dpkg takes.
func dpkgCompare(ctx context.Context, a, b string) (int, error) {
	for _, rel := range []struct {
		op string
		c  int
	}{{"lt", -1}, {"gt", 1}} {
		cmd := exec.CommandContext(ctx, "dpkg", "--compare-versions", a, rel.op, b)
		cmd.Env = []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH")}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if stderr.Len() > 0 {
			return 0, fmt.Errorf("dpkg --compare-versions %q %s %q: %s", a, rel.op, b, strings.TrimSpace(stderr.String()))
		}
		var ee *exec.ExitError
		switch {
		case err == nil:
			return rel.c, nil
		case errors.As(err, &ee) && ee.ExitCode() == 1:
		default:
			return 0, fmt.Errorf("dpkg --compare-versions %q %s %q: %w", a, rel.op, b, err)
		}
	}
	return 0, nil
}

// rpmCompareAll asks rpm's rpm.vercmp (what rpm's own tests call) about
// the pairs, a thousand to an rpm process (a command line holds at most
// 128 KiB).
func rpmCompareAll(ctx context.Context, pairs []pair) error {
	for start := 0; start < len(pairs); start += 1000 {
		batch := pairs[start:min(start+1000, len(pairs))]
		var lua strings.Builder
		lua.WriteString("%{lua: local p = {")
		for _, p := range batch {
			if strings.Contains(p.a+p.b, "]==]") || strings.ContainsAny(p.a+p.b, "%{}") {
				return fmt.Errorf("pair %q %q cannot be written in the Lua script", p.a, p.b)
			}
			fmt.Fprintf(&lua, "{[==[%s]==],[==[%s]==]},", p.a, p.b)
		}
		lua.WriteString(`} for _, x in ipairs(p) do print(rpm.vercmp(x[1], x[2]) .. "\n") end}`)
		out, err := exec.CommandContext(ctx, "rpm", "--eval", lua.String()).Output()
		if err != nil {
			return fmt.Errorf("rpm --eval: %w", err)
		}
		lines := strings.Fields(string(out))
		if len(lines) != len(batch) {
			return fmt.Errorf("rpm --eval: %d answers for %d pairs", len(lines), len(batch))
		}
		for i, l := range lines {
			c, err := strconv.Atoi(l)
			if err != nil || c < -1 || c > 1 {
				return fmt.Errorf("rpm --eval: answer %q", l)
			}
			batch[i].want = c
		}
	}
	return nil
}
