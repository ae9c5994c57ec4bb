package spec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics and always returns either a
// pipeline that validates and has a graph, or a non-empty ErrorList of
// well-formed entries.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*", "testdata/invalid/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("name: x\ntasks: [{id: a, run: b, needs: [a]}]\n"))
	f.Add([]byte("name: &a x\ntasks: [{id: *a, run: [*a], retry: {attempts: 1, <<: {jitter: 1}}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err == nil {
			if p == nil {
				t.Fatal("no pipeline and no error")
			}
			if verr := p.Validate(); verr != nil {
				t.Fatalf("Parse accepted a pipeline that Validate rejects: %v", verr)
			}
			return
		}
		if p != nil {
			t.Fatal("a pipeline together with an error")
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error is not a non-empty ErrorList: %T %v", err, err)
		}
		for _, e := range list {
			if e == nil || e.Line < 0 || e.Col < 0 || e.Msg == "" || e.File != "fuzz.yaml" {
				t.Fatalf("bad entry %#v", e)
			}
		}
	})
}
