package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestProcessWorkersList lists the executors of a real server with a real
// `tasuki worker` running an attempt, held running by a FIFO: through the
// API, the CLI and the web UI's workers page (a viewer's session); then
// the attempt ends and the worker is idle.
func TestProcessWorkersList(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	home, pipelines, fifos := t.TempDir(), t.TempDir(), t.TempDir()
	started := mkfifo(t, fifos)
	release := mkfifoAt(t, filepath.Join(fifos, "release"))
	writeFile(t, pipelines, "hold.yaml", `
name: hold
tasks:
  - id: hold
    labels: [remote]
    run: |
      echo started > `+started+`
      read line < `+release+`
`)
	s := startServer(t, home, pipelines, nil, "--workers", "1", "--labels", "here")
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	startWorker(t, s.url, tokenFile, "w1", nil, "--labels", "remote,linux", "--slots", "2")
	ctx := context.Background()
	run, err := s.c.Trigger(ctx, "hold", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, started, s, 30*time.Second)

	var remote api.WorkerInfo
	eventually(t, 10*time.Second, "the worker listed with its attempt and slots", func() (bool, string) {
		list, err := s.c.Workers(ctx)
		if err != nil {
			return false, err.Error()
		}
		if len(list) != 2 || list[0].Name != "local" || !list[0].Local || list[0].Slots != 1 || len(list[0].Labels) != 1 || list[0].Labels[0] != "here" {
			return false, "list " + dump(list)
		}
		remote = list[1]
		// The slots show once the worker asks again with its other slot
		// free; the lease request long-polls, so this is at once.
		return remote.Name == "w1" && remote.Slots == 2 && remote.InUse == 1 && len(remote.Running) == 1, "w1 " + dump(remote)
	})
	if r := remote.Running[0]; r.Run != run.ID || r.Task != "hold" || r.Attempt != 1 || r.Pipeline != "hold" || r.Item != nil || r.Since.IsZero() {
		t.Errorf("w1 runs %+v", r)
	}
	if remote.LastHeartbeat == nil || time.Since(*remote.LastHeartbeat) > time.Minute || strings.Join(remote.Labels, ",") != "remote,linux" {
		t.Errorf("w1: %s", dump(remote))
	}

	// The CLI.
	r := cliAt(t, s.url, "workers")
	if r.code != 0 || !strings.Contains(r.out, "w1") || !strings.Contains(r.out, "remote,linux") || !strings.Contains(r.out, "1/2") ||
		!strings.Contains(r.out, "/hold#1") || !strings.Contains(r.out, "in-process") {
		t.Errorf("tasuki workers: exit %d\n%s%s", r.code, r.out, r.errOut)
	}

	// The web UI, as a viewer.
	if r := secretCLI(t, s, "viewer-password\n", "user", "add", "vera", "--role", "viewer"); r.code != 0 {
		t.Fatalf("user add: exit %d: %s", r.code, r.errOut)
	}
	vera := newBrowser(t, s.url)
	if code, out := vera.login("vera", "viewer-password"); code != 200 {
		t.Fatalf("login: %d %s", code, out)
	}
	resp, err := vera.c.Get(s.url + "/workers")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the workers page: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{`data-worker="local"`, `data-worker="w1"`, `<code class="label">linux</code>`, "1 / 2",
		`href="/runs/` + strconv.FormatInt(run.ID, 10) + `/tasks/hold"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the workers page lacks %q", want)
		}
	}

	// Released, the attempt ends and the worker is idle.
	f, err := os.OpenFile(release, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("go\n")
	f.Close()
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s", run.ID, got.State)
	}
	eventually(t, 10*time.Second, "the worker idle", func() (bool, string) {
		list, err := s.c.Workers(ctx)
		if err != nil {
			return false, err.Error()
		}
		return len(list) == 2 && list[1].InUse == 0 && len(list[1].Running) == 0, dump(list)
	})
}

// dump is v as JSON, for a failure's message.
func dump(v any) string { b, _ := json.Marshal(v); return string(b) }
