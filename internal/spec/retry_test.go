package spec

import (
	"math"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	r := Retry{Attempts: 10, Backoff: Duration(10 * time.Second), MaxBackoff: Duration(time.Minute), Multiplier: 2, Jitter: 0.2}
	for _, tt := range []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{1, 0.5, 10 * time.Second},
		{2, 0.5, 20 * time.Second},
		{3, 0.5, 40 * time.Second},
		{4, 0.5, time.Minute}, // capped
		{100, 0.5, time.Minute},
		{5000, 0.5, time.Minute}, // Multiplier^n overflows to +Inf
		{1, 0, 8 * time.Second},  // -20%
		{1, 1, 12 * time.Second}, // +20%
		{0, 0.5, 10 * time.Second},
	} {
		if got := r.Delay(tt.n, tt.u); got != tt.want {
			t.Errorf("Delay(%d, %v) = %v, want %v", tt.n, tt.u, got, tt.want)
		}
	}
	constant := Retry{Attempts: 3, Backoff: Duration(time.Second), MaxBackoff: Duration(time.Hour), Multiplier: 1}
	if got := constant.Delay(7, 0.9); got != time.Second {
		t.Errorf("constant delay = %v", got)
	}
	huge := Retry{Attempts: 3, Backoff: Duration(math.MaxInt64), MaxBackoff: Duration(math.MaxInt64), Multiplier: 2, Jitter: 1}
	if got := huge.Delay(3, 0.99); got <= 0 {
		t.Errorf("huge delay = %v, want a large positive value", got)
	}
}

func TestRetryWithDefaults(t *testing.T) {
	got := Retry{Attempts: 3, Jitter: 0.5}.WithDefaults()
	want := Retry{Attempts: 3, Backoff: Duration(DefaultBackoff), MaxBackoff: Duration(DefaultMaxBackoff), Multiplier: DefaultMultiplier, Jitter: 0.5}
	if got != want {
		t.Errorf("WithDefaults = %+v, want %+v", got, want)
	}
}
