package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// Remote map row: how many workers, and how many attempts each runs at
// once. 2 × 32 = 64, the server's default --parallel, so neither side caps
// the other.
const (
	remoteWorkers = 2
	remoteSlots   = 32
)

// remoteRows runs a map of no-op items on two real `tasuki worker`
// processes leasing from a real `tasuki server` on a fresh PostgreSQL
// database: items of the noop kind (orchestration alone: the target's
// row), and items that each make an HTTP request to a no-op server in the
// harness (the row before the noop kind existed, kept for comparison).
func remoteRows(ctx context.Context, o *options) ([]row, error) {
	var rows []row
	for _, v := range []struct {
		key  string
		http bool
	}{{"map-remote-100k-pg", false}, {"map-remote-http-100k-pg", true}} {
		if !o.want(v.key) {
			continue
		}
		rw, err := remoteRow(ctx, o, v.key, v.http)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.key, err)
		}
		rows = append(rows, rw)
	}
	return rows, nil
}

func remoteRow(ctx context.Context, o *options, key string, viaHTTP bool) (row, error) {
	n := 100_000
	if o.quick {
		n = 10_000
	}
	m, err := remoteMap(ctx, o, key, n, viaHTTP)
	if err != nil {
		return row{}, err
	}
	walls := make([]time.Duration, len(m.runs))
	for i, r := range m.runs {
		walls[i] = r.wall
	}
	w := best(walls)
	rate := float64(n) / w.Seconds()
	var mapRates []string
	for _, r := range m.runs {
		mapRates = append(mapRates, fmt.Sprintf("%s (%.0f items/s; the map task itself %s, %.0f items/s)", secs(r.wall), float64(n)/r.wall.Seconds(), secs(r.mapWall), float64(n)/r.mapWall.Seconds()))
	}
	what, task, harness := "`noop: {}`", "`noop: {}`", "reading the processes' logs"
	if viaHTTP {
		what, task, harness = "`http` GET of a local no-op server", "`http: {url: http://127.0.0.1:PORT/noop, retries: 0}`", "the no-op HTTP server, reading the processes' logs"
	}
	rw := row{
		key:    key,
		name:   fmt.Sprintf("map of %s no-op items (%s) on %d real `tasuki worker --slots %d` processes, a real `tasuki server --workers 0` on PostgreSQL", commas(n), what, remoteWorkers, remoteSlots),
		value:  fmt.Sprintf("%.0f items/s (%s for the whole map)", rate, secs(w)),
		mem:    fmt.Sprintf("server RSS %s, workers %s", mb(m.serverRSS), mb(m.workerRSS)),
		target: "≥ 10,000 items/s", met: metStr(rate >= 10_000),
	}
	if viaHTTP {
		rw.target, rw.met = "— (the noop row is the target's)", "—"
	}
	var cs, cw, cp, ch time.Duration
	for _, r := range m.runs {
		cs, cw, cp, ch = cs+r.cpuServer, cw+r.cpuWorkers, cp+r.cpuPG, ch+r.cpuHarness
	}
	items := n * len(m.runs)
	total := cs + cw + cp + ch
	itemNote := "each item is the in-process `noop` kind: the worker runs nothing, so the row measures orchestration (lease, run, report, the store) alone."
	if viaHTTP {
		itemNote = fmt.Sprintf("each item is an HTTP GET that the worker sends in its own process to a server in the harness answering 204 at once (%s requests served in all, the expected %s × %d runs).", commas(int(m.served)), commas(n), len(m.runs))
	}
	rw.notes = append(rw.notes,
		fmt.Sprintf("%s: a fresh PostgreSQL database (created on %s and dropped after), `tasuki server --db DSN --workers 0` (every attempt goes to remote workers; --parallel 64, its default), a worker token made with `tasuki token create`, and %d `tasuki worker --slots %d` processes on this machine. The pipeline is one task, %s with `map: {range: {stop: %d}}`: %s",
			key, m.pgHost, remoteWorkers, remoteSlots, task, n, itemNote),
		fmt.Sprintf("%s: the figure is items / wall time from the trigger (`POST /pipelines/bench-map-remote/runs`) to the run's end as the server recorded it (`finished_at`; the harness polls `GET /runs/{id}` once a second), best of %d runs on the same server: %s. Memory: the server's and the workers' peak RSS.", key, len(m.runs), strings.Join(mapRates, "; ")),
		fmt.Sprintf("%s: CPU time per item during the runs (user + system, from /proc): server %s, both workers %s, PostgreSQL backends of the database %s, the harness (%s) %s; %s in all: at that cost the machine's %d cores could complete at most %.0f items/s with nothing else running.",
			key, perTask(cs, items), perTask(cw, items), perTask(cp, items), harness, perTask(ch, items), perTask(total, items), runtime.NumCPU(), float64(runtime.NumCPU())*float64(items)/total.Seconds()),
		fmt.Sprintf("%s: the database committed %s transactions in its whole life (server start, token, %d runs of %s items and the harness's polls: %.3f per item), from PostgreSQL's `pg_stat_database.xact_commit` (reads count too) read after the server stopped. The workers lease a map's items in bundles (the attempt's description once, the items as a list, up to the worker's free slots; one heartbeat per bundle) and report them in batches (`POST /worker/complete`), each report carrying the item's short log (no log request; the server queues the items' logs and writes them to the database, where every server reads them, in one statement every 100 ms); the worker's calls to the server reuse kept-alive connections.",
			key, commas(int(m.commits)), len(m.runs), commas(n), float64(m.commits)/float64(n*len(m.runs))),
	)
	return rw, nil
}

