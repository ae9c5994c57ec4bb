package web

// The run page's live stream (GET /runs/{id}/live): Server-Sent Events
// that carry, per batch of changes, the tasks whose state changed since
// the stream's last event (a diff kept per stream), the run's state and
// counts, and for a collapsed graph the changed groups' counts. It reads
// the run through api.Service as the page does, woken by Options.Live when
// this server executes the run and checking every Options.PollEvery
// otherwise, at most once per liveMinGap. Each event's id is the newest
// timeline entry it covers: a reconnection (Last-Event-ID), like the
// page's first connection (?after=), resends the tasks the timeline names
// since then, or every task when a run-wide action (cancel, retry) came
// between. The stream ends with an "end" event when the run ends.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

const (
	// liveMinGap is the least time between two reads of a stream's run:
	// a burst of wake-ups costs one read.
	liveMinGap = 150 * time.Millisecond
	// liveHeartbeat is how often an idle stream writes a comment, so
	// proxies and browsers keep it open.
	liveHeartbeat = 15 * time.Second
	// liveRetry is the reconnection delay the stream asks browsers for.
	liveRetry = 2 * time.Second
	// liveWriteTimeout bounds one write of a stream to a client that has
	// stopped reading.
	liveWriteTimeout = 30 * time.Second
	// liveResumePages bounds the timeline read to resume: past it the
	// stream resends every task.
	liveResumePages = 10
)

// liveEvent is the data of one event of the stream.
type liveEvent struct {
	Run    liveRun              `json:"run"`
	Tasks  []liveTask           `json:"tasks,omitempty"`
	Groups map[string]groupLive `json:"groups,omitempty"`
	// Full says Tasks holds every task (after a run-wide change).
	Full bool `json:"full,omitempty"`
}

type liveRun struct {
	State           string       `json:"state"`
	Remaining       int          `json:"remaining"`
	TaskCount       int          `json:"task_count"`
	Counts          []liveCount  `json:"counts"`
	Cancelling      bool         `json:"cancelling,omitempty"`
	FinishedAt      *time.Time   `json:"finished_at,omitempty"`
	DeadlineState   string       `json:"deadline_state,omitempty"`
	PredictedFinish *time.Time   `json:"predicted_finish,omitempty"`
	Ended           bool         `json:"ended,omitempty"`
	Actions         *liveActions `json:"actions,omitempty"`
}

type liveCount struct {
	State string `json:"state"`
	N     int    `json:"n"`
	Glyph string `json:"glyph"`
}

// liveActions say which run buttons are enabled now, with why not.
type liveActions struct {
	Cancel    bool   `json:"cancel"`
	CancelWhy string `json:"cancel_why,omitempty"`
	Retry     bool   `json:"retry"`
	RetryWhy  string `json:"retry_why,omitempty"`
}

// liveTask is one task's new state, as the page shows it.
type liveTask struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Glyph   string `json:"glyph"`
	Sub     string `json:"sub"` // the graph node's second line
	Attempt int    `json:"attempt"`
	Map     string `json:"map,omitempty"` // a map's counts
}

// liveStream is one client's stream: what it last sent.
type liveStream struct {
	u      *UI
	runID  int64
	seq    int64             // the newest timeline entry read
	sent   map[string]string // task → what the client has (state, attempt, map counts)
	kinds  map[string]string
	groups *grouping // nil: the page draws tasks, not groups
	viewer viewerInfo
	acts   liveActions
}

