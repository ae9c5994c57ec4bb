// Command bench is tasuki's benchmark harness: it measures tasuki beside the
// floor it cannot beat (the same processes run by xargs or a shell loop) and
// against the targets of the design, every row in the same invocation on the
// same machine, and prints one Markdown table.
//
//	go run ./bench [-quick] [-rows REGEXP] [-bin PATH] [-out FILE] [-reps N] [-profile] [-waits-window D]
//
// bench/run.sh builds the tasuki binary once and runs this program. The table
// goes to stdout and to bench/out/results.md; progress goes to stderr. See
// bench/README.md for what each row means.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// options are the harness's flags.
type options struct {
	quick   bool
	rows    *regexp.Regexp
	bin     string
	outFile string
	reps    int
	profile bool
	source  string // what was built, when not the working tree
	root    string // repository root
	work    string // scratch directory, removed at the end
	outDir  string // bench/out

	// waitsWindow is how long the waits rows measure while every wait
	// waits (0: 30 s, 3 s with -quick).
	waitsWindow time.Duration
}

// row is one line of the table.
type row struct {
	key    string // matched by -rows
	name   string // what was measured
	value  string // tasuki's figure
	base   string // the floor or baseline it is compared with
	ratio  string // tasuki / floor, when that means something
	mem    string // peak memory
	target string
	met    string // "yes", "**NO**" or "" (no target)
	notes  []string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o       options
		rowsExp string
	)
	flag.BoolVar(&o.quick, "quick", false, "a smaller subset that runs in under a minute")
	flag.StringVar(&rowsExp, "rows", "", "run only rows whose key matches this regular expression (keys: proc-…, chain-…, orch-…, server-…, waits-…, map-…, cache-…, hosts-…)")
	flag.StringVar(&o.bin, "bin", "", "tasuki binary to measure (default bench/out/tasuki, built if missing)")
	flag.StringVar(&o.outFile, "out", "", "where to write the table (default bench/out/results.md)")
	flag.IntVar(&o.reps, "reps", 0, "repetitions of each process and orchestration row; the best is reported (default 3, 1 with -quick)")
	flag.DurationVar(&o.waitsWindow, "waits-window", 0, "how long the waits rows measure while every wait waits (default 30s, 3s with -quick)")
	flag.StringVar(&o.source, "source", "", "describe the source the binaries were built from (default: the working tree's commit)")
	flag.BoolVar(&o.profile, "profile", false, "write CPU profiles of tasuki (CLI rows, server, orchestration) to bench/out/profiles (slows rows slightly)")
	var floor time.Duration
	flag.DurationVar(&floor, "timer-floor", 0, "(internal: the waits rows start the harness with it) wake every 10 ms for this long, print how late")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if floor > 0 {
		return timerFloor(os.Stdout, floor)
	}
	re, err := regexp.Compile(rowsExp)
	if err != nil {
		return fmt.Errorf("-rows: %w", err)
	}
	o.rows = re
	if o.reps <= 0 {
		o.reps = 3
		if o.quick {
			o.reps = 1
		}
	}
	if o.root, err = moduleRoot(); err != nil {
		return err
	}
	o.outDir = filepath.Join(o.root, "bench", "out")
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	if o.outFile == "" {
		o.outFile = filepath.Join(o.outDir, "results.md")
	}
	if o.bin == "" {
		o.bin = filepath.Join(o.outDir, "tasuki")
		if _, err := os.Stat(o.bin); err != nil {
			progress("building %s", o.bin)
			cmd := exec.Command("go", "build", "-o", o.bin, "./cmd/tasuki")
			cmd.Dir, cmd.Stdout, cmd.Stderr = o.root, os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("build tasuki: %w", err)
			}
		}
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if o.profile {
		if err := os.MkdirAll(filepath.Join(o.outDir, "profiles"), 0o755); err != nil {
			return err
		}
	}
	if o.work, err = os.MkdirTemp("", "tasuki-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(o.work)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	header := machine(o)
	progress("%s", strings.Join(header, "; "))
	if l := load1(); l >= 2 {
		progress("warning: load average %.2f: other work on this machine will show in the figures", l)
	}
	start := time.Now()
	// The groups run in this order so that the harness is still small when
	// it starts the processes it measures (orchestration grows its heap to
	// hundreds of MB); the table lists them in the order of the brief.
	groups := []struct {
		name  string
		order int
		f     func(context.Context, *options) ([]row, error)
	}{
		{"processes", 0, procRows},
		{"chain", 1, chainRows},
		{"server", 3, serverRows},
		{"orchestration", 2, orchRows},
		{"waits", 4, waitsRows},
		{"maps and cache", 5, mapRows},
		{"host inventory", 6, inventoryRows},
	}
	byOrder := make([][]row, len(groups))
	for _, g := range groups {
		shrink()
		rs, err := g.f(ctx, &o)
		byOrder[g.order] = rs
		if err != nil {
			return fmt.Errorf("%s: %w", g.name, err)
		}
	}
	var rows []row
	for _, rs := range byOrder {
		rows = append(rows, rs...)
	}
	if len(rows) == 0 {
		return fmt.Errorf("no row matches -rows %q", rowsExp)
	}
	header = append(header, fmt.Sprintf("load average after: %s", loadavg()), fmt.Sprintf("harness time: %s", time.Since(start).Round(time.Second)))
	table := render(header, rows, o.quick)
	fmt.Print(table)
	if err := os.WriteFile(o.outFile, []byte(table), 0o644); err != nil {
		return err
	}
	progress("table written to %s", o.outFile)
	return nil
}

// want says whether a row key is selected by -rows.
func (o *options) want(key string) bool { return o.rows.MatchString(key) }

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(data, []byte("module github.com/tasuki-dev/tasuki\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the tasuki repository (go run ./bench)")
		}
		dir = parent
	}
}

