package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// flakyStore fails the Applies a test chooses: fail says, for the n-th
// Apply (from 1), whether it is refused before writing anything (a
// connection refused), written and then answered with an unknown outcome
// (a COMMIT whose answer was lost), or passed through.
type flakyStore struct {
	store.Store
	mu     sync.Mutex
	n      int
	fail   func(n int) fault
	faults []fault
	asked  int // Committed calls
}

type fault int

const (
	pass fault = iota
	refuse
	lostAnswer
	permanent
)

func (f *flakyStore) Apply(ctx context.Context, changes ...store.Change) error {
	f.mu.Lock()
	f.n++
	what := f.fail(f.n)
	f.faults = append(f.faults, what)
	f.mu.Unlock()
	switch what {
	case refuse:
		return fmt.Errorf("apply: %w", syscall.ECONNREFUSED)
	case permanent:
		return errors.New("apply: a bug")
	case lostAnswer:
		if err := f.Store.Apply(ctx, changes...); err != nil {
			return err
		}
		return &store.OutcomeUnknownError{Err: fmt.Errorf("commit: %w", syscall.ECONNRESET),
			Committed: func(context.Context) (bool, error) {
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.asked++; f.asked == 1 {
					return false, fmt.Errorf("ask: %w", syscall.ECONNREFUSED) // still down
				}
				return true, nil
			}}
	}
	return f.Store.Apply(ctx, changes...)
}

const outagePipeline = `
name: outage
tasks:
  - id: a
    run: "true"
  - id: b
    needs: [a]
    run: "true"
  - id: c
    needs: [a]
    run: "true"
  - id: d
    needs: [b, c]
    run: "true"
`

// TestCommitRetriedThroughOutage: a run whose writes fail for a while (the
// database refusing connections), and some of whose commits succeed with
// their answer lost, ends as a run without faults does: succeeded, each
// task's one attempt, and the same records (in any order), none twice.
func TestCommitRetriedThroughOutage(t *testing.T) {
	clean := newEnv(t)
	want, _ := clean.run(context.Background(), outagePipeline, nil)
	wantEvents := eventKinds(t, clean.st, want.ID)

	for _, tc := range []struct {
		name string
		fail func(n int) fault
	}{
		{"refused for a while", func(n int) fault {
			if n >= 2 && n <= 6 {
				return refuse
			}
			return pass
		}},
		{"answers lost", func(n int) fault {
			if n%2 == 0 {
				return lostAnswer
			}
			return pass
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fs := &flakyStore{Store: e.st, fail: tc.fail}
			e.r.Store = fs
			e.r.RetryMin, e.r.RetryMax = time.Millisecond, 10*time.Millisecond
			run, tasks := e.run(context.Background(), outagePipeline, nil)
			if run.State != engine.RunSucceeded {
				t.Fatalf("run %s: %+v", run.State, tasks)
			}
			for id, row := range tasks {
				atts, err := e.st.Attempts(context.Background(), run.ID, row.Index)
				if err != nil {
					t.Fatal(err)
				}
				if len(atts) != 1 || atts[0].Outcome != store.OutcomeSucceeded || row.Attempt != 1 {
					t.Errorf("task %s: attempts %+v, row attempt %d; want one that succeeded", id, atts, row.Attempt)
				}
			}
			got := eventKinds(t, e.st, run.ID)
			if fmt.Sprint(got) != fmt.Sprint(wantEvents) {
				t.Errorf("timeline:\n got %v\nwant %v", got, wantEvents)
			}
			t.Logf("faults: %v", fs.faults)
		})
	}
}

