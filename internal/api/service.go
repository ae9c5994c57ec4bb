package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Service is what the API exposes. The server implements it; the Client
// implements it too, so the CLI can use either a live server or (for reads)
// a local data directory through the same calls.
type Service interface {
	// Pipelines lists the loaded pipelines by name, with their next scheduled
	// time and last runs, and the pipeline files that do not load.
	Pipelines(ctx context.Context) (PipelineList, error)
	// Pipeline returns one pipeline.
	Pipeline(ctx context.Context, name string) (Pipeline, error)
	// SetPaused pauses or unpauses a pipeline's schedule.
	SetPaused(ctx context.Context, name string, paused bool, actor string) (Pipeline, error)

	// Trigger starts a run now with the given parameter values (as text,
	// checked against the declared types). A pipeline whose only file does
	// not load is a 409 with code pipeline_invalid naming the file and its
	// first problems.
	Trigger(ctx context.Context, name string, params map[string]string, actor string) (Run, error)
	// Runs lists runs newest first, paginated by an opaque cursor.
	Runs(ctx context.Context, f RunFilter) (Page[Run], error)
	// Run returns a run with its tasks.
	Run(ctx context.Context, id int64) (Run, error)
	// Task returns one task of a run with its attempts.
	Task(ctx context.Context, runID int64, task string) (Task, error)
	// Events returns a page of a run's timeline after a sequence number.
	Events(ctx context.Context, runID int64, after int64, limit int) (Page[Event], error)

	// Cancel cancels a run.
	Cancel(ctx context.Context, runID int64, actor string) (Run, error)
	// RetryFailed reruns a run's unsuccessful tasks and what follows them,
	// keeping what succeeded.
	RetryFailed(ctx context.Context, runID int64, actor string) (Run, error)
	// Rerun starts a new run of the same pipeline version with the same
	// parameters and interval.
	Rerun(ctx context.Context, runID int64, actor string) (Run, error)
	// MarkTask marks a task that is not running as "succeeded" or "skipped".
	MarkTask(ctx context.Context, runID int64, task string, state engine.TaskState, actor string) (Run, error)
	// ActOnMap cancels a running map task, or cancels, retries or marks
	// one of its items (see MapAction). It answers the run once the action
	// is written. A map that is not running is a 409 (MapNotRunning), as
	// is an action that does not apply to the item's state now
	// (MapActionRefused); an item of a task that is not a map, or past the
	// map's end, is not found, and cancelling a task that is not a map on
	// its own is a 400 (CancelNotAMap).
	ActOnMap(ctx context.Context, runID int64, task string, act MapAction, actor string) (Run, error)

	// CreateBackfill creates one run per schedule interval in [From, To).
	CreateBackfill(ctx context.Context, req BackfillRequest, actor string) (Backfill, error)
	// Backfills lists backfills newest first.
	Backfills(ctx context.Context, pipeline string, cursor string, limit int) (Page[Backfill], error)
	// Backfill returns one backfill.
	Backfill(ctx context.Context, id int64) (Backfill, error)
	// CancelBackfill cancels a backfill's runs that have not finished.
	CancelBackfill(ctx context.Context, id int64, actor string) (Backfill, error)

	// Items returns one page of the items of a map task (see ItemQuery and
	// ReadItems); a task that is not a map, or a map not started yet, is
	// not found (NotAMap, NotExpanded).
	Items(ctx context.Context, runID int64, task string, q ItemQuery) (Page[Item], error)

	// LogKey names the log of a task attempt (attempt 0: the latest). A
	// task of the form TASK.ITEM (ItemLogName) names an item of map task
	// TASK, whose attempts are the item's (see ItemLogKey).
	LogKey(ctx context.Context, runID int64, task string, attempt int) (logs.Key, error)

	// Ready reports whether the service can take work (store reachable,
	// pipelines loaded).
	Ready(ctx context.Context) error
}

