package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The waits rows answer the question the waits were built for: can one
// server hold 10,000 waits with a 1 s poke without an execution slot each,
// in under 200 MB, poking each within 100 ms of its time? Each shape is
// measured twice: by a real `tasuki server` process seen from outside (RSS
// and CPU from /proc, task states through the API), and by the runner in
// this process, where the Poker's Late hook gives the lateness of every
// check and the Go runtime gives goroutines and heap.

// waitShape is how the waits are spread: runs × tasks, all waiting at once.
type waitShape struct {
	runs, tasks int
}

func (s waitShape) total() int  { return s.runs * s.tasks }
func (s waitShape) key() string { return fmt.Sprintf("%dx%d", s.runs, s.tasks) }
func (s waitShape) String() string {
	return fmt.Sprintf("%s file waits (%s × %s tasks)", commas(s.total()), runsWord(s.runs), commas(s.tasks))
}

func runsWord(n int) string {
	if n == 1 {
		return "1 run"
	}
	return commas(n) + " runs"
}

// waitsPoke is the poke interval of every wait, the 1 s.
const waitsPoke = time.Second

// Goals of the issue.
const (
	waitsMemoryGoal   = 200_000_000 // bytes
	waitsLatenessGoal = 100 * time.Millisecond
)

// waitsRows measures 10,000 concurrent waits (1,000 with -quick) in two
// shapes, on a real server and in this process.
func waitsRows(ctx context.Context, o *options) ([]row, error) {
	shapes := []waitShape{{runs: 100, tasks: 100}, {runs: 1, tasks: 10_000}}
	if o.quick {
		shapes = []waitShape{{runs: 10, tasks: 100}, {runs: 1, tasks: 1_000}}
	}
	window := o.waitsWindow
	if window <= 0 {
		window = 30 * time.Second
		if o.quick {
			window = 3 * time.Second
		}
	}
	var rows []row
	// Servers first: the in-process rows grow this harness's heap, which
	// a child's rusage would inherit (see rssWatch).
	for _, sh := range shapes {
		key := "waits-server-" + sh.key()
		if !o.want(key) {
			continue
		}
		shrink()
		m, err := waitsServer(ctx, o, sh, window)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", key, err)
		}
		rows = append(rows, m.row(key))
	}
	for _, sh := range shapes {
		key := "waits-inproc-" + sh.key()
		if !o.want(key) {
			continue
		}
		shrink()
		dir := filepath.Join(o.work, key)
		var floor func() (floorResult, error)
		atWindow := func() func() {
			var stopProfile func()
			if o.profile {
				stopProfile = startProfile(filepath.Join(o.outDir, "profiles", key+".prof"))
			}
			floor = startFloor(ctx, window)
			return func() {
				if stopProfile != nil {
					stopProfile()
				}
			}
		}
		m, err := waitsInProcess(ctx, dir, sh, waitsPoke, window, atWindow)
		if err == nil {
			m.floor, err = floor()
		}
		os.RemoveAll(dir)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", key, err)
		}
		progress("%s: lateness p50 %s p99 %s max %s (%s checks), slots used %d, goroutines %d (%d before), live heap %s more",
			key, secs(m.inWindow.quantile(0.5)), secs(m.inWindow.quantile(0.99)), secs(m.inWindow.max), commas(int(m.inWindow.count())),
			m.maxSlots, m.maxGo, m.baseGoroutines, mb(int64(m.liveHeap)-int64(m.baseHeap)))
		rows = append(rows, m.row(key))
	}
	return rows, nil
}

// waitPipeline writes a pipeline of n file waits, each on its own file in
// the directory the run's parameter dir names (so runs wait on different
// files), poked every poke.
func waitPipeline(w io.Writer, name string, n int, poke time.Duration) {
	fmt.Fprintf(w, "name: %s\ndescription: %d file waits on files that do not exist yet\n", name, n)
	fmt.Fprintf(w, "params:\n  - name: dir\n    type: string\n    default: /nonexistent\ntasks:\n")
	for i := range n {
		fmt.Fprintf(w, "  - id: w%05d\n    wait: {file: \"${TASUKI_PARAM_DIR}/w%05d\", poke: %s}\n", i, i, poke)
	}
}

// waitFile is the file task i of a run waits for, in the run's directory.
func waitFile(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("w%05d", i)) }

// latencies is a histogram of durations in buckets 1 % wide from 1 µs up,
// so that the hundreds of thousands of checks of a window cost a few kB
// (recording them must not be what the heap figure measures) and every
// percentile is within 1 % of the true one.
type latencies struct {
	mu     sync.Mutex
	counts []uint64
	n      uint64
	max    time.Duration
}

