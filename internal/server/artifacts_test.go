package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// The sweep keeps what a kept run names, and what is new; what a pruned
// run named goes once it is old enough. On a real SQLite store, with the
// refs written as a success writes them.
func TestSweepArtifactsWithSQLite(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(home, "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	refs, ok := any(st).(store.Artifacts)
	if !ok {
		t.Fatal("the SQLite store keeps no artifact refs")
	}
	r := &runner.Runner{Store: st, Logs: logs.NewFiles(filepath.Join(home, "logs")), Home: home}
	src := "name: models\ntasks:\n  - id: train\n    run: 'true'\n    outputs: [model.bin]\n"
	file := filepath.Join(home, "models.yaml")
	os.WriteFile(file, []byte(src), 0o644)
	p, err := spec.Parse(file, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	dir := &artifact.Dir{Root: filepath.Join(home, "artifacts")}
	put := func(content string, age time.Duration) artifact.Info {
		info, err := dir.Put(ctx, strings.NewReader(content), "")
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		os.Chtimes(filepath.Join(dir.Root, "sha256", info.Digest[7:9], info.Digest[7:]), at, at)
		return info
	}
	named := put("named by a kept run", 2*time.Hour)
	pruned := put("named by a run that will be pruned", 2*time.Hour)
	orphan := put("named by nothing", 2*time.Hour)
	fresh := put("named by nothing yet", time.Minute)

	run := func(info artifact.Info) int64 {
		created, err := r.Create(ctx, p, nil, "manual")
		if err != nil {
			t.Fatal(err)
		}
		f := artifact.File{Path: "model.bin", Digest: info.Digest, Size: info.Size}
		err = st.Apply(ctx, store.Change{RunID: created.ID, Transition: engine.Transition{Run: &engine.Run{State: engine.RunSucceeded}},
			Artifacts: runner.OutputRefs(created.ID, 0, -1, []artifact.File{f})})
		if err != nil {
			t.Fatal(err)
		}
		return created.ID
	}
	keptRun := run(named)
	prunedRun := run(pruned)

	sweep := func() int {
		t.Helper()
		n, err := artifact.Sweep(ctx, dir, refs.ArtifactDigests, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	has := func() string {
		var out []string
		for _, info := range []artifact.Info{named, pruned, orphan, fresh} {
			ok, _ := artifact.Has(ctx, dir, info.Digest)
			out = append(out, fmt.Sprint(ok))
		}
		return strings.Join(out, " ")
	}
	if n := sweep(); n != 1 || has() != "true true false true" {
		t.Fatalf("first sweep deleted %d; kept (named, pruned, orphan, fresh) = %s", n, has())
	}
	if got, err := refs.ArtifactsOf(ctx, keptRun, 0, -1); err != nil || len(got) != 1 || got[0].Digest != named.Digest {
		t.Fatalf("ArtifactsOf = %+v, %v", got, err)
	}
	// Prune the second run (by id: the first is kept).
	st.Apply(ctx, store.Change{RunID: keptRun, Transition: engine.Transition{Run: &engine.Run{State: engine.RunRunning}}})
	ids, err := st.PruneRuns(ctx, time.Now().Add(time.Hour), 10)
	if err != nil || len(ids) != 1 || ids[0] != prunedRun {
		t.Fatalf("PruneRuns = %v, %v; want [%d]", ids, err, prunedRun)
	}
	if n := sweep(); n != 1 || has() != "true false false true" {
		t.Fatalf("sweep after pruning deleted %d; kept (named, pruned, orphan, fresh) = %s", n, has())
	}
}
