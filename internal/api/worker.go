package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// The worker protocol: how `tasuki worker` processes lease task attempts from
// a server, keep them alive, stream their logs and report how they ended.
// Every request carries `Authorization: Bearer <worker token>`.
//
//	POST /api/v1/worker/lease                  LeaseRequest -> LeaseResponse (long-poll)
//	POST /api/v1/worker/heartbeat              HeartbeatRequest -> HeartbeatResponse
//	POST /api/v1/worker/leases/{lease}/log     ?offset=N, body: formatted log bytes
//	POST /api/v1/worker/leases/{lease}/complete CompleteRequest
//
// A lease names one attempt (run, task, attempt number). Attempt numbers only
// grow, so a lease is also a fencing token: a worker whose lease expired (it
// missed heartbeats, the attempt was declared lost and started again
// elsewhere) is refused with 409 when it reports, and cannot overwrite the
// result of the newer attempt.
//
// The items of a map come by the thousand a second, so a worker that asks
// (LeaseRequest.Bundle) gets them in bundles: several items of one map in
// one Bundle, their shared description once. Each item is still a lease of
// its own, reported, logged and cancelled under its own id; only the
// heartbeat is the bundle's (HeartbeatRequest.Bundles). A worker that does
// not ask gets every item as a Lease, as before bundles; a server older
// than bundles refuses the field with 400, and the worker asks again
// without it.

// LeaseRequest asks for up to Free attempts the worker can run.
type LeaseRequest struct {
	Worker string   `json:"worker"`           // a name unique per worker process (host:pid)
	Labels []string `json:"labels,omitempty"` // the worker's labels; a task runs only where all its labels are
	Free   int      `json:"free"`             // slots free now
	// WaitSeconds is how long the server may hold the request when nothing
	// is ready (long-poll), at most 30.
	WaitSeconds int `json:"wait_seconds,omitempty"`
	// Bundle is the most items of one map the worker takes as one Bundle
	// (at most MaxBundle; the server hands no more than Free items in all);
	// 0: none, every attempt comes as a Lease.
	Bundle int `json:"bundle,omitempty"`
}

// LeaseResponse hands attempts to a worker; empty when none came in time.
type LeaseResponse struct {
	Leases []Lease `json:"leases"`
	// Bundles are items of maps, several to a bundle, for a worker that
	// asked for them (LeaseRequest.Bundle). Leases and the items of
	// Bundles together are at most LeaseRequest.Free.
	Bundles []Bundle `json:"bundles,omitempty"`
}

// Bundle is several attempts of one map task's items handed to a worker
// at once: the description they share once, and each item's own lease.
// Each item is run, logged (AppendLog under its lease), reported
// (Complete or CompleteBatch under its lease) and cancelled as if it had
// come as a Lease; the bundle is kept alive as one (HeartbeatRequest.Bundles)
// and is lost as one: when its heartbeats stop, every item not yet reported
// is lost, and retried as the task's policy says.
type Bundle struct {
	// ID names the bundle in heartbeats: the lease id of its first item.
	ID       string `json:"id"`
	RunID    int64  `json:"run_id"`
	Pipeline string `json:"pipeline"`
	Task     string `json:"task"`
	// Spec is what every item runs: the Spec of the first item without
	// its Item and Items; Items say what differs.
	Spec  attempt.Spec `json:"spec"`
	Items []BundleItem `json:"items"`
	// HeartbeatEvery, LeaseTimeout and InlineLog are as a Lease's.
	HeartbeatEvery Duration `json:"heartbeat_every"`
	LeaseTimeout   Duration `json:"lease_timeout"`
	InlineLog      int      `json:"inline_log,omitempty"`
}

// BundleItem is one item's attempt in a Bundle.
type BundleItem struct {
	Lease   string `json:"lease"` // LeaseID(run, task.ITEM, attempt), as the Lease of the item would be named
	Attempt int    `json:"attempt"`
	// Item and Items are the item (or a batch's items) of its Spec.
	Item  json.RawMessage   `json:"item,omitempty"`
	Items []json.RawMessage `json:"items,omitempty"`
	// Env are the item's variables whose values differ from the bundle's
	// Spec.Env (TASUKI_ITEM, TASUKI_ITEM_INDEX, TASUKI_ATTEMPT, ...): the
	// item runs with the bundle's variables and these.
	Env map[string]string `json:"env,omitempty"`
}

