package server

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/artifact/s3store"
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
