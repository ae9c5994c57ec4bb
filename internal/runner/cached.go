package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/cache"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// DefaultCacheTTL is how long a cache entry is reused when neither the
// task (cache.ttl) nor the executor (Runner.CacheTTL) says.
const DefaultCacheTTL = 30 * 24 * time.Hour

// execute runs an attempt of task t with the executor, through the
// content cache when the task has one: an attempt whose key has an entry
// does not run (its result and outputs are the entry's); one that
// succeeds carries its key back, for the coordinator to store its result
// once its success is written. It runs on the attempt's goroutine.
func (c *coordinator) execute(ctx context.Context, a *Attempt, t *spec.Task, item json.RawMessage) AttemptResult {
	cs, ok := c.r.Store.(store.Cache)
	if t.Cache == nil || !ok || (t.Map != nil && t.Map.Batch > 1) {
		return c.r.Executor(ctx, a)
	}
	s, err := a.Spec()
	if err != nil {
		return c.r.Executor(ctx, a) // the executor reports the description's error
	}
	key, err := c.cacheKey(ctx, s, t, item)
	if err != nil {
		return attempt.Failedf("cache key: %v", err)
	}
	if c.r.NoCache {
		// Run, and store the result under the key: it replaces the
		// entry a later run would have reused.
		res := c.r.Executor(ctx, a)
		if res.Outcome == attempt.Succeeded {
			res.CacheKey = key
		}
		return res
	}
	hits, err := cs.LookupCache(ctx, []string{key}, c.now())
	if err != nil {
		c.log.Warn("cache lookup failed: running the attempt", "task", t.ID, "err", err)
	} else if e, ok := hits[key]; ok {
		// The hit is recorded (TouchCache) with the coordinator's next
		// commit, in one write for all the hits since the last.
		msg := fmt.Sprintf("cached: the result of run %d (task %s)", e.RunID, e.TaskID)
		if e.Item >= 0 {
			msg = fmt.Sprintf("cached: the result of run %d (task %s, item %d)", e.RunID, e.TaskID, e.Item)
		}
		return AttemptResult{Outcome: attempt.Succeeded, Result: e.Result, Outputs: e.Outputs, CachedFrom: e.RunID, CacheKey: key, Message: msg}
	}
	res := c.r.Executor(ctx, a)
	if res.Outcome == attempt.Succeeded {
		res.CacheKey = key
	}
	return res
}

// cacheKey computes the key of an attempt of task t (of a map item when
// item is set).
func (c *coordinator) cacheKey(ctx context.Context, s *attempt.Spec, t *spec.Task, item json.RawMessage) (string, error) {
	in := cache.Input{Spec: s, Dir: c.dir, Outputs: t.Outputs, Version: t.Cache.Version, Item: item}
	for _, p := range t.Inputs {
		in.Inputs = append(in.Inputs, cache.Expand(p, s.Env))
	}
	if t.Cache.Key != "" {
		vars, err := c.keyVars(s, item)
		if err != nil {
			return "", err
		}
		if in.KeyExpr, err = cache.EvalKey(t.Cache.Key, vars); err != nil {
			return "", err
		}
	}
	return c.hasher.Key(ctx, in)
}

// keyVars are what cache.key is evaluated over: params, item, needs and
// interval.
func (c *coordinator) keyVars(s *attempt.Spec, item json.RawMessage) (map[string]any, error) {
	params := map[string]any{}
	text, err := ParamText(c.pipeline, c.run.Params)
	if err != nil {
		return nil, err
	}
	for k, v := range text {
		params[k] = v
	}
	needs := map[string]any{}
	for id, raw := range s.Needs {
		v, err := decodeJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("the result of need %s: %w", id, err)
		}
		needs[id] = v
	}
	vars := map[string]any{"params": params, "needs": needs, "interval": map[string]any{
		"start": c.interval["TASUKI_INTERVAL_START"], "end": c.interval["TASUKI_INTERVAL_END"], "date": c.interval["TASUKI_INTERVAL_DATE"],
	}}
	if item != nil {
		v, err := decodeJSON(item)
		if err != nil {
			return nil, fmt.Errorf("the item: %w", err)
		}
		vars["item"] = v
	}
	return vars, nil
}

func decodeJSON(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// remember queues the cache entry of a succeeded attempt, written after
// the commit that records its success (an entry is never seen for work
// the store does not know ended).
func (c *coordinator) remember(task, item int, res AttemptResult, at time.Time) {
	if res.CacheKey == "" || res.Outcome != attempt.Succeeded {
		return
	}
	if res.CachedFrom != 0 {
		c.cacheHits = append(c.cacheHits, res.CacheKey)
		return
	}
	t := &c.pipeline.Tasks[task]
	var ttl time.Duration
	if t.Cache != nil {
		ttl = t.Cache.TTL.D()
	}
	defTTL := c.r.CacheTTL
	if defTTL == 0 {
		defTTL = DefaultCacheTTL
	}
	size := int64(len(res.Result))
	for _, o := range res.Outputs {
		size += o.Size
	}
	c.cachePuts = append(c.cachePuts, store.CacheEntry{
		Key: res.CacheKey, Pipeline: c.pipeline.Name, TaskID: t.ID, RunID: c.run.ID, Item: item,
		Result: res.Result, Outputs: res.Outputs, Size: size, CreatedAt: at, UsedAt: at,
		ExpiresAt: cache.ExpiresAt(at, ttl, defTTL),
	})
}

// storeCache writes the queued cache entries. A failure costs a later
// run a cache miss, nothing else: it is logged.
func (c *coordinator) storeCache(ctx context.Context) {
	if len(c.cachePuts)+len(c.cacheHits) == 0 {
		return
	}
	puts, hits := c.cachePuts, c.cacheHits
	c.cachePuts, c.cacheHits = nil, nil
	cs, ok := c.r.Store.(store.Cache)
	if !ok {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if len(puts) > 0 {
		if err := cs.PutCache(ctx, puts...); err != nil && !errors.Is(err, context.Canceled) {
			c.log.Warn("store cache entries", "entries", len(puts), "err", err)
		}
	}
	if len(hits) > 0 {
		// A failure only makes the entries look less recently used.
		if err := cs.TouchCache(ctx, hits, c.now()); err != nil {
			c.log.Warn("record cache hits", "entries", len(hits), "err", err)
		}
	}
}
