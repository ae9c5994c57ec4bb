package cache

import "time"

// ExpiresAt is when an entry written at now stops being reused: after the
// task's own cache.ttl when it gives one, else after the server's default
// (cache_ttl); zero, no expiry, when neither is set. The expiry is fixed
// when the entry is written, so lookups (store.Cache.LookupCache) and
// eviction need no configuration to honour it.
func ExpiresAt(now time.Time, taskTTL, defaultTTL time.Duration) time.Time {
	ttl := defaultTTL
	if taskTTL > 0 {
		ttl = taskTTL
	}
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}