// machine describes where and when the figures were taken.
func machine(o options) []string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(data))
	}
	commit := "unknown commit"
	if o.source != "" {
		commit = o.source
	} else if out, err := exec.Command("git", "-C", o.root, "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		commit = "commit " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", o.root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			commit += " (with uncommitted changes in the working tree)"
		}
	}
	mode := "full"
	if o.quick {
		mode = "quick (-quick: smaller sizes, one repetition)"
	}
	return []string{
		time.Now().Format("2006-01-02 15:04 MST"),
		fmt.Sprintf("%d cores (%s), %s, %s", runtime.NumCPU(), cpu, kernel, runtime.Version()),
		commit,
		"mode: " + mode,
		"load average before: " + loadavg(),
	}
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func load1() float64 {
	var l float64
	fmt.Sscan(loadavg(), &l)
	return l
}

// render writes the header, the table and the notes as Markdown.
func render(header []string, rows []row, quick bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tasuki benchmarks\n\n")
	for _, h := range header {
		fmt.Fprintf(&b, "- %s\n", h)
	}
	if quick {
		fmt.Fprintf(&b, "- **quick mode**: sizes are smaller than the targets name; use the full run for figures to quote\n")
	}
	fmt.Fprintf(&b, "\n| # | benchmark | tasuki | floor / baseline | ratio | peak memory | target | met? |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|\n")
	for i, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", i+1, r.name, dash(r.value), dash(r.base), dash(r.ratio), dash(r.mem), dash(r.target), dash(r.met))
	}
	var notes []string
	for i, r := range rows {
		for _, n := range r.notes {
			notes = append(notes, fmt.Sprintf("- %d. %s", i+1, n))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, "\nNotes:\n\n%s\n", strings.Join(notes, "\n"))
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func metStr(ok bool) string {
	if ok {
		return "yes"
	}
	return "**NO**"
}

// secs formats a duration as seconds or milliseconds, 3 significant digits.
func secs(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
}

func mb(bytes int64) string { return fmt.Sprintf("%.0f MB", float64(bytes)/1e6) }

// commas writes n with thousands separators.
func commas(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// best is the shortest of the repetitions: on a shared machine, the one
// least disturbed by other work.
func best(ds []time.Duration) time.Duration { return slices.Min(ds) }

// pairRatios lists a[i]/b[i].
func pairRatios(a, b []time.Duration) string {
	parts := make([]string, len(a))
	for i := range a {
		parts[i] = fmt.Sprintf("%.2f×", float64(a[i])/float64(b[i]))
	}
	return strings.Join(parts, ", ")
}

// percentile is the nearest-rank percentile (q in (0, 1]).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func durList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = secs(d)
	}
	return strings.Join(parts, ", ")
}

// child is a finished process: how long it ran, its peak RSS (its own and
// its waited-for descendants', from rusage) and its output.
type child struct {
	wall   time.Duration
	maxRSS int64
	out    string
}

// runChild runs a command to the end and measures it; with watch, its peak
// RSS too (see rssWatch).
func runChild(ctx context.Context, dir string, watch bool, name string, args ...string) (child, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	parent := selfHWM()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return child{}, err
	}
	var w *rssWatch
	if watch {
		w = watchRSS(cmd.Process.Pid, parent)
	}
	err := cmd.Wait()
	c := child{wall: time.Since(start), out: out.String()}
	if w != nil {
		c.maxRSS = w.result(cmd.ProcessState)
	}
	if err != nil {
		return c, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(c.out, 2000))
	}
	return c, nil
}

// rssWatch finds a child's peak RSS. The rusage of a child (ru_maxrss) is
// not enough alone: Go starts children with vfork semantics (CLONE_VM), and
// exec records the peak of the address space it leaves, which is the
// parent's, so a child's ru_maxrss is never below the harness's own
// high-water mark. When rusage is above the harness's mark, it is the
// child's own peak; otherwise the child's VmHWM, sampled every 5 ms until it
// exits, is used (the last sample; it can only miss growth in the last 5 ms).
type rssWatch struct {
	parent int64 // the harness's VmHWM when the child started
	mu     sync.Mutex
	last   int64 // the child's VmHWM at the last sample
	done   chan struct{}
	wg     sync.WaitGroup
}

func watchRSS(pid int, parent int64) *rssWatch {
	w := &rssWatch{parent: parent, done: make(chan struct{})}
	path := fmt.Sprintf("/proc/%d/status", pid)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if v := procStatus(path, "VmHWM:"); v > 0 {
				w.mu.Lock()
				w.last = max(w.last, v)
				w.mu.Unlock()
			}
			select {
			case <-w.done:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// result stops sampling and returns the child's peak RSS in bytes.
func (w *rssWatch) result(ps *os.ProcessState) int64 {
	close(w.done)
	w.wg.Wait()
	var ru int64
	if ps != nil {
		if r, ok := ps.SysUsage().(*syscall.Rusage); ok {
			ru = int64(r.Maxrss) * 1024
		}
	}
	if ru > w.parent {
		return ru
	}
	return w.last
}

// selfHWM is the harness's own peak RSS.
func selfHWM() int64 { return procStatus("/proc/self/status", "VmHWM:") }

// shrink returns the harness's free memory to the OS and resets its peak RSS
// mark (Linux clear_refs 5), so that children started next inherit a small
// ru_maxrss (see rssWatch).
func shrink() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// writeFile writes text to a new file in dir and returns its path.
func writeFile(dir, name string, write func(io.Writer)) (string, error) {
	path := filepath.Join(dir, name)
	var b bytes.Buffer
	write(&b)
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}