const bucketGrowth = 1.01

func bucketOf(d time.Duration) int {
	if d < time.Microsecond {
		return 0
	}
	return 1 + int(math.Log(float64(d)/float64(time.Microsecond))/math.Log(bucketGrowth))
}

// bucketTop is the upper bound of bucket i.
func bucketTop(i int) time.Duration {
	return time.Duration(float64(time.Microsecond) * math.Pow(bucketGrowth, float64(i)))
}

func (l *latencies) add(d time.Duration) {
	d = max(d, 0)
	b := bucketOf(d)
	l.mu.Lock()
	defer l.mu.Unlock()
	if b >= len(l.counts) {
		l.counts = append(l.counts, make([]uint64, b+1-len(l.counts)+64)...)
	}
	l.counts[b]++
	l.n++
	l.max = max(l.max, d)
}

// quantile is the nearest-rank quantile q in (0, 1]: the upper bound of
// its bucket, or the largest value seen if smaller.
func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(l.n)))
	var seen uint64
	for i, c := range l.counts {
		seen += c
		if seen >= rank {
			return min(bucketTop(i), l.max)
		}
	}
	return l.max
}

// count returns how many durations were recorded.
func (l *latencies) count() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// waitsServerMeasure is what a `tasuki server` holding the waits showed.
type waitsServerMeasure struct {
	shape                waitShape
	window               time.Duration
	idleCPU, idleWall    time.Duration
	idleRSS              int64
	ramp                 time.Duration // first trigger → every task waiting
	cpu                  time.Duration // in the window
	windowRSS, windowHWM int64
	states               map[string]int // after the window
	probe                []time.Duration
	release              time.Duration // last file written → last run finished (server clock)
	writeFiles           time.Duration
	afterDue             []time.Duration // sorted: success − first poke due once the file existed
	lifeRSS              int64
	floor                floorResult // in the window
	log                  string
}

// apiRun is the part of a run's JSON the waits rows read.
type apiRun struct {
	ID         int64      `json:"id"`
	State      string     `json:"state"`
	FinishedAt *time.Time `json:"finished_at"`
	Tasks      []struct {
		ID         string     `json:"id"`
		State      string     `json:"state"`
		StartedAt  *time.Time `json:"started_at"`
		FinishedAt *time.Time `json:"finished_at"`
	} `json:"tasks"`
}

