package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// mapRows measures map tasks and the content cache: shell items through
// the real CLI beside xargs, the per-user agent example run twice on one
// data directory, a map on two remote workers over PostgreSQL, and a
// million no-op items in this process. The in-process row runs last: it
// grows the harness to hundreds of MB, and the rows before it measure
// child processes (see rssWatch).
func mapRows(ctx context.Context, o *options) ([]row, error) {
	var rows []row
	for _, f := range []func(context.Context, *options) ([]row, error){mapShellRows, cacheRows, remoteRows, mapInprocRows} {
		shrink()
		rs, err := f(ctx, o)
		rows = append(rows, rs...)
		if err != nil {
			return rows, err
		}
	}
	// The table lists them in the order of the brief: the million items
	// first.
	slices.SortStableFunc(rows, func(a, b row) int { return mapRowOrder(a.key) - mapRowOrder(b.key) })
	return rows, nil
}

func mapRowOrder(key string) int {
	for i, p := range []string{"map-1m", "map-shell-", "cache-", "map-remote-"} {
		if strings.HasPrefix(key, p) {
			return i
		}
	}
	return 99
}

// mapPipeline writes a pipeline of one map task over range(n) with the
// given run value and extra map keys.
func mapPipeline(w io.Writer, name string, n int, run, mapExtra string) {
	fmt.Fprintf(w, "name: %s\ndescription: a map of %d items\ntasks:\n  - id: each\n    run: %s\n    map: {range: {stop: %d}%s}\n", name, n, run, n, mapExtra)
}

// ---- map-1m: a million no-op items in this process ----

// mapInprocMeasure is one repetition of the in-process map row.
type mapInprocMeasure struct {
	create, exec time.Duration
	hwm          int64  // VmHWM of this process at the end, after a reset before Create
	peakHeap     uint64 // largest heap objects sampled every 2 ms
	status       []time.Duration
	statusErrs   int
	counts       string // the map's counts as the last status read saw them
}

func mapInprocRows(ctx context.Context, o *options) ([]row, error) {
	const key = "map-1m"
	if !o.want(key) {
		return nil, nil
	}
	n := 1_000_000
	if o.quick {
		n = 100_000
	}
	var execs []time.Duration
	var all []time.Duration
	var hwm int64
	var heap uint64
	var errs int
	var last mapInprocMeasure
	for rep := 1; rep <= o.reps; rep++ {
		m, err := mapInprocess(ctx, o, key, n, rep == o.reps)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		execs = append(execs, m.exec)
		all = append(all, m.status...)
		hwm, heap, errs = max(hwm, m.hwm), max(heap, m.peakHeap), errs+m.statusErrs
		last = m
		progress("[rep %d/%d] %s: execute %s (%s/item), create %s, VmHWM %s, heap %s, %d status reads p99 %s", rep, o.reps, key, secs(m.exec), perTask(m.exec, n), secs(m.create), mb(m.hwm), mb(int64(m.peakHeap)), len(m.status), secs(percentile(sorted(m.status), 0.99)))
	}
	all = sorted(all)
	ex := best(execs)
	p99 := percentile(all, 0.99)
	rw := row{
		key:  key,
		name: fmt.Sprintf("map of %s no-op items (`map: {range: {stop: %d}}`), Parallel 16, SQLite store, in process; status read every 100 ms from a second store handle", commas(n), n),
		value: fmt.Sprintf("%s (%s/item) · status p50 %s · p99 %s · max %s (%d reads)",
			secs(ex), perTask(ex, n), secs(percentile(all, 0.5)), secs(p99), secs(all[len(all)-1]), len(all)),
		mem:    "VmHWM " + mb(hwm),
		target: "< 60 s · RSS < 1 GiB · status p99 < 100 ms",
		met:    metStr(ex < 60*time.Second && hwm < 1<<30 && p99 < 100*time.Millisecond && errs == 0),
	}
	rw.notes = append(rw.notes,
		fmt.Sprintf("%s: internal/runner with `Runner.Executor` returning succeeded at once, `Parallel: 16`, a SQLite file (`sqlite.Open`); the pipeline is one task with `run: [\"true\"]` (never started: the executor is the no-op) and `map: {range: {stop: %d}}`. The figure is Runner.Execute's wall time (expansion of the items, every item started and ended through the runner, every item row and the map's counts written by group commit); Runner.Create took %s more.", key, n, secs(last.create)),
		fmt.Sprintf("%s: memory is the harness process's VmHWM from /proc/self/status at the end of Execute, after resetting it (`/proc/self/clear_refs` 5) before Create; so it is the peak RSS of this run of the row (the harness's own few MB included). The largest Go heap (live and unswept objects, sampled every 2 ms as the orchestration rows do) was %s.", key, mb(int64(heap))),
		fmt.Sprintf("%s: status read = `store.Run` + `store.Tasks` + `store.MapInfos` of the run, through a second `sqlite.Open` handle on the same file (as a server's API would read it), timed every 100 ms from another goroutine while Execute runs; figures are over the reads of all %d repetitions; %d failed. The last read saw the map's counts as %s.", key, len(execs), errs, last.counts),
	)
	if len(execs) > 1 {
		rw.notes = append(rw.notes, fmt.Sprintf("%s: Execute times %s (best in the table).", key, durList(execs)))
	}
	return []row{rw}, nil
}

