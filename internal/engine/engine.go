package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// MaxUncharged bounds the attempts of a task that are not charged to its
// retry budget (lost or handed back). Past it, a lost attempt counts like a
// failure, so a task that brings down every executor it runs on cannot loop
// for ever.
const MaxUncharged = 10

// ErrRejected is returned (wrapped) when an event does not apply to the current
// state: a start of a task that is not ready, a result for an attempt that is
// no longer current, anything for a finished run. Callers treat it as stale
// input, never as a reason to corrupt state.
var ErrRejected = errors.New("event rejected")

// State is read access to a run's current state.
type State interface {
	Run() Run
	Task(i int) Task
}

// Engine applies events to the runs of one graph.
type Engine struct {
	Graph *Graph
	// Seed makes retry jitter differ between runs while staying reproducible:
	// the same seed, task and attempt always give the same delay.
	Seed uint64
}

// Apply computes the transition that ev causes at time now. It never modifies
// st; the caller persists the transition and applies it to its state (for Mem,
// with Commit).
func (e *Engine) Apply(st State, now time.Time, ev Event) (Transition, error) {
	tx := &txn{e: e, st: st, now: now, run: st.Run(), tasks: map[int]*Task{}, changed: map[int]bool{}}
	if err := tx.apply(ev); err != nil {
		return Transition{}, err
	}
	return tx.result(), nil
}

// txn accumulates one transition, reading its own writes through an overlay.
type txn struct {
	e          *Engine
	st         State
	now        time.Time
	run        Run
	runChanged bool
	tasks      map[int]*Task
	changed    map[int]bool
	order      []int
	records    []Record
	actions    []Action
}

func (tx *txn) task(i int) *Task {
	if t, ok := tx.tasks[i]; ok {
		return t
	}
	t := tx.st.Task(i)
	tx.tasks[i] = &t
	return &t
}

// touch marks task i as changed and returns it for modification.
func (tx *txn) touch(i int) *Task {
	t := tx.task(i)
	if !tx.changed[i] {
		tx.changed[i] = true
		tx.order = append(tx.order, i)
	}
	return t
}

func (tx *txn) setRun() *Run {
	tx.runChanged = true
	return &tx.run
}

func (tx *txn) record(r Record) {
	r.Time = tx.now
	tx.records = append(tx.records, r)
}

func (tx *txn) result() Transition {
	tr := Transition{Records: tx.records, Actions: tx.actions}
	if tx.runChanged {
		r := tx.run
		tr.Run = &r
	}
	tr.Tasks = make([]TaskChange, len(tx.order))
	for k, i := range tx.order {
		tr.Tasks[k] = TaskChange{Index: i, Task: *tx.tasks[i]}
	}
	return tr
}

func rejected(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRejected, fmt.Sprintf(format, args...))
}

func (tx *txn) apply(ev Event) error {
	g := tx.e.Graph
	if ev.Kind != EvRunStarted && ev.Kind != EvCancel && ev.Kind != EvRetryFailed {
		if ev.Task < 0 || ev.Task >= g.Len() {
			return rejected("%s: no task %d in a graph of %d", ev.Kind, ev.Task, g.Len())
		}
	}
	switch ev.Kind {
	case EvRetryFailed:
		return tx.retryFailed(ev)
	case EvMarkSucceeded, EvMarkSkipped:
		return tx.mark(ev)
	}
	if tx.run.State.Terminal() {
		return rejected("%s: run already %s", ev.Kind, tx.run.State)
	}
	switch ev.Kind {
	case EvRunStarted:
		return tx.runStarted()
	case EvCancel:
		return tx.cancel(ev)
	case EvTaskStarted:
		return tx.taskStarted(ev)
	case EvRetryDue:
		return tx.retryDue(ev)
	case EvWaitPoked:
		return tx.waitPoked(ev)
	case EvTaskSucceeded, EvTaskFailed, EvTaskTimedOut, EvTaskLost, EvTaskPreempted, EvTaskCancelled:
		return tx.taskEnded(ev)
	}
	return rejected("unknown event kind %q", ev.Kind)
}

