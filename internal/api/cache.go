package api

// The content cache: the entries tasks with `cache:` stored (their
// results and output files, by key), read a page at a time, deleted one by
// one or by pipeline and task. An entry computed in one pipeline is reused
// by any task of any pipeline with the same key, so the cache is not in a
// namespace: every route here is for global tokens (a confined token gets
// 403), like the datasets.

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Cache serves the /cache routes: the reading and deleting methods of
// store.Cache, which any store driver provides.
type Cache interface {
	ListCache(ctx context.Context, f store.CacheFilter) ([]store.CacheEntry, error)
	CacheStats(ctx context.Context) (store.CacheStats, error)
	DeleteCache(ctx context.Context, keys []string) (int, error)
	PurgeCache(ctx context.Context, pipeline, taskID string) (int, error)
}

// WithCache serves the /cache routes over c. Without it they answer 503
// unavailable.
func WithCache(c Cache) Option {
	return func(h *handler) { h.cache = c }
}

// CacheEntry is the JSON shape of one cached result.
type CacheEntry struct {
	// Key is the cache key: 64 hex digits.
	Key string `json:"key"`
	// Pipeline, Task, RunID and Item say where the result was computed:
	// a task of a run and, for a map, the item's position (absent for a
	// task that is not a map).
	Pipeline string `json:"pipeline"`
	Task     string `json:"task"`
	RunID    int64  `json:"run_id"`
	Item     *int   `json:"item,omitempty"`
	// Outputs are the output files restored on a hit. The result reused
	// on a hit is not shown: a page of a thousand results of up to 1 MiB
	// each would be too large an answer; the run's task shows it.
	Outputs []artifact.File `json:"outputs"`
	// Size is what the entry counts against the cache's size bound: its
	// result and output files, in bytes.
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	// UsedAt is the last hit (or the creation): eviction takes the least
	// recently used entries first.
	UsedAt time.Time `json:"used_at"`
	// ExpiresAt is when the entry stops being reused; absent for never.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// NewCacheEntry converts a stored entry.
func NewCacheEntry(e store.CacheEntry) CacheEntry {
	out := CacheEntry{
		Key: e.Key, Pipeline: e.Pipeline, Task: e.TaskID, RunID: e.RunID,
		Outputs: nonNil(e.Outputs), Size: e.Size, CreatedAt: e.CreatedAt, UsedAt: e.UsedAt, ExpiresAt: TimePtr(e.ExpiresAt),
	}
	if e.Item >= 0 {
		item := e.Item
		out.Item = &item
	}
	return out
}

// CacheStats is the size of the whole cache.
type CacheStats struct {
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

// CachePage is the answer of GET /cache: a page of entries in key order,
// the cursor of the next page (pass it as after), and the stats of the
// whole cache, whatever the filter.
type CachePage struct {
	Items []CacheEntry `json:"items"`
	Next  string       `json:"next,omitempty"`
	Stats CacheStats   `json:"stats"`
}

// CacheQuery selects a page of GET /cache.
type CacheQuery struct {
	Pipeline string // "" for all
	Task     string // with Pipeline: one task of it
	After    string // the Next of the previous page (or the start of a key: the keys from it on)
	Limit    int    // 0 for the default, store.DefaultCacheLimit
}

// CachePurgeRequest is the body of POST /cache/purge: the entries of a
// pipeline, of one task of it, or (All) every entry.
type CachePurgeRequest struct {
	Pipeline string `json:"pipeline,omitempty"`
	Task     string `json:"task,omitempty"`
	All      bool   `json:"all,omitempty"`
}

// CacheDeleted is the answer of POST /cache/purge: how many entries went.
type CacheDeleted struct {
	Deleted int `json:"deleted"`
}

// CheckCacheKey checks a cache key: 64 lowercase hex digits, the hex
// SHA-256 package cache computes.
func CheckCacheKey(key string) error {
	if len(key) != 64 || !isHex(key, 64) {
		return invalid("cache key %q: expected 64 lowercase hex digits", clip(key, 80))
	}
	return nil
}

// isHex reports whether s is 1 to n lowercase hex digits: a cache key or
// its start. (GET /cache?after=PREFIX lists the keys from PREFIX on, which
// is how the CLI finds the key a prefix stands for.)
func isHex(s string, n int) bool {
	if s == "" || len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CheckCacheFilter checks the pipeline and task a listing or a purge
// names: pipeline names and task ids as pipeline files write them, and a
// task only with its pipeline (task ids are per pipeline).
func CheckCacheFilter(pipeline, task string) error {
	if pipeline != "" {
		if err := checkDatasetName("pipeline name", pipeline); err != nil {
			return err
		}
	}
	if task != "" {
		if pipeline == "" {
			return invalid("task %q: name its pipeline too (task ids are per pipeline)", clip(task, maxDatasetName))
		}
		if err := checkDatasetName("task id", task); err != nil {
			return err
		}
	}
	return nil
}

func (h *handler) cacheStore() (Cache, error) {
	if h.cache == nil {
		return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server keeps no cache")
	}
	return h.cache, nil
}

func (h *handler) listCache(w http.ResponseWriter, r *http.Request) error {
	c, err := h.cacheStore()
	if err != nil {
		return err
	}
	var f store.CacheFilter
	for _, p := range []struct {
		name string
		dst  *string
	}{{"pipeline", &f.Pipeline}, {"task", &f.TaskID}, {"after", &f.AfterKey}} {
		if *p.dst, err = queryValue(r, p.name); err != nil {
			return err
		}
	}
	if err := CheckCacheFilter(f.Pipeline, f.TaskID); err != nil {
		return err
	}
	if f.AfterKey != "" && !isHex(f.AfterKey, 64) {
		return invalid("query parameter after=%q: expected a cache key, or the start of one (lowercase hex digits)", clip(f.AfterKey, 80))
	}
	limit, err := queryInt(r, "limit", 1, store.MaxCacheLimit, store.DefaultCacheLimit)
	if err != nil {
		return err
	}
	f.Limit = int(limit)
	entries, err := c.ListCache(r.Context(), f)
	if err != nil {
		return err
	}
	stats, err := c.CacheStats(r.Context())
	if err != nil {
		return err
	}
	page := CachePage{Items: make([]CacheEntry, len(entries)), Stats: CacheStats{Entries: stats.Entries, Bytes: stats.Bytes}}
	for i, e := range entries {
		page.Items[i] = NewCacheEntry(e)
	}
	if len(entries) == f.Limit {
		page.Next = entries[len(entries)-1].Key
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (h *handler) deleteCacheEntry(w http.ResponseWriter, r *http.Request) error {
	c, err := h.cacheStore()
	if err != nil {
		return err
	}
	key := r.PathValue("key")
	if err := CheckCacheKey(key); err != nil {
		return err
	}
	n, err := c.DeleteCache(r.Context(), []string{key})
	if err != nil {
		return err
	}
	if n == 0 {
		return NotFound("no cache entry %s", key)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) purgeCache(w http.ResponseWriter, r *http.Request) error {
	c, err := h.cacheStore()
	if err != nil {
		return err
	}
	var req CachePurgeRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if err := CheckCacheFilter(req.Pipeline, req.Task); err != nil {
		return err
	}
	switch {
	case req.All && req.Pipeline != "":
		return invalid("all: true purges every entry; give it without pipeline, or pipeline (and task) without all")
	case !req.All && req.Pipeline == "":
		return invalid("purging every entry of the cache needs \"all\": true; give pipeline (and task) to purge less")
	}
	n, err := c.PurgeCache(r.Context(), req.Pipeline, req.Task)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, CacheDeleted{Deleted: n})
	return nil
}

// ListCache returns a page of the cache's entries, in key order, with the
// stats of the whole cache; pass the page's Next as q.After for the next.
func (c *Client) ListCache(ctx context.Context, q CacheQuery) (CachePage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"pipeline": q.Pipeline, "task": q.Task, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var p CachePage
	err := c.do(ctx, request{method: http.MethodGet, path: "/cache", query: v}, &p)
	return p, err
}

// DeleteCacheEntry deletes the entry with this key; one that does not
// exist is an *Error with CodeNotFound.
func (c *Client) DeleteCacheEntry(ctx context.Context, key string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/cache/" + seg(key)}, nil)
}

// PurgeCache deletes the entries of a pipeline, of one task of it, or
// every entry (req.All), and returns how many.
func (c *Client) PurgeCache(ctx context.Context, req CachePurgeRequest) (int, error) {
	var d CacheDeleted
	err := c.do(ctx, request{method: http.MethodPost, path: "/cache/purge", body: req}, &d)
	return d.Deleted, err
}
