package web_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserRunPage opens the page of a running run in Chromium (its
// first task reads a FIFO the test holds), checks it with axe in both
// themes, then lets the task end and sees the page follow over the live
// stream without a reload: the node and the row of the task turn
// succeeded, and the page says the run ended.
func TestBrowserRunPage(t *testing.T) {
	exe := chromium(t)
	dir := t.TempDir()
	for name, text := range browserPipelines {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(t.TempDir(), "hold")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startUIServer(t, dir)
	srv.addUser("victor", "viewer")
	run := strings.TrimSpace(srv.cli("", "trigger", "greet", "-p", "who=Ada", "-p", "hold="+fifo))

	b := newBrowser(t, exe)
	b.login(srv.url, "victor", "/runs/"+run)
	b.run("the running run's page",
		chromedp.WaitVisible(css(`#graph`)),
		chromedp.WaitVisible(css(`#node-hold.s-running`)),
		chromedp.WaitVisible(css(`#node-greet.s-pending`)),
		chromedp.WaitVisible(css(`#act-cancel[disabled]`)),
	)
	b.check("run-running")

	// The page is marked so that a reload would show.
	value(b, "mark the page", chromedp.Evaluate[string](`document.body.dataset.sameDocument = "yes"`))
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	f.Close()
	b.run("the task's end, live",
		chromedp.WaitVisible(css(`#node-hold.s-succeeded`)),
		chromedp.WaitVisible(css(`#task-hold .tstate .s-succeeded`)),
	)
	t.Logf("the node turned succeeded in the browser %s after the task's FIFO was released", time.Since(released))
	b.run("the run's end, live",
		chromedp.WaitVisible(css(`#node-greet.s-succeeded`)),
		chromedp.WaitVisible(css(`#run-live[data-ended="1"]`)),
		chromedp.WaitVisible(css(`#run-reload`)),
		chromedp.WaitVisible(css(`body[data-same-document="yes"]`)),
	)
	b.check("run-ended")
}
