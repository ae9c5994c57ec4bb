package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// processAttempt is an attempt of task id run by RunProcess outside a
// coordinator, in workdir.
func (e *env) processAttempt(id, script, workdir string, outputs []string, needs []artifact.Need) *Attempt {
	body, _ := json.Marshal(map[string]string{"shell": script})
	a := &Attempt{RunID: 1, TaskID: id, Number: 1, Log: logs.Key{RunID: 1, TaskID: id, Attempt: 1},
		dir: workdir, workDir: filepath.Join(e.home, "work", "1")}
	return a.WithSpec(attempt.Spec{Kind: "shell", Body: body, Env: map[string]string{}, Outputs: outputs, Artifacts: needs})
}

// The producer's outputs are kept in the store and placed, read-only,
// for the consumer under $TASUKI_ARTIFACTS/producer/, which is gone once
// the consumer ended.
func TestRunProcessOutputsAndArtifacts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	work := t.TempDir()
	res := e.r.RunProcess(ctx, e.processAttempt("producer",
		`mkdir -p out && printf weights > out/model.bin && printf '#!/bin/sh\necho run\n' > out/run.sh && chmod 755 out/run.sh && printf x > out/skip.txt`,
		work, []string{"out/*.bin", "out/run.sh"}, nil))
	if res.Outcome != attempt.Succeeded {
		t.Fatalf("producer: %s %s", res.Outcome, res.Message)
	}
	if len(res.Outputs) != 2 || res.Outputs[0].Path != "out/model.bin" || res.Outputs[1].Path != "out/run.sh" || res.Outputs[1].Mode != 0o755 {
		t.Fatalf("producer outputs = %+v", res.Outputs)
	}
	if ok, _ := artifact.Has(ctx, e.r.ArtifactStore(), res.Outputs[0].Digest); !ok {
		t.Fatal("the producer's output is not in the artifact store")
	}
	var needs []artifact.Need
	for _, f := range res.Outputs {
		needs = append(needs, artifact.Need{Need: "producer", File: f})
	}
	seen := filepath.Join(t.TempDir(), "seen")
	res = e.r.RunProcess(ctx, e.processAttempt("consumer", `
		set -e
		test "$(cat "$TASUKI_ARTIFACTS/producer/out/model.bin")" = weights
		test "$("$TASUKI_ARTIFACTS/producer/out/run.sh")" = run
		test ! -w "$TASUKI_ARTIFACTS/producer/out/model.bin" || test "$(id -u)" = 0
		test ! -e "$TASUKI_ARTIFACTS/producer/out/skip.txt"
		echo "$TASUKI_ARTIFACTS" > `+seen, t.TempDir(), nil, needs))
	if res.Outcome != attempt.Succeeded {
		t.Fatalf("consumer: %s %s\n%s", res.Outcome, res.Message, e.log(1, "consumer", 1))
	}
	dir, _ := os.ReadFile(seen)
	if _, err := os.Stat(strings.TrimSpace(string(dir))); !os.IsNotExist(err) {
		t.Errorf("the consumer's artifacts directory %s outlived it: %v", dir, err)
	}
}

