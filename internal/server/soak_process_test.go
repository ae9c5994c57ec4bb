package server_test

// TestSoak is the chaos soak of issue 14 ("failover without loss"): real
// processes on a PostgreSQL of the test's own (three `tasuki server`s, two
// of them with an in-process executor, and three `tasuki worker`s), a
// directory of pipelines that exercises schedules, runs triggered by hand,
// runs started by a dataset, a map, a wait and tasks that run for seconds,
// and faults at random moments from a seeded generator: servers killed
// (kill -9) and frozen (SIGSTOP), workers killed and cut off the network,
// PostgreSQL crashed (pg_ctl stop -m immediate) and started again. When
// the soak is over the faults stop, everything is brought back, the waits
// are satisfied, and once every run has ended the test checks what the
// system promises whatever happened:
//
//   - a scheduled pipeline has exactly one run per interval, none missing;
//   - every run succeeded, and each task exactly once in the store (each
//     item of a map too); the other attempts were lost or handed back;
//   - no two attempts of a task (or of an item) ever ran at the same moment:
//     each attempt appends ticks from the clock of its machine to a ledger
//     every 50 ms, and the ticks of two attempts never interleave;
//   - the log of every succeeded attempt is readable from every server and
//     holds what the task printed;
//   - nothing is left running.
//
// A server that stops by itself (a deposed leader does, for its supervisor
// to restart it as a follower) is started again, as a supervisor would;
// the summary lists why each stopped.
//
// go test ./internal/server/ -run Soak -soak=10m soaks longer;
// -soak.seed=N replays the faults of a seed (the timing of processes still
// varies); -short skips it.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

var (
	soakFor  = flag.Duration("soak", 2*time.Minute, "how long TestSoak injects faults (0 skips it)")
	soakSeed = flag.Uint64("soak.seed", 0, "seed of TestSoak's faults and triggers (0: one from the clock)")
)

// The soak's shape.
const (
	soakServers = 3
	soakWorkers = 3
	soakFanout  = 40 // items of the fan pipeline's map
	// soakDrain bounds the wait for every run to end once the faults
	// stopped: lost attempts wait a lease timeout before they run again,
	// and a run may have lost several in a row.
	soakDrain = 3 * time.Minute
)

// soakLocal is the in-process executor's slots of each server: the leader
// runs attempts itself, or only through its workers.
var soakLocal = [soakServers]int{2, 2, 0}

// Fault kinds, as counted in the summary.
const (
	faultServerKill = "server-kill"
	faultServerStop = "server-stop"
	faultWorkerKill = "worker-kill"
	faultWorkerCut  = "worker-cut"
	faultPGRestart  = "pg-restart"
)

// soakFaults are the kinds with their weights.
var soakFaults = []struct {
	kind   string
	weight int
}{
	{faultServerKill, 3}, {faultServerStop, 2}, {faultWorkerKill, 3}, {faultWorkerCut, 2}, {faultPGRestart, 1},
}

// soakTask is the command of every `run` task of the soak. Its first
// argument is how long it works (milliseconds; "param": the run's ms
// parameter; "item": from the item's position). It appends to the ledger
// "RUN TASK[.ITEM] ATTEMPT START|TICK|END MICROS000 WORKER EXEC" lines from
// the clock of the machine it runs on, EXEC naming this process (its pid
// and start), a TICK every 50 ms from the main process itself, so no tick
// comes after that process died with its worker (its parent-death
// signal). It prints a first and a last line for its log. With "sum" as
// second argument it checks the results of the fan map it needs. It runs
// as bash (as an argv, so bash is the attempt's main process) for
// $EPOCHREALTIME: a tick forks only its sleep.
const soakTask = `set -u
key="$TASUKI_RUN_ID $TASUKI_TASK_ID${TASUKI_ITEM_INDEX:+.$TASUKI_ITEM_INDEX} $TASUKI_ATTEMPT"
exe="$$-${EPOCHREALTIME//[.,]/}"
mark() { printf '%s %s %s000 %s %s\n' "$key" "$1" "${EPOCHREALTIME//[.,]/}" "${W:-unknown}" "$exe" >> "$SOAK_LEDGER"; }
mark START
echo "begin $key on ${W:-unknown}"
case "$1" in
  param) ms=$TASUKI_PARAM_MS ;;
  item) ms=$(( 100 + TASUKI_ITEM_INDEX % 6 * 100 )) ;;
  *) ms=$1 ;;
esac
end=$(( ${EPOCHREALTIME//[.,]/} + ms * 1000 ))
while (( ${EPOCHREALTIME//[.,]/} < end )); do sleep 0.05; mark TICK; done
if [ -n "${TASUKI_ITEM_INDEX:-}" ]; then echo "$TASUKI_ITEM_INDEX" > "$TASUKI_RESULT"; fi
if [ "${2:-}" = sum ]; then
  n=0 s=0
  while read -r v; do n=$((n + 1)); s=$((s + v)); done < "$TASUKI_NEED_FAN"
  want=$(( (SOAK_FANOUT - 1) * SOAK_FANOUT / 2 ))
  if [ "$n" != "$SOAK_FANOUT" ] || [ "$s" != "$want" ]; then
    echo "fan's results: $n items summing to $s, want $SOAK_FANOUT summing to $want" >&2
    exit 1
  fi
fi
mark END
echo "done $key on ${W:-unknown}"
`

