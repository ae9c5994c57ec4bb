package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

func (a *app) validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check pipeline files and directories",
		Long: `Check pipeline files (and every .yaml/.yml file in the given directories)
and print every problem as file:line:col: message. The exit status is 0 when
all files are valid and 2 otherwise, so it fits a CI step.`,
		Example: "  tasuki validate pipelines/",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := spec.LoadPaths(args...)
			if err != nil {
				var el spec.ErrorList
				if errors.As(err, &el) {
					for _, e := range el {
						fmt.Fprintln(a.io.Out, e.Error())
					}
					return &exitError{code: exitUsage, err: fmt.Errorf("%d problem(s) found", len(el))}
				}
				return &exitError{code: exitUsage, err: err}
			}
			for _, p := range ps {
				fmt.Fprintf(a.io.Out, "%s: ok (pipeline %s, %d tasks)\n", p.Source.File, p.Name, len(p.Tasks))
			}
			return nil
		},
	}
}

func (a *app) schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the pipeline format",
		Long: `Print the JSON Schema (draft 2020-12) of the pipeline file format. Save it and
point your editor's YAML language server at it, for example with a first line
'# yaml-language-server: $schema=./tasuki.schema.json' in a pipeline file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := spec.Schema()
			if err != nil {
				return err
			}
			_, err = a.io.Out.Write(append(b, '\n'))
			return err
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&a.output, "output", "o", "table", "output format: table or json")
}

func (a *app) checkOutput() error {
	if a.output != "table" && a.output != "json" {
		return usageErr("--output %q: expected table or json", a.output)
	}
	return nil
}

// runStates are the states 'runs --state' takes.
var runStates = []engine.RunState{engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunFailed, engine.RunCancelled}

// parseStates reads --state: comma-separated run states, each known.
func parseStates(given []string) ([]engine.RunState, error) {
	var out []engine.RunState
	for _, s := range given {
		st := engine.RunState(strings.TrimSpace(s))
		if !slices.Contains(runStates, st) {
			return nil, usageErr("--state %q: expected queued, running, succeeded, failed or cancelled", s)
		}
		out = append(out, st)
	}
	return out, nil
}

func (a *app) runsCmd() *cobra.Command {
	var (
		pipeline string
		limit    int
		before   int64
		states   []string
		backfill int64
	)
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs, newest first",
		Long: `List runs, newest first, as a table; with -o json, as a JSON array of runs
