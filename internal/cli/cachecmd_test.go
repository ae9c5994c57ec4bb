package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Keys of the seeded entries: two share their first 12 digits.
var (
	keyFit0  = "3f2a9c01d4e7" + strings.Repeat("0", 52)
	keyFit1  = "3f2a9c01d4e7" + strings.Repeat("1", 52)
	keyEval  = "8b1e" + strings.Repeat("2", 60)
	keyChart = "c0ffee00" + strings.Repeat("3", 56)
)

// seedCLICache puts four entries: items 0 and 1 of train/fit, train/eval
// (with a model file and an expiry) and report/chart.
func seedCLICache(t *testing.T, c *apitest.Cache) {
	t.Helper()
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	entry := func(key, pipeline, task string, item int, size int64) store.CacheEntry {
		return store.CacheEntry{Key: key, Pipeline: pipeline, TaskID: task, RunID: 41, Item: item, Size: size,
			Result: json.RawMessage(`{"rows":42}`), CreatedAt: at, UsedAt: at}
	}
	eval := entry(keyEval, "train", "eval", -1, 3<<20)
	eval.Outputs = []artifact.File{{Path: "model.bin", Digest: "sha256:" + strings.Repeat("a", 64), Size: 3 << 20}}
	eval.ExpiresAt = at.Add(30 * 24 * time.Hour)
	if err := c.PutCache(context.Background(), entry(keyFit0, "train", "fit", 0, 120), entry(keyFit1, "train", "fit", 1, 130),
		eval, entry(keyChart, "report", "chart", -1, 900)); err != nil {
		t.Fatal(err)
	}
}