func (u *UI) live(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id", "run")
	if err != nil {
		return err
	}
	resume := r.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = r.URL.Query().Get("after")
	}
	var after int64 = -1
	if resume != "" {
		n, err := strconv.ParseInt(resume, 10, 64)
		if err != nil || n < 0 {
			return badQuery("after", resume, "expected an event id this stream gave")
		}
		after = n
	}
	run, err := u.o.Service.Run(ctx, id)
	if err != nil {
		return err
	}
	if _, err := u.seeRun(ctx, run); err != nil {
		return err
	}

	// Watch before the first read, so that no change falls between.
	var wake <-chan struct{}
	if u.o.Live != nil {
		ch, stop := u.o.Live.Watch(id)
		defer stop()
		wake = ch
	}
	s := &liveStream{u: u, runID: id, sent: map[string]string{}, kinds: map[string]string{}, viewer: viewerFrom(ctx)}
	s.shape(ctx, run)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(text string) bool {
		// A client that stops reading must not hold the stream (and its
		// watch) until the kernel gives up on the connection.
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
		if _, err := fmt.Fprint(w, text); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(fmt.Sprintf("retry: %d\n\n", liveRetry.Milliseconds())) {
		return nil
	}

	// The first event: what changed since the client's point, or only the
	// run as it is for a client that gives none.
	ev, ended, err := s.first(ctx, after)
	if err != nil {
		u.log.WarnContext(ctx, "web: live stream: first read", "run", id, "err", err)
		return nil
	}
	if !send(s.format(ev)) {
		return nil
	}
	if ended {
		send(s.end())
		return nil
	}

	poll := time.NewTicker(u.o.PollEvery)
	defer poll.Stop()
	beat := time.NewTicker(liveHeartbeat)
	defer beat.Stop()
	// The session was checked when the stream opened. Streams end after a
	// while, and the browser reconnects (resuming where it stopped) through
	// the session check again, so a logout, a revoked session or a changed
	// role takes effect on a stream too.
	reauth := time.NewTimer(u.o.StreamFor)
	defer reauth.Stop()
	last := time.Now()
	var (
		due     bool
		timer   *time.Timer
		timerCh <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reauth.C:
			return nil
		case <-wake:
			due = true
		case <-poll.C:
			due = true
		case <-beat.C:
			if !send(": heartbeat\n\n") {
				return nil
			}
			continue
		case <-timerCh:
			timerCh = nil
		}
		if !due || timerCh != nil {
			continue
		}
		if wait := liveMinGap - time.Since(last); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timerCh = timer.C
			continue
		}
		due, last = false, time.Now()
		ev, changed, ended, err := s.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			u.log.WarnContext(ctx, "web: live stream: read the run", "run", id, "err", err)
			continue // the next wake-up or check tries again
		}
		if changed && !send(s.format(ev)) {
			return nil
		}
		if ended {
			send(s.end())
			return nil
		}
	}
}

// shape learns the kinds of the run's tasks and, for a graph the page
// collapses, its groups.
func (s *liveStream) shape(ctx context.Context, run api.Run) {
	var g []GraphTask
	if s.u.o.Graphs != nil {
		var err error
		if g, err = s.u.o.Graphs.RunGraph(ctx, run.ID); err != nil {
			g = nil
		}
	}
	sh := shapeOf(run.Tasks, g)
	for i, t := range run.Tasks {
		s.kinds[t.ID] = sh.kinds[i]
	}
	if len(run.Tasks) > maxGraphNodes {
		needs := sh.needs
		if !sh.known {
			needs = make([][]int, len(run.Tasks))
		}
		gr := groupTasks(run.Tasks, layerOf(len(run.Tasks), needs), needs)
		s.groups = &gr
	}
}

// advance reads the timeline after the stream's point and returns the
// tasks it names, and whether a run-wide entry (or more than a resume
// reads) came: then every task may have changed.
func (s *liveStream) advance(ctx context.Context) (map[string]bool, bool, error) {
	named := map[string]bool{}
	all := false
	for page := 0; ; page++ {
		p, err := s.u.o.Service.Events(ctx, s.runID, s.seq, 1000)
		if err != nil {
			return nil, false, err
		}
		for _, e := range p.Items {
			s.seq = max(s.seq, e.Seq)
			switch {
			case e.Task != "":
				task, _, _ := strings.Cut(e.Task, ".") // an item names its map task
				named[task] = true
			case e.Kind != engine.EvRunStarted:
				all = true
			}
		}
		if p.Next == "" || len(p.Items) == 0 {
			return named, all, nil
		}
		if page >= liveResumePages {
			// Catch up with the newest entry without reading the rest.
			n, err := lastSeq(ctx, s.u.o.Service, s.runID)
			if err != nil {
				return nil, false, err
			}
			s.seq = max(s.seq, n)
			return named, true, nil
		}
	}
}

// first makes the stream's first event. after < 0: the client has
// nothing to resume; the stream starts at the newest entry and the event
// carries the run only.
func (s *liveStream) first(ctx context.Context, after int64) (liveEvent, bool, error) {
	var named map[string]bool
	all := false
	if after < 0 {
		n, err := lastSeq(ctx, s.u.o.Service, s.runID)
		if err != nil {
			return liveEvent{}, false, err
		}
		s.seq = n
	} else {
		s.seq = after
		var err error
		if named, all, err = s.advance(ctx); err != nil {
			return liveEvent{}, false, err
		}
	}
	run, err := s.u.o.Service.Run(ctx, s.runID)
	if err != nil {
		return liveEvent{}, false, err
	}
	ev := liveEvent{Run: s.runOf(run), Full: all}
	changedGroups := map[int]bool{}
	for i, t := range run.Tasks {
		sig := signature(t)
		if after >= 0 && (all || named[t.ID]) {
			ev.Tasks = append(ev.Tasks, s.taskOf(t))
			if s.groups != nil {
				changedGroups[s.groups.of[i]] = true
			}
		}
		s.sent[t.ID] = sig
	}
	ev.Groups = s.groupsOf(run, changedGroups)
	return ev, run.State.Terminal(), nil
}