(the objects of the API's /runs "items", without their tasks).`,
		Example: `  tasuki runs --state failed,cancelled --pipeline nightly-elt
  tasuki runs -o json | jq -r '.[] | select(.state == "failed") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			st, err := parseStates(states)
			if err != nil {
				return err
			}
			if limit < 1 || limit > 1000 {
				return usageErr("--limit %d: expected 1 to 1000", limit)
			}
			l, err := a.openLocal(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			runs, err := l.store.ListRuns(cmd.Context(), store.RunFilter{Pipeline: pipeline, States: st, BackfillID: backfill, Limit: limit, BeforeID: before})
			if err != nil {
				return err
			}
			if a.output == "json" {
				views := make([]api.Run, len(runs))
				for i, r := range runs {
					redactLocalRun(cmd.Context(), l.store, &r)
					views[i] = api.NewRun(r)
				}
				return writeJSON(a.io.Out, views)
			}
			t := newTable(a.io.Out, "ID", "PIPELINE", "STATE", "TRIGGER", "CREATED", "DURATION", "TASKS")
			for _, r := range runs {
				dur := "-"
				if !r.StartedAt.IsZero() {
					end := r.FinishedAt
					if end.IsZero() {
						end = time.Now()
					}
					dur = fmtDuration(end.Sub(r.StartedAt))
				}
				t.row(fmt.Sprint(r.ID), r.Pipeline, string(r.State), r.Trigger,
					r.CreatedAt.Local().Format(timeLayout), dur,
					fmt.Sprintf("%d/%d", r.TaskCount-r.Remaining, r.TaskCount))
			}
			t.flush()
			return nil
		},
	}
	a.addOutputFlag(cmd)
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "only runs of this pipeline")
	cmd.Flags().IntVar(&limit, "limit", 20, "most runs to list")
	cmd.Flags().Int64Var(&before, "before", 0, "only runs with an id below this (for paging)")
	cmd.Flags().StringSliceVar(&states, "state", nil, "only runs in these states (comma-separated: queued, running, succeeded, failed, cancelled)")
	cmd.Flags().Int64Var(&backfill, "backfill", 0, "only runs of this backfill")
	return cmd
}

func (a *app) statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status RUN_ID",
		Short: "Show one run and its tasks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			l, err := a.openLocal(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			run, err := l.store.Run(cmd.Context(), id)
			if err != nil {
				return runLookupErr(id, err)
			}
			redactLocalRun(cmd.Context(), l.store, &run)
			tasks, err := l.store.Tasks(cmd.Context(), id)
			if err != nil {
				return err
			}
			if a.output == "json" {
				view := runView(run, tasks)
				if err := addLocalMaps(cmd.Context(), l.store, &view, tasks); err != nil {
					return err
				}
				return writeJSON(a.io.Out, view)
			}
			v := a.layout(cmd.Context(), l, run)
			fmt.Fprintf(a.io.Out, "run %d of %s: %s (trigger %s, created %s)\n", run.ID, run.Pipeline, run.State, run.Trigger, v.at(run.CreatedAt))
			if len(run.Params) > 2 {
				fmt.Fprintf(a.io.Out, "params: %s\n", run.Params)
			}
			if !run.IntervalStart.IsZero() && !run.IntervalEnd.IsZero() {
				fmt.Fprintf(a.io.Out, "interval: %s to %s\n", v.at(run.IntervalStart), v.at(run.IntervalEnd))
			}
			printDeadline(a.io.Out, api.NewRun(run), v)
			printSummary(a.io.Out, run, tasks, v)
			return nil
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

func (a *app) logsCmd() *cobra.Command {
	var (
		attempt int
		follow  bool
		item    int
	)
	cmd := &cobra.Command{
		Use:   "logs RUN_ID TASK",
		Short: "Print a task's log, or a map item's (the latest attempt unless --attempt)",
		Long: `Print the time-stamped log of a task attempt. Each line is
'<time> <out|err> <text>'.

With -f, keep printing as the task writes until the task ends (or Ctrl-C):
a task that has not started is waited for; when an attempt ends and the
task is tried again, a line '--- attempt N ended: <outcome> ---' and a line
'--- attempt N+1 ---' mark the boundary, and the next attempt is printed
from its first line. A task that will never run (its upstream failed, it
was skipped) is reported and the command exits. With --attempt and -f,
only that attempt is followed. Against a server, a lost connection is
retried until the server is back, saying so on stderr.

Each item of a map task has its own log: --item N (or TASK.N as the task)
prints item N's, whose attempts are the item's own. 'tasuki items RUN_ID
TASK --state failed' lists the items that failed.`,
		Example: `  tasuki logs 42 load
  tasuki logs -f 42 load --attempt 2
  tasuki logs 42 profile --item 17          # the same as: tasuki logs 42 profile.17`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			taskID, item, err := itemTask(args[1], item)
			if err != nil {
				return err
			}
			if attempt < 0 {
				return usageErr("--attempt %d: expected a positive number", attempt)
			}
			l, err := a.openLocal(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			if item >= 0 {
				return a.localItemLog(cmd, l, id, taskID, item, attempt, follow)
			}
			tasks, err := l.store.Tasks(cmd.Context(), id)
			if err != nil {
				return runLookupErr(id, err)
			}
			if len(tasks) == 0 {
				return runLookupErr(id, store.ErrNotFound)
			}
			var task *store.TaskRow
			for i := range tasks {
				if tasks[i].TaskID == args[1] {
					task = &tasks[i]
				}
			}
			if task == nil {
				return usageErr("run %d has no task %q", id, args[1])
			}
			if isMapTask(cmd.Context(), l.store, id, task.Index) {
				return mapLogHint(id, task.TaskID)
			}
			if follow {
				if attempt > task.Attempt {
					return usageErr("task %q of run %d has no attempt %d (latest is %d)", args[1], id, attempt, task.Attempt)
				}
				return a.followLog(cmd, l, *task, attempt)
			}
			n := attempt
			if n == 0 {
				n = task.Attempt
			}
			if n == 0 {
				return usageErr("task %q of run %d has not started yet", args[1], id)
			}
			if isWait(cmd.Context(), l.store, id, task.Index) {
				// A wait's checks write no log.
				fmt.Fprintf(a.io.Err, "task %q is a wait: its checks write no log; what the last one saw is its message in 'tasuki status %d', each change is in the run's timeline\n", task.TaskID, id)
				return nil
			}
			key := logs.Key{RunID: id, TaskID: task.TaskID, Attempt: n}
			rc, err := l.logs.Open(cmd.Context(), key, 0)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(a.io.Out, rc)
			return err
		},
	}
	cmd.Flags().IntVar(&attempt, "attempt", 0, "attempt number (default: the latest)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines, attempt after attempt, until the task ends")
	cmd.Flags().IntVar(&item, "item", -1, "for a map task: the log of this item (its position, from 0)")
	return cmd
}

// isWait reports whether task i of a run is a wait task, from the pipeline
// version the run ran.
func isWait(ctx context.Context, st store.Store, runID int64, i int) bool {
	run, err := st.Run(ctx, runID)
	if err != nil || run.VersionID == 0 {
		return false
	}
	v, err := st.PipelineVersion(ctx, run.VersionID)
	if err != nil {
		return false
	}
	p, err := spec.Parse(v.File, v.Source)
	return err == nil && i < len(p.Tasks) && p.Tasks[i].IsWait()
}
