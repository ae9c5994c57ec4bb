package api_test

import (
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// TestNamespace checks how a pipeline file's path names its namespace: the
// first folder under the pipelines directory, however the two are spelled.
func TestNamespace(t *testing.T) {
	for _, c := range []struct{ dir, file, want string }{
		{"pipelines", "pipelines/hello.yaml", ""},
		{"pipelines", "pipelines/finance/ledger.yaml", "finance"},
		{"pipelines", "pipelines/ml/deep/train.yaml", "ml"},
		{"./pipelines/", "pipelines/finance/ledger.yaml", "finance"},
		{"/srv/pipelines", "/srv/pipelines/finance/a.yml", "finance"},
		{"/srv/pipelines", "/srv/pipelines-old/finance/a.yml", ""}, // a sibling, not inside
		{"/srv/pipelines", "/elsewhere/finance/a.yml", ""},
		{".", "finance/a.yaml", "finance"},
		{".", "a.yaml", ""},
	} {
		if got := api.Namespace(c.dir, c.file); got != c.want {
			t.Errorf("Namespace(%q, %q) = %q, want %q", c.dir, c.file, got, c.want)
		}
	}
}