// Lease returns item i of the bundle as the Lease it would have come as.
// The Spec's maps are the bundle's, shared, but for the variables of an
// item that has its own.
func (b *Bundle) Lease(i int) Lease {
	it := b.Items[i]
	s := b.Spec
	s.Item, s.Items = it.Item, it.Items
	if len(it.Env) > 0 {
		env := make(map[string]string, len(s.Env)+len(it.Env))
		maps.Copy(env, s.Env)
		maps.Copy(env, it.Env)
		s.Env = env
	}
	return Lease{ID: it.Lease, RunID: b.RunID, Pipeline: b.Pipeline, Task: b.Task, Attempt: it.Attempt, Spec: s,
		HeartbeatEvery: b.HeartbeatEvery, LeaseTimeout: b.LeaseTimeout, InlineLog: b.InlineLog}
}

// Lease is one attempt handed to a worker: who it is, the attempt's Spec
// (the same description the server's own executor runs), and how to keep
// the lease alive.
type Lease struct {
	ID       string `json:"id"` // LeaseID(run, task, attempt)
	RunID    int64  `json:"run_id"`
	Pipeline string `json:"pipeline"`
	Task     string `json:"task"`
	Attempt  int    `json:"attempt"`
	// Spec is what to run: the kind of work and its body, the task's
	// variables, working directory (absolute, or relative to the worker's
	// directory), the needs' results and the timeout.
	Spec attempt.Spec `json:"spec"`
	// HeartbeatEvery is how often the worker must send a heartbeat; a lease
	// not heard of for LeaseTimeout is lost.
	HeartbeatEvery Duration `json:"heartbeat_every"`
	LeaseTimeout   Duration `json:"lease_timeout"`
	// InlineLog is the most log bytes the worker may send in its report
	// (CompleteRequest.Log) instead of through the log route, when it has
	// sent none of the log before; 0 (a server that predates it): none.
	// The many short items of a map then cost no log request each.
	InlineLog int `json:"inline_log,omitempty"`
}

// HeartbeatRequest keeps a worker's leases alive: those it got as Leases
// by their ids, those it got in bundles by their bundles' ids.
type HeartbeatRequest struct {
	Worker  string   `json:"worker"`
	Leases  []string `json:"leases"`
	Bundles []string `json:"bundles,omitempty"`
}

// HeartbeatResponse tells the worker what to stop.
type HeartbeatResponse struct {
	// Cancel lists leases whose run was cancelled: end the process group and
	// complete with outcome "cancelled".
	Cancel []string `json:"cancel,omitempty"`
	// Preempt lists leases the server hands back (it is shutting down):
	// end the process group and complete with outcome "preempted", or with
	// the attempt's own outcome if it finished by itself meanwhile. They
	// are listed under Cancel too, so workers that predate Preempt still
	// end them.
	Preempt []string `json:"preempt,omitempty"`
	// Unknown lists leases the server no longer holds (expired, or given to
	// another worker): end them; their completion would be refused. An id
	// the request gave in Bundles means every item of that bundle. (Cancel
	// and Preempt name the items of a bundle by their own lease ids.)
	Unknown []string `json:"unknown,omitempty"`
}

