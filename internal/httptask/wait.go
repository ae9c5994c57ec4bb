package httptask

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// Wait is the condition of waits with wait.http: a URL answers with an
// expected status and, with json, a body that satisfies a condition. Each
// check is one GET, not retried: the next poke is the retry.
type Wait struct {
	// Client sends the requests; nil: the package's own, as for Task.
	Client *http.Client
}

// waitBody is the Spec.Body of a wait.http attempt.
type waitBody struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Status  []int             `json:"status,omitempty"`
	JSON    string            `json:"json,omitempty"`
}

func (b *waitBody) template() template {
	return template{URL: b.URL, Method: http.MethodGet, Headers: b.Headers}
}

// Name implements attempt.Condition: spec.Task.Kind of a wait with http.
func (Wait) Name() string { return "wait.http" }

// Body implements attempt.Condition; like Task.Body, it fails Describe for
// what no variable can fix.
func (Wait) Body(t *spec.Task) (json.RawMessage, error) {
	if t.Wait == nil || t.Wait.HTTP == "" {
		return nil, fmt.Errorf("task %s waits for no URL", t.ID)
	}
	w := t.Wait
	b := waitBody{URL: w.HTTP, Headers: w.Headers, Status: w.Status, JSON: w.JSON}
	if err := b.template().check(); err != nil {
		return nil, err
	}
	if err := checkStatuses(b.Status); err != nil {
		return nil, err
	}
	if _, err := compile(b.JSON); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	return json.Marshal(b)
}

// Check implements attempt.Condition: one request, within ctx's deadline
// (and RequestTimeout). Seen says what came back in words that stay the
// same while the situation does: "HTTP 503", "HTTP 200; body.status ==
// \"ready\" is false", "no answer: connection refused". Only a request
// that can never be made (a variable the task does not have, a URL that is
// not an http or https one) fails the wait.
func (w Wait) Check(ctx context.Context, s *attempt.Spec, h *attempt.Host, memo json.RawMessage) attempt.Observation {
	var b waitBody
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("read the http wait of the attempt: %v", err)}
	}
	check, err := compile(b.JSON)
	if err != nil {
		return attempt.Observation{Fail: "json: " + err.Error()}
	}
	req, err := b.template().expand(s)
	if err != nil {
		return attempt.Observation{Fail: err.Error()}
	}
	client, release := clientFor(w.Client)
	defer release()
	a, err := send(ctx, client, req, RequestTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return attempt.Observation{Seen: "no answer within the check's time"}
		}
		return attempt.Observation{Seen: "no answer: " + describeErr(err)}
	}
	seen := fmt.Sprintf("HTTP %d", a.status)
	if !statusOK(a.status, b.Status) {
		return attempt.Observation{Seen: seen}
	}
	if a.tooLarge {
		return attempt.Observation{Seen: fmt.Sprintf("%s; body is larger than %d bytes (1 MiB)", seen, MaxBody)}
	}
	if check != nil {
		if ok, why, _ := a.holds(check); !ok {
			return attempt.Observation{Seen: seen + "; " + why}
		}
	}
	res, err := a.result()
	if err != nil {
		return attempt.Observation{Seen: seen + "; " + err.Error()}
	}
	return attempt.Observation{Met: true, Seen: seen, Result: res}
}