func sorted(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}

func mapInprocess(ctx context.Context, o *options, key string, n int, profile bool) (mapInprocMeasure, error) {
	var m mapInprocMeasure
	dir := filepath.Join(o.work, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return m, err
	}
	defer os.RemoveAll(dir)
	file, err := writeFile(dir, "map.yaml", func(w io.Writer) { mapPipeline(w, "bench-map", n, `["true"]`, "") })
	if err != nil {
		return m, err
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return m, err
	}
	p, err := spec.Parse(file, src)
	if err != nil {
		return m, err
	}
	dbPath := filepath.Join(dir, "tasuki.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return m, err
	}
	defer st.Close()
	// The reader: a second handle on the same file, as the API of a server
	// would have beside the runner's.
	rd, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return m, err
	}
	defer rd.Close()
	r := &runner.Runner{
		Store: st, Logs: logs.NewFiles(filepath.Join(dir, "logs")), Home: dir, Parallel: 16,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Executor: func(ctx context.Context, a *runner.Attempt) runner.AttemptResult {
			return runner.AttemptResult{Outcome: attempt.Succeeded}
		},
	}

	runtime.GC()
	shrink()
	stopHeap := sampleHeap(&m.peakHeap)
	if o.profile && profile {
		f, err := os.Create(filepath.Join(o.outDir, "profiles", key+".prof"))
		if err != nil {
			return m, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return m, err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	t0 := time.Now()
	run, err := r.Create(ctx, p, nil, "manual")
	if err != nil {
		stopHeap()
		return m, err
	}
	m.create = time.Since(t0)

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			t1 := time.Now()
			counts, err := statusRead(ctx, rd, run.ID)
			d := time.Since(t1)
			if err != nil {
				m.statusErrs++
				progress("%s: status read: %v", key, err)
				continue
			}
			m.status = append(m.status, d)
			m.counts = counts
		}
	})
	t0 = time.Now()
	end, err := r.Execute(ctx, run.ID)
	m.exec = time.Since(t0)
	close(done)
	wg.Wait()
	stopHeap()
	m.hwm = selfHWM()
	if err != nil {
		return m, err
	}
	if end.State != engine.RunSucceeded {
		return m, fmt.Errorf("run ended %s, want succeeded", end.State)
	}
	// One read after the end, to check the counts the map kept.
	counts, err := statusRead(ctx, rd, run.ID)
	if err != nil {
		return m, fmt.Errorf("status read after the end: %w", err)
	}
	m.counts = counts
	if want := fmt.Sprintf("succeeded %d", n); !strings.Contains(counts, want) {
		return m, fmt.Errorf("map counts after the end: %s, want %s", counts, want)
	}
	if len(m.status) == 0 {
		return m, fmt.Errorf("no status read completed during Execute (%s)", secs(m.exec))
	}
	return m, nil
}

