package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// What every driver accepts, refuses and reads back for text and JSON that
// not every database can hold as given (PostgreSQL's text holds no NUL bytes
// or invalid UTF-8, its jsonb no \u0000). The rules are the same for every
// driver (store.PrepareRun, store.PrepareBackfill, store.CheckChange), so a
// pipeline that works on SQLite works on PostgreSQL:
//
//   - free text from outside (messages, actors, workers, log names, a
//     pipeline's file and error) is stored with U+FFFD in place of what the
//     database could not hold, rather than losing the write it came with;
//   - names (pipeline, trigger) must be valid text, or the write is refused;
//   - JSON with the escape \u0000 is refused with a message naming the field;
//     an escaped backslash before "u0000" is not that escape.

// testFreeText checks that free text reads back the same from every driver.
func testFreeText(t *testing.T, s store.Store) {
	nr := newRun("p", 1)
	nr.Actor = "bad\x00actor"
	nr.Tasks[0].Message = "given\xff"
	r := mustCreate(t, s, nr)
	sn := take(t, s, r.ID)
	if got := []string{sn.Tasks[0].Message, sn.Events[0].Actor}; !slices.Equal(got, []string{"given\uFFFD", "bad\uFFFDactor"}) {
		t.Errorf("created task message and actor = %q", got)
	}
	mustApply(t, s, store.Change{RunID: r.ID,
		Transition: engine.Transition{
			Tasks:   []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskFailed, Message: "stderr: \x00\xff\xfe ok"}}},
			Records: []engine.Record{{Kind: engine.EvTaskFailed, Task: 0, Time: t0, Message: "a\x00b", Actor: "w\xc3"}},
		},
		Attempts: []store.Attempt{{Index: 0, Attempt: 1, Worker: "w\x00", Message: "m\xff", Log: "l\x00"}}})
	sn = take(t, s, r.ID)
	if len(sn.Events) != 2 || len(sn.Attempts) != 1 {
		t.Fatalf("after Apply: %d events, %d attempts; want 2 and 1", len(sn.Events), len(sn.Attempts))
	}
	got := []string{sn.Tasks[0].Message, sn.Events[1].Message, sn.Events[1].Actor, sn.Attempts[0].Worker,
		sn.Attempts[0].Message, sn.Attempts[0].Log}
	want := []string{"stderr: \uFFFD\uFFFD ok", "a\uFFFDb", "w\uFFFD", "w\uFFFD", "m\uFFFD", "l\uFFFD"}
	if !slices.Equal(got, want) {
		t.Errorf("applied text = %q, want %q", got, want)
	}

	v := mustVersion(t, s, "p", "name: p")
	mustPutState(t, s, store.PipelineState{Name: "p", VersionID: v.ID, File: "p\xff.yaml", Error: "line 1: \x00", UpdatedAt: t0})
	if ps := mustState(t, s, "p"); ps.File != "p\uFFFD.yaml" || ps.Error != "line 1: \uFFFD" {
		t.Errorf("pipeline state file, error = %q, %q", ps.File, ps.Error)
	}
}

// testBackfillActor pins the rule for a backfill's actor, on which the
// drivers once differed: it is free text, so CreateBackfill returns it, and
// Backfill and the runs' run_created records read it back, with U+FFFD in
// place of NUL bytes and invalid UTF-8.
func testBackfillActor(t *testing.T, s store.Store) {
	ctx := t.Context()
	from := t0.Truncate(time.Hour)
	b, err := s.CreateBackfill(ctx, store.Backfill{Pipeline: "p", From: from, To: from.Add(2 * time.Hour),
		Actor: "ops\x00\xff"}, backfillRuns("p", from, 2, 1))
	if err != nil {
		t.Fatalf("CreateBackfill: %v", err)
	}
	const want = "ops\uFFFD\uFFFD"
	if b.Actor != want {
		t.Errorf("CreateBackfill returned actor %q, want %q", b.Actor, want)
	}
	read, err := s.Backfill(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "read backfill", read, b)
	runs, err := s.ListRuns(ctx, store.RunFilter{BackfillID: b.ID})
	if err != nil || len(runs) != 2 {
		t.Fatalf("ListRuns(backfill) = %d runs, %v; want 2", len(runs), err)
	}
	for _, r := range runs {
		if evs := take(t, s, r.ID).Events; len(evs) != 1 || evs[0].Actor != want {
			t.Errorf("run %d events = %+v, want one run_created by %q", r.ID, evs, want)
		}
	}
}

