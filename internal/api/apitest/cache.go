package apitest

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Cache is a fake store.Cache in memory, for the tests of the /cache
// routes and of the cache commands: the entries a test puts, and the
// filters, deletions and purges it was asked for. It keeps the contract's
// rules (key order, expiry, least recently used first) so what the
// handler and the CLI do with its answers is what they do with a store's.
type Cache struct {
	mu      sync.Mutex
	entries map[string]store.CacheEntry
	// Lists are the filters ListCache was called with, Purges the
	// pipeline/task pairs PurgeCache was.
	Lists  []store.CacheFilter
	Purges [][2]string
	// Err, when set, fails every call.
	Err error
}

var _ store.Cache = (*Cache)(nil)

// NewCache returns an empty fake.
func NewCache() *Cache { return &Cache{entries: map[string]store.CacheEntry{}} }

// LookupCache implements store.Cache.
func (c *Cache) LookupCache(_ context.Context, keys []string, now time.Time) (map[string]store.CacheEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Err; err != nil {
		return nil, err
	}
	out := map[string]store.CacheEntry{}
	for _, k := range keys {
		if e, ok := c.entries[k]; ok && (e.ExpiresAt.IsZero() || e.ExpiresAt.After(now)) {
			out[k] = e
		}
	}
	return out, nil
}

// PutCache implements store.Cache.
func (c *Cache) PutCache(_ context.Context, entries ...store.CacheEntry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Err; err != nil {
		return err
	}
	now := time.Now()
	for _, e := range entries {
		if e.CreatedAt.IsZero() {
			e.CreatedAt = now
		}
		if e.UsedAt.IsZero() {
			e.UsedAt = now
		}
		c.entries[e.Key] = e
	}
	return nil
}

// TouchCache implements store.Cache.
func (c *Cache) TouchCache(_ context.Context, keys []string, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Err; err != nil {
		return err
	}
	for _, k := range keys {
		if e, ok := c.entries[k]; ok && now.After(e.UsedAt) {
			e.UsedAt = now
			c.entries[k] = e
		}
	}
	return nil
}

// ListCache implements store.Cache.
func (c *Cache) ListCache(_ context.Context, f store.CacheFilter) ([]store.CacheEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Lists = append(c.Lists, f)
	if err := c.Err; err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultCacheLimit
	}
	limit = min(limit, store.MaxCacheLimit)
	var out []store.CacheEntry
	for _, k := range slices.Sorted(maps.Keys(c.entries)) {
		e := c.entries[k]
		if k <= f.AfterKey || !matches(e, f.Pipeline, f.TaskID) {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// DeleteCache implements store.Cache.
func (c *Cache) DeleteCache(_ context.Context, keys []string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Err; err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if _, ok := c.entries[k]; ok {
			delete(c.entries, k)
			n++
		}
	}
	return n, nil
}

// PurgeCache implements store.Cache.
func (c *Cache) PurgeCache(_ context.Context, pipeline, taskID string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Purges = append(c.Purges, [2]string{pipeline, taskID})
	if err := c.Err; err != nil {
		return 0, err
	}
	n := 0
	for k, e := range c.entries {
		if matches(e, pipeline, taskID) {
			delete(c.entries, k)
			n++
		}
	}
	return n, nil
}

// EvictCache implements store.Cache.
func (c *Cache) EvictCache(_ context.Context, maxBytes int64, now time.Time, limit int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Err; err != nil {
		return 0, err
	}
	n := 0
	for k, e := range c.entries {
		if n < limit && !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(now) {
			delete(c.entries, k)
			n++
		}
	}
	if maxBytes <= 0 {
		return n, nil
	}
	var total int64
	lru := slices.Collect(maps.Values(c.entries))
	for _, e := range lru {
		total += e.Size
	}
	slices.SortFunc(lru, func(a, b store.CacheEntry) int {
		return cmp.Or(a.UsedAt.Compare(b.UsedAt), strings.Compare(a.Key, b.Key))
	})
	for _, e := range lru {
		if total <= maxBytes || n >= limit {
			break
		}
		delete(c.entries, e.Key)
		total -= e.Size
		n++
	}
	return n, nil
}

// CacheStats implements store.Cache.
func (c *Cache) CacheStats(context.Context) (store.CacheStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Err; err != nil {
		return store.CacheStats{}, err
	}
	s := store.CacheStats{Entries: len(c.entries)}
	for _, e := range c.entries {
		s.Bytes += e.Size
	}
	return s, nil
}

// Keys returns the keys of the entries, in order.
func (c *Cache) Keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.entries))
}

// matches reports whether e is of pipeline ("" for all) and of taskID
// ("" for all).
func matches(e store.CacheEntry, pipeline, taskID string) bool {
	return (pipeline == "" || e.Pipeline == pipeline) && (taskID == "" || e.TaskID == taskID)
}