func TestRunProcessArtifactsEdges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	missing := artifact.Need{Need: "up", File: artifact.File{Path: "a.bin", Digest: "sha256:" + strings.Repeat("0", 64), Size: 1}}
	for _, tc := range []struct {
		name    string
		script  string
		outputs []string
		needs   []artifact.Need
		want    attempt.Outcome
		message string
	}{
		{"no needs: an empty directory", `test -d "$TASUKI_ARTIFACTS" && test -z "$(ls -A "$TASUKI_ARTIFACTS")"`, nil, nil, attempt.Succeeded, ""},
		{"an output that matched nothing fails the attempt", `true`, []string{"model/*.bin"}, nil, attempt.Failed, "outputs: model/*.bin matched no file"},
		{"a link out of the working directory fails it", `ln -s /etc/hostname leak`, []string{"leak"}, nil, attempt.Failed, "outside the working directory"},
		{"a failed attempt keeps nothing", `mkdir out; echo x > out/a; exit 3`, []string{"out/a"}, nil, attempt.Failed, "exit status 3"},
		{"a need's file missing from the store fails it before it starts", `touch started`, nil, []artifact.Need{missing}, attempt.Failed, "artifacts: place up/a.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			res := e.r.RunProcess(ctx, e.processAttempt("t", tc.script, work, tc.outputs, tc.needs))
			if res.Outcome != tc.want || !strings.Contains(res.Message, tc.message) {
				t.Fatalf("RunProcess = %s %q; want %s with %q", res.Outcome, res.Message, tc.want, tc.message)
			}
			if len(res.Outputs) != 0 && res.Outcome != attempt.Succeeded {
				t.Errorf("a failed attempt reported outputs %+v", res.Outputs)
			}
			if _, err := os.Stat(filepath.Join(work, "started")); err == nil {
				t.Error("the attempt started although its artifacts could not be placed")
			}
		})
	}
}

// refsOf is a store.Artifacts over a fixed list of refs.
type refsOf []store.ArtifactRef

func (r refsOf) ArtifactsOf(_ context.Context, run int64, index, item int) ([]store.ArtifactRef, error) {
	var out []store.ArtifactRef
	for _, ref := range r {
		if ref.RunID == run && ref.Index == index && ref.Item == item {
			out = append(out, ref)
		}
	}
	return out, nil
}

func (r refsOf) ArtifactDigests(context.Context, string, int) ([]string, error) { return nil, nil }

func TestNeedArtifactsAndOutputRefs(t *testing.T) {
	model := artifact.File{Path: "out/model.bin", Digest: "sha256:" + strings.Repeat("a", 64), Size: 7}
	csv := artifact.File{Path: "data.csv", Digest: "sha256:" + strings.Repeat("b", 64), Size: 3}
	refs := refsOf(append(OutputRefs(7, 0, -1, []artifact.File{model}), OutputRefs(7, 2, -1, []artifact.File{csv})...))
	refs = append(refs, OutputRefs(8, 0, -1, []artifact.File{csv})...) // another run
	got, err := NeedArtifacts(context.Background(), refs, 7, map[int]string{2: "fetch", 0: "train", 1: "nothing"})
	if err != nil {
		t.Fatal(err)
	}
	want := []artifact.Need{{Need: "train", File: model}, {Need: "fetch", File: csv}}
	if !slices.Equal(got, want) {
		t.Errorf("NeedArtifacts = %+v, want %+v", got, want)
	}
	if OutputRefs(7, 0, -1, nil) != nil {
		t.Error("OutputRefs of no files is not nil")
	}
}

// A two-task pipeline run as 'tasuki run' runs it: the producer's output
// reaches the consumer under $TASUKI_ARTIFACTS/producer/, and the success
// recorded the file as the producer's.
func TestPipelineOutputsReachNeeds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	run, tasks := e.run(ctx, `
name: models
tasks:
  - id: producer
    run: mkdir -p out && printf weights > out/model.bin
    outputs: [out/model.bin]
  - id: consumer
    needs: [producer]
    run: test "$(cat "$TASUKI_ARTIFACTS/producer/out/model.bin")" = weights
`, nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s; consumer: %s\n%s", run.State, tasks["consumer"].State, e.log(run.ID, "consumer", 1))
	}
	st, ok := any(e.st).(store.Artifacts)
	if !ok {
		t.Fatal("the SQLite store keeps no artifact refs")
	}
	refs, err := st.ArtifactsOf(ctx, run.ID, tasks["producer"].Index, -1)
	if err != nil || len(refs) != 1 || refs[0].Path != "out/model.bin" || refs[0].Size != 7 {
		t.Fatalf("the producer's refs = %+v, %v", refs, err)
	}
	if ok, _ := artifact.Has(ctx, e.r.ArtifactStore(), refs[0].Digest); !ok {
		t.Error("the store does not have the file its ref names")
	}
}