func (tx *txn) runStarted() error {
	if tx.run.State != RunQueued {
		return rejected("run_started: run is %s, not queued", tx.run.State)
	}
	r := tx.setRun()
	r.State = RunRunning
	r.StartedAt = tx.now
	tx.record(Record{Kind: EvRunStarted, Task: -1})
	for _, i := range tx.e.Graph.Roots() {
		if t := tx.task(i); t.State == TaskPending && t.PendingNeeds == 0 {
			tx.makeReady(i)
		}
	}
	tx.checkDone()
	return nil
}

func (tx *txn) taskStarted(ev Event) error {
	if tx.run.State != RunRunning || tx.run.Cancelling {
		return rejected("task_started: run is %s (cancelling=%t)", tx.run.State, tx.run.Cancelling)
	}
	t := tx.task(ev.Task)
	if t.State != TaskReady {
		return rejected("task_started: task %q is %s, not ready", tx.e.Graph.Node(ev.Task).ID, t.State)
	}
	t = tx.touch(ev.Task)
	t.State = TaskRunning
	t.Attempt++
	t.Spent++
	t.StartedAt = tx.now
	t.FinishedAt = time.Time{}
	t.ReadyAt = time.Time{}
	t.ExitCode = nil
	t.Message = ""
	tx.record(Record{Kind: EvTaskStarted, Task: ev.Task, Attempt: t.Attempt, Actor: ev.Actor})
	// Dependents that zip with it may start now, beside it.
	for _, d := range tx.e.Graph.Node(ev.Task).ZipDependents {
		tx.needSatisfied(d)
	}
	return nil
}

func (tx *txn) retryDue(ev Event) error {
	t := tx.task(ev.Task)
	if t.State != TaskRetryWait {
		return rejected("retry_due: task %q is %s, not retry_wait", tx.e.Graph.Node(ev.Task).ID, t.State)
	}
	if tx.now.Before(t.ReadyAt) {
		// Early wake-up (a clock that moved, a coarse timer): ask again later.
		tx.actions = append(tx.actions, Action{Kind: ActWake, Task: ev.Task, At: t.ReadyAt})
		return nil
	}
	tx.makeReady(ev.Task)
	tx.checkDone() // a task that zips with a need may end instead (zipHeld)
	return nil
}

// waitPoked records a check of a waiting task's condition that found it
// does not hold: the timeline learns what was seen only when it changed
// (a thousand identical pokes write nothing), and the next poke is asked
// for, or the wait times out at its deadline.
func (tx *txn) waitPoked(ev Event) error {
	node := tx.e.Graph.Node(ev.Task)
	t := tx.task(ev.Task)
	if t.State != TaskWaiting {
		return rejected("%s: task %q is %s, not waiting", ev.Kind, node.ID, t.State)
	}
	if ev.Attempt != t.Attempt {
		return rejected("%s: task %q attempt %d is not the current attempt %d", ev.Kind, node.ID, ev.Attempt, t.Attempt)
	}
	if ev.Message != t.Message {
		t = tx.touch(ev.Task)
		t.Message = ev.Message
		tx.record(Record{Kind: EvWaitPoked, Task: ev.Task, Attempt: t.Attempt, Message: ev.Message})
	}
	pol := *node.Wait
	if pol.Timeout > 0 && !tx.now.Before(t.StartedAt.Add(pol.Timeout)) {
		msg := fmt.Sprintf("waited %s: %s", pol.Timeout, nonEmpty(ev.Message, "the condition did not hold"))
		return tx.taskEnded(Event{Kind: EvTaskTimedOut, Task: ev.Task, Attempt: ev.Attempt, Message: msg})
	}
	tx.actions = append(tx.actions, Action{Kind: ActPoke, Task: ev.Task, Attempt: t.Attempt, At: pol.NextPoke(ev.Task, t.StartedAt, tx.now)})
	return nil
}

