package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestProcessBrokenPipelineIsVisible: files that do not load (an unknown
// need, a pool this server lacks, bytes that are not UTF-8) are listed by
// the API and `tasuki pipelines` with their positions, are logged once
// rather than at every reload, and a trigger of such a pipeline says what is
// wrong with its file instead of "no pipeline". A good file that breaks
// keeps its last good version running and says so.
func TestProcessBrokenPipelineIsVisible(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	good := writeFile(t, dir, "good.yaml", "name: good\ntasks:\n  - {id: say, run: 'echo good-1'}\n")
	needy := writeFile(t, dir, "needy.yaml", "name: needy\ntasks:\n  - {id: a, run: 'true'}\n  - {id: b, run: 'true', needs: [c]}\n")
	pooled := writeFile(t, dir, "pooled.yaml", "name: pooled\ntasks:\n  - id: a\n    run: 'true'\n    pool: warehouse\n")
	latin1 := writeFile(t, dir, "latin1.yaml", "name: latin1\ntasks:\n  - {id: a, run: 'echo caf\xe9'}\n")
	s := startServer(t, home, dir, nil)
	ctx := context.Background()

	// The API lists every broken file with its problems at file:line:col.
	list, err := s.c.Pipelines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "good" {
		t.Errorf("pipelines = %+v, want only good", list.Items)
	}
	want := []api.FileProblem{
		{File: latin1, Pipeline: "", Errors: []string{latin1 + ":3:27: invalid UTF-8 (byte 0xe9)"}},
		{File: needy, Pipeline: "needy", Errors: []string{needy + `:4:34: task "b" needs "c", which is not a task in this pipeline`}},
		{File: pooled, Pipeline: "pooled", Errors: []string{pooled + `:5:11: task "a": pool "warehouse" is not configured on this server`}},
	}
	if len(list.Problems) != len(want) {
		t.Fatalf("problems = %+v, want %d", list.Problems, len(want))
	}
	for i, w := range want {
		g := list.Problems[i]
		if g.File != w.File || g.Pipeline != w.Pipeline || len(g.Errors) != 1 || !strings.HasPrefix(g.Errors[0], w.Errors[0]) {
			t.Errorf("problem %d = %+v, want %+v", i, g, w)
		}
	}

	// A trigger names the file and its problem: 409 pipeline_invalid.
	_, err = s.c.Trigger(ctx, "needy", nil, "test")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != api.CodePipelineInvalid ||
		!strings.Contains(ae.Message, needy+":4:34: task \"b\" needs \"c\"") {
		t.Errorf("trigger of a broken pipeline: %v, want 409 pipeline_invalid naming %s:4:34", err, needy)
	}
	tasukiCLI(t, s, "trigger", "pooled").expect(t, 2, "pooled.yaml does not load", pooled+":5:11:", `pool "warehouse"`)
	tasukiCLI(t, s, "trigger", "nope").expect(t, 2, `no pipeline "nope"`)

	// tasuki pipelines shows them, as a table and as the API's JSON.
	tasukiCLI(t, s, "pipelines").expect(t, 0, "good", "Pipeline files that do not load (3):",
		needy+" (pipeline needy, not loaded)", needy+":4:34:", latin1+":3:27: invalid UTF-8")
	r := tasukiCLI(t, s, "pipelines", "-o", "json")
	r.expect(t, 0)
	var fromCLI api.PipelineList
	if err := json.Unmarshal([]byte(r.out), &fromCLI); err != nil || len(fromCLI.Items) != 1 || len(fromCLI.Problems) != 3 {
		t.Errorf("pipelines -o json: %v\n%s", err, r.out)
	}

	// Reloads that find other changes do not log the broken files again.
	for i := range 2 {
		name := fmt.Sprintf("extra%d", i)
		writeFile(t, dir, name+".yaml", "name: "+name+"\ntasks: [{id: a, run: 'true'}]\n")
		eventually(t, 15*time.Second, name+" to be loaded", func() (bool, string) {
			_, err := s.c.Pipeline(ctx, name)
			return err == nil, fmt.Sprint(err)
		})
	}
	for _, f := range []string{needy, pooled, latin1} {
		if n := warnings(s.logs(), "invalid pipeline file", f); n != 1 {
			t.Errorf("%s was logged %d times over several reloads, want once", filepath.Base(f), n)
		}
	}

	// A good file that breaks: the last good version stays in use, and says so.
	replaceFile(t, good, "name: good\ntasks:\n  - {id: say, run: 'echo good-2', neds: [x]}\n")
	eventually(t, 15*time.Second, "the broken good file to be reported", func() (bool, string) {
		p, err := s.c.Pipeline(ctx, "good")
		return err == nil && p.Error != "", fmt.Sprintf("%+v %v", p, err)
	})
	tasukiCLI(t, s, "pipelines").expect(t, 0, "last good version in use; file has errors: "+good+":3:35: unknown key \"neds\"")
	run, err := s.c.Trigger(ctx, "good", nil, "test")
	if err != nil {
		t.Fatalf("trigger of a pipeline with a last good version: %v", err)
	}
	if run = waitRunEnd(t, s.c, run.ID); run.State != engine.RunSucceeded {
		t.Errorf("run of the last good version: %s", run.State)
	}
	if n := warnings(s.logs(), "the last good version stays in use", good); n != 1 {
		t.Errorf("the broken good file was logged %d times, want once", n)
	}
	s.term(10 * time.Second)
}

// warnings counts the WARN lines of a server log that hold msg and file.
func warnings(log, msg, file string) int {
	n := 0
	for line := range strings.Lines(log) {
		if strings.Contains(line, "WARN") && strings.Contains(line, msg) && strings.Contains(line, file) {
			n++
		}
	}
	return n
}
