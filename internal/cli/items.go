package cli

// Map tasks on the command line: the line of counts 'tasuki status' and
// 'tasuki run' print under a map task (with its first failed items),
// 'tasuki items RUN TASK' (a page of a map's items), and 'tasuki logs RUN
// TASK --item N' (an item's log). Against a server they use its API;
// without one they read the data directory with the API's own readers
// (api.ReadItems, api.ItemLogKey), so both print the same.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// failedShown is how many failed items the status of a run names under a
// map task; 'tasuki items' lists them all.
const failedShown = 3

// unsuccessful are the item states that count as failures, in the order
// the status names them.
var unsuccessful = []engine.TaskState{engine.TaskFailed, engine.TaskTimedOut, engine.TaskCancelled}

// unsuccessfulStates are the states of m that have items among the
// unsuccessful ones.
func unsuccessfulStates(m *api.MapState) []engine.TaskState {
	var out []engine.TaskState
	for _, s := range unsuccessful {
		if m.Counts[string(s)] > 0 {
			out = append(out, s)
		}
	}
	return out
}

// countWords are the map states in the order the counts line says them,
// with the words it says them in.
var countWords = []struct {
	state engine.TaskState
	word  string
}{
	{engine.TaskFailed, "failed"}, {engine.TaskTimedOut, "timed out"}, {engine.TaskCancelled, "cancelled"},
	{engine.TaskSkipped, "skipped"}, {engine.TaskRetryWait, "waiting to retry"}, {engine.TaskRunning, "running"},
	{engine.TaskReady, "queued"}, {engine.TaskPending, "pending"},
}

// mapCounts is the line of a map's counts: "map 1000000 items: 999990
// succeeded, 4 failed, 6 running; slowest 17 (3.2s)".
func mapCounts(m *api.MapState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "map %d items: %d succeeded", m.Items, m.Counts[string(engine.TaskSucceeded)])
	if n := m.Counts[api.StateCached]; n > 0 {
		fmt.Fprintf(&b, " (%d from the cache)", n)
	}
	for _, c := range countWords {
		if n := m.Counts[string(c.state)]; n > 0 {
			fmt.Fprintf(&b, ", %d %s", n, c.word)
		}
	}
	if len(m.Slowest) > 0 {
		fmt.Fprintf(&b, "; slowest %d (%s)", m.Slowest[0].Item, fmtDuration(m.Slowest[0].Duration.D()))
	}
	return b.String()
}

// itemExit is an item's exit code, or "-".
func itemExit(it api.Item) string {
	if it.ExitCode == nil {
		return "-"
	}
	return strconv.Itoa(*it.ExitCode)
}

// describeFailed is a failed item on one line: `item 17 ("u17"): failed:
// exit status 3`.
func describeFailed(it api.Item) string {
	s := fmt.Sprintf("item %d", it.Item)
	if len(it.Value) > 0 {
		s += " (" + truncate(string(it.Value), 40) + ")"
	}
	s += ": " + strings.ReplaceAll(string(it.State), "_", " ")
	switch {
	case it.Message != "":
		s += ": " + truncate(it.Message, 120)
	case it.ExitCode != nil:
		s += fmt.Sprintf(" (exit %d)", *it.ExitCode)
	}
	return s
}

// mapUnder is what the task table prints under each map task of a run,
// by task id: its counts, and when items failed, the first of them
// (failed[task], which may be empty) and how to list them all.
func mapUnder(runID int64, tasks []api.Task, failed map[string][]api.Item) map[string][]string {
	out := map[string][]string{}
	for _, t := range tasks {
		m := t.Map
		if m == nil {
			continue
		}
		lines := []string{mapCounts(m)}
		states := unsuccessfulStates(m)
		if len(states) > 0 {
			total := 0
			for _, s := range states {
				total += m.Counts[string(s)]
			}
			for _, it := range failed[t.ID] {
				lines = append(lines, "  "+describeFailed(it))
			}
			what := "list them"
			if more := total - len(failed[t.ID]); more > 0 && len(failed[t.ID]) > 0 {
				what = fmt.Sprintf("%d more", more)
			}
			lines = append(lines, fmt.Sprintf("  %s: tasuki items %d %s --state %s", what, runID, t.ID, joinStates(states)))
		}
		out[t.ID] = lines
	}
	return out
}