// startWait begins a wait attempt of task i: it holds no slot, so it starts
// as soon as the task may, and its first poke is now.
func (tx *txn) startWait(i int) {
	t := tx.touch(i)
	t.State = TaskWaiting
	t.Attempt++
	t.Spent++
	t.StartedAt = tx.now
	t.FinishedAt = time.Time{}
	t.ReadyAt = time.Time{}
	t.ExitCode = nil
	t.Message = ""
	tx.record(Record{Kind: RecTaskWaiting, Task: i, Attempt: t.Attempt})
	tx.actions = append(tx.actions, Action{Kind: ActPoke, Task: i, Attempt: t.Attempt, At: tx.now})
}

func (tx *txn) taskEnded(ev Event) error {
	id := tx.e.Graph.Node(ev.Task).ID
	t := tx.task(ev.Task)
	switch {
	case t.State == TaskRunning:
	case t.State == TaskWaiting && (ev.Kind == EvTaskSucceeded || ev.Kind == EvTaskFailed || ev.Kind == EvTaskTimedOut):
		// A wait's check found the condition holds, or never can, or it
		// ran out of time.
	default:
		return rejected("%s: task %q is %s, not running", ev.Kind, id, t.State)
	}
	if ev.Attempt != t.Attempt {
		return rejected("%s: task %q attempt %d is not the current attempt %d", ev.Kind, id, ev.Attempt, t.Attempt)
	}
	t = tx.touch(ev.Task)
	t.FinishedAt = tx.now
	t.ExitCode = ev.ExitCode
	t.Message = ev.Message
	tx.record(Record{Kind: ev.Kind, Task: ev.Task, Attempt: ev.Attempt, ExitCode: ev.ExitCode, Message: ev.Message, Actor: ev.Actor})

	switch ev.Kind {
	case EvTaskSucceeded:
		t.State = TaskSucceeded
		t.Result = ev.Result
		tx.finished(ev.Task)
		for _, d := range tx.e.Graph.Node(ev.Task).Dependents {
			if !tx.e.Graph.Zips(d, ev.Task) { // a zip need was satisfied at the start
				tx.needSatisfied(d)
			}
		}
		tx.checkDone()
		return nil
	case EvTaskLost:
		if t.Attempt-(t.Spent-1) > MaxUncharged {
			break // lost too often: from now on, losses count as failures
		}
		// The executor vanished (a worker killed, a machine gone, tasuki
		// itself crashed): not the task's fault, so the attempt is not
		// charged and the task is ready again at once.
		t.Spent--
		switch {
		case tx.run.Cancelling:
			tx.endUnsuccessful(ev.Task, TaskCancelled, "run cancelled")
		case ev.Hold > 0:
			t.State = TaskRetryWait
			t.ReadyAt = tx.now.Add(ev.Hold)
			tx.record(Record{Kind: RecRetryScheduled, Task: ev.Task, Attempt: t.Attempt,
				Message: fmt.Sprintf("held %s: the lost attempt's worker may still be running it", ev.Hold.Round(time.Millisecond))})
			tx.actions = append(tx.actions, Action{Kind: ActWake, Task: ev.Task, At: t.ReadyAt})
			tx.unzip(ev.Task)
		default:
			tx.makeReady(ev.Task)
			tx.unzip(ev.Task)
		}
		tx.checkDone()
		return nil
	case EvTaskPreempted:
		// The executor handed the task back (a spot instance going away): the
		// attempt is not charged to the retry budget.
		t.Spent--
		if tx.run.Cancelling {
			tx.endUnsuccessful(ev.Task, TaskCancelled, "run cancelled")
		} else {
			tx.makeReady(ev.Task)
			tx.unzip(ev.Task)
		}
		tx.checkDone()
		return nil
	case EvTaskCancelled:
		tx.endUnsuccessful(ev.Task, TaskCancelled, nonEmpty(ev.Message, "cancelled"))
		tx.checkDone()
		return nil
	}

	// Failed, timed out or lost: retry while the budget lasts.
	final := TaskFailed
	if ev.Kind == EvTaskTimedOut {
		final = TaskTimedOut
	}
	policy := tx.e.Graph.Node(ev.Task).Retry
	switch {
	case tx.run.Cancelling:
		tx.endUnsuccessful(ev.Task, TaskCancelled, "run cancelled")
	case t.Spent < policy.Attempts:
		delay := policy.Delay(t.Spent, tx.jitter(ev.Task, t.Attempt))
		t.State = TaskRetryWait
		t.ReadyAt = tx.now.Add(delay)
		tx.record(Record{Kind: RecRetryScheduled, Task: ev.Task, Attempt: t.Attempt,
			Message: fmt.Sprintf("attempt %d of %d in %s", t.Spent+1, policy.Attempts, delay.Round(time.Millisecond))})
		tx.actions = append(tx.actions, Action{Kind: ActWake, Task: ev.Task, At: t.ReadyAt})
		tx.unzip(ev.Task)
	default:
		tx.endUnsuccessful(ev.Task, final, t.Message)
	}
	tx.checkDone()
	return nil
}

