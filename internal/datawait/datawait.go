package datawait

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// The variables of an attempt (attempt.Spec.Env) the conditions read: the
// runner sets them for every attempt (the interval only for a run that has
// one, in RFC 3339).
const (
	envRunID         = "TASUKI_RUN_ID"
	envIntervalStart = "TASUKI_INTERVAL_START"
	envIntervalEnd   = "TASUKI_INTERVAL_END"
)

// interval is the logical interval of the attempt's run: ok is false for a
// run without one. fail is set when the variables are there but not times,
// which only a broken executor produces.
func interval(s *attempt.Spec) (start, end time.Time, ok bool, fail string) {
	v, ok := s.Env[envIntervalStart]
	if !ok || v == "" {
		return time.Time{}, time.Time{}, false, ""
	}
	start, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, time.Time{}, false, fmt.Sprintf("%s is not an RFC 3339 time: %q", envIntervalStart, v)
	}
	if v := s.Env[envIntervalEnd]; v != "" {
		if end, err = time.Parse(time.RFC3339, v); err != nil {
			return time.Time{}, time.Time{}, false, fmt.Sprintf("%s is not an RFC 3339 time: %q", envIntervalEnd, v)
		}
	}
	return start, end, true, ""
}

// runID is the ID of the attempt's run; 0 when the attempt has none (fail
// says why).
func runID(s *attempt.Spec) (int64, string) {
	v := s.Env[envRunID]
	if v == "" {
		return 0, fmt.Sprintf("the attempt has no run (%s is not set)", envRunID)
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Sprintf("%s is not a run ID: %q", envRunID, v)
	}
	return id, ""
}

// stamp is a time as the conditions show it: RFC 3339 in UTC, with a
// fraction only when it has one, so what a check saw reads the same at every
// check.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// unreadable is the observation of a check that could not read the store:
// not met, and saying why (a store that does not answer now may answer at
// the next poke). When the wait itself was stopped, that is what it says.
func unreadable(ctx context.Context, what string, err error) attempt.Observation {
	if ctx.Err() != nil {
		return attempt.Observation{Seen: "the check was stopped"}
	}
	return attempt.Observation{Seen: fmt.Sprintf("cannot read %s: %v", what, err)}
}
