package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Artifact refs (store.Artifacts): written with a success through Apply,
// replacing what the same task (or item) recorded before, read by task and
// item in path order, deleted with their run; the digests they and the
// cache's entries name page in order, each once.

func digest(s string) string { return "sha256:" + strings.Repeat(s, 64/len(s)) }

func ref(index, item int, path, d string, size int64) store.ArtifactRef {
	return store.ArtifactRef{Index: index, Item: item, ArtifactFile: store.ArtifactFile{Path: path, Digest: d, Size: size}}
}

func mustArtifactsOf(t *testing.T, s store.Store, run int64, index, item int) []store.ArtifactRef {
	t.Helper()
	refs, err := s.ArtifactsOf(t.Context(), run, index, item)
	if err != nil {
		t.Fatalf("ArtifactsOf(%d, %d, %d): %v", run, index, item, err)
	}
	if refs == nil {
		t.Errorf("ArtifactsOf(%d, %d, %d) = nil, want a slice", run, index, item)
	}
	return refs
}

// withRun is refs as ArtifactsOf reads them back: of run.
func withRun(run int64, refs ...store.ArtifactRef) []store.ArtifactRef {
	out := slices.Clone(refs)
	for i := range out {
		out[i].RunID = run
	}
	return out
}

func testArtifacts(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("art", 3))
	model := ref(0, -1, "model/weights.bin", digest("a"), 1<<30)
	model.Mode = 0o600
	script := ref(0, -1, "bin/run.sh", digest("b"), 120)
	script.Mode = 0o755
	script.RunID = r.ID // may be given
	item5 := ref(1, 5, "part.csv", digest("c"), 10)
	item0 := ref(1, 0, "part.csv", digest("d"), 11)
	exit := 0
	// Recorded with the task's success, in one change.
	mustApply(t, s, store.Change{RunID: r.ID,
		Transition: engine.Transition{Tasks: []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskSucceeded,
			Attempt: 1, ExitCode: &exit}}}},
		Attempts:  []store.Attempt{{Index: 0, Attempt: 1, Outcome: store.OutcomeSucceeded, StartedAt: t0, FinishedAt: t0.Add(time.Second)}},
		Artifacts: []store.ArtifactRef{model, item5, script, item0}})
	check(t, "files of task 0", mustArtifactsOf(t, s, r.ID, 0, -1), withRun(r.ID, script, model))
	check(t, "files of item 5", mustArtifactsOf(t, s, r.ID, 1, 5), withRun(r.ID, item5))
	check(t, "files of item 0", mustArtifactsOf(t, s, r.ID, 1, 0), withRun(r.ID, item0))
	for _, k := range [][2]int{{1, -1}, {1, 4}, {2, -1}, {0, 0}} {
		if refs := mustArtifactsOf(t, s, r.ID, k[0], k[1]); len(refs) != 0 {
			t.Errorf("files of task %d item %d = %v, want none", k[0], k[1], refs)
		}
	}
	if _, err := s.ArtifactsOf(ctx, r.ID+1000, 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ArtifactsOf of a missing run: %v, want ErrNotFound", err)
	}

	// A new success of the task replaces its files (a path given twice is
	// its last ref); other tasks' and items' stay.
	report := ref(0, -1, "report.txt", digest("e"), 5)
	mustApply(t, s, store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{
		ref(0, -1, "model/weights.bin", digest("f"), 1), report, ref(0, -1, "model/weights.bin", digest("a0"), 2)}})
	check(t, "files of task 0 run again", mustArtifactsOf(t, s, r.ID, 0, -1),
		withRun(r.ID, ref(0, -1, "model/weights.bin", digest("a0"), 2), report))
	check(t, "files of item 5 after task 0 ran again", mustArtifactsOf(t, s, r.ID, 1, 5), withRun(r.ID, item5))

	// Several changes of one batch: the last of each task and item wins,
	// as one change at a time.
	batch := func(run int64) []store.Change {
		return []store.Change{
			{RunID: run, Artifacts: []store.ArtifactRef{ref(2, -1, "a", digest("1"), 1), ref(1, 7, "x", digest("2"), 1)}},
			{RunID: run, Artifacts: []store.ArtifactRef{ref(2, -1, "b", digest("3"), 1)}},
			{RunID: run, Artifacts: []store.ArtifactRef{ref(1, 8, "y", digest("4"), 1), ref(1, 7, "z", digest("5"), 1)}},
		}
	}
	one, each := mustCreate(t, s, newRun("art", 3)), mustCreate(t, s, newRun("art", 3))
	mustApply(t, s, batch(one.ID)...)
	for _, c := range batch(each.ID) {
		mustApply(t, s, c)
	}
	for _, k := range [][2]int{{2, -1}, {1, 7}, {1, 8}} {
		got := mustArtifactsOf(t, s, one.ID, k[0], k[1])
		want := mustArtifactsOf(t, s, each.ID, k[0], k[1])
		check(t, fmt.Sprintf("files of task %d item %d by batch", k[0], k[1]), withRun(0, got...), withRun(0, want...))
		if len(got) != 1 {
			t.Errorf("files of task %d item %d: %v, want one", k[0], k[1], got)
		}
	}
}