func (tx *txn) cancel(ev Event) error {
	if tx.run.Cancelling {
		return rejected("cancel: run is already being cancelled")
	}
	r := tx.setRun()
	r.Cancelling = true
	tx.record(Record{Kind: EvCancel, Task: -1, Actor: ev.Actor, Message: ev.Message})
	// A cancel touches every task once; it happens once per run.
	for i := 0; i < tx.e.Graph.Len(); i++ {
		switch tx.task(i).State {
		case TaskPending, TaskReady, TaskRetryWait, TaskWaiting:
			// A wait has nothing running: it ends at once.
			tx.endUnsuccessful(i, TaskCancelled, "run cancelled")
		case TaskRunning:
			tx.actions = append(tx.actions, Action{Kind: ActKill, Task: i})
		}
	}
	tx.checkDone()
	return nil
}

// retryFailed gives every unsuccessful task (failed, timed out, upstream
// failed, cancelled) a fresh retry budget and puts it back in the graph;
// what succeeded is kept. It touches every task once; it is an operator
// action, not a hot path.
func (tx *txn) retryFailed(ev Event) error {
	if tx.run.State == RunQueued {
		return rejected("retry_failed: run has not started")
	}
	if tx.run.Cancelling && !tx.run.State.Terminal() {
		return rejected("retry_failed: run is being cancelled; wait for it to end")
	}
	g := tx.e.Graph
	var reset []int
	for i := 0; i < g.Len(); i++ {
		if s := tx.task(i).State; s.Terminal() && !s.Satisfies() {
			reset = append(reset, i)
		}
	}
	if len(reset) == 0 {
		return rejected("retry_failed: no unsuccessful task to retry")
	}
	tx.record(Record{Kind: EvRetryFailed, Task: -1, Actor: ev.Actor, Message: fmt.Sprintf("%d task(s) to run again", len(reset))})
	r := tx.setRun()
	r.Cancelling = false
	for _, i := range reset {
		t := tx.touch(i)
		t.State = TaskPending
		t.Spent = 0
		t.ReadyAt, t.FinishedAt = time.Time{}, time.Time{}
		t.Message = ""
		r.Remaining++
		r.Unsuccessful--
	}
	tx.reopen()
	// Needs are recounted after every reset, so a task whose need was reset
	// too waits for it.
	for _, i := range reset {
		t := tx.touch(i)
		t.PendingNeeds = tx.unsatisfied(i)
		if t.PendingNeeds == 0 {
			tx.makeReady(i)
		}
	}
	return nil
}

