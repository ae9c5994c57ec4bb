package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
)

// fakeServer answers reports with the errors it is given, in turn, then
// success, and records when each came.
type fakeServer struct {
	mu    sync.Mutex
	errs  []error
	at    []time.Time
	hosts []string
}

func (f *fakeServer) ReportHost(_ context.Context, r *hostfacts.Report) (api.HostReported, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at = append(f.at, time.Now())
	f.hosts = append(f.hosts, r.Hostname)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return api.HostReported{}, err
	}
	return api.HostReported{Host: r.Hostname}, nil
}

func (f *fakeServer) calls() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.at...)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestOnceReadsTheRoot reports the Debian fixture root.
func TestOnceReadsTheRoot(t *testing.T) {
	f := &fakeServer{}
	r := &Reporter{Client: f, Root: "../hostfacts/testdata/root-debian", Logger: quiet}
	out, err := r.Once(t.Context())
	if err != nil || out.Host != "dns1.example.internal" || f.hosts[0] != "dns1.example.internal" {
		t.Fatalf("Once: %+v, %v (reported %v)", out, err, f.hosts)
	}
	if _, err := (&Reporter{Client: f, Root: "/nonexistent/root", Logger: quiet}).Once(t.Context()); err == nil {
		t.Error("a root that does not exist was reported")
	}
}

// TestRunRetriesThenKeepsThePeriod checks the schedule of Run: a report
// at once; failures tried again after 30 s, then 60 s; then a report every
// period, give or take a tenth.
func TestRunRetriesThenKeepsThePeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{errs: []error{errors.New("connection refused"), &api.Error{Status: http.StatusServiceUnavailable, Message: "busy"}}}
		collect := func(context.Context, hostfacts.Options) (*hostfacts.Report, error) {
			return &hostfacts.Report{Version: hostfacts.ReportVersion, Hostname: "h1"}, nil
		}
		r := &Reporter{Client: f, Every: time.Hour, Logger: quiet, Collect: collect}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- r.Run(ctx) }()
		time.Sleep(3*time.Hour + time.Minute)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		at := f.calls()
		if len(at) < 4 {
			t.Fatalf("%d reports in 3 hours: %v", len(at), at)
		}
		gaps := []time.Duration{at[0].Sub(start), at[1].Sub(at[0]), at[2].Sub(at[1])}
		if gaps[0] != 0 || gaps[1] != 30*time.Second || gaps[2] != time.Minute {
			t.Errorf("first report and retries after %v", gaps)
		}
		for i := 3; i < len(at); i++ {
			if d := at[i].Sub(at[i-1]); d < 54*time.Minute || d > 66*time.Minute {
				t.Errorf("report %d came %v after the one before, want an hour give or take a tenth", i, d)
			}
		}
	})
}

// TestRunEndsWhenRefused checks that a refused token ends Run, which
// nothing could fix by trying again.
func TestRunEndsWhenRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{errs: []error{&api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: "a valid token is required"}}}
		collect := func(context.Context, hostfacts.Options) (*hostfacts.Report, error) {
			return &hostfacts.Report{Version: hostfacts.ReportVersion, Hostname: "h1"}, nil
		}
		r := &Reporter{Client: f, Logger: quiet, Collect: collect}
		if err := r.Run(t.Context()); !errors.Is(err, ErrRefused) {
			t.Fatalf("Run: %v, want ErrRefused", err)
		}
	})
}
