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
	"runtime/pprof"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// orchRows measures orchestration alone: the runner, the engine and the
// SQLite store executing a run whose task kind does nothing (no processes).
func orchRows(ctx context.Context, o *options) ([]row, error) {
	cases := []struct {
		n     int
		chain bool
	}{{10_000, false}, {100_000, false}, {10_000, true}}
	var rows []row
	for _, c := range cases {
		key := fmt.Sprintf("orch-%d", c.n)
		name := fmt.Sprintf("orchestration alone: %s independent no-op tasks, Parallel 16, SQLite store", commas(c.n))
		if c.chain {
			key = fmt.Sprintf("orch-chain-%d", c.n)
			name = fmt.Sprintf("orchestration alone: chain of %s no-op tasks, SQLite store", commas(c.n))
		}
		if !o.want(key) || (o.quick && c.n > 10_000) {
			continue
		}
		var execs, creates []time.Duration
		var m orchMeasure
		for rep := 1; rep <= o.reps; rep++ {
			mr, err := orchestrate(ctx, o, key, c.n, c.chain, rep == o.reps)
			if err != nil {
				return rows, fmt.Errorf("%s: %w", key, err)
			}
			execs, creates = append(execs, mr.exec), append(creates, mr.create)
			m.peakHeap = max(m.peakHeap, mr.peakHeap)
			m.parse = mr.parse
			progress("[rep %d/%d] %s: %s/task (execute %s, create %s), peak heap %s", rep, o.reps, key, perTask(mr.exec, c.n), secs(mr.exec), secs(mr.create), mb(int64(mr.peakHeap)))
		}
		m.exec, m.create = best(execs), best(creates)
		per := m.exec / time.Duration(c.n)
		rw := row{
			key: key, name: name,
			value:  fmt.Sprintf("%s/task (%s in all)", perTask(m.exec, c.n), secs(m.exec)),
			mem:    "heap " + mb(int64(m.peakHeap)),
			target: "< 100 µs/task", met: metStr(per < 100*time.Microsecond),
		}
		rw.notes = append(rw.notes, fmt.Sprintf("%s: Runner.Execute time / N (load the run, start every task, record every end, each through the engine and the store's group commit); creating the run (Runner.Create: store the version, write %s task rows) took %s more; parsing the %s-task file, which Execute does again when it loads the run, takes %s of the Execute time. Peak heap is the most live+unswept heap objects sampled every 2 ms during Create and Execute, after a GC.",
			key, commas(c.n), secs(m.create), commas(c.n), secs(m.parse)))
		if len(execs) > 1 {
			rw.notes = append(rw.notes, fmt.Sprintf("%s: Execute times %s (best in the table).", key, durList(execs)))
		}
		rows = append(rows, rw)
	}
	return rows, nil
}

type orchMeasure struct {
	create, exec, parse time.Duration
	peakHeap            uint64
}

func orchestrate(ctx context.Context, o *options, key string, n int, chain, profile bool) (orchMeasure, error) {
	var m orchMeasure
	dir := filepath.Join(o.work, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return m, err
	}
	defer os.RemoveAll(dir)
	var src bytes.Buffer
	if chain {
		chainPipeline(&src, n, `["true"]`)
	} else {
		independentPipeline(&src, n, false)
	}
	file := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(file, src.Bytes(), 0o644); err != nil {
		return m, err
	}
	t0 := time.Now()
	p, err := spec.Parse(file, src.Bytes())
	if err != nil {
		return m, err
	}
	m.parse = time.Since(t0)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "tasuki.db"))
	if err != nil {
		return m, err
	}
	defer st.Close()
	r := &runner.Runner{
		Store: st, Logs: logs.NewFiles(filepath.Join(dir, "logs")), Home: dir, Parallel: 16,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Executor: func(ctx context.Context, a *runner.Attempt) runner.AttemptResult {
			return runner.AttemptResult{Outcome: attempt.Succeeded}
		},
	}

	runtime.GC()
	stopSampling := sampleHeap(&m.peakHeap)
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
	t0 = time.Now()
	run, err := r.Create(ctx, p, nil, "manual")
	if err != nil {
		stopSampling()
		return m, err
	}
	m.create = time.Since(t0)
	t0 = time.Now()
	end, err := r.Execute(ctx, run.ID)
	m.exec = time.Since(t0)
	stopSampling()
	if err != nil {
		return m, err
	}
	if end.State != engine.RunSucceeded {
		return m, fmt.Errorf("run ended %s, want succeeded", end.State)
	}
	return m, nil
}

// sampleHeap records the largest heap-objects figure seen until stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			*peak = max(*peak, s[0].Value.Uint64())
		}
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
