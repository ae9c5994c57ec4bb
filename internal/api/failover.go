package api

// A worker given several servers of one cluster (`tasuki worker --server A
// --server B`) talks to one at a time and moves to another when that one
// does not answer: kill -9, a machine gone, a leader frozen past its lease.
// Any server serves the worker protocol (a follower forwards it to the
// leader), so which one answers does not matter; what matters is that one
// does within the two thirds of a lease timeout a worker keeps its
// attempts without an answer.
//
// Failover sends each call to the server that last answered. When that one
// does not answer (the connection fails, the call's share of the time runs
// out, or it says 502, 503 or 504: down, or a follower that cannot reach
// the leader), the call goes to the next server in the list, each at most
// once; then it returns the last error. Any other answer, a refusal
// included (401, 409 lease_lost, 400), is the cluster's answer: it is
// returned as is, never asked again elsewhere.
//
// Resending a call that the first server may have taken is safe for every
// call of the protocol:
//   - heartbeats only extend leases;
//   - a log chunk carries its offset, and bytes a server has are skipped;
//   - a report of a lease already reported is refused with 409 lease_lost,
//     as a retry to the same server would be (the worker then drops it);
//   - an artifact is named by its digest, and a host report replaces the
//     last one;
//   - a lease request whose answer was lost cannot hand an attempt out
//     twice: an attempt leased is out of the broker's line, and a new
//     leader adopts the attempts the store says a worker runs rather than
//     offer them again. The attempts of the lost answer are held for this
//     worker, which does not know them, until the lease timeout, then
//     recorded lost (not charged) and run again; the lease loop's own
//     retry of a failed request to the same server costs the same.
//
// Each try gets an equal share of the time the call has left with the
// servers still to try, beyond the wait of a long poll (a lease request),
// which a healthy server uses up: a frozen server takes only its share.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
)

// defaultTry bounds one try of a Failover call whose context has no
// deadline, when other servers are left to try.
const defaultTry = 30 * time.Second

// Failover is the worker protocol (Workers, the batch report route, the
// artifact routes and host reports) over several servers of one cluster:
// each call goes to the server that last answered, and to the next ones
// when it does not answer. Its methods may be called concurrently.
type Failover struct {
	clients []*Client
	log     *slog.Logger
	cur     atomic.Int64 // index of the client that last answered
}

var (
	_ Workers          = (*Failover)(nil)
	_ ArtifactTransfer = (*Failover)(nil)
)