// newCacheServer serves the real API handler over the fake cache on a
// loopback port and returns its URL and an admin token.
func newCacheServer(t *testing.T, c *apitest.Cache) (url, token string) {
	t.Helper()
	tokens := apitest.NewTokens()
	token = tokens.AddAPI("admin", api.RoleAdmin, "")
	h := api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithCache(c),
		api.WithLogger(slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, token
}

// TestCacheCommands runs the cache commands against a server and checks
// their exit status, output, and what is left in the cache.
func TestCacheCommands(t *testing.T) {
	all := []string{keyFit0, keyFit1, keyEval, keyChart}
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
		left   []string // the keys left; nil: all
		check  func(t *testing.T, c *apitest.Cache, r result)
	}{
		{name: "ls", args: []string{"cache", "ls"},
			stdout: []string{"KEY", "PIPELINE", "TASK", "ITEM", "RUN", "SIZE", "USED", "EXPIRES",
				"3f2a9c01d4e7 ", "train", "fit", " 0 ", " 1 ", "41", "120 B", "8b1e22222222 ", "3.0 MiB", "never",
				"cache: 4 entries, 3.0 MiB\n"}},
		{name: "ls filtered", args: []string{"cache", "ls", "--pipeline", "train", "--task", "fit"},
			check: func(t *testing.T, c *apitest.Cache, r result) {
				if strings.Contains(r.stdout, "eval") || strings.Count(r.stdout, "3f2a9c01d4e7") != 2 {
					t.Errorf("train/fit only:\n%s", r.stdout)
				}
				if got := c.Lists[len(c.Lists)-1]; got != (store.CacheFilter{Pipeline: "train", TaskID: "fit", Limit: 100}) {
					t.Errorf("asked %+v", got)
				}
			}},
		{name: "ls paged", args: []string{"cache", "ls", "--pipeline", "train", "--limit", "2"},
			stderr: []string{"more: tasuki cache ls --pipeline train --limit 2 --after " + keyFit1}},
		{name: "ls next page", args: []string{"cache", "ls", "--limit", "2", "--after", keyFit1},
			stdout: []string{"8b1e22222222", "c0ffee003333"}},
		{name: "ls json", args: []string{"cache", "ls", "-o", "json"},
			check: func(t *testing.T, c *apitest.Cache, r result) {
				var p api.CachePage
				mustDecode(t, r.stdout, &p)
				if len(p.Items) != 4 || p.Items[0].Key != keyFit0 || p.Items[0].Item == nil || p.Items[2].Item != nil ||
					p.Stats.Entries != 4 || p.Items[2].Outputs[0].Path != "model.bin" {
					t.Errorf("page = %+v", p)
				}
			}},
		{name: "ls task without pipeline", args: []string{"cache", "ls", "--task", "fit"}, code: 2, stderr: []string{"give --pipeline too"}},
		{name: "ls bad limit", args: []string{"cache", "ls", "--limit", "0"}, code: 2, stderr: []string{"--limit 0: expected 1 to 1000"}},

		{name: "rm full key", args: []string{"cache", "rm", keyEval}, stdout: []string{"deleted " + keyEval + "\n"},
			left: []string{keyFit0, keyFit1, keyChart}},
		{name: "rm prefixes", args: []string{"cache", "rm", "C0FFEE00", "8b1e2222"},
			stdout: []string{"deleted " + keyChart, "deleted " + keyEval}, left: []string{keyFit0, keyFit1}},
		{name: "rm ambiguous prefix", args: []string{"cache", "rm", "3f2a9c01d4e7"}, code: 2,
			stderr: []string{"3f2a9c01d4e7 starts several keys", "give more digits"}},
		{name: "rm goes on past a missing key", args: []string{"cache", "rm", "deadbeef", keyChart}, code: 2,
			stdout: []string{"deleted " + keyChart}, stderr: []string{"no cache entry with a key starting deadbeef"},
			left: []string{keyFit0, keyFit1, keyEval}},
		{name: "rm missing full key", args: []string{"cache", "rm", strings.Repeat("d", 64)}, code: 2,
			stderr: []string{"no cache entry " + strings.Repeat("d", 64)}},
		{name: "rm short prefix", args: []string{"cache", "rm", "3f2a"}, code: 2, stderr: []string{"expected a cache key (64 hex digits) or its first 8 or more"}},
		{name: "rm not hex", args: []string{"cache", "rm", keyEval, "not-a-key"}, code: 2, stderr: []string{"cache rm not-a-key"}},
		{name: "rm nothing", args: []string{"cache", "rm"}, code: 2},

		{name: "purge task", args: []string{"cache", "purge", "--pipeline", "train", "--task", "fit"},
			stdout: []string{"purged task fit of pipeline train: 2 entries deleted\n"}, left: []string{keyEval, keyChart}},
		{name: "purge pipeline", args: []string{"cache", "purge", "--pipeline", "report"},
			stdout: []string{"purged pipeline report: 1 entry deleted\n"}, left: []string{keyFit0, keyFit1, keyEval}},
		{name: "purge all json", args: []string{"cache", "purge", "--all", "-o", "json"}, left: []string{},
			check: func(t *testing.T, c *apitest.Cache, r result) {
				var d api.CacheDeleted
				mustDecode(t, r.stdout, &d)
				if d.Deleted != 4 {
					t.Errorf("deleted %+v", d)
				}
			}},
		{name: "purge without a filter", args: []string{"cache", "purge"}, code: 2, stderr: []string{"say so with --all"}},
		{name: "purge all and a pipeline", args: []string{"cache", "purge", "--all", "--pipeline", "train"}, code: 2,
			stderr: []string{"give --all or --pipeline, not both"}},
		{name: "purge task without pipeline", args: []string{"cache", "purge", "--task", "fit"}, code: 2, stderr: []string{"give --pipeline too"}},
		{name: "purge bad pipeline", args: []string{"cache", "purge", "--pipeline", "a b"}, code: 2, stderr: []string{`pipeline name "a b"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := apitest.NewCache()
			seedCLICache(t, fake)
			url, token := newCacheServer(t, fake)
			r := call(append([]string{"--server", url, "--token", token}, c.args...)...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
			}
			for _, want := range c.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			for _, want := range c.stderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			left := c.left
			if left == nil {
				left = all
			}
			left = slices.Sorted(slices.Values(left))
			if got := fake.Keys(); !slices.Equal(got, left) {
				t.Errorf("left %v, want %v", got, left)
			}
			if c.check != nil {
				c.check(t, fake, r)
			}
		})
	}
}

// TestCacheCommandsEmpty: an empty cache lists as such, in both forms.
func TestCacheCommandsEmpty(t *testing.T) {
	url, token := newCacheServer(t, apitest.NewCache())
	r := call("--server", url, "--token", token, "cache", "ls")
	if r.code != 0 || r.stdout != "no entries\ncache: 0 entries, 0 B\n" {
		t.Errorf("ls: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = call("--server", url, "--token", token, "cache", "ls", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"items": []`) {
		t.Errorf("ls -o json: exit %d\n%s", r.code, r.stdout)
	}
}

// TestCacheCommandsNeedAServer: without a server, each says what it needs.
func TestCacheCommandsNeedAServer(t *testing.T) {
	t.Setenv(serverEnv, "")
	for _, args := range [][]string{{"cache", "ls"}, {"cache", "rm", keyEval}, {"cache", "purge", "--all"}} {
		r := call(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "needs a server: pass --server URL or set TASUKI_SERVER") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestCacheSizeText(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {3 << 20, "3.0 MiB"}, {10 << 30, "10.0 GiB"}, {5 << 40, "5.0 TiB"}} {
		if got := sizeText(c.n); got != c.want {
			t.Errorf("sizeText(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