// CompleteRequest reports how an attempt ended.
type CompleteRequest struct {
	// Outcome is succeeded, failed, timed_out, cancelled or preempted (the
	// worker is shutting down and hands the attempt back unchanged): any
	// outcome but lost (attempt.Outcome.Reportable).
	Outcome  attempt.Outcome `json:"outcome"`
	ExitCode *int            `json:"exit_code,omitempty"`
	Message  string          `json:"message,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	// Datasets is the metadata the attempt wrote for the datasets its task
	// produces (a JSON object each), by dataset name.
	Datasets map[string]json.RawMessage `json:"datasets,omitempty"`
	// Outputs are the files a succeeded attempt's outputs matched, each
	// uploaded before (PUT /worker/artifacts/{digest}).
	Outputs []artifact.File `json:"outputs,omitempty"`
	// Results are the per-item results of a batch of map items
	// (Spec.Items), in item order.
	Results []json.RawMessage `json:"results,omitempty"`
	// LogSize is the number of log bytes the worker sent, so the server can
	// tell a complete log from one cut short.
	LogSize int64 `json:"log_size"`
	// Log is the attempt's whole log when the worker sent none of it
	// before and it fits the lease's InlineLog; its bytes are not counted
	// in LogSize.
	Log []byte `json:"log,omitempty"`
}

// CompleteBatch is the reports of several leases in one request (POST
// /worker/complete): a worker running many short attempts (the items of a
// map) reports them together rather than one round trip each.
type CompleteBatch struct {
	Reports []LeaseReport `json:"reports"`
}

// LeaseReport is one lease's report in a CompleteBatch.
type LeaseReport struct {
	Lease string `json:"lease"`
	CompleteRequest
}

// CompleteBatchResponse lists the reports the server refused; every other
// report of the batch was taken.
type CompleteBatchResponse struct {
	Refused []ReportRefusal `json:"refused"`
}

// ReportRefusal is a report the server did not take, and why: code
// "lease_lost" for a lease it no longer holds (as Complete's 409), or the
// code of another error.
type ReportRefusal struct {
	Lease   string `json:"lease"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// MaxCompleteBatch bounds the reports of one CompleteBatch, and
// MaxCompleteBatchBytes its body.
const (
	MaxCompleteBatch      = 512
	MaxCompleteBatchBytes = 8 << 20
)

// Duration is a time.Duration in JSON as a Go duration string ("30s").
type Duration = attempt.Duration

// LeaseID names the lease of one attempt: "RUN.TASK.ATTEMPT". Task ids hold
// no dots, so the form is unambiguous and safe in URL paths.
func LeaseID(run int64, task string, attempt int) string {
	return strconv.FormatInt(run, 10) + "." + task + "." + strconv.Itoa(attempt)
}

// ParseLeaseID splits a lease id.
func ParseLeaseID(id string) (run int64, task string, attempt int, err error) {
	first := strings.IndexByte(id, '.')
	last := strings.LastIndexByte(id, '.')
	if first <= 0 || last <= first+1 || last == len(id)-1 {
		return 0, "", 0, fmt.Errorf("lease id %q: expected RUN.TASK.ATTEMPT", id)
	}
	run, err1 := strconv.ParseInt(id[:first], 10, 64)
	attempt, err2 := strconv.Atoi(id[last+1:])
	if err1 != nil || err2 != nil || run <= 0 || attempt <= 0 {
		return 0, "", 0, fmt.Errorf("lease id %q: expected RUN.TASK.ATTEMPT with positive numbers", id)
	}
	return run, id[first+1 : last], attempt, nil
}

// Worker outcomes in CompleteRequest: attempt.Outcome values, named here
// for the protocol's clients.
const (
	OutcomeSucceeded = attempt.Succeeded
	OutcomeFailed    = attempt.Failed
	OutcomeTimedOut  = attempt.TimedOut
	OutcomeCancelled = attempt.Cancelled
	OutcomePreempted = attempt.Preempted
)

// Workers is the server side of the worker protocol. The server implements
// it over its lease broker; a follower server forwards to the leader.
type Workers interface {
	// Lease hands up to req.Free attempts to the worker, waiting up to
	// req.WaitSeconds for some to become ready.
	Lease(ctx context.Context, req LeaseRequest) (LeaseResponse, error)
	// Heartbeat extends the worker's leases and says which to stop.
	Heartbeat(ctx context.Context, req HeartbeatRequest) (HeartbeatResponse, error)
	// AppendLog appends formatted log bytes of a lease at offset (the size
	// the worker has sent before); bytes the server already has are
	// skipped, so a retried request is harmless.
	AppendLog(ctx context.Context, lease string, offset int64, data []byte) error
	// Complete reports the end of a lease's attempt. A lease the server no
	// longer holds is refused with a 409 *Error (code "lease_lost").
	Complete(ctx context.Context, lease string, req CompleteRequest) error
}

// BatchWorkers is a Workers that takes the reports of a batch together
// (POST /worker/complete), which lets it keep their logs in one write.
// Its answer has one error (or nil) per report, as Complete would give.
type BatchWorkers interface {
	CompleteMany(ctx context.Context, reports []LeaseReport) []error
}

// Tokens manages tokens, of workers and of the API, and authenticates
// requests by them. Only a hash of each token is stored; the token itself is
// shown once, when it is created.
type Tokens interface {
	// CreateToken makes a new token and returns its secret: an API token
	// when req.Role is set, else a worker token.
	CreateToken(ctx context.Context, req CreateTokenRequest, actor string) (secret string, info TokenInfo, err error)
	// RevokeToken revokes the token named name.
	RevokeToken(ctx context.Context, name, actor string) error
	// ListTokens lists tokens, revoked ones included.
	ListTokens(ctx context.Context) ([]TokenInfo, error)
	// Authenticate returns whom the valid token with this secret names, or
	// a 401 *Error (unknown, revoked or expired).
	Authenticate(ctx context.Context, secret string) (Principal, error)
}

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	Name       string     `json:"name"`
	Kind       string     `json:"kind"`                // "worker", "agent" or "api"
	Role       Role       `json:"role,omitempty"`      // of an API token
	Namespace  string     `json:"namespace,omitempty"` // of an API token confined to one
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// CodeLeaseLost is the error code of a report for a lease the server no
// longer holds.
const CodeLeaseLost = "lease_lost"

// Limits of the worker protocol.
const (
	// MaxLeaseWait is the longest WaitSeconds a lease request may ask for:
	// long enough that an idle worker costs the server little, short enough
	// that proxies with a one-minute idle timeout do not cut the request.
	MaxLeaseWait = 30
	// MaxLeaseFree bounds LeaseRequest.Free, so one request cannot ask the
	// server to build an unbounded answer.
	MaxLeaseFree = 1000
	// MaxBundle bounds LeaseRequest.Bundle: the items of one Bundle.
	MaxBundle = 256
	// MaxLogChunk bounds the body of one log append. A worker sends what its
	// task printed since the last append, so under load a chunk is large;
	// the bound keeps the server's memory per request fixed.
	MaxLogChunk = 4 << 20
	// MaxInlineLog bounds the log a report carries (CompleteRequest.Log):
	// the InlineLog this server offers.
	MaxInlineLog = 64 << 10
	// MaxCompleteBytes bounds a completion body: it must hold a task result
	// of up to shell.MaxResultSize (1 MiB) and a message, so it is larger
	// than MaxBodyBytes.
	MaxCompleteBytes = 2 << 20
)

// CreateTokenRequest is the body of POST /tokens. Without a role it asks
// for a worker token (or, with Kind "agent", an agent token); with one, for
// an API token of that role, confined to Namespace when set, valid until
// ExpiresAt when set.
type CreateTokenRequest struct {
	Name string `json:"name"`
	// Kind is "worker", "agent" or "api"; "" is "api" with a role, else
	// "worker".
	Kind      string     `json:"kind,omitempty"`
	Role      Role       `json:"role,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreatedToken answers POST /tokens. Token is the secret: it appears in this
// answer only, never again (the server stores a hash of it).
type CreatedToken struct {
	Name      string     `json:"name"`
	Token     string     `json:"token"`
	Kind      string     `json:"kind"`
	Role      Role       `json:"role,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// tokenNameKey is the context key of the authenticated token's name.
type tokenNameKey struct{}

// TokenName returns the name of the worker token a worker request was
// authenticated with, so a Workers implementation can record which
// credential took a lease; "" outside worker requests.
// WithTokenName returns ctx carrying an authenticated token's name, as the
// handler passes it to Workers; tests of Workers implementations use it.
func WithTokenName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, tokenNameKey{}, name)
}

func TokenName(ctx context.Context) string {
	if p, ok := PrincipalFrom(ctx); ok && p.Kind == KindWorker {
		return p.Name
	}
	s, _ := ctx.Value(tokenNameKey{}).(string)
	return s
}
