package main

import (
	"context"
	"testing"
	"time"
)

// TestWaitsInProcess runs the in-process waits measurement at a small
// size and a short poke, so that what the table reports is known to be
// measured: every task waited without a slot, checks were timed, and every
// run succeeded once its files existed.
func TestWaitsInProcess(t *testing.T) {
	sh := waitShape{runs: 3, tasks: 100}
	m, err := waitsInProcess(context.Background(), t.TempDir(), sh, 50*time.Millisecond, 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.minWaiting != sh.total() {
		t.Errorf("fewest tasks waiting in the window = %d, want %d", m.minWaiting, sh.total())
	}
	if m.maxSlots != 0 || m.maxRunning != 0 {
		t.Errorf("slots in use %d, running tasks %d; want none", m.maxSlots, m.maxRunning)
	}
	// 300 waits poked every 50 ms over 300 ms: about 1,800 checks.
	if n := m.inWindow.count(); n < uint64(sh.total()) {
		t.Errorf("%d checks timed in the window, want at least %d", n, sh.total())
	}
	if m.maxGo >= sh.total() {
		t.Errorf("up to %d goroutines for %d waits: one per wait?", m.maxGo, sh.total())
	}
	r := m.row("waits-inproc-test")
	if r.value == "" || r.mem == "" || len(r.notes) == 0 {
		t.Errorf("row not filled in: %+v", r)
	}
}

func TestLatencies(t *testing.T) {
	var l latencies
	if got := l.quantile(0.99); got != 0 {
		t.Errorf("quantile of nothing = %s, want 0", got)
	}
	for i := 1; i <= 1000; i++ {
		l.add(time.Duration(i) * time.Millisecond)
	}
	l.add(-time.Second) // a check started early counts as on time
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Millisecond},
		{0.99, 990 * time.Millisecond},
		{1, time.Second},
	}
	for _, tt := range tests {
		got := l.quantile(tt.q)
		if got < tt.want*99/100 || got > tt.want*101/100 {
			t.Errorf("quantile(%v) = %s, want %s within 1 %%", tt.q, got, tt.want)
		}
	}
	if l.count() != 1001 || l.max != time.Second {
		t.Errorf("count %d, max %s; want 1001, 1s", l.count(), l.max)
	}
}

func TestFirstPokeAfter(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		at, want time.Duration
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Millisecond, time.Second},
		{time.Second, time.Second},
		{2500 * time.Millisecond, 3 * time.Second},
	}
	for _, tt := range tests {
		if got := firstPokeAfter(start, start.Add(tt.at), time.Second); !got.Equal(start.Add(tt.want)) {
			t.Errorf("firstPokeAfter(+%s) = +%s, want +%s", tt.at, got.Sub(start), tt.want)
		}
	}
}

// BenchmarkWaits holds 1,000 file waits poked every second (10 runs × 100)
// for 3 s in this process and reports the checks' lateness, the slots and
// goroutines in use and the live heap per wait. The 10,000-wait figures
// come from bench/run.sh -rows waits.
func BenchmarkWaits(b *testing.B) {
	sh := waitShape{runs: 10, tasks: 100}
	for range b.N {
		m, err := waitsInProcess(context.Background(), b.TempDir(), sh, time.Second, 3*time.Second, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(m.inWindow.quantile(0.99))/float64(time.Millisecond), "p99-late-ms")
		b.ReportMetric(float64(m.inWindow.max)/float64(time.Millisecond), "max-late-ms")
		b.ReportMetric(float64(m.maxSlots), "slots")
		b.ReportMetric(float64(m.maxGo), "goroutines")
		b.ReportMetric((float64(m.liveHeap)-float64(m.baseHeap))/float64(sh.total()), "heap-B/wait")
	}
}