func testArtifactsRejects(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("art", 2))
	good := store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{ref(0, -1, "ok", digest("a"), 1)}}
	other := ref(0, -1, "x", digest("b"), 1)
	other.RunID = r.ID + 1
	for _, tt := range []struct {
		name     string
		c        store.Change
		notFound bool
	}{
		{"another run's ref", store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{other}}, false},
		{"negative task", store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{ref(-1, -1, "x", digest("b"), 1)}}, false},
		{"item below -1", store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{ref(0, -2, "x", digest("b"), 1)}}, false},
		{"empty path", store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{ref(0, -1, "", digest("b"), 1)}}, false},
		{"path not text", store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{ref(0, -1, "a\x00b", digest("b"), 1)}}, false},
		{"no digest", store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{ref(0, -1, "x", "", 1)}}, false},
		{"negative size", store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{ref(0, -1, "x", digest("b"), -1)}}, false},
		{"missing task", store.Change{RunID: r.ID, Artifacts: []store.ArtifactRef{ref(2, -1, "x", digest("b"), 1)}}, true},
		{"missing run", store.Change{RunID: r.ID + 1000, Artifacts: []store.ArtifactRef{ref(0, -1, "x", digest("b"), 1)}}, true},
	} {
		err := s.Apply(ctx, good, tt.c)
		switch {
		case err == nil:
			t.Errorf("%s: Apply accepted it", tt.name)
		case tt.notFound != errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: %v (want ErrNotFound: %v)", tt.name, err, tt.notFound)
		}
	}
	if refs := mustArtifactsOf(t, s, r.ID, 0, -1); len(refs) != 0 {
		t.Errorf("refused batches wrote %v", refs)
	}
}

// digestsFrom pages through ArtifactDigests with pages of limit.
func digestsFrom(t *testing.T, s store.Store, after string, limit int) []string {
	t.Helper()
	var out []string
	for range 1000 {
		page, err := s.ArtifactDigests(t.Context(), after, limit)
		if err != nil {
			t.Fatalf("ArtifactDigests(%q, %d): %v", after, limit, err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1]
	}
	t.Fatal("ArtifactDigests does not end")
	return nil
}

func testArtifactDigests(t *testing.T, s store.Store) {
	ctx := t.Context()
	if page, err := s.ArtifactDigests(ctx, "", 10); err != nil || page == nil || len(page) != 0 {
		t.Errorf("ArtifactDigests of an empty store = %#v, %v; want []", page, err)
	}
	nr := newRun("art", 2)
	nr.Run.State, nr.Run.CreatedAt = engine.RunSucceeded, t0.Add(-time.Hour)
	old := mustCreate(t, s, nr)
	kept := mustCreate(t, s, newRun("art", 2))
	// 60 items of a map write the same file, and one of their own each.
	var items []store.ArtifactRef
	for i := range 60 {
		items = append(items, ref(1, i, "same.txt", digest("5"), 1), ref(1, i, "own.txt", digest(fmt.Sprintf("%02d", i)), 1))
	}
	mustApply(t, s, store.Change{RunID: old.ID, Artifacts: append(items, ref(0, -1, "a", digest("a"), 1))})
	mustApply(t, s, store.Change{RunID: kept.ID, Artifacts: []store.ArtifactRef{ref(0, -1, "b", digest("b"), 1), ref(0, -1, "a", digest("a"), 1)}})
	entry := cacheEntry(1, "art", "t1", 1, t0)
	entry.Outputs = []store.ArtifactFile{{Path: "x", Digest: digest("c")}, {Path: "y", Digest: digest("5")}, {Path: "z", Digest: digest("c")}}
	mustPutCache(t, s, entry)

	want := []string{digest("5"), digest("a"), digest("b"), digest("c")}
	for i := range 60 {
		want = append(want, digest(fmt.Sprintf("%02d", i)))
	}
	slices.Sort(want)
	want = slices.Compact(want)
	for _, limit := range []int{0, 1, 7, 1000} {
		check(t, fmt.Sprintf("digests in pages of %d", limit), digestsFrom(t, s, "", limit), want)
	}
	check(t, "digests after the fourth", digestsFrom(t, s, want[3], 100), want[4:])
	if page, _ := s.ArtifactDigests(ctx, want[len(want)-1], 10); len(page) != 0 {
		t.Errorf("digests after the last = %v", page)
	}

	// What cache entries name goes with them (or with their new outputs).
	entry.Outputs = []store.ArtifactFile{{Path: "x", Digest: digest("d")}}
	mustPutCache(t, s, entry)
	want = slices.DeleteFunc(want, func(d string) bool { return d == digest("c") })
	want = append(want, digest("d"))
	slices.Sort(want)
	check(t, "digests after an entry is replaced", digestsFrom(t, s, "", 10), want)
	if n, err := s.DeleteCache(ctx, []string{entry.Key}); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	want = slices.DeleteFunc(want, func(d string) bool { return d == digest("d") })
	check(t, "digests after an entry is deleted", digestsFrom(t, s, "", 10), want)

	// A pruned run takes its refs with it.
	if ids, err := s.PruneRuns(ctx, t0, 10); err != nil || !slices.Equal(ids, []int64{old.ID}) {
		t.Fatalf("PruneRuns = %v, %v", ids, err)
	}
	check(t, "digests after the prune", digestsFrom(t, s, "", 10), []string{digest("a"), digest("b")})
	if _, err := s.ArtifactsOf(ctx, old.ID, 1, 5); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ArtifactsOf of a pruned run: %v", err)
	}
	check(t, "files of the kept run", mustArtifactsOf(t, s, kept.ID, 0, -1),
		withRun(kept.ID, ref(0, -1, "a", digest("a"), 1), ref(0, -1, "b", digest("b"), 1)))
}
