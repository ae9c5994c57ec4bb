package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
)

// DefaultEvery is how often a host reports when nothing else is said.
const DefaultEvery = time.Hour

// Retry bounds: the first retry of a failed report comes after
// retryMin, each next one after twice as long, never later than the
// period.
const (
	retryMin = 30 * time.Second
	retryMax = 15 * time.Minute
)

// Client is the server, as a reporter needs it: *api.Client made with a
// worker token.
type Client interface {
	ReportHost(ctx context.Context, r *hostfacts.Report) (api.HostReported, error)
}

// ErrRefused wraps the answer of a server that refuses the token (401,
// 403): Run ends with it.
var ErrRefused = errors.New("the server refused the token")

// Reporter collects this host's facts and reports them. Set the fields,
// then call Run or Once.
type Reporter struct {
	Client Client
	// Root is where the host's files are read ("/" when empty; a host
	// image or a test fixture otherwise).
	Root string
	// Every is the period between reports (DefaultEvery when 0).
	Every time.Duration
	// Logger receives what the reporter does (slog.Default() when nil).
	Logger *slog.Logger
	// Collect gathers the report (hostfacts.Collect when nil); tests
	// give their own.
	Collect func(ctx context.Context, opts hostfacts.Options) (*hostfacts.Report, error)

	// retryMin and retryMax override the retry bounds (tests).
	retryMin, retryMax time.Duration
}

func (r *Reporter) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Reporter) every() time.Duration {
	if r.Every > 0 {
		return r.Every
	}
	return DefaultEvery
}

// Once collects a report and sends it.
func (r *Reporter) Once(ctx context.Context) (api.HostReported, error) {
	if r.Client == nil {
		return api.HostReported{}, errors.New("agent: no server to report to")
	}
	collect := r.Collect
	if collect == nil {
		collect = hostfacts.Collect
	}
	root := r.Root
	if root == "" {
		root = "/"
	}
	rep, err := collect(ctx, hostfacts.Options{Root: root})
	if err != nil {
		return api.HostReported{}, fmt.Errorf("collect this host's facts: %w", err)
	}
	out, err := r.Client.ReportHost(ctx, rep)
	if err != nil {
		var e *api.Error
		if errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden) {
			return out, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return out, fmt.Errorf("report this host's facts: %w", err)
	}
	return out, nil
}

// Run reports now and then every Every, until ctx is done (nil) or the
// server refuses the token (an error wrapping ErrRefused). A report that
// fails otherwise is logged and tried again after 30 s, then twice as long
// each time, never later than the period. Each period is shortened or
// lengthened by up to a tenth at random, so hosts started together do not
// all report at once ever after.
func (r *Reporter) Run(ctx context.Context) error {
	minWait, maxWait := r.retryMin, r.retryMax
	if minWait <= 0 {
		minWait = retryMin
	}
	if maxWait <= 0 {
		maxWait = retryMax
	}
	every := r.every()
	backoff := minWait
	for {
		wait := jitter(every)
		out, err := r.Once(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrRefused):
			r.log().Error("host inventory: the server refused the token; no more reports", "err", err)
			return err
		case err != nil:
			wait = min(backoff, every)
			backoff = min(2*backoff, maxWait)
			r.log().Warn("host inventory: the report failed; trying again", "err", err, "in", wait)
		default:
			backoff = minWait
			r.log().Info("host inventory: reported", "host", out.Host, "first", out.First, "changes", out.Changes, "next_in", wait.Round(time.Second))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// jitter is d give or take up to a tenth.
func jitter(d time.Duration) time.Duration {
	if d < 10 {
		return d
	}
	return d - d/10 + rand.N(d/5)
}
