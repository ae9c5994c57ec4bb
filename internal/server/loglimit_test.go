package server_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/server"
)

// TestConfigLogLimit reads log_limit from the file and TASUKI_LOG_LIMIT,
// the variable winning, and refuses a size it cannot read.
func TestConfigLogLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(path, []byte("log_limit: 2MiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := server.DefaultConfig()
	if c.LogLimit != 0 {
		t.Fatalf("default log_limit = %s, want 0 (logs.DefaultLimit)", c.LogLimit)
	}
	if err := server.LoadConfigFile(&c, path); err != nil || c.LogLimit != 2<<20 {
		t.Fatalf("log_limit from the file = %s, %v; want 2MiB", c.LogLimit, err)
	}
	env := map[string]string{"TASUKI_LOG_LIMIT": "none"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := server.ApplyEnv(&c, lookup); err != nil || c.LogLimit != logs.Size(-1) {
		t.Fatalf("TASUKI_LOG_LIMIT=none gives %s, %v", c.LogLimit, err)
	}
	env["TASUKI_LOG_LIMIT"] = "100MB"
	if err := server.ApplyEnv(&c, lookup); err == nil {
		t.Fatal("TASUKI_LOG_LIMIT=100MB was accepted")
	}
	if err := os.WriteFile(path, []byte("log_limit: lots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := server.LoadConfigFile(&c, path); err == nil {
		t.Fatal("log_limit: lots was accepted")
	}
}
