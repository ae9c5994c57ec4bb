package spec

import (
	"math"
	"time"
)

// Attempts is how many attempts the task may make in all: Retry.Attempts, or
// 1 without a retry policy.
func (t Task) Attempts() int {
	if t.Retry == nil || t.Retry.Attempts < 1 {
		return 1
	}
	return t.Retry.Attempts
}

// WithDefaults returns the policy with the package defaults in its zero
// fields. Parse already fills in what a file leaves out; this is for
// policies built in code.
func (r Retry) WithDefaults() Retry {
	if r.Backoff == 0 {
		r.Backoff = Duration(DefaultBackoff)
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = Duration(DefaultMaxBackoff)
	}
	if r.Multiplier == 0 {
		r.Multiplier = DefaultMultiplier
	}
	if r.Jitter == 0 {
		r.Jitter = DefaultJitter
	}
	return r
}

// Delay is how long to wait before retry n (n = 1 before the second attempt):
//
//	min(Backoff × Multiplier^(n−1), MaxBackoff) × (1 + Jitter × (2u − 1))
//
// u is a random number in [0, 1) supplied by the caller, so the engine stays
// deterministic and replayable; u = 0.5 gives the delay without jitter. The
// fields are used as they are (see WithDefaults); a multiplier below 1 counts
// as 1 and the result is never negative.
func (r Retry) Delay(n int, u float64) time.Duration {
	if n < 1 {
		n = 1
	}
	u = min(max(u, 0), 1)
	mult := max(r.Multiplier, 1)
	d := float64(r.Backoff) * math.Pow(mult, float64(n-1))
	if maxB := float64(r.MaxBackoff); d > maxB || math.IsInf(d, 0) || math.IsNaN(d) {
		d = maxB
	}
	d *= 1 + min(max(r.Jitter, 0), 1)*(2*u-1)
	switch {
	case d <= 0 || math.IsNaN(d):
		return 0
	case d >= math.MaxInt64:
		return math.MaxInt64
	}
	return time.Duration(d)
}