func joinStates(states []engine.TaskState) string {
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

// remoteUnder is mapUnder for a run on a server: the first failed items of
// each map with failures are asked for (one page each). A map whose items
// cannot be read shows its counts alone.
func remoteUnder(ctx context.Context, c *api.Client, run api.Run) map[string][]string {
	failed := map[string][]api.Item{}
	for _, t := range run.Tasks {
		if t.Map == nil {
			continue
		}
		if states := unsuccessfulStates(t.Map); len(states) > 0 {
			if p, err := c.Items(ctx, run.ID, t.ID, api.ItemQuery{States: states, Limit: failedShown}); err == nil {
				failed[t.ID] = p.Items
			}
		}
	}
	return mapUnder(run.ID, run.Tasks, failed)
}

// localMaps reads the maps of a local run: their state by task index
// (one MapInfos read), for the map tasks of pipeline p (nil: unknown, the
// store is asked anyway).
func localMaps(ctx context.Context, st store.Store, runID int64, p *spec.Pipeline) (map[int]store.MapInfo, error) {
	if p != nil && !slices.ContainsFunc(p.Tasks, func(t spec.Task) bool { return t.Map != nil }) {
		return nil, nil
	}
	infos, err := st.MapInfos(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("read the maps of run %d: %w", runID, err)
	}
	out := make(map[int]store.MapInfo, len(infos))
	for _, info := range infos {
		out[info.Index] = info
	}
	return out, nil
}

// localUnder is mapUnder for a run in the data directory.
func localUnder(ctx context.Context, st store.Store, run store.Run, tasks []store.TaskRow, p *spec.Pipeline) map[string][]string {
	infos, err := localMaps(ctx, st, run.ID, p)
	if err != nil || len(infos) == 0 {
		return nil
	}
	views := make([]api.Task, len(tasks))
	failed := map[string][]api.Item{}
	for i, t := range tasks {
		views[i] = api.Task{ID: t.TaskID}
		info, ok := infos[t.Index]
		if !ok {
			continue
		}
		views[i].Map = api.NewMapState(info)
		if states := unsuccessfulStates(views[i].Map); len(states) > 0 {
			if pg, err := api.ReadItems(ctx, st, info, api.ItemQuery{States: states, Limit: failedShown}); err == nil {
				failed[t.TaskID] = pg.Items
			}
		}
	}
	return mapUnder(run.ID, views, failed)
}

// addLocalMaps sets the Map of the map tasks of a local run's JSON view.
func addLocalMaps(ctx context.Context, st store.Store, v *api.Run, tasks []store.TaskRow) error {
	infos, err := localMaps(ctx, st, v.ID, nil)
	if err != nil {
		return err
	}
	for i, t := range tasks {
		if info, ok := infos[t.Index]; ok {
			v.Tasks[i].Map = api.NewMapState(info)
		}
	}
	return nil
}

// localMap finds map task id of a local run and its stored state, with
// the errors the server would answer, as usage errors.
// localValues is where the values of a map's items are read: the store,
// or for a zipped map the results of the map it zips with (api.ZipValues).
func localValues(ctx context.Context, l *local, runID int64, info store.MapInfo) store.Maps {
	run, err := l.store.Run(ctx, runID)
	if err != nil {
		return l.store
	}
	pv, err := l.store.PipelineVersion(ctx, run.VersionID)
	if err != nil {
		return l.store
	}
	p, err := spec.Parse(pv.File, pv.Source)
	if err != nil || info.Index >= len(p.Tasks) {
		return l.store
	}
	if m := p.Tasks[info.Index].Map; m != nil && m.Zip {
		if up := slices.IndexFunc(p.Tasks, func(t spec.Task) bool { return t.ID == m.From }); up >= 0 {
			return api.ZipValues(l.store, up)
		}
	}
	return l.store
}

func localMap(ctx context.Context, l *local, runID int64, id string) (store.MapInfo, store.TaskRow, error) {
	run, err := l.store.Run(ctx, runID)
	if err != nil {
		return store.MapInfo{}, store.TaskRow{}, runLookupErr(runID, err)
	}
	tasks, err := l.store.Tasks(ctx, runID)
	if err != nil {
		return store.MapInfo{}, store.TaskRow{}, runLookupErr(runID, err)
	}
	i := slices.IndexFunc(tasks, func(t store.TaskRow) bool { return t.TaskID == id })
	if i < 0 {
		return store.MapInfo{}, store.TaskRow{}, usageErr("run %d has no task %q", runID, id)
	}
	t := tasks[i]
	pv, err := l.store.PipelineVersion(ctx, run.VersionID)
	if err != nil {
		return store.MapInfo{}, t, fmt.Errorf("pipeline version of run %d: %w", runID, err)
	}
	p, err := spec.Parse(pv.File, pv.Source)
	if err != nil {
		return store.MapInfo{}, t, fmt.Errorf("parse the pipeline version of run %d: %w", runID, err)
	}
	if t.Index >= len(p.Tasks) || p.Tasks[t.Index].Map == nil {
		return store.MapInfo{}, t, apiUsageErr(api.NotAMap(runID, id))
	}
	infos, err := localMaps(ctx, l.store, runID, nil)
	if err != nil {
		return store.MapInfo{}, t, err
	}
	info, ok := infos[t.Index]
	if !ok {
		return store.MapInfo{}, t, apiUsageErr(api.NotExpanded(runID, id, t.State))
	}
	return info, t, nil
}

// apiUsageErr turns an API error about what the caller asked (a 4xx) into
// a usage error with its message; anything else is returned as it is.
func apiUsageErr(err error) error {
	if e, ok := errors.AsType[*api.Error](err); ok && e.Status >= 400 && e.Status < 500 {
		return &exitError{code: exitUsage, err: errors.New(e.Message)}
	}
	return err
}

// itemFlags are the flags of 'tasuki items'.
type itemFlags struct {
	states []string
	after  int
	limit  int
}

// query checks the flags and makes them a query.
func (f *itemFlags) query() (api.ItemQuery, error) {
	states, err := api.ParseItemStates(f.states)
	if err != nil {
		msg := err.Error()
		if e, ok := errors.AsType[*api.Error](err); ok {
			msg = e.Message
		}
		return api.ItemQuery{}, usageErr("--%s", msg)
	}
	if f.limit < 1 || f.limit > api.MaxItemsLimit {
		return api.ItemQuery{}, usageErr("--limit %d: expected 1 to %d", f.limit, api.MaxItemsLimit)
	}
	if f.after < -1 {
		return api.ItemQuery{}, usageErr("--after %d: expected the item a page ended with (0 or more)", f.after)
	}
	return api.ItemQuery{States: states, From: f.after + 1, Limit: f.limit}, nil
}

func (a *app) itemsCmd() *cobra.Command {
	var f itemFlags
	cmd := &cobra.Command{
		Use:   "items RUN_ID TASK",
		Short: "List the items of a map task, with their states and messages",
		Long: `List the items of a map task a page at a time: each item's position, state,
latest attempt, duration, exit code, value (clipped) and message. Without
--state every item is listed in order (one never started is pending, one
started and not ended is running); with --state only items in those states
(failed, timed_out, cancelled, succeeded, skipped, retry_wait), however few
among millions. When more follow, the command to list them is printed on
stderr. With -o json, prints the items as the API's JSON array.

The map's counts are under its task in 'tasuki status'; an item's log is
'tasuki logs RUN_ID TASK --item N'.`,
		Example: `  tasuki items 42 profile --state failed,timed_out
  tasuki items 42 profile --after 999 --limit 1000 -o json | jq -r '.[].value'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			q, err := f.query()
			if err != nil {
				return err
			}
			l, err := a.openLocal(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			info, _, err := localMap(cmd.Context(), l, id, args[1])
			if err != nil {
				return err
			}
			page, err := api.ReadItems(cmd.Context(), localValues(cmd.Context(), l, id, info), info, q)
			if err != nil {
				return apiUsageErr(err)
			}
			return a.printItems(id, args[1], &f, page)
		},
	}
	cmd.Flags().StringSliceVar(&f.states, "state", nil, "only items in these states (comma-separated: failed, timed_out, cancelled, succeeded, skipped, retry_wait)")
	cmd.Flags().IntVar(&f.after, "after", -1, "only items after this one (the item the previous page ended with)")
	cmd.Flags().IntVar(&f.limit, "limit", api.DefaultItemsLimit, fmt.Sprintf("most items to list (at most %d)", api.MaxItemsLimit))
	a.addOutputFlag(cmd)
	return cmd
}

// remoteItems is `tasuki items` against a server.
func (a *app) remoteItems(*cobra.Command) remoteRunE {
	return func(cmd *cobra.Command, args []string, c *api.Client) error {
		if err := a.checkOutput(); err != nil {
			return err
		}
		id, err := parseRunID(args[0])
		if err != nil {
			return err
		}
		f := itemFlags{after: -1}
		if f.states, err = cmd.Flags().GetStringSlice("state"); err != nil {
			return err
		}
		if f.after, err = cmd.Flags().GetInt("after"); err != nil {
			return err
		}
		if f.limit, err = cmd.Flags().GetInt("limit"); err != nil {
			return err
		}
		q, err := f.query()
		if err != nil {
			return err
		}
		page, err := c.Items(cmd.Context(), id, args[1], q)
		if err != nil {
			return remoteErr(c, err)
		}
		return a.printItems(id, args[1], &f, page)
	}
}

// printItems prints a page of items: a table, or the JSON array with -o
// json; and when more follow, on stderr, the command that lists them.
func (a *app) printItems(runID int64, task string, f *itemFlags, page api.Page[api.Item]) error {
	if a.output == "json" {
		if page.Items == nil {
			page.Items = []api.Item{}
		}
		if err := writeJSON(a.io.Out, page.Items); err != nil {
			return err
		}
	} else {
		t := newTable(a.io.Out, "ITEM", "STATE", "ATTEMPT", "DURATION", "EXIT", "VALUE", "MESSAGE")
		for _, it := range page.Items {
			attempt, dur := "-", "-"
			if it.Attempt > 0 {
				attempt = strconv.Itoa(it.Attempt)
			}
			if it.Duration != nil {
				dur = fmtDuration(it.Duration.D())
			}
			msg := oneLine(it.Message)
			if it.CachedFrom != 0 {
				msg = strings.TrimSpace(fmt.Sprintf("from the cache (run %d) %s", it.CachedFrom, msg))
			}
			t.row(strconv.Itoa(it.Item), string(it.State), attempt, dur, itemExit(it), truncate(string(it.Value), 40), msg)
		}
		t.flush()
	}
	if page.Next != "" {
		more := fmt.Sprintf("tasuki items %d %s --after %s", runID, task, page.Next)
		if len(f.states) > 0 {
			more += " --state " + strings.Join(f.states, ",")
		}
		if f.limit != api.DefaultItemsLimit {
			more += fmt.Sprintf(" --limit %d", f.limit)
		}
		fmt.Fprintf(a.io.Err, "more: %s\n", more)
	}
	return nil
}

// itemTask splits the TASK argument of 'tasuki logs': a map item's log
// name TASK.ITEM gives the item; --item N gives it too, not both.
func itemTask(arg string, item int) (string, int, error) {
	if name, n, ok := api.ParseItemLogName(arg); ok {
		if item >= 0 && item != n {
			return "", 0, usageErr("%q names item %d; --item %d names another", arg, n, item)
		}
		return name, n, nil
	}
	if item < -1 {
		return "", 0, usageErr("--item %d: expected an item's position (0 or more)", item)
	}
	return arg, item, nil
}

// itemView is how following sees an item: its state, and the attempt
// under way (a running item's attempt is the one after the last ended).
func itemView(it api.Item) taskView {
	v := taskView{state: it.State, attempt: it.Attempt, ended: map[int]string{}}
	if it.State == engine.TaskRunning {
		v.attempt++
	}
	if it.Attempt > 0 && it.FinishedAt != nil {
		v.ended[it.Attempt] = describeEnd(string(it.State), it.Message)
	}
	for a := 1; a < it.Attempt; a++ {
		v.ended[a] = "not kept for a map item" // its row holds the latest attempt only
	}
	return v
}

// localItemFollow follows an item of a map in the data directory.
type localItemFollow struct {
	l    *local
	info store.MapInfo
	id   string // the map task
	item int
}

func (s *localItemFollow) task(ctx context.Context) (taskView, error) {
	p, err := api.ReadItems(ctx, s.l.store, s.info, api.ItemQuery{From: s.item, Limit: 1})
	if err != nil {
		return taskView{}, err
	}
	if len(p.Items) == 0 {
		return taskView{}, usageErr("map task %q of run %d has no item %d", s.id, s.info.RunID, s.item)
	}
	return itemView(p.Items[0]), nil
}

func (s *localItemFollow) unrecorded(int) string {
	return fmt.Sprintf("if the tasuki process running run %d died, 'tasuki resume %d' goes on with it", s.info.RunID, s.info.RunID)
}

func (s *localItemFollow) follow(ctx context.Context, n int, w io.Writer) error {
	key, err := api.ItemLogKey(ctx, s.l.store, s.l.logs, s.info, s.id, s.item, n)
	if err != nil {
		return apiUsageErr(err)
	}
	_, err = s.l.logs.Follow(ctx, key, 0, w)
	return err
}

// localItemLog is `tasuki logs RUN TASK --item N` on the data directory.
func (a *app) localItemLog(cmd *cobra.Command, l *local, runID int64, task string, item, attempt int, follow bool) error {
	ctx := cmd.Context()
	info, _, err := localMap(ctx, l, runID, task)
	if err != nil {
		return err
	}
	if follow {
		src := &localItemFollow{l: l, info: info, id: task, item: item}
		err := followTask(ctx, src, a.io.Out, a.io.Err, fmt.Sprintf("item %d of map task %q of run %d", item, task, runID), attempt)
		if err != nil && ctx.Err() != nil {
			return nil // Ctrl-C ends following; that is not an error
		}
		return err
	}
	key, err := api.ItemLogKey(ctx, l.store, l.logs, info, task, item, attempt)
	if err != nil {
		return apiUsageErr(err)
	}
	rc, err := l.logs.Open(ctx, key, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(a.io.Out, rc)
	return err
}

// remoteItemFollow follows an item of a map on a server, like
// remoteFollow a task.
type remoteItemFollow struct {
	remoteFollow
	item int
}

func (s *remoteItemFollow) task(ctx context.Context) (taskView, error) {
	for failures := 0; ; {
		it, err := s.c.Item(ctx, s.runID, s.id, s.item)
		if err == nil {
			s.reconnected()
			return itemView(it), nil
		}
		if ctx.Err() != nil {
			return taskView{}, ctx.Err()
		}
		if e, ok := errors.AsType[*api.Error](err); ok && e.Status != 502 && e.Status != 503 && e.Status != 504 {
			return taskView{}, err
		}
		failures++
		s.dropped(err, failures)
		if err := pause(ctx); err != nil {
			return taskView{}, err
		}
	}
}

func (s *remoteItemFollow) follow(ctx context.Context, n int, w io.Writer) error {
	err := s.c.FollowAttempt(ctx, s.runID, api.ItemLogName(s.id, s.item), n, w, s.dropped)
	if err == nil {
		s.reconnected()
	}
	return err
}

// remoteItemLog is `tasuki logs RUN TASK --item N` against a server.
func (a *app) remoteItemLog(cmd *cobra.Command, c *api.Client, runID int64, task string, item, attempt int, follow bool) error {
	ctx := cmd.Context()
	if follow {
		src := &remoteItemFollow{remoteFollow: remoteFollow{c: c, runID: runID, id: task, errOut: a.io.Err}, item: item}
		err := followTask(ctx, src, a.io.Out, a.io.Err, fmt.Sprintf("item %d of map task %q of run %d", item, task, runID), attempt)
		if err != nil && ctx.Err() != nil {
			return nil
		}
		return remoteErr(c, err)
	}
	_, err := c.ReadLog(ctx, runID, api.ItemLogName(task, item), attempt, 0, a.io.Out)
	return remoteErr(c, err)
}

// mapLogHint is the error for the log of a map task itself, which has
// none: each item has its own.
func mapLogHint(runID int64, task string) error {
	return usageErr("task %q of run %d is a map: each item has its own log (tasuki logs %d %s --item N; its items: tasuki items %d %s)",
		task, runID, runID, task, runID, task)
}

// isMapTask reports whether task i of a local run is a map, from the
// pipeline version the run ran.
func isMapTask(ctx context.Context, st store.Store, runID int64, i int) bool {
	run, err := st.Run(ctx, runID)
	if err != nil {
		return false
	}
	v, err := st.PipelineVersion(ctx, run.VersionID)
	if err != nil {
		return false
	}
	p, err := spec.Parse(v.File, v.Source)
	return err == nil && i < len(p.Tasks) && p.Tasks[i].Map != nil
}
