package web_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserTriggerAndRetry drives the actions of the story in
// Chromium: an operator triggers a run from the pipeline page's form, first
// with a bad parameter (the error shows beside its field), then a good one
// (the browser lands on the new run's page, whose graph turns green without
// a reload); then retries a failed run from its page once the cause is
// gone. A viewer sees the same run's buttons disabled, with the reason.
func TestBrowserTriggerAndRetry(t *testing.T) {
	exe := chromium(t)
	dir := t.TempDir()
	pipelines := map[string]string{
		"greet.yaml": browserPipelines["greet.yaml"],
		"flaky.yaml": `name: flaky
description: Fails until a marker file exists.
params:
  - {name: mark, type: string, required: true, description: The marker file}
tasks:
  - id: check
    run: 'test -e "$TASUKI_PARAM_MARK" || { echo "ERROR: no marker at $TASUKI_PARAM_MARK"; exit 3; }'
  - id: after
    needs: [check]
    run: 'echo done'
`,
	}
	for name, text := range pipelines {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := startUIServer(t, dir)
	srv.addUser("olivia", "operator")
	srv.addUser("victor", "viewer")

	b := newBrowser(t, exe)
	b.login(srv.url, "olivia", "/pipelines/greet")
	b.run("the pipeline page", chromedp.WaitVisible(css(`#trigger-form`)))
	b.check("pipeline")
	b.run("a version of the file", chromedp.Click(css(`#versions a`)), chromedp.WaitVisible(css(`#version-source`)))
	b.check("pipeline-version")
	b.run("a page that does not exist", chromedp.Navigate(srv.url+"/runs/999"), chromedp.WaitVisible(css(`p.error`)))
	b.check("not-found")
	b.run("back to the pipeline", chromedp.Navigate(srv.url+"/pipelines/greet"), chromedp.WaitVisible(css(`#trigger-form`)))
	b.run("trigger with a bad parameter",
		chromedp.SendKeys(css(`#trigger-param-who`), "Ada"),
		chromedp.SendKeys(css(`#trigger-param-times`), "1.5"),
		chromedp.Click(css(`#trigger-submit`)),
		chromedp.WaitVisible(css(`#trigger-param-times-error`)),
	)
	if msg := value(b, "read the field's error", chromedp.Text(css(`#trigger-param-times-error`))); !strings.Contains(msg, "1.5") {
		t.Errorf("the error beside the times field says %q", msg)
	}
	b.check("pipeline-bad-param")
	b.run("trigger with good parameters",
		chromedp.SetValue(css(`#trigger-param-times`), "2"),
		chromedp.Click(css(`#trigger-submit`)),
		chromedp.WaitVisible(css(`#graph`)),
		// The run may end before the page is read (then the page shows it
		// ended) or after (then the live stream turns it green).
		chromedp.WaitVisible(css(`#node-greet.s-succeeded`)),
		chromedp.WaitVisible(css(`#run-state .s-succeeded`)),
	)
	if loc := value(b, "where the form led", chromedp.Location()); !strings.Contains(loc, "/runs/") {
		t.Errorf("after the trigger the browser is at %s, not a run's page", loc)
	}
	b.check("run-succeeded")

	// A failed run, retried once its cause is gone.
	mark := filepath.Join(t.TempDir(), "marker")
	run := strings.TrimSpace(srv.cli("", "trigger", "flaky", "-p", "mark="+mark))
	viewer := newBrowser(t, exe)
	viewer.login(srv.url, "victor", "/runs/"+run)
	viewer.run("a viewer's buttons", chromedp.WaitVisible(css(`#node-check.s-failed`)),
		chromedp.WaitVisible(css(`#act-retry[disabled]`)), chromedp.WaitVisible(css(`#why-retry`)))
	if why := value(viewer, "the reason", chromedp.Text(css(`#why-retry`))); !strings.Contains(why, "viewer") {
		t.Errorf("a viewer's retry button says %q", why)
	}
	b.run("the failed run", chromedp.Navigate(srv.url+"/runs/"+run), chromedp.WaitVisible(css(`#node-check.s-failed`)))
	b.check("run-failed")
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The page asks before it acts; the test says yes.
	value(b, "accept confirmations", chromedp.Evaluate[bool](`window.confirm = () => true; true`))
	b.run("retry it",
		chromedp.Click(css(`#act-retry`)),
		chromedp.WaitVisible(css(`#node-check.s-succeeded`)),
		chromedp.WaitVisible(css(`#node-after.s-succeeded`)),
	)
}
