package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// testKey is a cache key made from a name.
func testKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// TestProcessCache drives the cache of a real server process: entries put
// into its store before it starts (five items of train/fit of 100 bytes,
// used one after the other, an expired train/eval and a report/chart used
// last), a bound of 300 bytes from TASUKI_CACHE_MAX_BYTES; leading, the
// server evicts the expired entry and the three least recently used. The
// CLI then lists what is left, deletes by the start of a key, purges a
// pipeline, refuses to purge without a filter, and purges all; a viewer
// may list but not delete.
func TestProcessCache(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "hello.yaml", "name: hello\ntasks:\n  - {id: greet, run: 'true'}\n")
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	db, err := sqlite.Open(ctx, filepath.Join(home, "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []store.CacheEntry
	for i := range 5 {
		entries = append(entries, store.CacheEntry{Key: testKey(fmt.Sprint("fit", i)), Pipeline: "train", TaskID: "fit", RunID: 1, Item: i,
			Result: json.RawMessage(`{"auc":0.9}`), Size: 100, CreatedAt: now.Add(-time.Hour), UsedAt: now.Add(time.Duration(i-60) * time.Minute)})
	}
	entries = append(entries,
		store.CacheEntry{Key: testKey("eval"), Pipeline: "train", TaskID: "eval", RunID: 1, Item: -1, Size: 10,
			CreatedAt: now.Add(-48 * time.Hour), UsedAt: now, ExpiresAt: now.Add(-time.Minute)},
		store.CacheEntry{Key: testKey("chart"), Pipeline: "report", TaskID: "chart", RunID: 2, Item: -1, Size: 50,
			CreatedAt: now.Add(-time.Hour), UsedAt: now, ExpiresAt: now.Add(24 * time.Hour)})
	if err := db.PutCache(ctx, entries...); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := startServer(t, home, dir, []string{"TASUKI_CACHE_MAX_BYTES=300"})
	var page api.CachePage
	eventually(t, 15*time.Second, "the leader's first eviction", func() (bool, string) {
		page, err = s.c.ListCache(ctx, api.CacheQuery{})
		return err == nil && page.Stats.Entries == 3, fmt.Sprintf("%+v, %v", page.Stats, err)
	})
	left := map[string]bool{}
	for _, e := range page.Items {
		left[e.Key] = true
	}
	if !left[testKey("fit3")] || !left[testKey("fit4")] || !left[testKey("chart")] || page.Stats.Bytes != 250 {
		t.Fatalf("left after eviction: %+v", page)
	}
	if !strings.Contains(s.logs(), "evicted cache entries") {
		t.Errorf("the server did not log its eviction:\n%s", s.logs())
	}

	tasukiCLI(t, s, "cache", "ls").expect(t, 0, testKey("fit3")[:12], "train", "fit", testKey("chart")[:12], "report", "chart",
		"cache: 3 entries, 250 B")
	tasukiCLI(t, s, "cache", "ls", "--pipeline", "train", "--task", "fit", "-o", "json").expect(t, 0, testKey("fit3"), testKey("fit4"), `"item": 4`)

	viewer := strings.TrimSpace(lastLine(tasukiCLI(t, s, "token", "create", "looker", "--role", "viewer").out))
	v := s.c.WithToken(viewer)
	if _, err := v.ListCache(ctx, api.CacheQuery{}); err != nil {
		t.Errorf("a viewer lists: %v", err)
	}
	if err := v.DeleteCacheEntry(ctx, testKey("fit3")); api.AsError(err).Code != api.CodeForbidden {
		t.Errorf("a viewer deletes: %v", err)
	}

	tasukiCLI(t, s, "cache", "rm", testKey("fit3")[:10]).expect(t, 0, "deleted "+testKey("fit3"))
	tasukiCLI(t, s, "cache", "rm", testKey("fit3")).expect(t, 2, "no cache entry "+testKey("fit3"))
	tasukiCLI(t, s, "cache", "purge", "--pipeline", "report").expect(t, 0, "purged pipeline report: 1 entry deleted")
	tasukiCLI(t, s, "cache", "purge").expect(t, 2, "say so with --all")
	tasukiCLI(t, s, "cache", "purge", "--all", "-o", "json").expect(t, 0, `"deleted": 1`)
	tasukiCLI(t, s, "cache", "ls").expect(t, 0, "no entries", "cache: 0 entries, 0 B")
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