// soakPipelines writes the pipelines: tick (every 3 s, catching every
// interval up), produce (by hand: a task of ms milliseconds, then one that
// updates the dataset soakdata), consume (started by soakdata), fan (by
// hand: a map of soakFanout items, then a task that checks their results)
// and gate (by hand: a wait for the file GATES/KEY, then a task).
func soakPipelines(t *testing.T, dir, script, ledger, gates string) {
	t.Helper()
	env := fmt.Sprintf("env: {SOAK_LEDGER: %q, SOAK_FANOUT: %q, GATES: %q}\n", ledger, strconv.Itoa(soakFanout), gates)
	run := func(args ...string) string {
		return fmt.Sprintf("[bash, %q, %s]", script, strings.Join(args, ", "))
	}
	writeFile(t, dir, "tick.yaml", `name: tick
schedule: {cron: "*/3 * * * * *", catchup: all}
`+env+`tasks:
  - {id: stamp, run: `+run(`"150"`)+`}
`)
	writeFile(t, dir, "produce.yaml", `name: produce
params: [{name: key, required: true}, {name: ms, type: int, default: 2000}]
`+env+`tasks:
  - {id: extract, run: `+run("param")+`}
  - {id: load, needs: [extract], produces: [soakdata], run: `+run(`"200"`)+`}
`)
	writeFile(t, dir, "consume.yaml", `name: consume
schedule: {datasets: [soakdata]}
`+env+`tasks:
  - {id: report, run: `+run(`"200"`)+`}
`)
	writeFile(t, dir, "fan.yaml", fmt.Sprintf(`name: fan
params: [{name: key, required: true}]
`+env+`tasks:
  - {id: fan, map: {range: {stop: %d}, concurrency: 8}, run: `+run("item")+`}
  - {id: sum, needs: [fan], run: `+run(`"100"`, "sum")+`}
`, soakFanout))
	writeFile(t, dir, "gate.yaml", `name: gate
params: [{name: key, required: true}]
`+env+`tasks:
  - {id: gate, wait: {file: "${GATES}/${TASUKI_PARAM_KEY}", poke: 200ms}}
  - {id: after, needs: [gate], run: `+run(`"300"`)+`}
`)
}

// soakServer is one of the soak's servers, across its restarts: the same
// data directory and address, a new process each time.
type soakServer struct {
	name string // s0, s1...: W of its in-process attempts
	home string
	addr string // host:port, kept across restarts so workers find it again
	p    *pgServer
	// state: "up"; "killed" (restarted at until); "stopped" (SIGCONT at
	// until); "exited" (it stopped by itself; restarted at once).
	state string
	until time.Time
	runs  int // processes started
}

// soakWorker is one of the soak's workers, across its restarts: the same
// name, and a proxy to each server that the test cuts to cut it off.
type soakWorker struct {
	name    string
	p       *workerProc
	proxies []*pgtest.Proxy // by server
	// state: "up"; "killed" (restarted at until); "cut" (restored at until).
	state string
	until time.Time
	runs  int
}

type soak struct {
	t         *testing.T
	rng       *rand.Rand
	pg        *pgtest.Instance
	pgDown    bool
	pgUntil   time.Time
	pipelines string
	tokenFile string
	gates     string
	servers   []*soakServer
	workers   []*soakWorker

	faults    map[string]int
	selfExits []string       // servers and workers that stopped by themselves, and why
	refused   int            // triggers the API refused (a server or the store away)
	keys      map[string]int // params key -> triggers that returned a run
	gatesOpen map[string]bool
	nextKey   int
	timeline  []string // faults and recoveries, with their times, for a failure's message
}

