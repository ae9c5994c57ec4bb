package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// page fetches a page of the web UI with the browser's session.
func (b *browser) page(path string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), http.MethodGet, b.url+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestProcessPipelinePage drives the pipeline page's trigger as its
// script does, through a real server: a bad parameter value is refused
// with the parameter named in the error's param field (what the form puts
// beside the field), a good one starts a run; the page then shows the run,
// its day in the calendar, the file in use and
// its version.
func TestProcessPipelinePage(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "rates.yaml", `name: rates
description: Fetches <rates>.
params:
  - name: day
    type: date
    required: true
  - name: n
    type: int
    default: 10
tasks:
  - id: fetch
    run: echo "$TASUKI_PARAM_DAY $TASUKI_PARAM_N"
`)
	s := startServer(t, home, dir, nil)
	if r := secretCLI(t, s, "operator-password\n", "user", "add", "olga", "--role", "operator"); r.code != 0 {
		t.Fatalf("user add: exit %d: %s", r.code, r.errOut)
	}
	olga := newBrowser(t, s.url)
	if code, out := olga.login("olga", "operator-password"); code != 200 {
		t.Fatalf("login: %d %s", code, out)
	}

	// Two bad values: each named, in the order declared.
	code, out := olga.do("POST", "/pipelines/rates/runs", `{"params":{"day":"2026-02-30","n":"many"}}`, true)
	var eb api.ErrorBody
	if err := json.Unmarshal([]byte(out), &eb); err != nil || code != 400 {
		t.Fatalf("trigger with bad values: %d %s", code, out)
	}
	if e := eb.Error; e.Code != api.CodeInvalidParams || e.Param != "day" || len(e.Params) != 2 || e.Params[0].Param != "day" || e.Params[1].Param != "n" ||
		!strings.HasPrefix(e.Params[1].Message, `param "n": expected an integer`) {
		t.Errorf("the error names %q %+v, want day then n", e.Param, e.Params)
	}
	// A required one left out, through the client too.
	_, err := s.c.Trigger(t.Context(), "rates", map[string]string{"n": "3"}, "")
	if e, ok := err.(*api.Error); !ok || e.Code != api.CodeInvalidParams || len(e.Params) != 1 || e.Params[0].Param != "day" {
		t.Errorf("trigger without the required day: %#v", err)
	}

	code, out = olga.do("POST", "/pipelines/rates/runs", `{"params":{"day":"2026-03-14","n":3}}`, true)
	if code != 201 {
		t.Fatalf("trigger: %d %s", code, out)
	}
	var run api.Run
	if err := json.Unmarshal([]byte(out), &run); err != nil {
		t.Fatal(err)
	}
	if end := waitRunEnd(t, s.c, run.ID); end.State != "succeeded" {
		t.Fatalf("run ended %s", end.State)
	}

	// Without a schedule, the pipeline's days are UTC's.
	today := time.Now().UTC().Format(time.DateOnly)
	if run.CreatedAt.UTC().Format(time.DateOnly) != today {
		t.Skip("the day changed during the test")
	}
	code, body := olga.page("/pipelines/rates")
	if code != 200 {
		t.Fatalf("the pipeline page: %d\n%s", code, body)
	}
	id := strconv.FormatInt(run.ID, 10)
	for _, want := range []string{
		`href="/runs/` + id + `"`, `href="/pipelines/rates?day=` + today + `"`, "1 met",
		`id="pipeline-source"`, "description: Fetches &lt;rates&gt;.", `href="/pipelines/rates/versions/`, "in use",
		`id="trigger-param-day" name="day" type="date"`, `data-action="POST /pipelines/rates/pause"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the pipeline page lacks %q", want)
		}
	}
	if strings.Contains(body, " disabled") {
		t.Error("an operator's page has a disabled control")
	}
	code, body = olga.page("/pipelines/rates?day=" + today)
	if code != 200 || !strings.Contains(body, `href="/runs/`+id+`"`) {
		t.Errorf("the runs of today: %d, without run %s", code, id)
	}
	m := regexp.MustCompile(`href="/pipelines/rates/versions/(\d+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no version linked")
	}
	if code, body := olga.page("/pipelines/rates/versions/" + m[1]); code != 200 || !strings.Contains(body, "Fetches &lt;rates&gt;.") {
		t.Errorf("the version in use: %d", code)
	}
	if code, _ := olga.page("/pipelines/rates/versions/" + m[1] + "0"); code != 404 {
		t.Errorf("an unknown version: %d", code)
	}
}