// statusRead reads what the API's run view reads: the run, its tasks and
// its maps' summaries. It returns the map's counts.
func statusRead(ctx context.Context, st *sqlite.DB, runID int64) (string, error) {
	if _, err := st.Run(ctx, runID); err != nil {
		return "", fmt.Errorf("run: %w", err)
	}
	if _, err := st.Tasks(ctx, runID); err != nil {
		return "", fmt.Errorf("tasks: %w", err)
	}
	infos, err := st.MapInfos(ctx, runID)
	if err != nil {
		return "", fmt.Errorf("map infos: %w", err)
	}
	if len(infos) == 0 {
		return "(not expanded yet)", nil
	}
	var parts []string
	for s, c := range infos[0].Counts {
		parts = append(parts, fmt.Sprintf("%s %d", s, c))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%d items: %s", infos[0].Items, strings.Join(parts, ", ")), nil
}

// ---- map-shell-…: shell items through the CLI beside xargs ----

var itemsRe = regexp.MustCompile(`(\d+) items: (\d+) succeeded`)

func mapShellRows(ctx context.Context, o *options) ([]row, error) {
	plainKey, batchKey := "map-shell-100k-c16", "map-shell-100k-batch100"
	doPlain, doBatch := o.want(plainKey), o.want(batchKey)
	if !doPlain && !doBatch {
		return nil, nil
	}
	n := 100_000
	if o.quick {
		n = 10_000
	}
	dir := filepath.Join(o.work, "map-shell")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	plainFile, err := writeFile(dir, "map-true.yaml", func(w io.Writer) { mapPipeline(w, "bench-map-true", n, `["true"]`, ", concurrency: 16") })
	if err != nil {
		return nil, err
	}
	const loop = `while read -r l; do echo null; done > "$TASUKI_RESULT"`
	batchFile, err := writeFile(dir, "map-batch.yaml", func(w io.Writer) {
		mapPipeline(w, "bench-map-batch", n, "'"+loop+"'", ", concurrency: 16, batch: 100")
	})
	if err != nil {
		return nil, err
	}
	floorCmd := fmt.Sprintf("seq %d | xargs -P 16 -n 1 true", n)
	var floor, plain, batch, plainExec, batchExec []time.Duration
	var plainRSS, batchRSS int64
	check := func(c child, label string) error {
		m := itemsRe.FindStringSubmatch(c.out)
		if m == nil || m[1] != strconv.Itoa(n) || m[2] != strconv.Itoa(n) {
			return fmt.Errorf("%s: want %d items, all succeeded; tasuki said:\n%s", label, n, tail(c.out, 1000))
		}
		return nil
	}
	for rep := 1; rep <= o.reps; rep++ {
		fl, err := runChild(ctx, dir, false, "sh", "-c", floorCmd)
		if err != nil {
			return nil, err
		}
		floor = append(floor, fl.wall)
		line := fmt.Sprintf("[rep %d/%d] map-shell: floor %s", rep, o.reps, secs(fl.wall))
		if doPlain {
			t, ex, err := tasukiRun(ctx, o, plainFile, 16, fmt.Sprintf("%s-rep%d", plainKey, rep), rep == o.reps)
			if err != nil {
				return nil, err
			}
			if err := check(t, plainKey); err != nil {
				return nil, err
			}
			plain, plainExec, plainRSS = append(plain, t.wall), append(plainExec, ex), max(plainRSS, t.maxRSS)
			line += fmt.Sprintf(", unbatched %s (RSS %s)", secs(t.wall), mb(t.maxRSS))
		}
		if doBatch {
			t, ex, err := tasukiRun(ctx, o, batchFile, 16, fmt.Sprintf("%s-rep%d", batchKey, rep), rep == o.reps)
			if err != nil {
				return nil, err
			}
			if err := check(t, batchKey); err != nil {
				return nil, err
			}
			batch, batchExec, batchRSS = append(batch, t.wall), append(batchExec, ex), max(batchRSS, t.maxRSS)
			line += fmt.Sprintf(", batch 100 %s (RSS %s)", secs(t.wall), mb(t.maxRSS))
		}
		progress("%s", line)
	}
	fm := best(floor)
	floorName := fmt.Sprintf("`seq %d | xargs -P 16 -n 1 true`: %s", n, secs(fm))
	var rows []row
	if doPlain {
		tm := best(plain)
		ratio := float64(tm) / float64(fm)
		rw := row{
			key:   plainKey,
			name:  fmt.Sprintf("map of %s shell items running `true` (argv: `run: [\"true\"]`), `map.concurrency: 16`, `tasuki run -j 16`", commas(n)),
			value: fmt.Sprintf("%s (%s/item)", secs(tm), perTask(tm, n)), base: floorName,
			ratio: fmt.Sprintf("%.2f×", ratio), mem: "RSS " + mb(plainRSS),
			target: "≤ 1.3× floor", met: metStr(ratio <= 1.3),
		}
		rw.notes = append(rw.notes,
			fmt.Sprintf("%s: one task `run: [\"true\"]` (argv form: each item is one fork/exec of true, no shell) with `map: {range: {stop: %d}, concurrency: 16}`, run as `tasuki run FILE --home TMP -j 16 -q --progress compact` on a fresh data directory; wall time of the whole process (the proc rows' method). The run itself took %s by tasuki's summary; %s/item of wall time above the floor.",
				plainKey, n, secs(best(plainExec)), perTask(tm-fm, n)))
		if len(plain) > 1 {
			rw.notes = append(rw.notes, fmt.Sprintf("%s: tasuki runs %s; floor runs %s (best of each in the table; floor and tasuki alternate); ratio of each back-to-back pair %s.", plainKey, durList(plain), durList(floor), pairRatios(plain, floor)))
		}
		rows = append(rows, rw)
	}
	if doBatch {
		tm := best(batch)
		ratio := float64(tm) / float64(fm)
		rw := row{
			key:   batchKey,
			name:  fmt.Sprintf("the same %s items with `batch: 100`: one `sh -c` per 100 items, reading them from stdin (`%s`)", commas(n), loop),
			value: fmt.Sprintf("%s (%s/item)", secs(tm), perTask(tm, n)), base: floorName + " (unbatched)",
			ratio: fmt.Sprintf("%.2f×", ratio), mem: "RSS " + mb(batchRSS),
			target: "faster than the unbatched floor", met: metStr(tm < fm),
		}
		rw.notes = append(rw.notes,
			fmt.Sprintf("%s: `map: {range: {stop: %d}, concurrency: 16, batch: 100}`, shell form (`run: '%s'`: %d processes of `sh`, each writing 100 result lines), same command line as the row above. The run itself took %s by tasuki's summary.",
				batchKey, n, loop, n/100, secs(best(batchExec))))
		if len(batch) > 1 {
			rw.notes = append(rw.notes, fmt.Sprintf("%s: tasuki runs %s; floor runs %s (best of each in the table); ratio of each back-to-back pair %s.", batchKey, durList(batch), durList(floor), pairRatios(batch, floor)))
		}
		rows = append(rows, rw)
	}
	return rows, nil
}