// note records a fault or a recovery in the timeline.
func (sk *soak) note(format string, args ...any) {
	sk.timeline = append(sk.timeline, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// TestSoak: see the top of this file.
func TestSoak(t *testing.T) {
	if testing.Short() || *soakFor <= 0 {
		t.Skip("the chaos soak runs for -soak (2m by default) with real servers, workers and PostgreSQL")
	}
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak seed %d for %s (replay with -soak.seed=%d)", seed, *soakFor, seed)
	work := t.TempDir()
	sk := &soak{
		t: t, rng: rand.New(rand.NewPCG(seed, 14)),
		pipelines: t.TempDir(), gates: filepath.Join(work, "gates"),
		faults: map[string]int{}, keys: map[string]int{}, gatesOpen: map[string]bool{},
	}
	// Registered first, so said last, after the processes' logs.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("soak timeline:\n%s", strings.Join(sk.timeline, "\n"))
			t.Logf("soak seed %d failed: replay with go test ./internal/server/ -run Soak -soak=%s -soak.seed=%d -v", seed, *soakFor, seed)
		}
	})
	pg := pgtest.Private(t)
	sk.pg = pg
	if err := os.Mkdir(sk.gates, 0o755); err != nil {
		t.Fatal(err)
	}
	ledger, script := filepath.Join(work, "ledger"), writeFile(t, work, "task.sh", soakTask)
	soakPipelines(t, sk.pipelines, script, ledger, sk.gates)
	// Whatever a failed test leaves running of the tasks is killed.
	t.Cleanup(func() {
		for _, pid := range taskProcesses(script) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	for i := range soakServers {
		s := &soakServer{name: fmt.Sprintf("s%d", i), home: t.TempDir(), addr: soakPort(t)}
		sk.servers = append(sk.servers, s)
		sk.startServer(s)
		if i == 0 {
			s.p.waitLine("leading:", 10*time.Second)
		}
	}
	_, sk.tokenFile = createToken(t, sk.servers[0].url(), "soak")
	for i := range soakWorkers {
		w := &soakWorker{name: fmt.Sprintf("w%d", i)}
		for _, s := range sk.servers {
			w.proxies = append(w.proxies, pgtest.NewProxy(t, s.addr))
		}
		sk.workers = append(sk.workers, w)
		sk.startWorker(i)
	}

	// The soak: faults and triggers at random moments, in one loop (so
	// no two faults of one process overlap, and the test's failures are
	// reported from its goroutine).
	began := time.Now()
	end := began.Add(*soakFor)
	nextFault := began.Add(sk.between(time.Second, 4*time.Second))
	nextTrigger := began.Add(sk.between(200*time.Millisecond, time.Second))
	for time.Now().Before(end) {
		sk.recover(false)
		now := time.Now()
		if !now.Before(nextTrigger) {
			sk.trigger()
			nextTrigger = time.Now().Add(sk.between(300*time.Millisecond, 2500*time.Millisecond))
		}
		if !now.Before(nextFault) {
			sk.inject()
			nextFault = time.Now().Add(sk.between(time.Second, 5*time.Second))
		}
		time.Sleep(50 * time.Millisecond) // the next moment something is due: faults are timed, not awaited
	}
	soaked := time.Since(began)

	// The end: everything back, the schedule paused, every wait
	// satisfied, then every run ended.
	sk.recover(true)
	c := sk.client()
	sk.eventually(30*time.Second, "the tick pipeline to pause", func() (bool, string) {
		p, err := c.SetPaused(context.Background(), "tick", true, "soak")
		return err == nil && p.Paused, fmt.Sprint(err)
	})
	for key := range sk.keys {
		if !sk.gatesOpen[key] {
			writeFile(t, sk.gates, key, "open\n")
		}
	}
	st := openPG(t, pg.DSN())
	var runs []api.Run
	drained := time.Now()
	sk.eventually(soakDrain, "every run to end", func() (bool, string) {
		var err error
		if runs, err = sk.allRuns(c); err != nil {
			return false, err.Error()
		}
		for _, r := range runs {
			if !r.State.Terminal() {
				return false, fmt.Sprintf("run %d of %s is %s", r.ID, r.Pipeline, r.State)
			}
		}
		// The dataset's last update started its run.
		d, err := c.Dataset(context.Background(), "soakdata", "", 1)
		if err != nil {
			return false, err.Error()
		}
		if d.LastUpdate != nil && !slices.ContainsFunc(runs, func(r api.Run) bool {
			return r.Pipeline == "consume" && !r.CreatedAt.Before(d.LastUpdate.At)
		}) {
			return false, fmt.Sprintf("no run of consume since the update of soakdata at %s", d.LastUpdate.At)
		}
		return true, ""
	})
	t.Logf("every run ended %s after the faults stopped", time.Since(drained).Round(time.Second))

	sum := sk.check(c, st, runs, ledger, script)
	procs := 0
	for _, s := range sk.servers {
		procs += s.runs
	}
	for _, w := range sk.workers {
		procs += w.runs
	}
	t.Logf("soak summary: seed %d, %s of faults + %s to drain; faults %s; self-exits %d; processes started %d; runs %s; triggers refused %d; tasks %d, attempts %d (lost %d, preempted %d); intervals %d; map items %d (%d item executions); ledger executions %d",
		seed, soaked.Round(time.Second), time.Since(drained).Round(time.Second), sk.faultSummary(), len(sk.selfExits), procs, sum.runs,
		sk.refused, sum.tasks, sum.attempts, sum.lost, sum.preempted, sum.intervals, sum.items, sum.itemExecs, sum.execs)
	for _, e := range sk.selfExits {
		t.Logf("self-exit: %s", e)
	}
	// A clean stop, each: the workers drain (nothing runs), the servers
	// too.
	for _, w := range sk.workers {
		if !w.p.exited() {
			w.p.term(30 * time.Second)
		}
	}
	for _, s := range sk.servers {
		if s.p.exited() {
			continue
		}
		s.p.signal(syscall.SIGTERM)
		select {
		case <-s.p.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("server %s did not stop within 30 s of SIGTERM", s.name)
		}
		// Status 0, or 1 for a leader deposed meanwhile (a late renewal).
		if s.p.err != nil && !strings.Contains(s.p.logs(), "lost leadership of the store") {
			t.Errorf("server %s stopped with %v after SIGTERM, want status 0", s.name, s.p.err)
		}
	}
}

// soakPort picks a free port of 127.0.0.1 below the kernel's ephemeral
// range, so a server restarted on it does not find it taken by a
// connection's local end meanwhile.
func soakPort(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

func (s *soakServer) url() string { return "http://" + s.addr }

// between is a random duration in [lo, hi).
func (sk *soak) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(sk.rng.Int64N(int64(hi-lo)))
}

func (sk *soak) startServer(s *soakServer) {
	sk.t.Helper()
	env := append(slices.Clone(adoptEnv), "W="+s.name)
	s.p = startPGServer(sk.t, sk.pg.DSN(), s.home, sk.pipelines, env, "--workers", strconv.Itoa(soakLocal[slices.Index(sk.servers, s)]), "--addr", s.addr)
	s.state, s.runs = "up", s.runs+1
}

// workerServers are the URLs worker i is given, each through a proxy of
// its own (cutting the worker off cuts them all): server i's alone while
// tasuki worker takes one --server. Once it takes several (branch
// workerlist), give it every server's, each through w.proxies[j].
func (sk *soak) workerServers(i int) []string {
	w := sk.workers[i]
	return []string{"http://" + w.proxies[i%len(sk.servers)].Addr()}
}

func (sk *soak) startWorker(i int) {
	sk.t.Helper()
	w := sk.workers[i]
	urls := sk.workerServers(i)
	args := []string{"--slots", "3", "--inventory-every", "0"}
	for _, u := range urls[1:] {
		args = append(args, "--server", u)
	}
	w.p = startWorker(sk.t, urls[0], sk.tokenFile, w.name, nil, args...)
	w.state, w.runs = "up", w.runs+1
}

// client is the API of a server that is up.
func (sk *soak) client() *api.Client {
	var up []*soakServer
	for _, s := range sk.servers {
		if s.state == "up" && !s.p.exited() {
			up = append(up, s)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[sk.rng.IntN(len(up))].p.c
}

// recover brings back what is due (all of it when all), and restarts
// what stopped by itself.
func (sk *soak) recover(all bool) {
	t := sk.t
	t.Helper()
	now := time.Now()
	due := func(at time.Time) bool { return all || !now.Before(at) }
	if sk.pgDown && due(sk.pgUntil) {
		sk.pg.Start(t)
		sk.pgDown = false
		sk.note("postgres started")
	}
	for _, s := range sk.servers {
		switch {
		case s.state == "stopped" && due(s.until):
			s.p.signal(syscall.SIGCONT)
			s.state = "up"
			sk.note("server %s: SIGCONT", s.name)
		case s.state == "up" && s.p.exited():
			// Stopped by itself: a deposed leader stops so that its
			// supervisor restarts it as a follower; this test is that
			// supervisor.
			why := lastLines(s.p.logs(), 3)
			if strings.Contains(s.p.logs(), "panic:") || strings.Contains(s.p.logs(), "fatal error:") {
				t.Errorf("server %s crashed (%v):\n%s", s.name, s.p.err, s.p.logs())
			}
			sk.selfExits = append(sk.selfExits, fmt.Sprintf("server %s at %s (%v): %s", s.name, time.Now().Format("15:04:05.000"), s.p.err, why))
			sk.note("server %s exited by itself: %v", s.name, s.p.err)
			s.state = "exited"
		}
		if (s.state == "killed" && due(s.until) || s.state == "exited") && !sk.pgDown {
			sk.startServer(s)
			sk.note("server %s started (process %d)", s.name, s.p.pid())
		}
	}
	for i, w := range sk.workers {
		switch {
		case w.state == "cut" && due(w.until):
			for _, p := range w.proxies {
				p.Restore()
			}
			w.state = "up"
			sk.note("worker %s: network restored", w.name)
		case w.state == "killed" && due(w.until):
			sk.startWorker(i)
			sk.note("worker %s started (process %d)", w.name, w.p.pid())
		case w.state == "up" && w.p.exited():
			if strings.Contains(w.p.logs(), "panic:") || strings.Contains(w.p.logs(), "fatal error:") {
				t.Errorf("worker %s crashed (%v):\n%s", w.name, w.p.err, w.p.logs())
			}
			sk.selfExits = append(sk.selfExits, fmt.Sprintf("worker %s at %s (%v): %s", w.name, time.Now().Format("15:04:05.000"), w.p.err, lastLines(w.p.logs(), 3)))
			sk.note("worker %s exited by itself: %v", w.name, w.p.err)
			sk.startWorker(i)
			sk.note("worker %s started (process %d)", w.name, w.p.pid())
		}
	}
}

// lastLines is the end of a log, for a message.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// inject starts a fault of a random kind on a random process that has
// none, keeping at least one server and one worker free of faults.
func (sk *soak) inject() {
	t := sk.t
	t.Helper()
	total := 0
	for _, f := range soakFaults {
		total += f.weight
	}
	pick := sk.rng.IntN(total)
	kind := ""
	for _, f := range soakFaults {
		if pick < f.weight {
			kind = f.kind
			break
		}
		pick -= f.weight
	}
	var servers []*soakServer
	busy := 0
	for _, s := range sk.servers {
		if s.state == "up" && !s.p.exited() {
			servers = append(servers, s)
		} else {
			busy++
		}
	}
	var workers []int
	for i, w := range sk.workers {
		if w.state == "up" {
			workers = append(workers, i)
		}
	}
	switch kind {
	case faultServerKill, faultServerStop:
		if len(servers) < 2 || busy >= len(sk.servers)-1 {
			return
		}
		s := servers[sk.rng.IntN(len(servers))]
		if kind == faultServerKill {
			sk.note("server %s: kill -9 (process %d)", s.name, s.p.pid())
			s.p.kill()
			s.state, s.until = "killed", time.Now().Add(sk.between(300*time.Millisecond, 5*time.Second))
		} else {
			if err := s.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				return // it has just stopped by itself: recover restarts it
			}
			sk.note("server %s: SIGSTOP", s.name)
			s.state, s.until = "stopped", time.Now().Add(sk.between(time.Second, 5*time.Second))
		}
	case faultWorkerKill, faultWorkerCut:
		if len(workers) < 2 {
			return
		}
		i := workers[sk.rng.IntN(len(workers))]
		w := sk.workers[i]
		if kind == faultWorkerKill {
			sk.note("worker %s: kill -9 (process %d)", w.name, w.p.pid())
			w.p.kill()
			w.state, w.until = "killed", time.Now().Add(sk.between(300*time.Millisecond, 5*time.Second))
		} else {
			for _, p := range w.proxies {
				p.Cut()
			}
			sk.note("worker %s: network cut", w.name)
			w.state, w.until = "cut", time.Now().Add(sk.between(time.Second, 8*time.Second))
		}
	case faultPGRestart:
		if sk.pgDown {
			return
		}
		sk.note("postgres: stop -m immediate")
		sk.pg.Stop(t, "immediate")
		sk.pgDown, sk.pgUntil = true, time.Now().Add(sk.between(200*time.Millisecond, 3*time.Second))
	}
	sk.faults[kind]++
}

// trigger starts a run of produce, fan or gate through a random server
// that is up, or opens the gate of an earlier gate run.
func (sk *soak) trigger() {
	c := sk.client()
	if c == nil {
		return
	}
	what := []string{"produce", "produce", "fan", "gate", "open"}[sk.rng.IntN(5)]
	if what == "open" {
		var closed []string
		for key := range sk.keys {
			if strings.HasPrefix(key, "gate-") && !sk.gatesOpen[key] {
				closed = append(closed, key)
			}
		}
		if len(closed) > 0 {
			sort.Strings(closed)
			key := closed[sk.rng.IntN(len(closed))]
			writeFile(sk.t, sk.gates, key, "open\n")
			sk.gatesOpen[key] = true
			sk.note("gate %s opened", key)
		}
		return
	}
	sk.nextKey++
	key := fmt.Sprintf("%s-%d", what, sk.nextKey)
	params := map[string]string{"key": key}
	if what == "produce" {
		params["ms"] = strconv.Itoa(500 + 500*sk.rng.IntN(10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Trigger(ctx, what, params, "soak")
	if err != nil {
		sk.refused++
		sk.note("trigger %s refused: %v", key, err)
		return
	}
	sk.note("run %d of %s: %s", r.ID, what, key)
	sk.keys[key]++
}

func (sk *soak) faultSummary() string {
	var parts []string
	for _, f := range soakFaults {
		parts = append(parts, fmt.Sprintf("%s %d", f.kind, sk.faults[f.kind]))
	}
	return strings.Join(parts, ", ")
}

// eventually is the package's eventually with the soak's supervision
// between polls: a server or worker that stops by itself meanwhile is
// started again.
func (sk *soak) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	sk.t.Helper()
	eventually(sk.t, timeout, what, func() (bool, string) {
		sk.recover(true)
		return cond()
	})
}

// retry calls fn until it returns nil, and reports whether it did: an
// answer the server could not give (503: the store away) or no answer (a
// server that stopped by itself, a deposed leader, restarted meanwhile) is
// tried again for up to a minute, with the soak's supervision between
// tries; any other error fails the test. After the faults, a server may
// still stop by itself: a leader whose renewal came late on a busy machine
// is deposed.
func (sk *soak) retry(what string, fn func() error) bool {
	sk.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := fn()
		if err == nil {
			return true
		}
		e, isAPI := errors.AsType[*api.Error](err)
		if (isAPI && e.Status != http.StatusServiceUnavailable) || time.Now().After(deadline) {
			sk.t.Errorf("%s: %v", what, err)
			return false
		}
		time.Sleep(pollEvery)
		sk.recover(true)
	}
}

// allRuns lists every run, of every pipeline.
func (sk *soak) allRuns(c *api.Client) ([]api.Run, error) {
	var out []api.Run
	f := api.RunFilter{Limit: 1000}
	for {
		page, err := c.Runs(context.Background(), f)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out, nil
		}
		f.Cursor = page.Next
	}
}

// soakExec is one execution of an attempt's process, from the ledger.
type soakExec struct {
	key         string // RUN TASK[.ITEM]
	attempt     int
	worker      string
	exec        string // pid-start
	first, last int64  // nanoseconds
	ended       bool   // it wrote END
}

// readLedger groups the ledger's lines by execution.
func readLedger(t *testing.T, path string) map[string][]*soakExec {
	t.Helper()
	byExec := map[string]*soakExec{}
	out := map[string][]*soakExec{}
	for _, line := range readLines(t, path) {
		f := strings.Fields(line)
		if len(f) != 7 {
			t.Errorf("ledger line %q: want RUN TASK ATTEMPT EVENT NANOS WORKER EXEC", line)
			continue
		}
		n, err1 := strconv.Atoi(f[2])
		at, err2 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil {
			t.Errorf("ledger line %q: bad numbers", line)
			continue
		}
		key := f[0] + " " + f[1]
		id := key + " " + f[6]
		e := byExec[id]
		if e == nil {
			e = &soakExec{key: key, attempt: n, worker: f[5], exec: f[6], first: at, last: at}
			byExec[id] = e
			out[key] = append(out[key], e)
		}
		e.first, e.last = min(e.first, at), max(e.last, at)
		e.ended = e.ended || f[3] == "END"
	}
	for _, es := range out {
		slices.SortFunc(es, func(a, b *soakExec) int { return cmp.Compare(a.first, b.first) })
	}
	return out
}

type soakSummary struct {
	runs                       string
	tasks, attempts            int
	lost, preempted, intervals int
	items, itemExecs, execs    int
}

// check asserts what the system promises once every run has ended.
func (sk *soak) check(c *api.Client, st store.Store, runs []api.Run, ledger, script string) soakSummary {
	t := sk.t
	t.Helper()
	ctx := context.Background()
	var sum soakSummary
	execs := readLedger(t, ledger)
	for _, es := range execs {
		sum.execs += len(es)
	}

	// No two executions of one task or item overlap in time.
	for key, es := range execs {
		for i := 1; i < len(es); i++ {
			a, b := es[i-1], es[i]
			if b.first <= a.last {
				t.Errorf("%s: attempt %d (on %s, process %s) ran until %s, attempt %d (on %s, process %s) started at %s: two attempts at once (executions: %s)",
					key, a.attempt, a.worker, a.exec, time.Unix(0, a.last).Format("15:04:05.000000"),
					b.attempt, b.worker, b.exec, time.Unix(0, b.first).Format("15:04:05.000000"), describeExecs(es))
			}
		}
	}

	byPipeline := map[string][]api.Run{}
	known := map[string]bool{} // ledger keys of the runs' tasks and items
	type logWant struct {
		run     int64
		name    string // task, or TASK.ITEM
		attempt int
	}
	var logs []logWant
	for _, r := range runs {
		byPipeline[r.Pipeline] = append(byPipeline[r.Pipeline], r)
		if r.State != engine.RunSucceeded {
			t.Errorf("run %d of %s (params %s) is %s, want succeeded", r.ID, r.Pipeline, r.Params, r.State)
		}
		tasks, err := st.Tasks(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		atts, err := st.Attempts(ctx, r.ID, -1)
		if err != nil {
			t.Fatal(err)
		}
		byIndex := map[int][]store.Attempt{}
		for _, a := range atts {
			byIndex[a.Index] = append(byIndex[a.Index], a)
		}
		for _, tk := range tasks {
			sum.tasks++
			as := byIndex[tk.Index]
			sum.attempts += len(as)
			key := fmt.Sprintf("%d %s", r.ID, tk.TaskID)
			if tk.State != engine.TaskSucceeded {
				t.Errorf("run %d of %s, task %s: %s, want succeeded (attempts %s)", r.ID, r.Pipeline, tk.TaskID, tk.State, outcomes(as))
			}
			if tk.TaskID == "fan" {
				sk.checkItems(c, r, execs, known, &sum, func(item, attempt int) {
					logs = append(logs, logWant{r.ID, api.ItemLogName("fan", item), attempt})
				})
			}
			succeeded := 0
			for k, a := range as {
				switch a.Outcome {
				case store.OutcomeSucceeded:
					succeeded++
				case store.OutcomeLost:
					sum.lost++
				case store.OutcomePreempted:
					sum.preempted++
				default:
					t.Errorf("run %d of %s, task %s, attempt %d: %s (%s), want lost or preempted before the success (attempts %s)",
						r.ID, r.Pipeline, tk.TaskID, a.Attempt, a.Outcome, a.Message, outcomes(as))
				}
				if a.Attempt != k+1 {
					t.Errorf("run %d of %s, task %s: attempts numbered %s, want 1..n", r.ID, r.Pipeline, tk.TaskID, outcomes(as))
				}
			}
			if succeeded != 1 || len(as) == 0 || as[len(as)-1].Outcome != store.OutcomeSucceeded {
				t.Errorf("run %d of %s, task %s: attempts %s, want exactly one success, the last", r.ID, r.Pipeline, tk.TaskID, outcomes(as))
				continue
			}
			if tk.TaskID == "gate" || tk.TaskID == "fan" {
				continue // a wait runs no process; a map's run as its items
			}
			known[key] = true
			last := as[len(as)-1].Attempt
			checkExecs(t, key, execs[key], last)
			logs = append(logs, logWant{r.ID, tk.TaskID, last})
		}
	}
	for key, es := range execs {
		if !known[key] {
			t.Errorf("%s ran (%d times, first on %s) but is no task or item of a run the store has", key, len(es), es[0].worker)
		}
	}

	// Every run triggered by hand is there once.
	keys := map[string]int{}
	for _, r := range runs {
		var p struct{ Key string }
		if len(r.Params) > 0 {
			if err := json.Unmarshal(r.Params, &p); err != nil {
				t.Errorf("run %d params %s: %v", r.ID, r.Params, err)
			}
		}
		if p.Key != "" {
			keys[p.Key]++
		}
	}
	for key, n := range sk.keys {
		if keys[key] != n {
			t.Errorf("the trigger of %s returned a run; the store has %d runs of it", key, keys[key])
		}
	}
	for key, n := range keys {
		if n > 1 {
			t.Errorf("%d runs of %s, triggered once", n, key)
		}
	}

	// The schedule: one run per interval, from the first to the last.
	ticks := byPipeline["tick"]
	sort.Slice(ticks, func(i, j int) bool { return ticks[i].IntervalStart.Before(*ticks[j].IntervalStart) })
	for i, r := range ticks {
		if r.IntervalStart == nil || r.IntervalEnd == nil {
			t.Fatalf("run %d of tick has no interval", r.ID)
		}
		if i > 0 && !r.IntervalStart.Equal(*ticks[i-1].IntervalEnd) {
			t.Errorf("run %d of tick covers [%s, %s), the previous run %d ended at %s: an interval doubled or missing",
				r.ID, r.IntervalStart.Format("15:04:05"), r.IntervalEnd.Format("15:04:05"), ticks[i-1].ID, ticks[i-1].IntervalEnd.Format("15:04:05"))
		}
	}
	sum.intervals = len(ticks)
	if len(ticks) < 2 {
		t.Errorf("%d runs of tick, scheduled every 3 s", len(ticks))
	}

	// The dataset: each success of load recorded one update; consume ran
	// on them, at most once per update.
	var d api.Dataset
	sk.retry("the updates of soakdata", func() (err error) {
		d, err = c.Dataset(ctx, "soakdata", "", 1000)
		return err
	})
	if got, want := len(d.Updates), len(byPipeline["produce"]); got != want {
		t.Errorf("soakdata has %d updates, from %d runs of produce", got, want)
	}
	if n := len(byPipeline["consume"]); n > len(d.Updates) || (len(d.Updates) > 0 && n == 0) {
		t.Errorf("%d runs of consume for %d updates of soakdata", n, len(d.Updates))
	}

	// Every succeeded attempt's log, from every server.
	for _, lw := range logs {
		key := fmt.Sprintf("%d %s %d", lw.run, lw.name, lw.attempt)
		for _, s := range sk.servers {
			var b bytes.Buffer
			if !sk.retry("the log of "+key+" from server "+s.name, func() error {
				b.Reset()
				_, err := s.p.c.ReadLog(ctx, lw.run, lw.name, lw.attempt, 0, &b)
				return err
			}) {
				continue
			}
			if !strings.Contains(b.String(), " out begin "+key+" on ") || !strings.Contains(b.String(), " out done "+key+" on ") {
				t.Errorf("log of %s (succeeded) read from server %s lacks its first or last line:\n%s\nexecutions: %s",
					key, s.name, b.String(), describeExecs(execs[fmt.Sprintf("%d %s", lw.run, lw.name)]))
			}
		}
	}

	// Nothing runs: no attempt held, no task process.
	sk.eventually(30*time.Second, "no attempt held by an executor", func() (bool, string) {
		ws, err := c.Workers(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, w := range ws {
			if len(w.Running) > 0 {
				return false, fmt.Sprintf("%s holds %+v", w.Name, w.Running)
			}
		}
		return true, ""
	})
	sk.eventually(5*time.Second, "no task process left", func() (bool, string) {
		pids := taskProcesses(script)
		return len(pids) == 0, fmt.Sprint(pids)
	})

	var parts []string
	for _, p := range []string{"tick", "produce", "consume", "fan", "gate"} {
		parts = append(parts, fmt.Sprintf("%s %d", p, len(byPipeline[p])))
	}
	sum.runs = fmt.Sprintf("%d (%s)", len(runs), strings.Join(parts, ", "))
	return sum
}

// checkItems checks the items of run r's fan map: each succeeded, once in
// the store, and ran (to its end) as the attempt the store names.
func (sk *soak) checkItems(c *api.Client, r api.Run, execs map[string][]*soakExec, known map[string]bool, sum *soakSummary, succeeded func(item, attempt int)) {
	t := sk.t
	t.Helper()
	var items []api.Item
	q := api.ItemQuery{Limit: 1000}
	for {
		var page api.Page[api.Item]
		if !sk.retry(fmt.Sprintf("the items of run %d", r.ID), func() (err error) {
			page, err = c.Items(context.Background(), r.ID, "fan", q)
			return err
		}) {
			return
		}
		items = append(items, page.Items...)
		if page.Next == "" || len(page.Items) == 0 {
			break
		}
		q.From = page.Items[len(page.Items)-1].Item + 1
	}
	if len(items) != soakFanout {
		t.Errorf("run %d of fan: %d items listed, want %d", r.ID, len(items), soakFanout)
	}
	for _, it := range items {
		sum.items++
		key := fmt.Sprintf("%d fan.%d", r.ID, it.Item)
		known[key] = true
		sum.itemExecs += len(execs[key])
		if it.State != engine.TaskSucceeded || it.Attempt < 1 {
			t.Errorf("run %d of fan, item %d: %s (attempt %d: %s), want succeeded", r.ID, it.Item, it.State, it.Attempt, it.Message)
			continue
		}
		checkExecs(t, key, execs[key], it.Attempt)
		succeeded(it.Item, it.Attempt)
	}
}

// checkExecs checks the executions of a task or item whose attempt last
// succeeded: one of them is that attempt and ran to its end, and none is
// of a later attempt the store does not know.
func checkExecs(t *testing.T, key string, es []*soakExec, last int) {
	t.Helper()
	ran := false
	for _, e := range es {
		if e.attempt > last {
			t.Errorf("%s: attempt %d ran on %s, but the store's last attempt is %d", key, e.attempt, e.worker, last)
		}
		ran = ran || (e.attempt == last && e.ended)
	}
	if !ran {
		t.Errorf("%s: attempt %d succeeded in the store, but the ledger has no execution of it that ended (executions: %s)", key, last, describeExecs(es))
	}
}

// describeExecs says what the ledger has of a task or an item.
func describeExecs(es []*soakExec) string {
	var seen []string
	for _, e := range es {
		seen = append(seen, fmt.Sprintf("attempt %d on %s, process %s, %s to %s (ended %v)", e.attempt, e.worker, e.exec,
			time.Unix(0, e.first).Format("15:04:05.000"), time.Unix(0, e.last).Format("15:04:05.000"), e.ended))
	}
	return strings.Join(seen, "; ")
}

// taskProcesses are the processes alive (not zombies) running the soak's
// task script.
func taskProcesses(script string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(script)) || !alive(pid) {
			continue
		}
		out = append(out, pid)
	}
	return out
}
