package server

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/artifact/s3store"
	"github.com/tasuki-dev/tasuki/internal/lease"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

func TestOpenArtifactStore(t *testing.T) {
	env := func(string) string { return "" }
	st, err := openArtifactStore("/data", "", env)
	if d, ok := st.(*artifact.Dir); err != nil || !ok || d.Root != filepath.Join("/data", "artifacts") {
		t.Errorf("no setting: %#v, %v; want a Dir in the data directory", st, err)
	}
	st, err = openArtifactStore("/data", "s3://bucket/tasuki?endpoint=minio:9000&insecure=true", env)
	if s, ok := st.(*s3store.Store); err != nil || !ok || s.String() != "s3://bucket/tasuki/" {
		t.Errorf("s3: %v, %v", st, err)
	}
	if _, err := openArtifactStore("/data", "ftp://bucket", env); err == nil || !strings.Contains(err.Error(), "expected s3://") {
		t.Errorf("a bad address: %v", err)
	}
}

// TestConfigArtifacts reads artifact_store and artifact_max_file from the
// file and the environment, the variables winning, and refuses what it
// cannot read.
func TestConfigArtifacts(t *testing.T) {
	c := DefaultConfig()
	if c.ArtifactStore != "" || c.ArtifactMaxFile != 1<<30 || c.artifactMaxFile() != lease.DefaultArtifactMaxFile {
		t.Fatalf("defaults: artifact_store %q, artifact_max_file %s; want none and 1GiB", c.ArtifactStore, c.ArtifactMaxFile)
	}
	path := filepath.Join(t.TempDir(), "server.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("artifact_store: s3://shared/tasuki?endpoint=minio.internal:9000\nartifact_max_file: 256MiB\n")
	if err := LoadConfigFile(&c, path); err != nil || c.ArtifactStore != "s3://shared/tasuki?endpoint=minio.internal:9000" || c.artifactMaxFile() != 256<<20 {
		t.Fatalf("from the file: %q, %s, %v", c.ArtifactStore, c.ArtifactMaxFile, err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the file's settings do not validate: %v", err)
	}
	env := map[string]string{"TASUKI_ARTIFACT_STORE": "s3://other/x", "TASUKI_ARTIFACT_MAX_FILE": "none"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := ApplyEnv(&c, lookup); err != nil || c.ArtifactStore != "s3://other/x" || c.ArtifactMaxFile != logs.Size(-1) || c.artifactMaxFile() != math.MaxInt64 {
		t.Fatalf("from the environment: %q, %s, %v", c.ArtifactStore, c.ArtifactMaxFile, err)
	}
	env = map[string]string{"TASUKI_ARTIFACT_MAX_FILE": "1GB"}
	if err := ApplyEnv(&c, lookup); err == nil || !strings.Contains(err.Error(), "TASUKI_ARTIFACT_MAX_FILE") {
		t.Errorf("a bad TASUKI_ARTIFACT_MAX_FILE: %v", err)
	}
	for _, bad := range []string{"artifact_max_file: big\n", "artifact_max_file: -1\n", "artifact_store: [s3]\n"} {
		write(bad)
		c := DefaultConfig()
		if err := LoadConfigFile(&c, path); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

// TestNewRefusesBadArtifactStore: an artifact_store the server cannot
// use stops it at start, with the setting named, before anything is
// written, and without repeating a secret put in the address.
func TestNewRefusesBadArtifactStore(t *testing.T) {
	cases := []struct{ name, store, want string }{
		{"another scheme", "ftp://bucket/tasuki", `artifact_store: artifact store "ftp://bucket/tasuki": expected s3://`},
		{"a path", "/mnt/shared/artifacts", "expected s3://"},
		{"no bucket", "s3:///tasuki", "expected s3://"},
		{"a bad option", "s3://bucket?insecure=maybe", `insecure="maybe": expected true or false`},
		{"credentials in the address", "s3://AKIAEXAMPLE:hunter2@bucket/tasuki", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Home, cfg.Pipelines, cfg.ArtifactStore = filepath.Join(t.TempDir(), "home"), t.TempDir(), c.store
			s, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard})
			if err == nil {
				s.store.Close()
				t.Fatalf("started with artifact_store %q", c.store)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	// A bad setting is found before the data directory is touched.
	cfg := DefaultConfig()
	cfg.Home, cfg.Pipelines, cfg.ArtifactStore = filepath.Join(t.TempDir(), "home"), t.TempDir(), "ftp://bucket"
	if _, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard}); err == nil {
		t.Fatal("started")
	}
	if _, err := os.Stat(cfg.Home); !os.IsNotExist(err) {
		t.Errorf("the refused server created its data directory: %v", err)
	}
}

// TestNewWiresArtifactSettings: the runner and the broker share the store
// artifact_store names, the runner keeps the results of map needs there
// for remote workers, and the broker bounds uploads by
// artifact_max_file.
func TestNewWiresArtifactSettings(t *testing.T) {
	cases := []struct {
		name    string
		store   string
		maxFile logs.Size
		wantMax int64
	}{
		{"defaults", "", lease.DefaultArtifactMaxFile, lease.DefaultArtifactMaxFile},
		{"a bucket, 64MiB", "s3://shared/tasuki?endpoint=127.0.0.1:9&insecure=true", 64 << 20, 64 << 20},
		{"no bound", "", -1, math.MaxInt64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Home, cfg.Pipelines, cfg.ArtifactStore, cfg.ArtifactMaxFile = t.TempDir(), t.TempDir(), c.store, c.maxFile
			s, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			defer s.store.Close()
			if s.broker.Artifacts != s.runner.Artifacts {
				t.Error("the broker and the runner keep artifacts in different stores")
			}
			if !s.runner.ShareMapNeeds {
				t.Error("the runner keeps the results of map needs to itself: remote workers would get counts")
			}
			switch st := s.runner.Artifacts.(type) {
			case *artifact.Dir:
				if c.store != "" || st.Root != filepath.Join(cfg.Home, "artifacts") {
					t.Errorf("a Dir at %s for artifact_store %q", st.Root, c.store)
				}
			case *s3store.Store:
				if st.String() != "s3://shared/tasuki/" {
					t.Errorf("the bucket %s for artifact_store %q", st, c.store)
				}
			default:
				t.Errorf("store %T", st)
			}
			if s.broker.ArtifactMaxFile != c.wantMax {
				t.Errorf("the broker takes files up to %d bytes, want %d", s.broker.ArtifactMaxFile, c.wantMax)
			}
		})
	}
}
