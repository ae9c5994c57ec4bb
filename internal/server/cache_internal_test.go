package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// countingCache counts EvictCache calls and tells each one on passes.
type countingCache struct {
	*apitest.Cache
	calls  int
	passes chan int
}

func (c *countingCache) EvictCache(ctx context.Context, maxBytes int64, now time.Time, limit int) (int, error) {
	n, err := c.Cache.EvictCache(ctx, maxBytes, now, limit)
	c.calls++
	if c.passes != nil {
		c.passes <- n
	}
	return n, err
}

// cacheEntries makes n entries of size bytes each, used a minute apart
// from at on, expiring at expires (zero: never).
func cacheEntries(n int, size int64, at, expires time.Time) []store.CacheEntry {
	out := make([]store.CacheEntry, n)
	for i := range out {
		out[i] = store.CacheEntry{Key: fmt.Sprintf("%064x", i+1), Pipeline: "p", TaskID: "t", RunID: 1, Item: -1, Size: size,
			CreatedAt: at, UsedAt: at.Add(time.Duration(i) * time.Minute), ExpiresAt: expires}
	}
	return out
}

// TestCacheEvictorPass: a pass calls EvictCache until a call deletes less than
// a batch, expired entries first, then the least recently used past the
// size bound.
func TestCacheEvictorPass(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	c := &countingCache{Cache: apitest.NewCache()}
	if err := c.PutCache(ctx, cacheEntries(1203, 1, now.Add(-48*time.Hour), now.Add(-time.Hour))...); err != nil {
		t.Fatal(err)
	}
	live := cacheEntries(10, 100, now.Add(-time.Hour), time.Time{})
	for i := range live {
		live[i].Key = fmt.Sprintf("%064x", 5000+i)
	}
	if err := c.PutCache(ctx, live...); err != nil {
		t.Fatal(err)
	}
	e := evictor{cache: c, maxBytes: 550, batch: 500, now: func() time.Time { return now }, log: quiet}
	n, err := e.pass(ctx)
	// 1203 expired, then 5 of the live ones: 1208 in 3 calls.
	if err != nil || n != 1208 || c.calls != 3 {
		t.Fatalf("pass = %d, %v in %d calls; want 1208 in 3", n, err, c.calls)
	}
	var want []string
	for _, l := range live[5:] {
		want = append(want, l.Key)
	}
	if got := c.Keys(); !slices.Equal(got, want) {
		t.Errorf("left %d entries %v, want the 5 most recently used", len(got), got)
	}
	// Nothing more to do: one call.
	c.calls = 0
	if n, err := e.pass(ctx); n != 0 || err != nil || c.calls != 1 {
		t.Errorf("a pass with nothing to evict = %d, %v in %d calls", n, err, c.calls)
	}
	// No size bound: only what expired.
	e.maxBytes = 0
	if n, _ := e.pass(ctx); n != 0 {
		t.Errorf("without a size bound a pass evicted %d live entries", n)
	}

	c.Err = errors.New("disk I/O error")
	if _, err := e.pass(ctx); err == nil || !strings.Contains(err.Error(), "evict cache entries: disk I/O error") {
		t.Errorf("a failing store: %v", err)
	}
}

// TestCacheEvictorRun: run passes at once and then every interval, and ends
// with its context.
func TestCacheEvictorRun(t *testing.T) {
	c := &countingCache{Cache: apitest.NewCache(), passes: make(chan int)}
	now := time.Now()
	if err := c.PutCache(context.Background(), cacheEntries(3, 1, now.Add(-time.Hour), now.Add(-time.Minute))...); err != nil {
		t.Fatal(err)
	}
	e := evictor{cache: c, batch: 500, now: time.Now, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.run(ctx, time.Millisecond)
	}()
	if n := <-c.passes; n != 3 {
		t.Errorf("the first pass evicted %d, want 3", n)
	}
	if n := <-c.passes; n != 0 {
		t.Errorf("the second pass evicted %d, want 0", n)
	}
	cancel()
	// Drain a pass that may have started as the context ended.
	for {
		select {
		case <-c.passes:
			continue
		case <-done:
		}
		break
	}
}

func TestCacheConfigMaxBytes(t *testing.T) {
	for _, c := range []struct {
		size int64
		want int64
	}{{DefaultCacheMaxBytes, 10 << 30}, {-1, 0}, {0, 0}, {1024, 1024}} {
		cfg := CacheConfig{CacheMaxBytes: logs.Size(c.size)}
		if got := cfg.maxBytes(); got != c.want {
			t.Errorf("maxBytes of %d = %d, want %d", c.size, got, c.want)
		}
	}
}

// TestCacheEvictorOnStores runs passes over the cache of a real store, SQLite
// and PostgreSQL, in batches of two: expired entries go, then the least
// recently used past the bound, and a pass with nothing to do deletes
// nothing.
func TestCacheEvictorOnStores(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			dsn := ""
			if db == "postgres" {
				dsn = pgtest.DSN(t)
			}
			now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
			ts := newTestServerDB(t, t.TempDir(), pipelineDir(t, map[string]string{"a.yaml": "name: a\ntasks: [{id: x, run: 'true'}]\n"}), dsn, now)
			ctx := context.Background()
			expired := cacheEntries(3, 10, now.Add(-48*time.Hour), now.Add(-time.Hour))
			live := cacheEntries(5, 100, now.Add(-time.Hour), now.Add(time.Hour))
			for i := range live {
				live[i].Key = fmt.Sprintf("%064x", 100+i)
			}
			if err := ts.store.PutCache(ctx, append(expired, live...)...); err != nil {
				t.Fatal(err)
			}
			e := evictor{cache: ts.store, maxBytes: 250, batch: 2, now: ts.now, log: ts.log}
			if n, err := e.pass(ctx); err != nil || n != 6 {
				t.Fatalf("pass = %d, %v; want 6 (3 expired, 3 least recently used)", n, err)
			}
			got, err := ts.store.ListCache(ctx, store.CacheFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range got {
				keys = append(keys, e.Key)
			}
			if want := []string{live[3].Key, live[4].Key}; !slices.Equal(keys, want) {
				t.Errorf("left %v, want the two most recently used", keys)
			}
			if n, err := e.pass(ctx); n != 0 || err != nil {
				t.Errorf("a pass with nothing to do = %d, %v", n, err)
			}
		})
	}
}

func TestCacheConfigRunnerTTL(t *testing.T) {
	for _, c := range []struct{ ttl, want time.Duration }{{DefaultCacheTTL, DefaultCacheTTL}, {time.Hour, time.Hour}, {0, -1}} {
		cfg := CacheConfig{CacheTTL: Duration(c.ttl)}
		if got := cfg.runnerCacheTTL(); got != c.want {
			t.Errorf("runnerCacheTTL of %s = %s, want %s", c.ttl, got, c.want)
		}
	}
}
