package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// followPoll is how often `logs -f` asks how a task stands while it waits
// for the task to start, for an ended attempt's outcome, or for the next
// attempt: the store is in another process, which cannot notify it.
const followPoll = 250 * time.Millisecond

// taskView is what following a task needs to know of it.
type taskView struct {
	state   engine.TaskState
	attempt int // the latest attempt, 0 before the first
	// ended describes how an attempt ended ("failed: exit status 1"), or
	// "" while it runs or is unknown.
	ended map[int]string
}

// followSource is where `logs -f` reads a task: the embedded store and log
// files, or a server.
type followSource interface {
	// task returns how the task stands now.
	task(ctx context.Context) (taskView, error)
	// follow copies the log of attempt n from its start to w until the
	// attempt's log ends.
	follow(ctx context.Context, n int, w io.Writer) error
	// unrecorded says what may keep attempt n's end from being recorded
	// once its log has ended, for a message while following waits.
	unrecorded(n int) string
}

// unrecordedPolls is how many polls following waits, after an attempt's
// log ended, for the attempt's end to be recorded before it says why it is
// waiting (a tasuki process that died with the attempt records nothing).
const unrecordedPolls = 8

// followTask prints a task's log as it is written, attempt after attempt,
// until the task ends. It starts with the latest attempt, from its first
// line, waiting for the task to start if it has not; when an attempt's log
// ends it waits to learn how the attempt ended, and if the task is tried
// again it prints a line saying where one attempt ended and the next
// begins, then the next attempt from its first line. A task that ends
// without ever running (its upstream failed, it was skipped or cancelled)
// is an error that says so. With pinned > 0 only that attempt is followed.
// Messages about waiting go to errOut; stdout holds the log and the
// boundaries between attempts.
func followTask(ctx context.Context, src followSource, out, errOut io.Writer, name string, pinned int) error {
	n := pinned
	if n == 0 {
		said := false
		for {
			v, err := src.task(ctx)
			if err != nil {
				return err
			}
			if v.attempt > 0 {
				n = v.attempt
				break
			}
			if v.state.Terminal() {
				// Not a failure to reach the server: say it as it is.
				return &exitError{code: exitFailed, err: fmt.Errorf("%s will not run: it is %s", name, v.state)}
			}
			if !said {
				fmt.Fprintf(errOut, "%s has not started yet (%s); waiting for it\n", name, v.state)
				said = true
			}
			if err := pause(ctx); err != nil {
				return err
			}
		}
	}
	for {
		if err := src.follow(ctx, n, out); err != nil {
			return err
		}
		if pinned > 0 {
			return nil
		}
		// The log is over: wait for the store to say how the attempt
		// ended, and whether the task is tried again.
		said := false
		for polls := 1; ; polls++ {
			v, err := src.task(ctx)
			if err != nil {
				return err
			}
			if v.attempt > n {
				fmt.Fprintf(out, "--- attempt %d ended: %s ---\n--- attempt %d ---\n", n, orUnknown(v.ended[n]), n+1)
				n++
				break
			}
			if v.state.Terminal() {
				return nil
			}
			switch {
			case said:
			case v.ended[n] != "":
				fmt.Fprintf(errOut, "%s: attempt %d ended: %s; waiting for attempt %d\n", name, n, v.ended[n], n+1)
				said = true
			case polls >= unrecordedPolls:
				fmt.Fprintf(errOut, "%s: attempt %d's log has ended but how the attempt ended is not recorded yet; waiting (%s)\n", name, n, src.unrecorded(n))
				said = true
			}
			if err := pause(ctx); err != nil {
				return err
			}
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "outcome not recorded"
	}
	return s
}

// pause waits followPoll, or returns ctx's error.
func pause(ctx context.Context) error {
	t := time.NewTimer(followPoll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// describeEnd says how an attempt ended: its outcome, and the message
// beside it if any.
func describeEnd(outcome, message string) string {
	if outcome == "" || message == "" || message == outcome {
		return outcome
	}
	return outcome + ": " + message
}

// localFollow follows a task in the data directory.
type localFollow struct {
	l     *local
	runID int64
	index int
	id    string
}

func (s *localFollow) task(ctx context.Context) (taskView, error) {
	tasks, err := s.l.store.Tasks(ctx, s.runID)
	if err != nil {
		return taskView{}, runLookupErr(s.runID, err)
	}
	if s.index >= len(tasks) {
		return taskView{}, runLookupErr(s.runID, store.ErrNotFound)
	}
	t := tasks[s.index]
	v := taskView{state: t.State, attempt: t.Attempt, ended: map[int]string{}}
	atts, err := s.l.store.Attempts(ctx, s.runID, s.index)
	if err != nil {
		return taskView{}, fmt.Errorf("read attempts of task %q of run %d: %w", s.id, s.runID, err)
	}
	for _, a := range atts {
		v.ended[a.Attempt] = describeEnd(string(a.Outcome), a.Message)
	}
	return v, nil
}

func (s *localFollow) unrecorded(int) string {
	return fmt.Sprintf("if the tasuki process running run %d died, 'tasuki resume %d' goes on with it", s.runID, s.runID)
}

func (s *localFollow) follow(ctx context.Context, n int, w io.Writer) error {
	_, err := s.l.logs.Follow(ctx, logs.Key{RunID: s.runID, TaskID: s.id, Attempt: n}, 0, w)
	return err
}

// followLog is `tasuki logs -f` on the data directory.
func (a *app) followLog(cmd *cobra.Command, l *local, task store.TaskRow, pinned int) error {
	src := &localFollow{l: l, runID: task.RunID, index: task.Index, id: task.TaskID}
	name := fmt.Sprintf("task %q of run %d", task.TaskID, task.RunID)
	err := followTask(cmd.Context(), src, a.io.Out, a.io.Err, name, pinned)
	if err != nil && cmd.Context().Err() != nil {
		return nil // Ctrl-C ends following; that is not an error
	}
	return err
}

// remoteFollow follows a task on a server. While the server cannot be
// reached it keeps trying, and says so on errOut.
type remoteFollow struct {
	c      *api.Client
	runID  int64
	id     string
	errOut io.Writer
	away   bool // the server could not be reached at the last try
}

// dropped reports a failed try to reach the server, once per outage.
func (s *remoteFollow) dropped(err error, _ int) {
	if !s.away {
		fmt.Fprintf(s.errOut, "tasuki: lost the server (%v); reconnecting\n", err)
		s.away = true
	}
}

// reconnected reports the end of an outage.
func (s *remoteFollow) reconnected() {
	if s.away {
		fmt.Fprintln(s.errOut, "tasuki: reconnected")
		s.away = false
	}
}

func (s *remoteFollow) task(ctx context.Context) (taskView, error) {
	failures := 0
	for {
		t, err := s.c.Task(ctx, s.runID, s.id)
		if err == nil {
			s.reconnected()
			v := taskView{state: t.State, attempt: t.Attempt, ended: map[int]string{}}
			for _, a := range t.Attempts {
				v.ended[a.Attempt] = describeEnd(string(a.Outcome), a.Message)
			}
			return v, nil
		}
		if ctx.Err() != nil {
			return taskView{}, ctx.Err()
		}
		if e, ok := errors.AsType[*api.Error](err); ok && e.Status != 502 && e.Status != 503 && e.Status != 504 {
			return taskView{}, err // an answer, not an outage
		}
		failures++
		s.dropped(err, failures)
		if err := pause(ctx); err != nil {
			return taskView{}, err
		}
	}
}

func (s *remoteFollow) unrecorded(int) string {
	return "the server records it; after a restart, as lost"
}

func (s *remoteFollow) follow(ctx context.Context, n int, w io.Writer) error {
	err := s.c.FollowAttempt(ctx, s.runID, s.id, n, w, s.dropped)
	if err == nil {
		s.reconnected()
	}
	return err
}
