package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/server"
)

// TestConfigCache reads cache_max_bytes and cache_ttl from the file and
// the environment, the variables winning, and refuses what it cannot read.
func TestConfigCache(t *testing.T) {
	c := server.DefaultConfig()
	if c.CacheMaxBytes != 10<<30 || c.CacheTTL.D() != 30*24*time.Hour {
		t.Fatalf("defaults: cache_max_bytes %s, cache_ttl %s; want 10GiB and 720h", c.CacheMaxBytes, c.CacheTTL.D())
	}
	path := filepath.Join(t.TempDir(), "server.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cache_max_bytes: 512MiB\ncache_ttl: 7d\n")
	if err := server.LoadConfigFile(&c, path); err != nil || c.CacheMaxBytes != 512<<20 || c.CacheTTL.D() != 7*24*time.Hour {
		t.Fatalf("from the file: %s, %s, %v", c.CacheMaxBytes, c.CacheTTL.D(), err)
	}
	env := map[string]string{"TASUKI_CACHE_MAX_BYTES": "none", "TASUKI_CACHE_TTL": "12h"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := server.ApplyEnv(&c, lookup); err != nil || c.CacheMaxBytes != logs.Size(-1) || c.CacheTTL.D() != 12*time.Hour {
		t.Fatalf("from the environment: %s, %s, %v", c.CacheMaxBytes, c.CacheTTL.D(), err)
	}
	env = map[string]string{"TASUKI_CACHE_MAX_BYTES": "10GB", "TASUKI_CACHE_TTL": "a month"}
	err := server.ApplyEnv(&c, lookup)
	if err == nil || !strings.Contains(err.Error(), "TASUKI_CACHE_MAX_BYTES") || !strings.Contains(err.Error(), "TASUKI_CACHE_TTL") {
		t.Errorf("bad variables: %v", err)
	}
	for _, bad := range []string{"cache_max_bytes: lots\n", "cache_ttl: -1h\n", "cache_max_byte: 1GiB\n"} {
		write(bad)
		if err := server.LoadConfigFile(&c, path); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
