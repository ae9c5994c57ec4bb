package server

// The content cache's bounds and its eviction. Entries are written by the
// runner (a task with `cache:` that succeeded) with their expiry fixed
// then (the task's cache.ttl, else cache_ttl: cache.ExpiresAt), so a
// lookup never reuses an expired entry; the leader deletes expired entries
// and, while the cache holds more than cache_max_bytes, the least recently
// used ones, a batch at a time. Every server of a cluster shares the
// store's cache; only the leader evicts.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Defaults of the cache's bounds.
const (
	DefaultCacheMaxBytes = 10 << 30
	DefaultCacheTTL      = 30 * 24 * time.Hour
)

// CacheConfig bounds the content cache, inline in Config.
type CacheConfig struct {
	// CacheMaxBytes bounds the size of the cache's entries (their results
	// and output files): past it, the least recently used entries are
	// evicted ("10GiB", the default; "none" or 0 for no bound).
	CacheMaxBytes logs.Size `yaml:"cache_max_bytes"`
	// CacheTTL is how long an entry is reused when its task gives no
	// cache.ttl of its own ("30d", the default; 0 for no expiry). It is
	// fixed when the entry is written: a change applies to new entries.
	CacheTTL Duration `yaml:"cache_ttl"`
}

// DefaultCacheConfig is the cache's bounds before any file, variable or
// flag.
func DefaultCacheConfig() CacheConfig {
	return CacheConfig{CacheMaxBytes: DefaultCacheMaxBytes, CacheTTL: Duration(DefaultCacheTTL)}
}

// maxBytes is the size bound EvictCache takes: 0 for none.
func (c CacheConfig) maxBytes() int64 { return max(int64(c.CacheMaxBytes), 0) }

// runnerCacheTTL is the default expiry the runner gives the entries it
// writes (runner.Runner.CacheTTL, where 0 is the runner's own default):
// cache_ttl, or -1, no expiry, for cache_ttl 0.
func (c CacheConfig) runnerCacheTTL() time.Duration {
	if c.CacheTTL <= 0 {
		return -1
	}
	return c.CacheTTL.D()
}

// applyCacheEnv reads TASUKI_CACHE_MAX_BYTES and TASUKI_CACHE_TTL.
func applyCacheEnv(c *Config, lookup func(string) (string, bool), errs *[]error) {
	if v, ok := lookup("TASUKI_CACHE_MAX_BYTES"); ok && v != "" {
		n, err := logs.ParseSize(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("TASUKI_CACHE_MAX_BYTES: %w", err))
		} else {
			c.CacheMaxBytes = n
		}
	}
	if v, ok := lookup("TASUKI_CACHE_TTL"); ok && v != "" {
		d, err := ParseDuration(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("TASUKI_CACHE_TTL: %w", err))
		} else {
			c.CacheTTL = Duration(d)
		}
	}
}

// Eviction's pace.
const (
	// cacheEvictInterval is how often the leader evicts. A cache may
	// outgrow its bound by what its tasks write in this long.
	cacheEvictInterval = 5 * time.Minute
	// cacheEvictBatch is how many entries one EvictCache call deletes at
	// most, so the store's writer is never held for long.
	cacheEvictBatch = 500
)

// storeCache is the store's cache, or nil when its driver keeps none.
func storeCache(st store.Store) store.Cache {
	if c, ok := st.(store.Cache); ok {
		return c
	}
	return nil
}

// cacheAPI is what serves the /cache routes: the store's cache, or
// nothing (the routes answer 503).
func cacheAPI(st store.Store) api.Cache {
	if c := storeCache(st); c != nil {
		return c
	}
	return nil
}

// evictor deletes what the cache's bounds say must go.
type evictor struct {
	cache    store.Cache
	maxBytes int64 // 0: no size bound
	batch    int
	now      func() time.Time
	log      *slog.Logger
}

// pass evicts until nothing more must go (a call deleting less than a
// batch) or ctx ends, and returns how many entries it deleted.
func (e evictor) pass(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := e.cache.EvictCache(ctx, e.maxBytes, e.now(), e.batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("evict cache entries: %w", err)
		}
		if n < e.batch {
			break
		}
	}
	if total > 0 {
		e.log.Info("evicted cache entries", "entries", total, "max_bytes", logs.Size(e.maxBytes).String())
	}
	return total, nil
}

// run evicts now and then every interval until ctx ends.
func (e evictor) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := e.pass(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("cache eviction; trying again at the next pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startCacheEviction evicts cache entries while this server leads, and
// returns what stops it (and waits for it). A store that keeps no cache
// has nothing to evict.
func (s *Server) startCacheEviction(ctx context.Context) func() {
	c := storeCache(s.store)
	if c == nil {
		return func() {}
	}
	e := evictor{cache: c, maxBytes: s.cfg.maxBytes(), batch: cacheEvictBatch, now: s.now, log: s.log}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.run(ctx, cacheEvictInterval)
	}()
	return func() { cancel(); <-done }
}
