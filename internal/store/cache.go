package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
)

// The content cache keeps the results (and output files) of task attempts
// and map items by a key that hashes everything they depend on (see
// package cache), so a later run anywhere (another run, another pipeline)
// whose task or item has the same key reuses them instead of running again.

// Page sizes of ListCache.
const (
	DefaultCacheLimit = 100
	MaxCacheLimit     = 1000
)

// ArtifactFile is one output file kept in the artifact store.
type ArtifactFile = artifact.File

// CacheEntry is one cached result.
type CacheEntry struct {
	Key string // hex SHA-256, the cache key
	// Where the result was computed: a task of a run, and an item of it for
	// a map (Item -1 for a task that is not a map).
	Pipeline string
	TaskID   string
	RunID    int64
	Item     int
	Result   json.RawMessage
	Outputs  []ArtifactFile
	// Size is what the entry counts against the cache's size bound: its
	// result and outputs, in bytes.
	Size      int64
	CreatedAt time.Time
	UsedAt    time.Time // last hit (or creation); eviction takes the least recently used first
	ExpiresAt time.Time // zero: no expiry of its own
}

// CacheFilter selects entries for ListCache, by key order.
type CacheFilter struct {
	Pipeline string // "" for all
	TaskID   string // "" for all (with Pipeline)
	AfterKey string // cursor: only keys > AfterKey
	Limit    int    // DefaultCacheLimit, MaxCacheLimit
}

// CacheStats is the size of the whole cache.
type CacheStats struct {
	Entries int
	Bytes   int64
}

// Cache keeps the content cache's entries. It is shared by every server
// of a cluster: entries are written with insert-or-replace (two servers
// computing the same key write the same thing), and nothing reads an entry
// that is only half written.
type Cache interface {
	// LookupCache returns the entries of those keys that exist and have
	// not expired at now (ExpiresAt zero or after now), by key. It writes
	// nothing: hits are recorded with TouchCache, in batches.
	LookupCache(ctx context.Context, keys []string, now time.Time) (map[string]CacheEntry, error)
	// PutCache inserts or replaces entries, in one transaction. A zero
	// CreatedAt or UsedAt becomes now.
	PutCache(ctx context.Context, entries ...CacheEntry) error
	// TouchCache sets UsedAt of the existing entries among keys to now
	// (never moving it back).
	TouchCache(ctx context.Context, keys []string, now time.Time) error
	// ListCache returns one page of entries in key order.
	ListCache(ctx context.Context, f CacheFilter) ([]CacheEntry, error)
	// DeleteCache deletes the entries with these keys and returns how many
	// existed.
	DeleteCache(ctx context.Context, keys []string) (int, error)
	// PurgeCache deletes every entry of a pipeline ("" for all), of one
	// task of it when taskID is set, and returns how many.
	PurgeCache(ctx context.Context, pipeline, taskID string) (int, error)
	// EvictCache deletes expired entries, then the least recently used
	// ones while the cache holds more than maxBytes (0: no size bound), at
	// most limit entries per call (callers loop), and returns how many.
	EvictCache(ctx context.Context, maxBytes int64, now time.Time, limit int) (int, error)
	// CacheStats returns the number of entries and their total size.
	CacheStats(ctx context.Context) (CacheStats, error)
}

// ArtifactRef is one output file of a task (or of an item of a map) of a
// run, kept in the artifact store.
type ArtifactRef struct {
	RunID int64
	Index int
	Item  int // -1 for a task that is not a map
	ArtifactFile
}

// Artifacts keeps which runs' tasks produced which artifact files. Refs
// are written with the task's success (Change.Artifacts) and deleted with
// their run (PruneRuns); a file in the artifact store that neither a ref
// nor a cache entry names can be removed.
type Artifacts interface {
	// ArtifactsOf returns the files a task of a run produced (of one item
	// of a map when item >= 0; -1 for a task), by path.
	ArtifactsOf(ctx context.Context, runID int64, index, item int) ([]ArtifactRef, error)
	// ArtifactDigests returns up to limit distinct digests that some
	// artifact ref or cache entry names, in ascending order, greater than
	// after: what a sweep of the artifact store must keep.
	ArtifactDigests(ctx context.Context, after string, limit int) ([]string, error)
}