// testRefusedText checks that names that are not valid text and JSON with
// \u0000 are refused by every driver, with a message naming the field, and
// that nothing of a refused write is visible.
func testRefusedText(t *testing.T, s store.Store) {
	ctx := t.Context()
	from := t0.Truncate(time.Hour)
	withRun := func(f func(nr *store.NewRun)) store.NewRun {
		nr := newRun("p", 1)
		f(&nr)
		return nr
	}
	creates := []struct {
		name, field string
		nr          store.NewRun
	}{
		{"pipeline name with NUL", "pipeline name", withRun(func(nr *store.NewRun) { nr.Run.Pipeline = "p\x00" })},
		{"pipeline name not UTF-8", "pipeline name", withRun(func(nr *store.NewRun) { nr.Run.Pipeline = "p\xff" })},
		{"trigger not UTF-8", "trigger", withRun(func(nr *store.NewRun) { nr.Run.Trigger = "manual\xff" })},
		{"params with \\u0000", "params", withRun(func(nr *store.NewRun) { nr.Run.Params = json.RawMessage(`{"s": "a\u0000"}`) })},
		{"task result with \\u0000", "result of task 0", withRun(func(nr *store.NewRun) { nr.Tasks[0].Result = json.RawMessage(`["\u0000"]`) })},
	}
	for _, tt := range creates {
		t.Run("CreateRun/"+tt.name, func(t *testing.T) {
			_, err := s.CreateRun(ctx, tt.nr)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("CreateRun = %v, want a refusal naming %q", err, tt.field)
			}
		})
		t.Run("CreateBackfill/"+tt.name, func(t *testing.T) {
			nr := tt.nr
			nr.Run.Trigger = "" // backfill runs take the backfill's trigger
			if tt.field == "trigger" {
				nr.Run.Trigger = store.TriggerBackfill + "\xff"
			}
			b := store.Backfill{Pipeline: nr.Run.Pipeline, From: from, To: from.Add(time.Hour)}
			_, err := s.CreateBackfill(ctx, b, []store.NewRun{nr})
			if err == nil {
				t.Error("CreateBackfill succeeded")
			}
		})
	}
	if runs, err := s.ListRuns(ctx, store.RunFilter{}); err != nil || len(runs) != 0 {
		t.Errorf("after refused writes, ListRuns = %d runs, %v; want none", len(runs), err)
	}
	if bs, err := s.ListBackfills(ctx, "", 0, 0); err != nil || len(bs) != 0 {
		t.Errorf("after refused writes, ListBackfills = %d, %v; want none", len(bs), err)
	}

	r := mustCreate(t, s, newRun("p", 1))
	applies := []struct {
		name, field string
		c           store.Change
	}{
		{"result with \\u0000", "result of task 0", store.Change{RunID: r.ID, Transition: engine.Transition{
			Tasks: []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskSucceeded, Result: json.RawMessage(`{"s": "a\u0000b"}`)}}}}}},
		{"record data with \\u0000", "data of task_succeeded record", store.Change{RunID: r.ID, Transition: engine.Transition{
			Records: []engine.Record{{Kind: engine.EvTaskSucceeded, Task: 0, Time: t0, Data: json.RawMessage(`"\u0000"`)}}}}},
	}
	for _, tt := range applies {
		t.Run("Apply/"+tt.name, func(t *testing.T) {
			err := s.Apply(ctx, tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), `\u0000`) {
				t.Errorf("Apply = %v, want a refusal naming %q and \\u0000", err, tt.field)
			}
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
				t.Errorf("Apply = %v, want neither ErrNotFound nor ErrConflict", err)
			}
		})
	}
	if sn := take(t, s, r.ID); sn.Tasks[0].State != engine.TaskPending || len(sn.Events) != 1 {
		t.Errorf("after refused Applies: task %s, %d events; want pending and only run_created", sn.Tasks[0].State, len(sn.Events))
	}

	// An escaped backslash before "u0000" is not the escape, and a JSON null
	// result stays the JSON null, not absent.
	for _, result := range []string{`{"s": "a\\u0000b", "n": null}`, `"\\\\\\u0000"`, `null`} {
		mustApply(t, s, store.Change{RunID: r.ID, Transition: engine.Transition{
			Tasks: []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskSucceeded, Result: json.RawMessage(result)}}}}})
		if got := take(t, s, r.ID).Tasks[0].Result; !jsonEqual(got, []byte(result)) || got == nil {
			t.Errorf("result %s reads back as %s", result, orNil(got))
		}
	}
}
