package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// This file is the coordinator's side of waits: it asks the Poker for each
// check the engine wants (ActPoke), turns what a check saw into the
// engine's events, and keeps a wait's attempt row in step with the task.

// schedulePoke asks for a check of task i's wait attempt n at time at. The
// poke entry of an attempt is kept between checks (its Spec and memo with
// it); a new attempt gets a new one.
func (c *coordinator) schedulePoke(i, n int, at time.Time) {
	if c.draining {
		return
	}
	e, ok := c.waits[i]
	if ok && e.attempt != n {
		c.r.Poker.stop(e)
		ok = false
	}
	if !ok {
		e = c.newPoke(i, n)
		c.waits[i] = e
	}
	c.r.Poker.schedule(e, at)
}

// newPoke prepares the checks of attempt n of wait task i.
func (c *coordinator) newPoke(i, n int) *poke {
	t := &c.pipeline.Tasks[i]
	node := c.eng.Graph.Node(i)
	a := &Attempt{RunID: c.run.ID, Pipeline: c.pipeline.Name, TaskID: node.ID, Index: i, Number: n}
	trigger := c.run.Trigger
	ctx, cancel := context.WithCancel(context.Background())
	pokes := c.pokes
	return &poke{
		run: c.run.ID, task: i, attempt: n, index: -1,
		timeout: checkTimeout(node.Wait.Poke),
		describe: func() (attempt.Spec, error) {
			s, err := c.r.Kinds.Describe(t, c.taskEnv(a, t, trigger), nil)
			if err != nil {
				return s, err
			}
			return s, c.addSecrets(&s, t)
		},
		host:    &attempt.Host{Environ: os.Environ(), Dir: c.dir},
		deliver: pokes.put,
		ctx:     ctx,
		cancel:  cancel,
	}
}

// stopPokes ends every check of this run: the run ended, is draining or
// stopped executing here.
func (c *coordinator) stopPokes() {
	for i, e := range c.waits {
		c.r.Poker.stop(e)
		delete(c.waits, i)
	}
}

// poked turns what a check saw into the engine's event: the condition
// holds (succeeded, with what arrived as the result), never can (failed),
// or not yet (wait_poked, which asks for the next check or times out).
func (c *coordinator) poked(pr pokeResult) {
	e, ok := c.waits[pr.task]
	if !ok || e.attempt != pr.attempt {
		return // the wait ended meanwhile (cancel, mark, a new attempt)
	}
	obs := pr.obs
	var ev engine.Event
	switch {
	case obs.Fail != "":
		ev = engine.Event{Kind: engine.EvTaskFailed, Task: pr.task, Attempt: pr.attempt, Message: obs.Fail}
	case obs.Met:
		res := obs.Result
		if err := store.CheckJSON("result", res); err != nil {
			ev = engine.Event{Kind: engine.EvTaskFailed, Task: pr.task, Attempt: pr.attempt, Message: "result refused: " + err.Error()}
			break
		}
		ev = engine.Event{Kind: engine.EvTaskSucceeded, Task: pr.task, Attempt: pr.attempt, Message: obs.Seen, Result: res}
	default:
		e.memo = obs.Memo
		ev = engine.Event{Kind: engine.EvWaitPoked, Task: pr.task, Attempt: pr.attempt, Message: obs.Seen}
	}
	at := c.now()
	var updates []store.DatasetUpdate
	if ev.Kind == engine.EvTaskSucceeded {
		var err error
		if updates, err = c.datasetUpdates(pr.task, at, nil); err != nil {
			ev = engine.Event{Kind: engine.EvTaskFailed, Task: pr.task, Attempt: pr.attempt, Message: err.Error()}
		}
	}
	if _, err := c.apply(ev, at); err != nil {
		if !errors.Is(err, engine.ErrRejected) {
			c.log.Warn("record a check of a wait", "task", c.eng.Graph.Node(pr.task).ID, "err", err)
		}
		return
	}
	c.produced(updates)
}