type remoteRun struct {
	wall, mapWall time.Duration
	// CPU (user + system) each side used during the run.
	cpuServer, cpuWorkers, cpuPG, cpuHarness time.Duration
}

type remoteMeasure struct {
	runs                 []remoteRun
	served               int64
	serverRSS, workerRSS int64
	pgHost               string
	commits              int64 // transactions committed in the database, over its whole life
}

func remoteMap(ctx context.Context, o *options, key string, n int, viaHTTP bool) (*remoteMeasure, error) {
	m := &remoteMeasure{}
	dir := filepath.Join(o.work, key)
	pipelines, home := filepath.Join(dir, "pipelines"), filepath.Join(dir, "home")
	for _, d := range []string{pipelines, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	defer os.RemoveAll(dir)

	db, err := createDatabase(ctx)
	if err != nil {
		return nil, err
	}
	m.pgHost = db.host
	defer func() {
		if err := db.drop(); err != nil {
			progress("%s: %v", key, err)
		}
	}()

	// The no-op the items call.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var served atomic.Int64
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go hs.Serve(ln)
	defer hs.Close()

	file := filepath.Join(pipelines, "bench-map-remote.yaml")
	text := fmt.Sprintf("name: bench-map-remote\ndescription: a map of %d no-op items\ntasks:\n  - id: each\n    noop: {}\n    map: {range: {stop: %d}}\n", n, n)
	if viaHTTP {
		text = fmt.Sprintf("name: bench-map-remote\ndescription: a map of %d no-op HTTP requests\ntasks:\n  - id: each\n    http: {url: \"http://%s/noop\", retries: 0}\n    map: {range: {stop: %d}}\n", n, ln.Addr(), n)
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, o, home, pipelines, "remote", "--db", db.dsn, "--workers", "0")
	if err != nil {
		return nil, err
	}
	defer func() {
		if srv.running() {
			srv.kill()
		}
	}()
	token, err := workerToken(ctx, o, srv, dir)
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "worker.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, err
	}
	var workers []*workerProc
	defer func() {
		for _, w := range workers {
			w.kill()
		}
	}()
	for i := range remoteWorkers {
		w, err := startWorker(ctx, o, srv, tokenFile, fmt.Sprintf("bench-w%d", i), filepath.Join(dir, fmt.Sprintf("worker%d", i)))
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	if err := awaitPipeline(ctx, srv, "bench-map-remote"); err != nil {
		return nil, err
	}
	cpu := func() (server, workerSum, pg, harness time.Duration) {
		server = procCPU(srv.cmd.Process.Pid)
		for _, w := range workers {
			workerSum += procCPU(w.cmd.Process.Pid)
		}
		return server, workerSum, db.backendsCPU(ctx), selfCPU()
	}
	for rep := 1; rep <= o.reps; rep++ {
		before := served.Load()
		s0, w0, p0, h0 := cpu()
		r, err := remoteOnce(ctx, srv, n)
		if err != nil {
			return nil, err
		}
		s1, w1, p1, h1 := cpu()
		r.cpuServer, r.cpuWorkers, r.cpuPG, r.cpuHarness = s1-s0, w1-w0, p1-p0, h1-h0
		if got := served.Load() - before; viaHTTP && got != int64(n) {
			return nil, fmt.Errorf("run %d: the no-op server got %d requests, want %d", rep, got, n)
		}
		m.runs = append(m.runs, r)
		progress("[rep %d/%d] %s: %s items in %s: %.0f items/s (map task %s)", rep, o.reps, key, commas(n), secs(r.wall), float64(n)/r.wall.Seconds(), secs(r.mapWall))
	}
	m.served = served.Load()
	for _, w := range workers {
		rss, err := w.stop()
		if err != nil {
			return nil, err
		}
		m.workerRSS = max(m.workerRSS, rss)
	}
	workers = nil
	if m.serverRSS, err = srv.stop(); err != nil {
		return nil, err
	}
	// Every connection has closed, so every backend has reported its
	// transactions.
	if m.commits, err = db.commits(ctx); err != nil {
		return nil, fmt.Errorf("read the database's statistics: %w", err)
	}
	return m, nil
}

// remoteOnce triggers one run of the map and waits for it to succeed. It
// polls only once a second, so that its reads are not what the store
// spends its transactions on; the end is the run's finish time as the
// server recorded it (the same clock: both run on this machine).
func remoteOnce(ctx context.Context, srv *serverProc, n int) (remoteRun, error) {
	var r remoteRun
	var run apiRun
	t0 := time.Now()
	if err := srv.call(ctx, http.MethodPost, "/pipelines/bench-map-remote/runs", map[string]any{}, http.StatusCreated, &run); err != nil {
		return r, err
	}
	limit := time.Duration(n) * time.Millisecond * 5 // 200 items/s at worst
	for deadline := t0.Add(max(limit, time.Minute)); ; {
		if err := sleepCtx(ctx, time.Second); err != nil {
			return r, err
		}
		if err := srv.call(ctx, http.MethodGet, fmt.Sprintf("/runs/%d", run.ID), nil, http.StatusOK, &run); err != nil {
			return r, err
		}
		switch run.State {
		case "succeeded":
			if run.FinishedAt == nil || len(run.Tasks) != 1 || run.Tasks[0].StartedAt == nil || run.Tasks[0].FinishedAt == nil {
				return r, fmt.Errorf("run %d succeeded without its times: %+v", run.ID, run)
			}
			r.wall = run.FinishedAt.Sub(t0)
			r.mapWall = run.Tasks[0].FinishedAt.Sub(*run.Tasks[0].StartedAt)
			return r, nil
		case "failed", "cancelled":
			return r, fmt.Errorf("run %d ended %s (server log: %s)", run.ID, run.State, srv.logPath)
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("run %d did not succeed within %s (state %s)", run.ID, deadline.Sub(t0), run.State)
		}
	}
}

// awaitPipeline waits until the server has loaded a pipeline.
func awaitPipeline(ctx context.Context, srv *serverProc, name string) error {
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := srv.call(ctx, http.MethodGet, "/pipelines/"+name, nil, http.StatusOK, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not load pipeline %s within 30 s: %w", name, err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// pgDatabase is a fresh PostgreSQL database the harness created.
type pgDatabase struct {
	base, name string // the server's DSN (another database on it), the database's name
	dsn, host  string // a DSN of the database; host:port, for the notes
}

// createDatabase creates a fresh PostgreSQL database on the server the
// store's tests use (pgtest.ServerDSN: $TASUKI_TEST_POSTGRES, else
// 127.0.0.1:5432, database test) and returns it; drop removes it.
func createDatabase(ctx context.Context) (*pgDatabase, error) {
	db := &pgDatabase{base: pgtest.ServerDSN()}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, db.base)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL (%s, or set %s): %w", db.base, pgtest.EnvDSN, err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db.name = "tasuki_bench_" + hex.EncodeToString(b)
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+db.name); err != nil {
		return nil, fmt.Errorf("create database %s: %w", db.name, err)
	}
	cfg := conn.Config()
	db.host = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	u, err := url.Parse(db.base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		db.dsn = db.base + " dbname=" + db.name
	} else {
		u.Path = "/" + db.name
		db.dsn = u.String()
	}
	return db, nil
}

// commits is the number of transactions committed in the database so far,
// from PostgreSQL's statistics (a backend reports its own at least every
// second and when it exits).
func (db *pgDatabase) commits(ctx context.Context) (int64, error) {
	conn, err := pgx.Connect(ctx, db.base)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", db.name).Scan(&n)
	return n, err
}

// backendsCPU is the CPU time used so far by the PostgreSQL backends
// connected to the database (PostgreSQL runs on this machine), read from
// /proc; 0 when it cannot be read. A backend that exits takes its time with
// it, so it measures the server's pool, which stays connected.
func (db *pgDatabase) backendsCPU(ctx context.Context) time.Duration {
	conn, err := pgx.Connect(ctx, db.base)
	if err != nil {
		return 0
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1", db.name)
	if err != nil {
		return 0
	}
	defer rows.Close()
	var total time.Duration
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			total += procCPU(pid)
		}
	}
	return total
}