// mark ends a task that is not running as succeeded or skipped on an
// operator's word. What it does in each run and task state (the table is in
// docs/server.md, "Operator actions"):
//
//   - refused in a queued run, in a run being cancelled, for a running task
//     and for a task already succeeded or skipped;
//   - otherwise the task takes the new state, and its descendants that were
//     ended only because of it (upstream_failed, or cancelled by a cancel of
//     the run before they could start) are put back in the graph: those
//     whose needs are all satisfied become ready;
//   - a finished run with tasks to run again is reopened (a cancelled one
//     too: the cancel is over); one with nothing to run settles again by the
//     same rule as any run (see settle), so marking a task of a cancelled
//     run skipped never makes it failed.
func (tx *txn) mark(ev Event) error {
	if ev.Task < 0 || ev.Task >= tx.e.Graph.Len() {
		return rejected("%s: no task %d", ev.Kind, ev.Task)
	}
	switch {
	case tx.run.State == RunQueued:
		return rejected("%s: run has not started; mark the task once it runs", ev.Kind)
	case tx.run.Cancelling && !tx.run.State.Terminal():
		return rejected("%s: run is being cancelled; wait for it to end, then mark the task", ev.Kind)
	}
	id := tx.e.Graph.Node(ev.Task).ID
	t := tx.task(ev.Task)
	switch {
	case t.State == TaskRunning:
		return rejected("%s: task %q is running; cancel the run or wait for the attempt to end", ev.Kind, id)
	case t.State.Satisfies():
		return rejected("%s: task %q already %s", ev.Kind, id, t.State)
	}
	state, verb := TaskSucceeded, "marked succeeded"
	if ev.Kind == EvMarkSkipped {
		state, verb = TaskSkipped, "skipped"
	}
	wasTerminal := t.State.Terminal()
	t = tx.touch(ev.Task)
	t.State = state
	t.Message = verb + " by " + nonEmpty(ev.Actor, "an operator")
	t.FinishedAt = tx.now
	t.ReadyAt = time.Time{}
	r := tx.setRun()
	if wasTerminal {
		r.Unsuccessful--
	} else {
		r.Remaining--
	}
	tx.record(Record{Kind: ev.Kind, Task: ev.Task, Actor: ev.Actor, Message: ev.Message})

	// Revive the descendants ended because of it whose needs no longer
	// include a failure; visit in breadth-first order so each is judged after
	// its needs. A descendant reached this way never ran (its need was never
	// satisfied), so a cancelled one was ended by a cancel of the run, not
	// in the middle of an attempt; except one that zips with its need,
	// which may have run beside it and was ended with it.
	var revived []int
	isRevived := map[int]bool{}
	queue := append([]int(nil), tx.e.Graph.Node(ev.Task).Dependents...)
	for k := 0; k < len(queue); k++ {
		d := queue[k]
		if s := tx.task(d).State; (s != TaskUpstreamFailed && s != TaskCancelled) || isRevived[d] || tx.blocked(d) {
			continue
		}
		dt := tx.touch(d)
		dt.State = TaskPending
		dt.Message = ""
		dt.FinishedAt = time.Time{}
		dt.Spent = 0 // one that zips with a need may have run beside it: a fresh budget, as a retry gives
		r.Remaining++
		r.Unsuccessful--
		revived = append(revived, d)
		isRevived[d] = true
		queue = append(queue, tx.e.Graph.Node(d).Dependents...)
	}
	tx.reopen()
	for _, d := range tx.e.Graph.Node(ev.Task).Dependents {
		if tx.task(d).State == TaskPending && !isRevived[d] {
			tx.needSatisfied(d)
		}
	}
	for _, d := range revived {
		dt := tx.touch(d)
		dt.PendingNeeds = tx.unsatisfied(d)
		if dt.PendingNeeds == 0 {
			tx.makeReady(d)
		}
	}
	tx.checkDone()
	return nil
}

