package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverSize is one store the server rows run against.
type serverSize struct {
	label       string // "small" or "history"
	runs, tasks int    // generated history
	desc        string
}

// serverMeasure is what one server process answered.
type serverMeasure struct {
	size                     serverSize
	listAll, listPipe        []time.Duration // sorted
	trigger, post            []time.Duration // sorted: POST → task's first instruction; POST answer
	backfill                 time.Duration
	backfillRuns             int
	hwmBeforeBackfill, rss   int64
	hwmAfterBackfill         int64
	rssPhases                string
	historyBuilt, startReady time.Duration
}

// serverRows starts real `tasuki server` processes, one on a small store and
// one with a large history, and measures the run list, trigger-to-task-start
// latency and the creation of a 10,000-interval backfill on each.
func serverRows(ctx context.Context, o *options) ([]row, error) {
	doList, doTrig, doBf := o.want("server-list-all") || o.want("server-list-pipeline"), o.want("server-trigger"), o.want("server-backfill")
	if !doList && !doTrig && !doBf {
		return nil, nil
	}
	big := serverSize{label: "history", runs: 100_000, tasks: 10}
	nList, nTrig := 200, 50
	if o.quick {
		big.runs = 10_000
		nList, nTrig = 50, 10
	}
	big.desc = fmt.Sprintf("%s attempts", commas(big.runs*big.tasks))
	small := serverSize{label: "small", runs: 1_000, tasks: 1, desc: "small store (1,000 runs, 1,000 attempts)"}

	dir := filepath.Join(o.work, "server")
	pipelines := filepath.Join(dir, "pipelines")
	if err := os.MkdirAll(pipelines, 0o755); err != nil {
		return nil, err
	}
	if err := writeServerPipelines(pipelines); err != nil {
		return nil, err
	}
	sizes := []serverSize{small, big}
	ms := make([]*serverMeasure, len(sizes))
	srvs := make([]*serverProc, len(sizes))
	defer func() {
		for _, srv := range srvs {
			if srv != nil && srv.running() {
				srv.kill()
			}
		}
	}()
	for i, size := range sizes {
		m := &serverMeasure{size: size}
		ms[i] = m
		home := filepath.Join(dir, "home-"+size.label)
		if err := os.MkdirAll(home, 0o755); err != nil {
			return nil, err
		}
		progress("server (%s): building a history of %s runs × %d tasks", size.label, commas(size.runs), size.tasks)
		t0 := time.Now()
		if err := buildHistory(ctx, filepath.Join(home, "tasuki.db"), size.runs, size.tasks, time.Minute, time.Now().Add(-time.Hour)); err != nil {
			return nil, err
		}
		m.historyBuilt = time.Since(t0)
		progress("server (%s): history written in %s", size.label, secs(m.historyBuilt))
	}
	for i, m := range ms {
		t0 := time.Now()
		srv, err := startServer(ctx, o, filepath.Join(dir, "home-"+m.size.label), pipelines, m.size.label)
		if err != nil {
			return nil, err
		}
		srvs[i] = srv
		m.startReady = time.Since(t0)
	}
	if err := measureServers(ctx, srvs, ms, nList, nTrig, doList, doTrig, doBf, dir); err != nil {
		return nil, err
	}
	s, h := *ms[0], *ms[1]
	var rows []row
	stats := func(d []time.Duration, qs ...float64) string {
		parts := make([]string, len(qs))
		for i, q := range qs {
			parts[i] = fmt.Sprintf("p%.0f %s", q*100, secs(percentile(d, q)))
		}
		return strings.Join(parts, " · ")
	}
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2f× (p95)", float64(a)/float64(b)) }
	if doList {
		for _, l := range []struct {
			key, what string
			h, s      []time.Duration
		}{
			{"server-list-all", "`GET /runs?limit=50`", h.listAll, s.listAll},
			{"server-list-pipeline", "`GET /runs?pipeline=pipeline-07&limit=50`", h.listPipe, s.listPipe},
		} {
			if !o.want(l.key) {
				continue
			}
			p95 := percentile(l.h, 0.95)
			rw := row{
				key:   l.key,
				name:  fmt.Sprintf("run list %s, %s in history (%d requests)", l.what, h.size.desc, len(l.h)),
				value: stats(l.h, 0.5, 0.95, 0.99), base: s.size.desc + ": " + stats(l.s, 0.5, 0.95, 0.99),
				ratio: ratio(p95, percentile(l.s, 0.95)), mem: "server RSS " + mb(h.hwmBeforeBackfill),
				target: "p95 < 50 ms", met: metStr(p95 < 50*time.Millisecond),
			}
			rw.notes = append(rw.notes, fmt.Sprintf("%s: measured by the client over loopback HTTP with keep-alive (so server time plus a little), one request at a time, after 10 warm-up requests; each page holds 50 runs in both stores.", l.key))
			rows = append(rows, rw)
		}
	}
	if doTrig {
		hp, sp := percentile(h.trigger, 0.95), percentile(s.trigger, 0.95)
		rw := row{
			key:   "server-trigger",
			name:  fmt.Sprintf("trigger → task running (`POST /pipelines/pipeline-07/runs` to the task's first command), %s in history (%d triggers)", h.size.desc, len(h.trigger)),
			value: stats(h.trigger, 0.5, 0.95), base: s.size.desc + ": " + stats(s.trigger, 0.5, 0.95),
			ratio: ratio(hp, sp), mem: "server RSS " + mb(h.hwmBeforeBackfill),
			target: "no growth with history (p95 ≤ 1.25× small + 5 ms)", met: metStr(hp <= sp*5/4+5*time.Millisecond),
		}
		rw.notes = append(rw.notes, fmt.Sprintf("server-trigger: the task runs `date +%%s%%N > $TASUKI_PARAM_OUT`; latency is that time stamp minus the time the POST was sent, so it includes the HTTP request, creating the run, the scheduler pass the trigger wakes, the executor and fork/exec of sh and date. Triggers are sequential, alternate between the two servers and each waits for the previous run to end; 3 warm-up triggers per server are not counted. The POST itself answered in %s (history) and %s (small store).",
			stats(h.post, 0.5, 0.95), stats(s.post, 0.5, 0.95)))
		rows = append(rows, rw)
	}
	if doBf {
		rw := row{
			key:   "server-backfill",
			name:  fmt.Sprintf("backfill of %s hourly intervals (`POST /backfills`), %s in history", commas(h.backfillRuns), h.size.desc),
			value: secs(h.backfill), base: s.size.desc + ": " + secs(s.backfill),
			ratio: fmt.Sprintf("%.2f×", float64(h.backfill)/float64(s.backfill)), mem: "server RSS " + mb(h.hwmAfterBackfill),
			target: "< 5 s", met: metStr(h.backfill < 5*time.Second && s.backfill < 5*time.Second),
		}
		rw.notes = append(rw.notes, fmt.Sprintf("server-backfill: the request's duration as the client saw it (it answers once all %s runs are in the store); the server then starts executing them, one at a time, until it is stopped right after. Peak memory is the server's high-water mark when the request had been answered.",
			commas(h.backfillRuns)))
		rows = append(rows, rw)
	}
	if len(rows) > 0 {
		rows[0].notes = append(rows[0].notes, fmt.Sprintf("server rows: history generated with bulk SQL (runs one minute apart, 20 pipelines, every task one attempt and two events) in %s (%s) and %s (small); the server took %s and %s from start to ready. Each server runs with its defaults (4 workers, 1 s tick, 90-day retention), 20 pipeline files matching the history's pipelines.",
			secs(h.historyBuilt), h.size.desc, secs(s.historyBuilt), secs(h.startReady), secs(s.startReady)),
			fmt.Sprintf("server memory: peak RSS over the whole life of the server was %s with history and %s on the small store; sampled every 10 ms by phase: with history %s; small store %s.",
				mb(h.rss), mb(s.rss), h.rssPhases, s.rssPhases))
	}
	return rows, nil
}