// drop removes the database, ending any connection left to it.
func (db *pgDatabase) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.base)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", db.name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db.name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", db.name, err)
	}
	return nil
}

// workerToken makes a worker token with `tasuki token create`, as an
// operator would, with the server's admin token.
func workerToken(ctx context.Context, o *options, srv *serverProc, dir string) (string, error) {
	c, err := runChild(ctx, dir, false, o.bin, "--server", strings.TrimSuffix(srv.api, "/api/v1"), "--token", srv.token, "--home", filepath.Join(dir, "cli-home"), "token", "create", "bench")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(c.out, "\n"), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(token, "tsk_") {
		return "", fmt.Errorf("token create: the last line is not a token:\n%s", tail(c.out, 500))
	}
	return token, nil
}

// workerProc is a running `tasuki worker`.
type workerProc struct {
	cmd       *exec.Cmd
	waited    chan error
	logPath   string
	parentHWM int64
	lastHWM   atomic.Int64
}

// startWorker starts `tasuki worker` and waits for its "worker started"
// line; its output goes to bench/out/worker-NAME.log.
func startWorker(ctx context.Context, o *options, srv *serverProc, tokenFile, name, dir string) (*workerProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{"worker", "--server", strings.TrimSuffix(srv.api, "/api/v1"), "--token-file", tokenFile, "--name", name, "--dir", dir, "--slots", strconv.Itoa(remoteSlots), "--grace", "5s"}
	if o.profile {
		args = append(args, "--cpuprofile", filepath.Join(o.outDir, "profiles", "worker-"+name+".prof"))
	}
	w := &workerProc{waited: make(chan error, 1), logPath: filepath.Join(o.outDir, "worker-"+name+".log")}
	logf, err := os.Create(w.logPath)
	if err != nil {
		return nil, err
	}
	shrink()
	w.parentHWM = selfHWM()
	w.cmd = exec.Command(o.bin, args...)
	w.cmd.Dir = dir
	w.cmd.Env = append(cleanEnv(), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	w.cmd.Stdout = logf
	stderr, err := w.cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := w.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	started := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := false
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if !once && strings.Contains(sc.Text(), "worker started") {
				once = true
				close(started)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		err := w.cmd.Wait()
		close(exited)
		w.waited <- err
		logf.Close()
	}()
	go func() {
		path := fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid)
		for {
			select {
			case <-exited:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if v := procStatus(path, "VmHWM:"); v > w.lastHWM.Load() {
				w.lastHWM.Store(v)
			}
		}
	}()
	select {
	case <-started:
		return w, nil
	case <-exited:
		err := <-w.waited
		w.waited <- err
		return nil, fmt.Errorf("tasuki worker %s exited before it started: %v (log: %s)", name, err, w.logPath)
	case <-time.After(30 * time.Second):
		w.kill()
		return nil, fmt.Errorf("tasuki worker %s did not start within 30 s (log: %s)", name, w.logPath)
	case <-ctx.Done():
		w.kill()
		return nil, ctx.Err()
	}
}

// kill ends the worker at once, if it still runs.
func (w *workerProc) kill() {
	_ = w.cmd.Process.Kill()
	err := <-w.waited
	w.waited <- err
}

// stop sends SIGTERM (the worker drains; nothing runs by then) and returns
// its peak RSS, as serverProc.stop does.
func (w *workerProc) stop() (int64, error) {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-w.waited:
		w.waited <- err
	case <-time.After(30 * time.Second):
		w.kill()
		err = errors.New("tasuki worker did not stop within 30 s of SIGTERM; killed")
	}
	var rss int64
	if ru, ok := w.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = int64(ru.Maxrss) * 1024
	}
	if rss <= w.parentHWM {
		rss = w.lastHWM.Load()
	}
	return rss, err
}