// unsatisfied counts the needs of task i that are not succeeded or skipped
// (nor running, for a need it zips with).
func (tx *txn) unsatisfied(i int) int {
	n := 0
	for _, need := range tx.e.Graph.Node(i).Needs {
		if s := tx.task(need).State; !s.Satisfies() && (s != TaskRunning || !tx.e.Graph.Zips(i, need)) {
			n++
		}
	}
	return n
}

// unzip takes back what task i's start gave the dependents that zip with
// it: its attempt ended and it will run again, so it lets none start until
// its next start. One pending counts the need again; one ready (it has not
// started) goes back to pending; one running carries on beside the next
// attempt.
func (tx *txn) unzip(i int) {
	for _, d := range tx.e.Graph.Node(i).ZipDependents {
		switch tx.task(d).State {
		case TaskPending:
			tx.touch(d).PendingNeeds++
		case TaskReady:
			t := tx.touch(d)
			t.State = TaskPending
			t.PendingNeeds++
			tx.record(Record{Kind: RecTaskPending, Task: d,
				Message: fmt.Sprintf("waits for %q to start again: its attempt ended and it runs again", tx.e.Graph.Node(i).ID)})
		}
	}
}

// blocked reports whether a need of task i ended without success.
func (tx *txn) blocked(i int) bool {
	for _, need := range tx.e.Graph.Node(i).Needs {
		if s := tx.task(need).State; s.Terminal() && !s.Satisfies() {
			return true
		}
	}
	return false
}

// reopen puts a finished run back to running when tasks remain (ending its
// cancel, if it was cancelled), or settles its final state again when none
// do.
func (tx *txn) reopen() {
	r := tx.setRun()
	if !r.State.Terminal() {
		return
	}
	if r.Remaining > 0 {
		r.State = RunRunning
		r.FinishedAt = time.Time{}
		r.Cancelling = false
		return
	}
	if final := tx.settle(); final != r.State {
		r.State = final
		tx.record(Record{Kind: RecRunFinished, Task: -1, Message: string(final)})
		tx.actions = append(tx.actions, Action{Kind: ActDone, State: final})
	}
}

// makeReady moves task i to ready and asks the caller to queue it; a wait
// task starts waiting instead.
func (tx *txn) makeReady(i int) {
	if len(tx.e.Graph.Node(i).Zip) > 0 && tx.zipHeld(i) {
		return
	}
	if tx.e.Graph.Node(i).Wait != nil {
		tx.startWait(i)
		return
	}
	t := tx.touch(i)
	t.State = TaskReady
	t.ReadyAt = time.Time{}
	tx.record(Record{Kind: RecTaskReady, Task: i})
	tx.actions = append(tx.actions, Action{Kind: ActReady, Task: i})
}

// zipHeld keeps task i, which zips with a need, from becoming ready again
// after an attempt of its own ended, when that need no longer lets it
// start: a need that ended without success makes it upstream_failed, one
// that stopped running to run again leaves it pending. (Where readiness
// comes from its needs' count, nothing holds it: the count said so.)
func (tx *txn) zipHeld(i int) bool {
	g := tx.e.Graph
	for _, need := range g.Node(i).Needs {
		if s := tx.task(need).State; s.Terminal() && !s.Satisfies() {
			msg := fmt.Sprintf("needs %q, which ended %s", g.Node(need).ID, s)
			tx.record(Record{Kind: RecTaskUpstreamFailed, Task: i, Message: msg})
			tx.endUnsuccessful(i, TaskUpstreamFailed, msg)
			return true
		}
	}
	n := tx.unsatisfied(i)
	if n == 0 {
		return false
	}
	t := tx.touch(i)
	t.State = TaskPending
	t.PendingNeeds = n
	t.ReadyAt = time.Time{}
	tx.record(Record{Kind: RecTaskPending, Task: i, Message: "waits for a need it zips with to start again"})
	return true
}

// needSatisfied counts one satisfied need of task d; at zero, d becomes ready.
func (tx *txn) needSatisfied(d int) {
	t := tx.task(d)
	if t.State != TaskPending {
		return
	}
	t = tx.touch(d)
	if t.PendingNeeds > 0 {
		t.PendingNeeds--
	}
	if t.PendingNeeds == 0 && !tx.run.Cancelling {
		tx.makeReady(d)
	}
}

