package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// waitsInprocMeasure is what the runner in this process showed while it
// held the waits.
type waitsInprocMeasure struct {
	shape        waitShape
	poke, window time.Duration

	ramp                 time.Duration // Execute of the first run → every task waiting
	ramped, inWindow     *latencies    // lateness of checks before and in the window
	released             *latencies    // after the files were written
	cpu                  time.Duration // this process, in the window
	maxSlots             int           // the dispatcher's slots in use, most seen in the window
	maxRunning           int           // tasks running in any run, most any commit reported
	minWaiting           int           // tasks waiting, fewest seen in the window
	minPending, maxPend  int           // Poker.Pending in the window
	baseGoroutines       int           // before the runs
	minGoroutines, maxGo int           // in the window
	baseHeap, liveHeap   uint64        // live heap after a GC before the runs and after the window
	peakHeap             uint64        // heap objects (live and unswept) most seen in the window
	rss                  int64         // this process's VmHWM since its mark was reset before the runs
	writeFiles, release  time.Duration // writing the files; last file → last run ended
	floor                floorResult   // an idle process's wake-ups in the window (set by the caller)
}

// waitsInProcess creates shape's runs on a SQLite store in dir and
// executes them with a runner like the server's (one Dispatcher with 64
// slots, one Poker with its default 64 workers), measures a window while
// every task waits for its file, then writes the files and waits for
// every run to succeed. atWindow, when set, is called as the window
// begins and what it returns as it ends (a profile, the timer floor).
func waitsInProcess(ctx context.Context, dir string, sh waitShape, poke, window time.Duration, atWindow func() (atEnd func())) (*waitsInprocMeasure, error) {
	m := &waitsInprocMeasure{shape: sh, poke: poke, window: window,
		ramped: &latencies{}, inWindow: &latencies{}, released: &latencies{}, minWaiting: sh.total(),
		minPending: sh.total(), minGoroutines: 1 << 30}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	name := "waits-" + sh.key()
	var src bytes.Buffer
	waitPipeline(&src, name, sh.tasks, poke)
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, src.Bytes(), 0o644); err != nil {
		return nil, err
	}
	p, err := spec.Parse(file, src.Bytes())
	if err != nil {
		return nil, fmt.Errorf("parse the generated pipeline: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "tasuki.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()

	var cur atomic.Pointer[latencies]
	cur.Store(m.ramped)
	var (
		mu      sync.Mutex
		waiting = map[int64]int{}
	)
	disp := runner.NewDispatcher(64, nil)
	r := &runner.Runner{
		Store: st, Logs: logs.NewFiles(filepath.Join(dir, "logs")), Home: dir,
		Dispatcher: disp,
		Poker:      &runner.Poker{Late: func(d time.Duration) { cur.Load().add(d) }},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observe: func(pr runner.Progress) {
			mu.Lock()
			defer mu.Unlock()
			waiting[pr.Run.ID] = pr.Counts[engine.TaskWaiting]
			m.maxRunning = max(m.maxRunning, pr.Counts[engine.TaskRunning])
		},
	}
	totalWaiting := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, w := range waiting {
			n += w
		}
		return n
	}

	// The sampler runs from before the baseline so that it is counted in
	// both goroutine figures; it records only in the window.
	var inWin atomic.Bool
	stopSampler := make(chan struct{})
	var samplerDone sync.WaitGroup
	samplerDone.Add(1)
	go func() {
		defer samplerDone.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-t.C:
			}
			if !inWin.Load() {
				continue
			}
			used := 0
			for _, pu := range disp.Pools() {
				used += pu.Used
			}
			metrics.Read(s)
			g, pend, w := runtime.NumGoroutine(), r.Poker.Pending(), totalWaiting()
			mu.Lock()
			m.maxSlots = max(m.maxSlots, used)
			m.minGoroutines, m.maxGo = min(m.minGoroutines, g), max(m.maxGo, g)
			m.minPending, m.maxPend = min(m.minPending, pend), max(m.maxPend, pend)
			m.minWaiting = min(m.minWaiting, w)
			if s[0].Value.Kind() == metrics.KindUint64 {
				m.peakHeap = max(m.peakHeap, s[0].Value.Uint64())
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stopSampler); samplerDone.Wait() }()

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	m.baseHeap = ms.HeapAlloc
	m.baseGoroutines = runtime.NumGoroutine()
	shrink()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type ended struct {
		run engine.RunState
		at  time.Time
		err error
	}
	results := make(chan ended, sh.runs)
	dirs := make([]string, sh.runs)
	t0 := time.Now()
	for i := range sh.runs {
		dirs[i] = filepath.Join(data, fmt.Sprintf("run-%03d", i))
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return nil, err
		}
		run, err := r.Create(ctx, p, map[string]string{"dir": dirs[i]}, "manual")
		if err != nil {
			return nil, fmt.Errorf("create run %d: %w", i, err)
		}
		go func() {
			end, err := r.Execute(ctx, run.ID)
			results <- ended{run: end.State, at: time.Now(), err: err}
		}()
	}
	// Every task waiting, or a run that ended (it should not).
	for deadline := time.Now().Add(5 * time.Minute); totalWaiting() < sh.total(); {
		select {
		case e := <-results:
			return nil, fmt.Errorf("a run ended %s before its files existed: %v", e.run, e.err)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d tasks waiting after 5 minutes", totalWaiting(), sh.total())
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return nil, err
		}
	}
	m.ramp = time.Since(t0)
	if err := sleepCtx(ctx, 2*poke); err != nil {
		return nil, err
	}

	var atEnd func()
	if atWindow != nil {
		atEnd = atWindow()
	}
	cur.Store(m.inWindow)
	inWin.Store(true)
	c0 := selfCPU()
	err = sleepCtx(ctx, window)
	m.cpu = selfCPU() - c0
	if atEnd != nil {
		atEnd()
	}
	if err != nil {
		return nil, err
	}
	inWin.Store(false)
	cur.Store(m.released)
	m.rss = selfHWM()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	m.liveHeap = ms.HeapAlloc

	t0 = time.Now()
	for _, d := range dirs {
		for i := range sh.tasks {
			if err := os.WriteFile(waitFile(d, i), nil, 0o644); err != nil {
				return nil, err
			}
		}
	}
	last := time.Now()
	m.writeFiles = last.Sub(t0)
	var end time.Time
	for range sh.runs {
		select {
		case e := <-results:
			if e.err != nil {
				return nil, e.err
			}
			if e.run != engine.RunSucceeded {
				return nil, fmt.Errorf("a run ended %s, want succeeded", e.run)
			}
			if e.at.After(end) {
				end = e.at
			}
		case <-time.After(5 * time.Minute):
			return nil, fmt.Errorf("runs did not end within 5 minutes of their files")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.release = end.Sub(last)
	return m, nil
}

// selfCPU is the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *waitsInprocMeasure) row(key string) row {
	w := m.inWindow
	p99 := w.quantile(0.99)
	live := int64(m.liveHeap) - int64(m.baseHeap)
	cpuShare := m.cpu.Seconds() / m.window.Seconds()
	slotsOK := m.maxSlots == 0 && m.maxRunning == 0 && m.minWaiting == m.shape.total()
	memOK := live < waitsMemoryGoal && m.rss < waitsMemoryGoal
	r := row{
		key:  key,
		name: fmt.Sprintf("%s, poke %s, runner in process (SQLite store), %s window", m.shape, pokeText(m.poke), secs(m.window)),
		value: fmt.Sprintf("poke lateness p50 %s · p99 %s · max %s (%s checks) · slots in use %d · goroutines %d–%d (%d before the runs) · CPU %.3f s/s",
			secs(w.quantile(0.5)), secs(p99), secs(w.max), commas(int(w.count())), m.maxSlots,
			m.minGoroutines, m.maxGo, m.baseGoroutines, cpuShare),
		base:   "timer floor (an idle process waking every 10 ms, same window): " + m.floor.String(),
		mem:    fmt.Sprintf("live heap +%s (%s/wait); process RSS %s", mb(live), bytesPer(live, m.shape.total()), mb(m.rss)),
		target: "p99 lateness < 100 ms · no slot held · < 200 MB",
		met:    metStr(p99 < waitsLatenessGoal && slotsOK && memOK),
	}
	r.notes = append(r.notes,
		fmt.Sprintf("%s: `runner.Runner` with a Dispatcher of 64 slots and a Poker with its default 64 check workers, like the server's, on a SQLite store in a temporary directory; %s run%s of %s file waits created with `Runner.Create` and executed with `Runner.Execute` (one goroutine each, the coordinator's); every task was waiting %s after the first Execute, then the window began 2 pokes later. Lateness is `Poker.Late`: how long after its poke time each check started, every check of the window in a histogram with 1 %% buckets. Before the window: p99 %s (%s checks, the first pokes and their records); after the files were written: p99 %s, max %s (%s checks).",
			key, commas(m.shape.runs), plural(m.shape.runs), commas(m.shape.tasks), secs(m.ramp),
			secs(m.ramped.quantile(0.99)), commas(int(m.ramped.count())), secs(m.released.quantile(0.99)), secs(m.released.max), commas(int(m.released.count()))),
		fmt.Sprintf("%s: sampled every 50 ms in the window: the dispatcher's slots in use (`Dispatcher.Pools`) at most %d; no commit reported a running task (most seen: %d); tasks waiting at least %s of %s; waits queued in the Poker's heap (`Pending`) %s–%s (the others' checks running); goroutines %d–%d, %d before the runs (the harness and the sampler): about one per executing run (its coordinator) plus the checks of the moment (at most 64 running, and those that just ended and have not exited yet), none per wait. Live heap after a GC at the end of the window: %s more than the %s before the runs (the runs' engine state, the parsed pipeline and the waits' queued checks), %s per wait; the most heap objects (live and unswept) sampled: %s; this process's peak RSS from the runs' start to the end of the window: %s. CPU of this whole process in the window: %s.",
			key, m.maxSlots, m.maxRunning, commas(m.minWaiting), commas(m.shape.total()), commas(m.minPending), commas(m.maxPend),
			m.minGoroutines, m.maxGo, m.baseGoroutines, mb(live), mb(int64(m.baseHeap)), bytesPer(live, m.shape.total()), mb(int64(m.peakHeap)), mb(m.rss), secs(m.cpu)),
		fmt.Sprintf("%s: the %s files were written in %s; every run had succeeded %s after the last one.", key, commas(m.shape.total()), secs(m.writeFiles), secs(m.release)))
	if want := uint64(m.shape.total()) * uint64(m.window/m.poke); w.count() < want*95/100 {
		r.notes = append(r.notes, fmt.Sprintf("%s: only %s checks in the window, where %s waits poked every %s for %s make %s: checks fell behind.",
			key, commas(int(w.count())), commas(m.shape.total()), pokeText(m.poke), secs(m.window), commas(int(want))))
	}
	if m.floor.P99 > floorStall {
		r.notes = append(r.notes, fmt.Sprintf("%s: **the machine stalled during the window**: the idle process of the timer floor woke p99 %s and up to %s late, so the lateness figures hold those stalls as well; repeat the row (`-rows %s`) when the machine is quieter.",
			key, secs(m.floor.P99), secs(m.floor.Max), key))
	}
	return r
}

// floorStall is the timer floor's p99 above which a window is reported as
// disturbed by the machine: an idle process on an idle machine wakes
// within a millisecond or two.
const floorStall = 20 * time.Millisecond

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func bytesPer(total int64, n int) string {
	per := float64(total) / float64(n)
	if per >= 10_000 {
		return fmt.Sprintf("%.1f kB", per/1000)
	}
	return fmt.Sprintf("%.0f bytes", per)
}

// pokeText writes a poke interval as the pipeline file would.
func pokeText(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%d s", d/time.Second)
	}
	return secs(d)
}
