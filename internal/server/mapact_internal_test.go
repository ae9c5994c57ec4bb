package server

import (
	"net/http/httptest"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/runner"
)

// TestMapActionsGoToTheLeader: the actions on a map reach only the process
// that executes its run, so a follower must forward every one of their
// routes to the leader, as it does the actions on runs; reading the items
// stays with the follower.
func TestMapActionsGoToTheLeader(t *testing.T) {
	for _, c := range []struct {
		method, path string
		leader       bool
	}{
		{"POST", "/runs/7/tasks/render/cancel", true},
		{"POST", "/runs/7/tasks/render/items/3/cancel", true},
		{"POST", "/runs/7/tasks/render/items/3/retry", true},
		{"POST", "/runs/7/tasks/render/items/3/mark", true},
		{"POST", "/runs/7/tasks/render/mark", true},
		{"GET", "/runs/7/tasks/render/items?state=failed", false},
		{"GET", "/runs/7/tasks/render", false},
		// Logs are in the database every server reads (logs.Cluster).
		{"GET", "/runs/7/tasks/render/logs?follow=true", false},
		{"GET", "/runs/7/tasks/render/logs?item=3", false},
	} {
		r := httptest.NewRequest(c.method, api.Prefix+c.path, nil)
		if got := leaderOnly(r); got != c.leader {
			t.Errorf("%s %s: leaderOnly = %v, want %v", c.method, c.path, got, c.leader)
		}
	}
}

// TestMapActionKinds: the API's action names are the runner's, which
// ActOnMap passes on as they are.
func TestMapActionKinds(t *testing.T) {
	for _, k := range [][2]string{
		{string(api.MapCancel), string(runner.MapCancel)},
		{string(api.MapRetry), string(runner.MapRetry)},
		{string(api.MapMark), string(runner.MapMark)},
	} {
		if k[0] != k[1] {
			t.Errorf("api says %q, runner %q", k[0], k[1])
		}
	}
}