// writeServerPipelines writes the 20 pipelines the history belongs to:
// pipeline-07 stamps the time its task starts, pipeline-03 is hourly (for the
// backfill), the others do nothing on a yearly schedule.
func writeServerPipelines(dir string) error {
	for i := range historyPipelines {
		name := fmt.Sprintf("pipeline-%02d", i)
		var text string
		switch i {
		case 7:
			text = `name: pipeline-07
description: writes the time its task started (nanoseconds) to the file named by the out parameter
params:
  - name: out
    type: string
    default: /dev/null
schedule:
  cron: "0 0 1 1 *"
  catchup: none
tasks:
  - id: stamp
    run: 'date +%s%N > "$TASUKI_PARAM_OUT"'
`
		case 3:
			text = "name: pipeline-03\nschedule:\n  cron: \"@hourly\"\n  catchup: none\ntasks:\n  - id: noop\n    run: [\"true\"]\n"
		default:
			text = fmt.Sprintf("name: %s\nschedule:\n  cron: \"0 0 1 1 *\"\n  catchup: none\ntasks:\n  - id: noop\n    run: [\"true\"]\n", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// serverProc is a running `tasuki server`.
type serverProc struct {
	cmd     *exec.Cmd
	api     string // http://host:port/api/v1
	logPath string
	waited  chan error
	exited  chan struct{} // closed when the process has been waited for
	client  *http.Client
	token   string // the server's first admin token, from the data directory it wrote it to

	mu     sync.Mutex
	phase  string           // what the harness is doing now
	phases []string         // phases in order
	peaks  map[string]int64 // largest RSS sampled in each phase

	parentHWM int64 // the harness's peak RSS when the server started
	lastHWM   int64 // the server's VmHWM at the last sample
}

// setPhase names what the harness does from now on, for the RSS samples.
func (s *serverProc) setPhase(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = p
	if _, ok := s.peaks[p]; !ok {
		s.phases = append(s.phases, p)
		s.peaks[p] = 0
	}
}

// sampleRSS records the server's resident memory every 10 ms by phase, so a
// peak can be placed (the kernel's high-water mark only says how high).
func (s *serverProc) sampleRSS() {
	path := fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid)
	for {
		select {
		case <-s.exited:
			return
		case <-time.After(10 * time.Millisecond):
		}
		rss, hwm := procStatus(path, "VmRSS:"), procStatus(path, "VmHWM:")
		s.mu.Lock()
		s.peaks[s.phase] = max(s.peaks[s.phase], rss)
		s.lastHWM = max(s.lastHWM, hwm)
		s.mu.Unlock()
	}
}

// rssByPhase describes the peaks sampled in each phase.
func (s *serverProc) rssByPhase() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := make([]string, 0, len(s.phases))
	for _, p := range s.phases {
		if s.peaks[p] > 0 {
			parts = append(parts, p+" "+mb(s.peaks[p]))
		}
	}
	return strings.Join(parts, ", ")
}

var listenRe = regexp.MustCompile(`listening on (http://\S+)`)

func startServer(ctx context.Context, o *options, home, pipelines, label string, extra ...string) (*serverProc, error) {
	args := append([]string{"server", "--home", home, "--pipelines", pipelines, "--addr", "127.0.0.1:0", "--drain-grace", "2s"}, extra...)
	if o.profile {
		args = append(args, "--cpuprofile", filepath.Join(o.outDir, "profiles", "server-"+label+".prof"))
	}
	s := &serverProc{logPath: filepath.Join(o.outDir, "server-"+label+".log"), waited: make(chan error, 1),
		exited: make(chan struct{}), peaks: map[string]int64{}, phase: "start",
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	shrink()
	s.parentHWM = selfHWM()
	s.cmd = exec.Command(o.bin, args...)
	s.cmd.Dir = home
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout = logf
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if m := listenRe.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		err := s.cmd.Wait()
		close(s.exited)
		s.waited <- err
		logf.Close()
	}()
	s.setPhase("start")
	go s.sampleRSS()
	select {
	case a := <-addr:
		s.api = a + "/api/v1"
	case err := <-s.waited:
		return nil, fmt.Errorf("tasuki server exited before listening: %v (log: %s)", err, s.logPath)
	case <-time.After(60 * time.Second):
		s.kill()
		return nil, fmt.Errorf("tasuki server did not listen within 60 s (log: %s)", s.logPath)
	case <-ctx.Done():
		s.kill()
		return nil, ctx.Err()
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := s.client.Get(s.api + "/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// Every route but /health and /ready needs a token; the
				// server wrote its first admin token before listening.
				tok, err := os.ReadFile(filepath.Join(home, "admin.token"))
				if err != nil {
					s.kill()
					return nil, fmt.Errorf("read the server's admin token: %w", err)
				}
				s.token = strings.TrimSpace(string(tok))
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("tasuki server not ready within 60 s (log: %s)", s.logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running says whether the process has not been waited for yet.
func (s *serverProc) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func (s *serverProc) kill() {
	s.cmd.Process.Kill()
	<-s.waited
}

// stop sends SIGTERM (the server drains) and returns the process's peak RSS.
func (s *serverProc) stop() (int64, error) {
	s.setPhase("drain and exit")
	s.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-s.waited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.waited
		err = errors.New("tasuki server did not stop within 30 s of SIGTERM; killed")
	}
	// As in rssWatch: rusage is the server's own peak only when it is above
	// the harness's; otherwise the last sampled VmHWM is.
	var rss int64
	if ru, ok := s.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = int64(ru.Maxrss) * 1024
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rss <= s.parentHWM {
		rss = s.lastHWM
	}
	return rss, err
}

// hwm reads the server's peak RSS so far.
func (s *serverProc) hwm() int64 {
	return procStatus(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid), "VmHWM:")
}

// procStatus reads a memory figure (in bytes) from a /proc/PID/status file.
func procStatus(path, field string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// call does one request and decodes a JSON answer into out (when not nil).
func (s *serverProc) call(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.api+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Tasuki-Actor", "bench")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, tail(string(data), 500))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// measureServers measures both servers under the same conditions: they run
// side by side and the requests alternate between them (which one goes first
// alternates too), so other work on the machine touches both alike. The
// backfills come last, one server at a time, each server stopped after its
// own (a backfill's runs start executing at once).
func measureServers(ctx context.Context, srvs []*serverProc, ms []*serverMeasure, nList, nTrig int, doList, doTrig, doBf bool, dir string) error {
	each := func(i int, f func(s *serverProc, m *serverMeasure) error) error {
		for k := range srvs {
			j := (i + k) % len(srvs)
			if err := f(srvs[j], ms[j]); err != nil {
				return fmt.Errorf("server (%s): %w (server log: %s)", ms[j].size.label, err, srvs[j].logPath)
			}
		}
		return nil
	}
	if doList {
		for _, s := range srvs {
			s.setPhase("run lists")
		}
		for _, path := range []string{"/runs?limit=50", "/runs?pipeline=pipeline-07&limit=50"} {
			dst := func(m *serverMeasure) *[]time.Duration {
				if strings.Contains(path, "pipeline=") {
					return &m.listPipe
				}
				return &m.listAll
			}
			err := each(0, func(s *serverProc, _ *serverMeasure) error {
				var page struct {
					Items []json.RawMessage `json:"items"`
				}
				if err := s.call(ctx, http.MethodGet, path, nil, http.StatusOK, &page); err != nil {
					return err
				}
				if len(page.Items) != 50 {
					return fmt.Errorf("GET %s: %d runs, want a full page of 50", path, len(page.Items))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for i := range 10 + nList {
				err := each(i, func(s *serverProc, m *serverMeasure) error {
					t0 := time.Now()
					if err := s.call(ctx, http.MethodGet, path, nil, http.StatusOK, nil); err != nil {
						return err
					}
					if i >= 10 {
						*dst(m) = append(*dst(m), time.Since(t0))
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			for _, m := range ms {
				d := *dst(m)
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				progress("server (%s): GET %s p50 %s p95 %s p99 %s", m.size.label, path,
					secs(percentile(d, 0.5)), secs(percentile(d, 0.95)), secs(percentile(d, 0.99)))
			}
		}
	}
	if doTrig {
		for _, s := range srvs {
			s.setPhase("triggers")
		}
		stamps := filepath.Join(dir, "stamps")
		if err := os.MkdirAll(stamps, 0o755); err != nil {
			return err
		}
		const warm = 3
		for i := range nTrig + warm {
			err := each(i, func(s *serverProc, m *serverMeasure) error {
				lat, post, err := triggerOnce(ctx, s, filepath.Join(stamps, fmt.Sprintf("%s-%d", m.size.label, i)))
				if err != nil {
					return err
				}
				if i >= warm {
					m.trigger, m.post = append(m.trigger, lat), append(m.post, post)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, m := range ms {
			for _, d := range [][]time.Duration{m.trigger, m.post} {
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
			}
			progress("server (%s): trigger → task running p50 %s p95 %s", m.size.label, secs(percentile(m.trigger, 0.5)), secs(percentile(m.trigger, 0.95)))
		}
	}
	for i, s := range srvs {
		ms[i].hwmBeforeBackfill = s.hwm()
	}
	for i, s := range srvs {
		m := ms[i]
		if doBf {
			if err := backfillOnce(ctx, s, m); err != nil {
				return fmt.Errorf("server (%s): %w (server log: %s)", m.size.label, err, s.logPath)
			}
		}
		rss, err := s.stop()
		m.rss, m.rssPhases = rss, s.rssByPhase()
		progress("server (%s): stopped; peak RSS over its life %s; sampled by phase: %s", m.size.label, mb(rss), m.rssPhases)
		if err != nil {
			return fmt.Errorf("server (%s): %w (server log: %s)", m.size.label, err, s.logPath)
		}
	}
	return nil
}

// backfillOnce creates a backfill of 10,000 hourly intervals of pipeline-03.
func backfillOnce(ctx context.Context, s *serverProc, m *serverMeasure) error {
	from := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	body := map[string]any{"pipeline": "pipeline-03", "from": from, "to": from.Add(10_000 * time.Hour), "parallel": 1}
	var bf struct {
		ID   int64 `json:"id"`
		Runs int   `json:"runs"`
	}
	s.setPhase("backfill request")
	t0 := time.Now()
	if err := s.call(ctx, http.MethodPost, "/backfills", body, http.StatusCreated, &bf); err != nil {
		return err
	}
	m.backfill, m.backfillRuns = time.Since(t0), bf.Runs
	m.hwmAfterBackfill = s.hwm()
	progress("server (%s): backfill of %s intervals created in %s (server peak RSS %s before, %s after)", m.size.label, commas(bf.Runs), secs(m.backfill), mb(m.hwmBeforeBackfill), mb(m.hwmAfterBackfill))
	if bf.Runs != 10_000 {
		return fmt.Errorf("backfill created %d runs, want 10,000", bf.Runs)
	}
	return nil
}

// triggerOnce triggers pipeline-07 and returns the time from sending the
// POST to the moment its task wrote its time stamp, and the POST's duration.
// It returns once the run has ended.
func triggerOnce(ctx context.Context, s *serverProc, out string) (lat, post time.Duration, err error) {
	var run struct {
		ID int64 `json:"id"`
	}
	t0 := time.Now()
	if err := s.call(ctx, http.MethodPost, "/pipelines/pipeline-07/runs", map[string]any{"params": map[string]string{"out": out}}, http.StatusCreated, &run); err != nil {
		return 0, 0, err
	}
	post = time.Since(t0)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if data, err := os.ReadFile(out); err == nil && bytes.HasSuffix(data, []byte("\n")) {
			ns, err := strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("time stamp %q: %w", data, err)
			}
			lat = time.Duration(ns - t0.UnixNano())
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("run %d: its task did not start within 30 s", run.ID)
		}
		time.Sleep(500 * time.Microsecond)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		var r struct {
			State string `json:"state"`
		}
		if err := s.call(ctx, http.MethodGet, fmt.Sprintf("/runs/%d", run.ID), nil, http.StatusOK, &r); err != nil {
			return 0, 0, err
		}
		switch r.State {
		case "succeeded":
			return lat, post, nil
		case "failed", "cancelled":
			return 0, 0, fmt.Errorf("run %d ended %s", run.ID, r.State)
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("run %d did not end within 30 s", run.ID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cleanEnv is the environment without TASUKI_* variables, so a developer's
// settings do not change what is measured.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASUKI_") {
			env = append(env, kv)
		}
	}
	return env
}