// waitsServer runs a real server holding shape's waits: idle baseline,
// trigger until every task waits, the measured window, a plain task
// triggered beside the waits, then the files written and every run
// awaited.
func waitsServer(ctx context.Context, o *options, sh waitShape, window time.Duration) (*waitsServerMeasure, error) {
	m := &waitsServerMeasure{shape: sh, window: window, states: map[string]int{}}
	dir := filepath.Join(o.work, "waits-server-"+sh.key())
	defer os.RemoveAll(dir)
	pipelines, home, data := filepath.Join(dir, "pipelines"), filepath.Join(dir, "home"), filepath.Join(dir, "data")
	for _, d := range []string{pipelines, home, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	name := "waits-" + sh.key()
	if _, err := writeFile(pipelines, name+".yaml", func(w io.Writer) { waitPipeline(w, name, sh.tasks, waitsPoke) }); err != nil {
		return nil, err
	}
	probe := "name: probe\ndescription: one plain task, to show that slots are free while the waits wait\ntasks:\n  - id: t\n    run: [\"true\"]\n"
	if err := os.WriteFile(filepath.Join(pipelines, "probe.yaml"), []byte(probe), 0o644); err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, o, home, pipelines, "waits-"+sh.key())
	if err != nil {
		return nil, err
	}
	m.log = srv.logPath
	defer func() {
		if srv.running() {
			srv.kill()
		}
	}()
	pid := srv.cmd.Process.Pid
	fail := func(err error) (*waitsServerMeasure, error) {
		return nil, fmt.Errorf("%w (server log: %s)", err, srv.logPath)
	}

	// Idle: what the server costs holding nothing, the baseline.
	idle := min(5*time.Second, window/3)
	srv.setPhase("idle")
	c0, t0 := procCPU(pid), time.Now()
	if err := sleepCtx(ctx, idle); err != nil {
		return nil, err
	}
	m.idleCPU, m.idleWall = procCPU(pid)-c0, time.Since(t0)
	m.idleRSS = procStatus(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")

	srv.setPhase("trigger")
	progress("waits (server %s): triggering %s", sh.key(), sh)
	t0 = time.Now()
	ids := make([]int64, sh.runs)
	dirs := make([]string, sh.runs)
	for i := range ids {
		dirs[i] = filepath.Join(data, fmt.Sprintf("run-%03d", i))
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return nil, err
		}
		var run struct {
			ID int64 `json:"id"`
		}
		if err := srv.call(ctx, http.MethodPost, "/pipelines/"+name+"/runs", map[string]any{"params": map[string]string{"dir": dirs[i]}}, http.StatusCreated, &run); err != nil {
			return fail(err)
		}
		ids[i] = run.ID
	}
	for deadline := time.Now().Add(5 * time.Minute); ; {
		states, _, err := runStates(ctx, srv, ids)
		if err != nil {
			return fail(err)
		}
		if states["waiting"] == sh.total() {
			break
		}
		if states["running"] > 0 || states["failed"] > 0 || time.Now().After(deadline) {
			return fail(fmt.Errorf("waiting for every task to wait: states %v", states))
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	m.ramp = time.Since(t0)
	progress("waits (server %s): all %s tasks waiting after %s", sh.key(), commas(sh.total()), secs(m.ramp))
	// The first poke of each wait records what it saw; later ones see the
	// same and write nothing. Let those first records land.
	if err := sleepCtx(ctx, 2*waitsPoke); err != nil {
		return nil, err
	}

	srv.setPhase("window")
	floor := startFloor(ctx, window)
	c0 = procCPU(pid)
	if err := sleepCtx(ctx, window); err != nil {
		return nil, err
	}
	m.cpu = procCPU(pid) - c0
	if m.floor, err = floor(); err != nil {
		return nil, err
	}
	srv.setPhase("after the window")
	m.windowHWM = srv.hwm()
	srv.mu.Lock()
	m.windowRSS = srv.peaks["window"]
	srv.mu.Unlock()
	states, _, err := runStates(ctx, srv, ids)
	if err != nil {
		return fail(err)
	}
	m.states = states
	progress("waits (server %s): window of %s: CPU %s, RSS peak %s; task states %v", sh.key(), secs(window), secs(m.cpu), mb(m.windowRSS), states)

	// A plain task while every wait waits: it starts at once if no wait
	// holds a slot (the in-process executor has 4).
	srv.setPhase("probe")
	for range 3 {
		d, err := triggerAndAwait(ctx, srv, "probe", 30*time.Second)
		if err != nil {
			return fail(err)
		}
		m.probe = append(m.probe, d)
	}
	slices.Sort(m.probe)

	srv.setPhase("release")
	created := make([][]time.Time, sh.runs)
	t0 = time.Now()
	for r, d := range dirs {
		created[r] = make([]time.Time, sh.tasks)
		for i := range sh.tasks {
			if err := os.WriteFile(waitFile(d, i), nil, 0o644); err != nil {
				return nil, err
			}
			created[r][i] = time.Now()
		}
	}
	last := time.Now()
	m.writeFiles = last.Sub(t0)
	// The run list (no tasks) is polled, so that the polling costs the
	// server little while it takes the files in.
	for deadline := time.Now().Add(5 * time.Minute); ; {
		var page struct {
			Items []apiRun `json:"items"`
		}
		if err := srv.call(ctx, http.MethodGet, fmt.Sprintf("/runs?pipeline=%s&limit=%d", name, sh.runs), nil, http.StatusOK, &page); err != nil {
			return fail(err)
		}
		done := 0
		for _, r := range page.Items {
			switch r.State {
			case "succeeded":
				done++
			case "failed", "cancelled":
				return fail(fmt.Errorf("run %d ended %s", r.ID, r.State))
			}
		}
		if done == sh.runs {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("%d of %d runs succeeded within 5 minutes of their files", done, sh.runs))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	_, runs, err := runStates(ctx, srv, ids)
	if err != nil {
		return fail(err)
	}
	var end time.Time
	for r, run := range runs {
		if run.FinishedAt != nil && run.FinishedAt.After(end) {
			end = *run.FinishedAt
		}
		for i, t := range run.Tasks {
			if t.StartedAt == nil || t.FinishedAt == nil {
				return fail(fmt.Errorf("run %d task %s: no start or end time", run.ID, t.ID))
			}
			n, err := strconv.Atoi(strings.TrimPrefix(t.ID, "w"))
			if err != nil || n >= sh.tasks {
				return fail(fmt.Errorf("run %d: unexpected task %q at %d", run.ID, t.ID, i))
			}
			due := firstPokeAfter(*t.StartedAt, created[r][n], waitsPoke)
			m.afterDue = append(m.afterDue, max(t.FinishedAt.Sub(due), 0))
		}
	}
	slices.Sort(m.afterDue)
	m.release = end.Sub(last)
	progress("waits (server %s): files written in %s; every run succeeded %s after the last; success − first poke due after the file: p50 %s p99 %s max %s",
		sh.key(), secs(m.writeFiles), secs(m.release), secs(percentile(m.afterDue, 0.5)), secs(percentile(m.afterDue, 0.99)), secs(m.afterDue[len(m.afterDue)-1]))
	rss, err := srv.stop()
	m.lifeRSS = rss
	if err != nil {
		return fail(err)
	}
	return m, nil
}

// firstPokeAfter is the first poke time at or after t of a wait that
// started at start: pokes fall on start + k·poke (engine.WaitPolicy).
func firstPokeAfter(start, t time.Time, poke time.Duration) time.Time {
	if !t.After(start) {
		return start
	}
	k := (t.Sub(start) + poke - 1) / poke
	return start.Add(k * poke)
}

// runStates reads the runs with their tasks and counts the tasks by state.
func runStates(ctx context.Context, srv *serverProc, ids []int64) (map[string]int, []apiRun, error) {
	states := map[string]int{}
	runs := make([]apiRun, len(ids))
	for i, id := range ids {
		if err := srv.call(ctx, http.MethodGet, fmt.Sprintf("/runs/%d", id), nil, http.StatusOK, &runs[i]); err != nil {
			return nil, nil, err
		}
		for _, t := range runs[i].Tasks {
			states[t.State]++
		}
	}
	return states, runs, nil
}

// triggerAndAwait triggers a run of pipeline and returns the time until the
// server reports it succeeded.
func triggerAndAwait(ctx context.Context, srv *serverProc, pipeline string, limit time.Duration) (time.Duration, error) {
	var run apiRun
	t0 := time.Now()
	if err := srv.call(ctx, http.MethodPost, "/pipelines/"+pipeline+"/runs", map[string]any{}, http.StatusCreated, &run); err != nil {
		return 0, err
	}
	for deadline := t0.Add(limit); ; {
		if err := srv.call(ctx, http.MethodGet, fmt.Sprintf("/runs/%d", run.ID), nil, http.StatusOK, &run); err != nil {
			return 0, err
		}
		switch run.State {
		case "succeeded":
			return time.Since(t0), nil
		case "failed", "cancelled":
			return 0, fmt.Errorf("run %d of %s ended %s", run.ID, pipeline, run.State)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("run %d of %s did not succeed within %s", run.ID, pipeline, limit)
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

func (m *waitsServerMeasure) row(key string) row {
	busy := m.states["running"] + m.states["ready"]
	cpuShare := m.cpu.Seconds() / m.window.Seconds()
	idleShare := m.idleCPU.Seconds() / m.idleWall.Seconds()
	slotsOK := busy == 0 && m.states["waiting"] == m.shape.total()
	memOK := m.windowHWM < waitsMemoryGoal
	r := row{
		key:  key,
		name: fmt.Sprintf("%s, poke %s, one real `tasuki server`, %s window", m.shape, pokeText(waitsPoke), secs(m.window)),
		value: fmt.Sprintf("%s waiting, %d running or ready (slots held: %d) · CPU %.3f s/s (%.1f %% of a core) · after the files: every run succeeded in %s, success − first poke due p50 %s · p99 %s",
			commas(m.states["waiting"]), busy, busy, cpuShare, cpuShare*100, secs(m.release),
			secs(percentile(m.afterDue, 0.5)), secs(percentile(m.afterDue, 0.99))),
		base:   fmt.Sprintf("idle server, pipeline loaded: CPU %.3f s/s, RSS %s", idleShare, mb(m.idleRSS)),
		mem:    "server RSS " + mb(m.windowHWM),
		target: "no slot held · RSS < 200 MB",
		met:    metStr(slotsOK && memOK),
	}
	r.notes = append(r.notes,
		fmt.Sprintf("%s: a fresh `tasuki server` (defaults: 4 in-process workers, --parallel 64) with one pipeline of %s file waits (`wait: {file: \"${TASUKI_PARAM_DIR}/wNNNNN\", poke: 1s}`), triggered %s over the API, each run on its own directory of files that do not exist; every task was `waiting` %s after the first trigger. After 2 s (the first poke of each wait records what it saw, later ones write nothing), the server's CPU (utime + stime from /proc/PID/stat) was read over %s; RSS sampled every 10 ms peaked at %s in the window (VmHWM %s; %s over the server's life, idle before the trigger %s). Task states read through the API after the window: %s.",
			key, commas(m.shape.tasks), times(m.shape.runs), secs(m.ramp), secs(m.window), mb(m.windowRSS), mb(m.windowHWM), mb(m.lifeRSS), mb(m.idleRSS), stateList(m.states)),
		fmt.Sprintf("%s: slots: a wait never enters the dispatcher, and the server exposes no slot count, so what is shown is the task states (no task `running` or `ready`; the dispatcher allows at most 64 attempts in flight, so %s tasks waiting at once cannot each hold one) and a plain one-task run triggered after the window, which succeeded in %s (3 triggers, p50; max %s) while every wait waited.",
			key, commas(m.states["waiting"]), secs(percentile(m.probe, 0.5)), secs(m.probe[len(m.probe)-1])),
		fmt.Sprintf("%s: poke timing seen from outside: the %s files were written in %s and every run had succeeded %s after the last one (server clock). For each task, success − the first poke due once its file existed (pokes fall on start + k·1 s): p50 %s · p99 %s · max %s. This bounds the lateness from above (it adds the check, the coordinator and %s successes committed in that second); the lateness of each check is measured by the in-process row. An idle process waking every 10 ms during the window woke %s late (the machine's floor).",
			key, commas(m.shape.total()), secs(m.writeFiles), secs(m.release), secs(percentile(m.afterDue, 0.5)), secs(percentile(m.afterDue, 0.99)), secs(m.afterDue[len(m.afterDue)-1]), commas(m.shape.total()), m.floor))
	if m.floor.P99 > floorStall {
		r.notes = append(r.notes, fmt.Sprintf("%s: **the machine stalled during the window** (the timer floor woke p99 %s late): CPU and timing figures hold those stalls; repeat the row (`-rows %s`) when the machine is quieter.", key, secs(m.floor.P99), key))
	}
	return r
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return commas(n) + " times"
}

func stateList(states map[string]int) string {
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", commas(states[k]), k)
	}
	return strings.Join(parts, ", ")
}

// clockTicks is USER_HZ, the unit of times in /proc/PID/stat: 100 in
// Linux's ABI whatever the kernel's own tick.
const clockTicks = 100

// procCPU is the CPU time (user + system) process pid has used so far, or
// 0 if it cannot be read.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 > len(data) {
		return 0
	}
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 13 {
		return 0
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * time.Second / clockTicks
}

// sleepCtx sleeps for d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// floorTick is how often the timer floor wakes.
const floorTick = 10 * time.Millisecond

// floorResult is how late an idle process woke on this machine during a
// window: the floor under the waits' lateness, which no scheduler in a
// process can beat.
type floorResult struct {
	P50, P99, Max time.Duration
	N             uint64
}

func (f floorResult) String() string {
	return fmt.Sprintf("p50 %s · p99 %s · max %s", secs(f.P50), secs(f.P99), secs(f.Max))
}

// timerFloor wakes every floorTick for d, on a fixed grid as the pokes
// are, and writes how late it woke (JSON) to w. The harness runs itself
// with -timer-floor during each waits window.
func timerFloor(w io.Writer, d time.Duration) error {
	var l latencies
	start := time.Now()
	for k := 1; time.Duration(k)*floorTick <= d; k++ {
		due := start.Add(time.Duration(k) * floorTick)
		time.Sleep(time.Until(due))
		l.add(time.Since(due))
	}
	return json.NewEncoder(w).Encode(floorResult{P50: l.quantile(0.5), P99: l.quantile(0.99), Max: l.max, N: l.count()})
}

// startFloor starts this harness with -timer-floor for d, as a process of
// its own that does nothing else; the function returned waits for it.
func startFloor(ctx context.Context, d time.Duration) func() (floorResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return func() (floorResult, error) { return floorResult{}, fmt.Errorf("timer floor: %w", err) }
	}
	cmd := exec.CommandContext(ctx, exe, "-timer-floor", d.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return func() (floorResult, error) { return floorResult{}, fmt.Errorf("timer floor: %w", err) }
	}
	return func() (floorResult, error) {
		var f floorResult
		if err := cmd.Wait(); err != nil {
			return f, fmt.Errorf("timer floor: %w: %s", err, tail(out.String(), 500))
		}
		if err := json.Unmarshal(out.Bytes(), &f); err != nil {
			return f, fmt.Errorf("timer floor: %w: %s", err, tail(out.String(), 500))
		}
		return f, nil
	}
}

// startProfile writes this process's CPU profile to path until the
// function returned is called; a profile that cannot start is reported
// and skipped.
func startProfile(path string) func() {
	f, err := os.Create(path)
	if err != nil {
		progress("profile %s: %v", path, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		progress("profile %s: %v", path, err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