// RunFilter selects runs.
type RunFilter struct {
	Pipeline   string
	States     []engine.RunState
	BackfillID int64
	// CreatedFrom and CreatedBefore select the runs created in
	// [CreatedFrom, CreatedBefore) (zero: unbounded); they need Pipeline.
	CreatedFrom   time.Time
	CreatedBefore time.Time
	Cursor        string // from Page.Next; "" for the first page
	Limit         int    // default 50, at most 1000
}

// BackfillRequest asks for runs over a past range.
type BackfillRequest struct {
	Pipeline string            `json:"pipeline"`
	From     time.Time         `json:"from"`
	To       time.Time         `json:"to"`
	Parallel int               `json:"parallel,omitempty"` // runs active at once (default 1)
	Params   map[string]string `json:"params,omitempty"`
	// Deadline, when given, is the deadline of every run of the backfill
	// (it must be in the future); without it they have none.
	Deadline *time.Time `json:"deadline,omitempty"`
}

// Error is an error with an HTTP status and a stable code. Service
// implementations return it for anything the caller got wrong; the API
// writes it as an ErrorBody.
type Error struct {
	Status  int
	Code    string
	Message string
	// Params are the problems of single parameters of an invalid_params
	// error (ErrorDetail.Params), when it has any.
	Params []ParamProblem
}

// ParamError is an invalid_params error about one parameter.
func ParamError(param, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParams, Message: msg, Params: []ParamProblem{{Param: param, Message: msg}}}
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Stable error codes.
const (
	CodeNotFound      = "not_found"
	CodeInvalid       = "invalid_request"
	CodeInvalidParams = "invalid_params"
	CodeConflict      = "conflict"
	CodeUnauthorized  = "unauthorized"
	CodeInternal      = "internal"
	CodeUnavailable   = "unavailable"

	// CodeMethodNotAllowed answers a known path with a method it does not
	// serve; the Allow header lists the ones it does.
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeTooLarge answers a request body over MaxBodyBytes.
	CodeTooLarge = "request_too_large"
	// CodeRangeNotSatisfiable answers a log read that starts past the end
	// of the log.
	CodeRangeNotSatisfiable = "range_not_satisfiable"
	// CodeForbidden answers a request that no credential can make from
	// where it comes from: token management from another host.
	CodeForbidden = "forbidden"
	// CodePipelineInvalid answers a trigger of a pipeline whose file does
	// not load (and that has no last good version to run).
	CodePipelineInvalid = "pipeline_invalid"
	// CodeBadResponse is what the Client reports when a server answers with
	// something that is not the API's JSON (a proxy's error page, say).
	CodeBadResponse = "bad_response"
)

// ActorHeader names who performs an operator action (cancel, retry, ...),
// recorded in the run's timeline. Without it the actor is DefaultActor.
// Once the API has tokens, the actor will come from the token instead.
const ActorHeader = "X-Tasuki-Actor"

// DefaultActor is the actor of requests that do not say who they are.
const DefaultActor = "api"

// NotFound is a convenience for the most common error.
func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, CodeNotFound, format, args...)
}

// AsError turns any error into an *Error: an *Error as is, a missing row
// as not found, a rejected engine event or a lost write race as a
// conflict, a transient failure of the store (store.Transient) as 503
// unavailable, anything else as an internal error (whose message is not
// shown to the client).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, store.ErrNotFound) {
		return Errorf(http.StatusNotFound, CodeNotFound, "%s", err.Error())
	}
	if errors.Is(err, engine.ErrRejected) || errors.Is(err, store.ErrConflict) {
		return Errorf(http.StatusConflict, CodeConflict, "%s", err.Error())
	}
	if storeDown(err) {
		// The database is restarting or unreachable: the client retries
		// (the worker does), and the detail stays in the server's log.
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "the store is unavailable right now (restarting, unreachable or full); try again shortly")
	}
	return Errorf(http.StatusInternalServerError, CodeInternal, "internal error")
}

// storeDown reports whether err is a transient failure of the store (see
// store.Transient), which the API answers with 503.
func storeDown(err error) bool {
	_, isAPI := errors.AsType[*Error](err)
	return !isAPI && store.Transient(err)
}