// finished counts task i as terminal.
func (tx *txn) finished(i int) {
	tx.setRun().Remaining--
	if !tx.task(i).State.Satisfies() {
		tx.run.Unsuccessful++
	}
}

// endUnsuccessful ends task i in state s and marks every pending descendant
// upstream_failed (each visited once: the state change stops revisits).
func (tx *txn) endUnsuccessful(i int, s TaskState, msg string) {
	t := tx.touch(i)
	t.State = s
	t.Message = msg
	if t.FinishedAt.IsZero() {
		t.FinishedAt = tx.now
	}
	if s == TaskCancelled && tx.run.Cancelling {
		// Cancelling ends every task itself; no need to walk descendants.
		tx.finished(i)
		return
	}
	tx.finished(i)
	stack := []int{i}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range tx.e.Graph.Node(n).Dependents {
			// A dependent that zips with it may be ready already (not
			// started): it will not start either.
			if s := tx.task(d).State; s != TaskPending && (s != TaskReady || !tx.e.Graph.Zips(d, n)) {
				continue
			}
			dt := tx.touch(d)
			dt.State = TaskUpstreamFailed
			dt.FinishedAt = tx.now
			dt.Message = fmt.Sprintf("needs %q, which ended %s", tx.e.Graph.Node(n).ID, tx.task(n).State)
			tx.record(Record{Kind: RecTaskUpstreamFailed, Task: d, Message: dt.Message})
			tx.finished(d)
			stack = append(stack, d)
		}
	}
}

func (tx *txn) checkDone() {
	if tx.run.Remaining > 0 || tx.run.State.Terminal() {
		return
	}
	r := tx.setRun()
	r.State = tx.settle()
	r.FinishedAt = tx.now
	if r.StartedAt.IsZero() {
		r.StartedAt = tx.now
	}
	tx.record(Record{Kind: RecRunFinished, Task: -1, Message: string(r.State)})
	tx.actions = append(tx.actions, Action{Kind: ActDone, State: r.State})
}

// settle returns the state of a run whose tasks have all ended: succeeded
// when every task succeeded or was skipped; cancelled when a cancel ended it;
// failed when a task failed or timed out; otherwise cancelled (its only
// unsuccessful tasks were cancelled, and those they kept from starting: a
// cancelled run that a mark reopened, or an attempt its worker cancelled).
//
// Only a run that ends unsuccessful without a cancel reads its tasks, once,
// and only until the first failure.
func (tx *txn) settle() RunState {
	switch {
	case tx.run.Unsuccessful == 0:
		return RunSucceeded
	case tx.run.Cancelling:
		return RunCancelled
	}
	for i := 0; i < tx.e.Graph.Len(); i++ {
		if s := tx.peek(i).State; s == TaskFailed || s == TaskTimedOut {
			return RunFailed
		}
	}
	return RunCancelled
}

// peek reads task i as this transition sees it, without keeping a copy: for
// reads of many tasks that change none of them.
func (tx *txn) peek(i int) Task {
	if t, ok := tx.tasks[i]; ok {
		return *t
	}
	return tx.st.Task(i)
}

// jitter returns a reproducible value in [-1, 1) for a task's attempt.
func (tx *txn) jitter(task, attempt int) float64 {
	h := fnv.New64a()
	var b [24]byte
	putUint64(b[0:], tx.e.Seed)
	putUint64(b[8:], uint64(task))
	putUint64(b[16:], uint64(attempt))
	h.Write(b[:])
	return float64(h.Sum64()>>11)/float64(1<<53)*2 - 1
}

func putUint64(b []byte, v uint64) {
	for k := 0; k < 8; k++ {
		b[k] = byte(v >> (8 * k))
	}
}

func nonEmpty(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