// TestCommitPermanentErrorStops: a permanent error is not retried: the
// run's execution ends with it, as before.
func TestCommitPermanentErrorStops(t *testing.T) {
	e := newEnv(t)
	fs := &flakyStore{Store: e.st, fail: func(n int) fault {
		if n == 2 {
			return permanent
		}
		return pass
	}}
	e.r.Store = fs
	run, err := e.r.Create(context.Background(), e.pipeline(outagePipeline), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Execute(context.Background(), run.ID); err == nil || len(fs.faults) != 2 {
		t.Fatalf("Execute = %v after %d applies; want the permanent error at once", err, len(fs.faults))
	}
}

// TestCommitGivesUpAfterOutage: past StoreOutage the run's execution ends
// with the store's error (the server tries it again later).
func TestCommitGivesUpAfterOutage(t *testing.T) {
	e := newEnv(t)
	fs := &flakyStore{Store: e.st, fail: func(n int) fault {
		if n >= 2 {
			return refuse
		}
		return pass
	}}
	e.r.Store = fs
	e.r.RetryMin, e.r.RetryMax, e.r.StoreOutage = time.Millisecond, 5*time.Millisecond, 100*time.Millisecond
	run, err := e.r.Create(context.Background(), e.pipeline(outagePipeline), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.r.Execute(context.Background(), run.ID)
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Execute = %v; want the refusal once the outage outlasts StoreOutage", err)
	}
	if len(fs.faults) < 3 {
		t.Errorf("gave up after %d applies; want it to have retried", len(fs.faults))
	}
}

func eventKinds(t *testing.T, st store.Store, run int64) []string {
	t.Helper()
	evs, err := st.Events(context.Background(), run, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%s/%s/%d", ev.Kind, ev.TaskID, ev.Attempt))
	}
	// b and c run at once: their records may come in either order.
	slices.Sort(out)
	return out
}

// flushLogs is a log store that says when it was asked to make the logs
// it holds back durable (logFlusher), refusing the first time (the
// database away for a moment).
type flushLogs struct {
	logs.Store
	seq *[]string
	mu  *sync.Mutex
	n   int
}

func (f *flushLogs) Flush(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n++; f.n == 1 {
		*f.seq = append(*f.seq, "flush refused")
		return fmt.Errorf("put log chunks: %w", syscall.ECONNREFUSED)
	}
	*f.seq = append(*f.seq, "flush")
	return nil
}

// seqStore records the Applies, and whether they write rows of map items.
type seqStore struct {
	store.Store
	seq *[]string
	mu  *sync.Mutex
}

func (s *seqStore) Apply(ctx context.Context, changes ...store.Change) error {
	what := "apply"
	for _, ch := range changes {
		for _, m := range ch.Maps {
			if len(m.Items) > 0 {
				what = "apply items"
			}
		}
	}
	s.mu.Lock()
	*s.seq = append(*s.seq, what)
	s.mu.Unlock()
	return s.Store.Apply(ctx, changes...)
}

// TestItemLogsDurableBeforeTheirEnds: a log store that holds logs back
// (logs.Cluster queues those remote workers send whole with the reports of
// map items) is flushed before every commit, those that write items' ends
// among them, so a server killed in between never leaves an item that
// succeeded without its log; a flush that fails is tried again like a
// write (the chaos soak found items succeeded with an empty log after a
// kill -9 of the leader).
func TestItemLogsDurableBeforeTheirEnds(t *testing.T) {
	e := newEnv(t)
	var seq []string
	var mu sync.Mutex
	e.r.Logs = &flushLogs{Store: e.logs, seq: &seq, mu: &mu}
	e.r.Store = &seqStore{Store: e.st, seq: &seq, mu: &mu}
	e.r.RetryMin, e.r.RetryMax = time.Millisecond, 10*time.Millisecond
	run, tasks := e.run(context.Background(), `
name: items
tasks:
  - id: each
    run: 'echo "$TASUKI_ITEM"'
    map: {items: [a, b, c, d, e, f]}
`, nil)
	if run.State != engine.RunSucceeded || tasks["each"].State != engine.TaskSucceeded {
		t.Fatalf("run %s, task %s", run.State, tasks["each"].State)
	}
	mu.Lock()
	defer mu.Unlock()
	items := 0
	for i, what := range seq {
		if what != "apply items" {
			continue
		}
		items++
		if i == 0 || seq[i-1] != "flush" {
			t.Errorf("a commit of items' ends without a flush of their logs just before: %v", seq)
			break
		}
	}
	if items == 0 || !slices.Contains(seq, "flush refused") {
		t.Errorf("sequence %v: want commits of items, and a refused flush tried again", seq)
	}
}

// stallLogs is a log store whose Create waits for the attempt's context to
// end (a database that does not answer while the attempt is stopped).
type stallLogs struct{ logs.Store }

func (stallLogs) Create(ctx context.Context, k logs.Key, _ []string) (*logs.Writer, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("create log of %s: read the end of the log: %w", k, ctx.Err())
}

// TestRunProcessStoppedBeforeStart: an attempt stopped while its log is
// being opened ends as what stopped it says (handed back, lease lost,
// cancelled), as one whose process was ended would, not failed: a drain
// or a lost lease in that moment charged the task a failure (seen by the
// chaos soak on a leader deposed while frozen).
func TestRunProcessStoppedBeforeStart(t *testing.T) {
	for _, tc := range []struct {
		cause error
		want  attempt.Outcome
	}{
		{attempt.ErrPreempted, attempt.Preempted},
		{attempt.ErrLost, attempt.Preempted},
		{attempt.ErrCancelled, attempt.Cancelled},
	} {
		t.Run(tc.cause.Error(), func(t *testing.T) {
			e := newEnv(t)
			e.r.Logs = stallLogs{e.logs}
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(10*time.Millisecond, func() { cancel(tc.cause) })
			res := e.r.RunProcess(ctx, e.processAttempt("t", "echo ran", t.TempDir(), nil, nil))
			if res.Outcome != tc.want {
				t.Errorf("outcome %s (%s), want %s", res.Outcome, res.Message, tc.want)
			}
		})
	}
}
