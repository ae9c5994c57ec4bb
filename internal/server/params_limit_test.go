package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// TestTriggerParamSizeLimit triggers runs over the API of a real server: a
// value at spec.MaxParamValue runs and reaches the command whole; one byte
// more is refused with 400 invalid_params naming the param and the limit,
// not accepted and failed at exec with "argument list too long".
func TestTriggerParamSizeLimit(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "big.yaml", "name: big\nparams: [{name: note}]\ntasks:\n  - {id: a, run: 'test ${#TASUKI_PARAM_NOTE} -eq 65536'}\n")
	s := startServer(t, home, dir, nil)
	ctx := context.Background()

	run, err := s.c.Trigger(ctx, "big", map[string]string{"note": strings.Repeat("x", spec.MaxParamValue)}, "test")
	if err != nil {
		t.Fatalf("trigger at the limit: %v", err)
	}
	if r := waitRunEnd(t, s.c, run.ID); r.State != engine.RunSucceeded {
		t.Errorf("run at the limit ended %s, want succeeded", r.State)
	}

	var e *api.Error
	_, err = s.c.Trigger(ctx, "big", map[string]string{"note": strings.Repeat("x", spec.MaxParamValue+1)}, "test")
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != api.CodeInvalidParams ||
		!strings.Contains(e.Message, `param "note"`) || !strings.Contains(e.Message, "64 KiB") {
		t.Errorf("trigger one byte over: %#v; want 400 invalid_params naming the param and the limit", err)
	}
	if _, err := s.c.Trigger(ctx, "big", map[string]string{"note": strings.Repeat("y", 300<<10)}, "test"); !errors.As(err, &e) || e.Code != api.CodeInvalidParams {
		t.Errorf("trigger with 300 KiB: %v, want invalid_params", err)
	}
}