// waitAttempts keeps the attempt rows of waits in step with the task: a
// task that begins waiting opens an attempt row (no worker holds it: the
// executor checks it), and one that stops waiting closes it with the
// outcome of what ended it. A running task's rows are written where its
// attempts start and end (dispatch, finish).
func (c *coordinator) waitAttempts(ev engine.Event, at time.Time, tc engine.TaskChange, before engine.Task, rows []store.Attempt) []store.Attempt {
	now := tc.Task
	if before.State == engine.TaskWaiting && (now.State != engine.TaskWaiting || now.Attempt != before.Attempt) {
		outcome := attempt.Cancelled // a cancel of the run, a mark by an operator
		switch ev.Kind {
		case engine.EvTaskSucceeded:
			outcome = attempt.Succeeded
		case engine.EvTaskFailed:
			outcome = attempt.Failed
		case engine.EvTaskTimedOut, engine.EvWaitPoked:
			outcome = attempt.TimedOut
		}
		msg := now.Message
		if outcome == attempt.Cancelled && msg == "" {
			msg = "the wait was ended"
		}
		rows = append(rows, store.Attempt{RunID: c.run.ID, Index: tc.Index, Attempt: before.Attempt, FinishedAt: at, Outcome: outcome, Message: msg})
		if e, ok := c.waits[tc.Index]; ok && e.attempt == before.Attempt {
			c.r.Poker.stop(e)
			delete(c.waits, tc.Index)
		}
	}
	if now.State == engine.TaskWaiting && (before.State != engine.TaskWaiting || now.Attempt != before.Attempt) {
		rows = append(rows, store.Attempt{RunID: c.run.ID, Index: tc.Index, Attempt: now.Attempt, Worker: c.r.Worker, StartedAt: now.StartedAt})
	}
	return rows
}

// datasetUpdates are the updates of each dataset task i produces, with the
// metadata its attempt wrote, checked as the store will check them: one the
// store would refuse fails the attempt, rather than the commit of the whole
// batch.
func (c *coordinator) datasetUpdates(i int, at time.Time, metadata map[string]json.RawMessage) ([]store.DatasetUpdate, error) {
	t := &c.pipeline.Tasks[i]
	if len(t.Produces) == 0 {
		return nil, nil
	}
	out := make([]store.DatasetUpdate, 0, len(t.Produces))
	for _, name := range t.Produces {
		u := store.DatasetUpdate{
			Dataset: name, At: at, RunID: c.run.ID, Pipeline: c.pipeline.Name, TaskID: t.ID,
			IntervalStart: c.run.IntervalStart, IntervalEnd: c.run.IntervalEnd, Metadata: metadata[name],
		}
		if err := store.PrepareDatasetUpdate(&u); err != nil {
			return nil, fmt.Errorf("dataset %s: %w", name, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// produced records dataset updates in the same commit as the success they
// come from (the change just applied).
func (c *coordinator) produced(updates []store.DatasetUpdate) {
	if len(updates) == 0 || len(c.pending) == 0 {
		return
	}
	ch := &c.pending[len(c.pending)-1]
	ch.DatasetUpdates = append(ch.DatasetUpdates, updates...)
	for _, u := range updates {
		c.updated = append(c.updated, u.Dataset)
	}
}

// CheckWait checks the condition of wait task i of a run once, as its
// attempts do (same variables, secrets and working directory), without
// changing the run: a server watching for the data a failed run missed
// (repair) asks with it.
func (r *Runner) CheckWait(ctx context.Context, runID int64, i int) (attempt.Observation, error) {
	r.defaults()
	c, err := r.load(ctx, runID)
	if err != nil {
		return attempt.Observation{}, err
	}
	if i < 0 || i >= len(c.pipeline.Tasks) || c.pipeline.Tasks[i].Wait == nil {
		return attempt.Observation{}, fmt.Errorf("run %d: task %d is not a wait", runID, i)
	}
	e := c.newPoke(i, c.mem.Task(i).Attempt)
	defer e.cancel()
	s, err := e.describe()
	if err != nil {
		return attempt.Observation{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	return r.Kinds.Check(ctx, &s, e.host, nil), nil
}