// next reads the run again and makes the event of what changed; changed
// is false when nothing did.
func (s *liveStream) next(ctx context.Context) (liveEvent, bool, bool, error) {
	before := s.seq
	if _, _, err := s.advance(ctx); err != nil {
		return liveEvent{}, false, false, err
	}
	run, err := s.u.o.Service.Run(ctx, s.runID)
	if err != nil {
		return liveEvent{}, false, false, err
	}
	ev := liveEvent{Run: s.runOf(run)}
	changedGroups := map[int]bool{}
	for i, t := range run.Tasks {
		sig := signature(t)
		if s.sent[t.ID] == sig {
			continue
		}
		s.sent[t.ID] = sig
		ev.Tasks = append(ev.Tasks, s.taskOf(t))
		if s.groups != nil {
			changedGroups[s.groups.of[i]] = true
		}
	}
	ev.Groups = s.groupsOf(run, changedGroups)
	ended := run.State.Terminal()
	changed := len(ev.Tasks) > 0 || s.seq != before || ended || ev.Run.Actions != nil
	return ev, changed, ended, nil
}

// signature is what the page shows of a task that a change alters.
func signature(t api.Task) string {
	sig := string(t.State) + "/" + strconv.Itoa(t.Attempt)
	if t.Map != nil {
		sig += "/" + countsText(sortedCounts(t.Map.Counts))
	}
	return sig
}

func (s *liveStream) taskOf(t api.Task) liveTask {
	st := string(t.State)
	lt := liveTask{ID: t.ID, State: st, Glyph: glyph(st), Sub: glyph(st) + " " + words(st), Attempt: t.Attempt}
	if k := s.kinds[t.ID]; k != "" {
		lt.Sub += " · " + k
	}
	if t.Map != nil {
		lt.Map = countsText(sortedCounts(t.Map.Counts))
	}
	return lt
}

func (s *liveStream) runOf(run api.Run) liveRun {
	counts := map[string]int{}
	for _, t := range run.Tasks {
		counts[string(t.State)]++
	}
	lr := liveRun{State: string(run.State), Remaining: run.Remaining, TaskCount: run.TaskCount, Cancelling: run.Cancelling,
		FinishedAt: run.FinishedAt, DeadlineState: run.DeadlineState, PredictedFinish: run.PredictedFinish, Ended: run.State.Terminal()}
	for _, c := range sortedCounts(counts) {
		lr.Counts = append(lr.Counts, liveCount{State: c.State, N: c.N, Glyph: glyph(c.State)})
	}
	// The buttons' states, sent when they change (the role is the
	// viewer's for the stream's life).
	a := actionsFor(s.viewer, run)
	la := liveActions{Cancel: a.Cancel, CancelWhy: a.CancelWhy, Retry: a.Retry, RetryWhy: a.RetryWhy}
	if la != s.acts {
		s.acts = la
		lr.Actions = &la
	}
	return lr
}

// groupsOf is the live view of the groups with changed tasks.
func (s *liveStream) groupsOf(run api.Run, changed map[int]bool) map[string]groupLive {
	if s.groups == nil || len(changed) == 0 || len(run.Tasks) != len(s.groups.of) {
		return nil
	}
	out := map[string]groupLive{}
	for _, gi := range slices.Sorted(maps.Keys(changed)) {
		tg := s.groups.groups[gi]
		out[tg.ID] = tg.live(run.Tasks)
	}
	return out
}

// format writes an event.
func (s *liveStream) format(ev liveEvent) string {
	b, err := json.Marshal(ev)
	if err != nil {
		b = []byte(`{}`)
	}
	var sb strings.Builder
	if s.seq > 0 {
		fmt.Fprintf(&sb, "id: %d\n", s.seq)
	}
	sb.WriteString("event: change\ndata: ")
	sb.Write(b)
	sb.WriteString("\n\n")
	return sb.String()
}

// end is the event that closes the stream: the run has ended.
func (s *liveStream) end() string {
	return fmt.Sprintf("id: %d\nevent: end\ndata: {}\n\n", s.seq)
}