// NewFailover returns a Failover over clients (made with WithToken), in
// the order to try them. It says on log when it moves to another server.
func NewFailover(clients []*Client, log *slog.Logger) (*Failover, error) {
	if len(clients) == 0 {
		return nil, errors.New("failover: no servers")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Failover{clients: clients, log: log}, nil
}

// String names the servers, without the token.
func (f *Failover) String() string {
	return "tasuki API client of " + f.Servers()
}

// Servers lists the servers' URLs, comma-separated, in their order.
func (f *Failover) Servers() string {
	urls := make([]string, len(f.clients))
	for i, c := range f.clients {
		urls[i] = serverURL(c)
	}
	return strings.Join(urls, ", ")
}

// BaseURL is the API root of the server calls go to first: the one that
// last answered (the first given, before any did).
func (f *Failover) BaseURL() string { return f.clients[f.cur.Load()].base }

// serverURL is the URL a client was given, without the API's prefix.
func serverURL(c *Client) string { return strings.TrimSuffix(c.base, Prefix) }

// errTryTimeout is why a try was cut: its share of the call's time ran
// out, and the next server gets the rest.
var errTryTimeout = errors.New("no answer in time")

// share is how long one try may take of what is left of ctx: hold (a long
// poll's wait, which a healthy server uses up, at most about half of what
// is left, in whole seconds) and an equal part of the rest with the servers
// still to try (left, this one included). The last server gets all that
// is left (0: no bound of its own); without a deadline, the others get
// hold and defaultTry.
func share(ctx context.Context, hold time.Duration, left int) (d, wait time.Duration) {
	deadline, ok := ctx.Deadline()
	if !ok {
		if left <= 1 {
			return 0, hold
		}
		return hold + defaultTry, hold
	}
	rest := time.Until(deadline)
	hold = min(hold, (rest / 2).Round(time.Second))
	if left <= 1 {
		return 0, hold
	}
	return hold + (rest-hold)/time.Duration(left), hold
}

// unanswered reports whether err says the server did not answer a call the
// caller still waits for: the connection failed or was cut, the try's time
// ran out, or the server (or a proxy in front of it) says it cannot serve
// now. Another server may answer.
func unanswered(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	if e, ok := errors.AsType[*Error](err); ok {
		switch e.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true
}

// answered records that server k answered a call that began at server
// start, after why: later calls begin at k. It says so once per move.
func (f *Failover) answered(start, k int, why error) {
	if k == start || !f.cur.CompareAndSwap(int64(start), int64(k)) {
		return
	}
	f.log.Info("moved to another server: the one it talked to did not answer",
		"from", serverURL(f.clients[start]), "to", serverURL(f.clients[k]), "err", why)
}

// each calls try with the servers in turn, from the one that last
// answered, until one answers or none is left; hold is the wait of a long
// poll, and try gets the part of it its share leaves (see share). It
// returns the answer's error, or the last one.
func (f *Failover) each(ctx context.Context, hold time.Duration, try func(ctx context.Context, c *Client, wait time.Duration) error) error {
	n := len(f.clients)
	start := int(f.cur.Load())
	var err error
	for i := range n {
		k := (start + i) % n
		d, wait := share(ctx, hold, n-i)
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if d > 0 {
			tctx, cancel = context.WithTimeoutCause(ctx, d, errTryTimeout)
		}
		prev := err
		err = try(tctx, f.clients[k], wait)
		if err != nil && ctx.Err() == nil && errors.Is(context.Cause(tctx), errTryTimeout) && !errors.Is(err, errTryTimeout) {
			err = fmt.Errorf("%w: %w", errTryTimeout, err)
		}
		cancel()
		if !unanswered(ctx, err) {
			if ctx.Err() == nil {
				f.answered(start, k, prev)
			}
			return err
		}
	}
	if n > 1 {
		err = fmt.Errorf("none of %d servers answered; the last, %s: %w", n, serverURL(f.clients[(start+n-1)%n]), err)
	}
	return err
}

// Lease implements Workers. A server tried after another gets a shorter
// wait, so that it answers within what is left of ctx.
func (f *Failover) Lease(ctx context.Context, req LeaseRequest) (LeaseResponse, error) {
	var resp LeaseResponse
	hold := time.Duration(max(req.WaitSeconds, 0)) * time.Second
	err := f.each(ctx, hold, func(ctx context.Context, c *Client, wait time.Duration) (err error) {
		r := req
		r.WaitSeconds = int(wait / time.Second)
		resp, err = c.Lease(ctx, r)
		return err
	})
	return resp, err
}

// Heartbeat implements Workers.
func (f *Failover) Heartbeat(ctx context.Context, req HeartbeatRequest) (HeartbeatResponse, error) {
	var resp HeartbeatResponse
	err := f.each(ctx, 0, func(ctx context.Context, c *Client, _ time.Duration) (err error) {
		resp, err = c.Heartbeat(ctx, req)
		return err
	})
	return resp, err
}

// AppendLog implements Workers.
func (f *Failover) AppendLog(ctx context.Context, lease string, offset int64, data []byte) error {
	return f.each(ctx, 0, func(ctx context.Context, c *Client, _ time.Duration) error {
		return c.AppendLog(ctx, lease, offset, data)
	})
}

// Complete implements Workers.
func (f *Failover) Complete(ctx context.Context, lease string, req CompleteRequest) error {
	return f.each(ctx, 0, func(ctx context.Context, c *Client, _ time.Duration) error {
		return c.Complete(ctx, lease, req)
	})
}

// CompleteBatch is Client.CompleteBatch over the servers.
func (f *Failover) CompleteBatch(ctx context.Context, reports []LeaseReport) ([]ReportRefusal, error) {
	var refused []ReportRefusal
	err := f.each(ctx, 0, func(ctx context.Context, c *Client, _ time.Duration) (err error) {
		refused, err = c.CompleteBatch(ctx, reports)
		return err
	})
	return refused, err
}

// ReportHost is Client.ReportHost over the servers (tasuki worker and
// tasuki agent report their hosts).
func (f *Failover) ReportHost(ctx context.Context, r *hostfacts.Report) (HostReported, error) {
	var out HostReported
	err := f.each(ctx, 0, func(ctx context.Context, c *Client, _ time.Duration) (err error) {
		out, err = c.ReportHost(ctx, r)
		return err
	})
	return out, err
}

// HasArtifact implements ArtifactTransfer.
func (f *Failover) HasArtifact(ctx context.Context, digest string) (bool, error) {
	var has bool
	err := f.each(ctx, 0, func(ctx context.Context, c *Client, _ time.Duration) (err error) {
		has, err = c.HasArtifact(ctx, digest)
		return err
	})
	return has, err
}

// DownloadArtifact implements ArtifactTransfer. A try's share of the time
// bounds the wait for the server's answer, not the transfer: the body is
// read under ctx. A transfer cut in the middle is the caller's to start
// again (by then the server that failed has been left, if another
// answered a call since).
func (f *Failover) DownloadArtifact(ctx context.Context, digest string) (io.ReadCloser, error) {
	var body io.ReadCloser
	err := f.each(ctx, 0, func(tctx context.Context, c *Client, _ time.Duration) error {
		// tctx ends with the try's share, and when the try returns; the
		// body outlives the try, so it is read under a context of its
		// own, which tctx ends only until the answer comes.
		rctx, cancel := context.WithCancelCause(ctx)
		stop := context.AfterFunc(tctx, func() { cancel(context.Cause(tctx)) })
		b, err := c.DownloadArtifact(rctx, digest)
		if !stop() {
			// The try's time ran out (or ctx ended) as the answer came.
			if err == nil {
				b.Close()
				err = fmt.Errorf("GET %s: %w", artifactPath(digest), context.Cause(rctx))
			}
		}
		if err != nil {
			cancel(nil)
			return err
		}
		body = &cancelOnClose{ReadCloser: b, cancel: cancel}
		return nil
	})
	return body, err
}

// cancelOnClose is a response body whose request context ends when it is
// closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// UploadArtifact implements ArtifactTransfer. The body is read once, so a
// server that does not answer is left for the next only when it read none
// of it (it was down: the connection failed); otherwise the error is
// returned and the caller starts the upload again. The transfer is not
// bounded by a share: it has all of ctx.
func (f *Failover) UploadArtifact(ctx context.Context, digest string, size int64, body io.Reader) error {
	n := len(f.clients)
	start := int(f.cur.Load())
	var err error
	for i := range n {
		k := (start + i) % n
		prev := err
		b := &watchedBody{r: body, closed: make(chan struct{})}
		err = f.clients[k].UploadArtifact(ctx, digest, size, b)
		if !unanswered(ctx, err) {
			if ctx.Err() == nil {
				f.answered(start, k, prev)
			}
			return err
		}
		if size > 0 && !b.untouched(ctx) { // an empty body is sent as none
			return err
		}
	}
	if n > 1 {
		err = fmt.Errorf("none of %d servers answered; the last, %s: %w", n, serverURL(f.clients[(start+n-1)%n]), err)
	}
	return err
}

// watchedBody is an upload's body as one try sends it: it counts what the
// transport read, and the transport's Close (which may come after the
// request returned) says it reads no more.
type watchedBody struct {
	r      io.Reader
	read   atomic.Int64
	once   sync.Once
	closed chan struct{}
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *watchedBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// untouched waits until the transport let go of the body and reports
// whether it read none of it, so that another try may send it whole.
func (b *watchedBody) untouched(ctx context.Context) bool {
	select {
	case <-b.closed:
		return b.read.Load() == 0
	case <-ctx.Done():
		return false
	}
}
