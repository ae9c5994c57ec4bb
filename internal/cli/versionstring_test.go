package cli

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeBuildDate(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	cases := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"commit and its time", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-07T03:15:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"(devel) (commit 0123456789ab, 2026-12-07T03:15:00Z, modified, go1.26.0)"},
		{"a date alone", &debug.BuildInfo{Main: debug.Module{Version: "v1.0.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.time", Value: "2026-12-07T03:15:00Z"}}},
			"v1.0.0 (2026-12-07T03:15:00Z)"},
		{"a pseudo-version names commit and time", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261207031500-0123456789ab"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-07T03:15:00Z"}}},
			"v0.0.0-20261207031500-0123456789ab"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := describeBuild("", c.bi); got != c.want {
				t.Errorf("describeBuild = %q, want %q", got, c.want)
			}
		})
	}
}

// TestVersionStringLinkTime sets the link-time commit and date as -X would
// and checks that they replace what Go recorded: the date always, the
// commit with the modified flag of another revision dropped.
func TestVersionStringLinkTime(t *testing.T) {
	saved := [2]string{buildCommit, buildDate}
	t.Cleanup(func() { buildCommit, buildDate = saved[0], saved[1] })
	buildCommit, buildDate = "fedcba9876543210fedcba9876543210fedcba98", "2026-12-24T09:00:00Z"
	a := &app{version: "v1.2.0"}
	got := a.versionString()
	if !strings.HasPrefix(got, "v1.2.0 (commit fedcba987654, 2026-12-24T09:00:00Z, ") || strings.Contains(got, "modified") {
		t.Errorf("versionString = %q, want v1.2.0 with the link-time commit and date, and no modified flag", got)
	}
	if strings.Count(got, "commit ") != 1 || strings.Count(got, "2026-") != 1 {
		t.Errorf("versionString = %q names a commit or a date twice", got)
	}
	buildCommit = ""
	if got := a.versionString(); !strings.Contains(got, "2026-12-24T09:00:00Z") {
		t.Errorf("with a date alone, versionString = %q", got)
	}
	if r := call("--version"); r.code != 0 || !strings.Contains(r.stdout, "2026-12-24T09:00:00Z") {
		t.Errorf("--version = %q, exit %d", r.stdout, r.code)
	}
}
