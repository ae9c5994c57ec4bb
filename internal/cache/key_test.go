package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// writeFiles creates files under dir, by slash-separated relative path.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fixture is a map item's attempt with a bit of everything a key covers,
// its files under a fresh directory.
func fixture(t testing.TB) Input {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"job/data/users.csv":      "id,name\n1,ana\n",
		"job/data/a.json":         `{"a":1}`,
		"job/data/b.json":         `{"b":2}`,
		"job/data/notes.txt":      "not an input",
		"job/ref/eu/regions.txt":  "eu-west\n",
		"job/ref/us/regions.txt":  "us-east\n",
		"job/users/ana.json":      `{"name":"ana"}`,
		"elsewhere/unrelated.txt": "x",
	})
	return Input{
		Spec: &attempt.Spec{
			Kind:    "shell",
			Body:    json.RawMessage(`{"shell": "python3 train.py", "argv": null}`),
			Workdir: "job",
			Env: map[string]string{
				"TASUKI_PARAM_DATE":     "2026-11-21",
				"TASUKI_INTERVAL_START": "2026-11-21T00:00:00Z",
				"REGION":                "eu",
				"TASUKI_HOME":           "/var/lib/tasuki",
				"TASUKI_RUN_ID":         "41",
				"TASUKI_ATTEMPT":        "1",
				"TASUKI_TRIGGER":        "schedule",
				"TASUKI_PIPELINE":       "train",
				"TASUKI_TASK_ID":        "fit",
				"TRACEPARENT":           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			},
			Needs: map[string]json.RawMessage{
				"extract": json.RawMessage(`{"rows": 42, "path": "s3://bucket/x"}`),
				"ping":    nil,
			},
			Secrets: attempt.SecretEnv{"DB_PASSWORD": "correct-horse-battery"},
			Artifacts: []artifact.Need{
				{Need: "extract", File: artifact.File{Path: "out/part-0.parquet", Digest: "sha256:aa", Size: 10}},
			},
		},
		Dir:     dir,
		Inputs:  []string{"data/users.csv", "data/*.json", "ref", "users/ana.json"},
		Outputs: []string{"model.bin", "metrics/*.json"},
		Version: "2",
		Item:    json.RawMessage(`{"user": "ana", "region": "eu"}`),
	}
}

// clone copies an input deeply enough for a case to change it.
func clone(in Input) Input {
	s := *in.Spec
	s.Env = maps.Clone(s.Env)
	s.Needs = maps.Clone(s.Needs)
	s.Secrets = maps.Clone(s.Secrets)
	s.Artifacts = slices.Clone(s.Artifacts)
	in.Spec = &s
	in.Inputs = slices.Clone(in.Inputs)
	in.Outputs = slices.Clone(in.Outputs)
	return in
}

func mustKey(t testing.TB, in Input) string {
	t.Helper()
	k, err := Key(context.Background(), in)
	if err != nil {
		t.Fatalf("Key: %v", err)
	}
	return k
}

// TestCacheKeyChanges says, for each change, whether it must change the key:
// what differs per run or attempt must not, anything the result may
// depend on must.
func TestCacheKeyChanges(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(t *testing.T, in *Input)
		same   bool
	}{
		// Per run and per attempt: the same work.
		{name: "run id", same: true, change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_RUN_ID"] = "42" }},
		{name: "attempt", same: true, change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_ATTEMPT"] = "3" }},
		{name: "home", same: true, change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_HOME"] = "/srv/other" }},
		{name: "trigger", same: true, change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_TRIGGER"] = "manual" }},
		{name: "pipeline name", same: true, change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_PIPELINE"] = "train-copy" }},
		{name: "task id", same: true, change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_TASK_ID"] = "fit2" }},
		{name: "trace context", same: true, change: func(t *testing.T, in *Input) { delete(in.Spec.Env, "TRACEPARENT") }},
		{name: "executor's files", same: true, change: func(t *testing.T, in *Input) {
			in.Spec.Env["TASUKI_NEED_EXTRACT"] = "/tmp/x/needs/extract.json"
			in.Spec.Env["TASUKI_RESULT"] = "/tmp/x/result.json"
			in.Spec.Env["TASUKI_ARTIFACTS"] = "/tmp/x/artifacts"
			in.Spec.Env["TASUKI_DATASET_RAW_ORDERS"] = "/tmp/x/ds.json"
		}},
		{name: "timeout, masks, produces", same: true, change: func(t *testing.T, in *Input) {
			in.Spec.Timeout = attempt.Duration(60e9)
			in.Spec.Mask = []string{"x"}
			in.Spec.Produces = []string{"raw.orders"}
		}},
		{name: "body spacing and key order", same: true, change: func(t *testing.T, in *Input) {
			in.Spec.Body = json.RawMessage("{\n  \"argv\": null,\n  \"shell\": \"python3 train.py\"\n}")
		}},
		{name: "need result spacing", same: true, change: func(t *testing.T, in *Input) {
			in.Spec.Needs["extract"] = json.RawMessage(`{"path":"s3://bucket/x","rows":42}`)
		}},
		{name: "item key order", same: true, change: func(t *testing.T, in *Input) { in.Item = json.RawMessage(`{"region":"eu","user":"ana"}`) }},
		{name: "order of inputs and outputs", same: true, change: func(t *testing.T, in *Input) {
			slices.Reverse(in.Inputs)
			slices.Reverse(in.Outputs)
		}},
		{name: "another machine", same: true, change: func(t *testing.T, in *Input) {
			other := t.TempDir()
			if err := os.CopyFS(other, os.DirFS(in.Dir)); err != nil {
				t.Fatal(err)
			}
			in.Dir = other
		}},
		{name: "a file no input names", same: true, change: func(t *testing.T, in *Input) {
			writeFiles(t, in.Dir, map[string]string{"job/data/notes.txt": "changed", "elsewhere/unrelated.txt": "y"})
		}},

		// What the result may depend on.
		{name: "param", change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_PARAM_DATE"] = "2026-11-22" }},
		{name: "interval", change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_INTERVAL_START"] = "2026-11-22T00:00:00Z" }},
		{name: "env", change: func(t *testing.T, in *Input) { in.Spec.Env["REGION"] = "us" }},
		{name: "new variable", change: func(t *testing.T, in *Input) { in.Spec.Env["DEBUG"] = "" }},
		{name: "input file byte", change: func(t *testing.T, in *Input) {
			writeFiles(t, in.Dir, map[string]string{"job/data/users.csv": "id,name\n1,anb\n"})
		}},
		{name: "file under an input directory", change: func(t *testing.T, in *Input) {
			writeFiles(t, in.Dir, map[string]string{"job/ref/us/regions.txt": "us-west\n"})
		}},
		{name: "file added under an input directory", change: func(t *testing.T, in *Input) {
			writeFiles(t, in.Dir, map[string]string{"job/ref/ap/regions.txt": ""})
		}},
		{name: "file renamed under an input directory", change: func(t *testing.T, in *Input) {
			if err := os.Rename(filepath.Join(in.Dir, "job/ref/us"), filepath.Join(in.Dir, "job/ref/usa")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "new file matching a glob", change: func(t *testing.T, in *Input) {
			writeFiles(t, in.Dir, map[string]string{"job/data/c.json": "{}"})
		}},
		{name: "another input", change: func(t *testing.T, in *Input) { in.Inputs = append(in.Inputs, "data/notes.txt") }},
		{name: "item", change: func(t *testing.T, in *Input) { in.Item = json.RawMessage(`{"user": "bob", "region": "eu"}`) }},
		{name: "no item", change: func(t *testing.T, in *Input) { in.Item = nil }},
		{name: "null item", change: func(t *testing.T, in *Input) { in.Item = json.RawMessage(`null`) }},
		{name: "need result", change: func(t *testing.T, in *Input) {
			in.Spec.Needs["extract"] = json.RawMessage(`{"rows": 43, "path": "s3://bucket/x"}`)
		}},
		{name: "need result number text", change: func(t *testing.T, in *Input) {
			in.Spec.Needs["extract"] = json.RawMessage(`{"rows": 42.0, "path": "s3://bucket/x"}`)
		}},
		{name: "need without result gets one", change: func(t *testing.T, in *Input) { in.Spec.Needs["ping"] = json.RawMessage(`null`) }},
		{name: "need file", change: func(t *testing.T, in *Input) { in.Spec.Artifacts[0].Digest = "sha256:bb" }},
		{name: "version", change: func(t *testing.T, in *Input) { in.Version = "3" }},
		{name: "body", change: func(t *testing.T, in *Input) { in.Spec.Body = json.RawMessage(`{"shell": "python3 train.py --fast"}`) }},
		{name: "kind", change: func(t *testing.T, in *Input) { in.Spec.Kind = "sql" }},
		{name: "workdir", change: func(t *testing.T, in *Input) {
			if err := os.CopyFS(filepath.Join(in.Dir, "job2"), os.DirFS(filepath.Join(in.Dir, "job"))); err != nil {
				t.Fatal(err)
			}
			in.Spec.Workdir = "job2"
		}},
		{name: "outputs", change: func(t *testing.T, in *Input) { in.Outputs = in.Outputs[:1] }},
		{name: "secret value", change: func(t *testing.T, in *Input) { in.Spec.Secrets["DB_PASSWORD"] = "correct-horse-battery!" }},
		{name: "secret under another name", change: func(t *testing.T, in *Input) {
			in.Spec.Secrets = attempt.SecretEnv{"DB_PASS": "correct-horse-battery"}
		}},
		{name: "key expression", change: func(t *testing.T, in *Input) { in.KeyExpr = `"2026-11-21"` }},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := fixture(t)
			before := mustKey(t, in)
			if again := mustKey(t, in); again != before {
				t.Fatalf("the same input gave two keys: %s and %s", before, again)
			}
			changed := clone(in)
			c.change(t, &changed)
			after := mustKey(t, changed)
			if (after == before) != c.same {
				t.Errorf("key before %s, after %s: want the same: %v", before, after, c.same)
			}
		})
	}
}

// TestCacheKeyExprReplacesContext: with cache.key, only the definition, the
// files, the version, the item and the expression's value count.
func TestCacheKeyExprReplacesContext(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(t *testing.T, in *Input)
		same   bool
	}{
		{name: "param", same: true, change: func(t *testing.T, in *Input) { in.Spec.Env["TASUKI_PARAM_DATE"] = "2026-11-22" }},
		{name: "env", same: true, change: func(t *testing.T, in *Input) { in.Spec.Env["REGION"] = "us" }},
		{name: "need result", same: true, change: func(t *testing.T, in *Input) { in.Spec.Needs["extract"] = json.RawMessage(`1`) }},
		{name: "need file", same: true, change: func(t *testing.T, in *Input) { in.Spec.Artifacts = nil }},
		{name: "secret", same: true, change: func(t *testing.T, in *Input) { in.Spec.Secrets["DB_PASSWORD"] = "other" }},
		{name: "key value", change: func(t *testing.T, in *Input) { in.KeyExpr = `"2026-11-22"` }},
		{name: "input file", change: func(t *testing.T, in *Input) {
			writeFiles(t, in.Dir, map[string]string{"job/users/ana.json": `{"name":"Ana"}`})
		}},
		{name: "item", change: func(t *testing.T, in *Input) { in.Item = json.RawMessage(`"bob"`) }},
		{name: "version", change: func(t *testing.T, in *Input) { in.Version = "" }},
		{name: "body", change: func(t *testing.T, in *Input) { in.Spec.Body = json.RawMessage(`{"shell": "true"}`) }},
		{name: "outputs", change: func(t *testing.T, in *Input) { in.Outputs = nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := fixture(t)
			in.KeyExpr = `"2026-11-21"`
			before := mustKey(t, in)
			changed := clone(in)
			c.change(t, &changed)
			if after := mustKey(t, changed); (after == before) != c.same {
				t.Errorf("key before %s, after %s: want the same: %v", before, after, c.same)
			}
		})
	}
}

// TestCacheGoldenKey pins the scheme: a change of what a key covers or of how
// it is encoded must be deliberate (a new KeyScheme) and must update this
// key; an accidental one fails here instead of silently turning every
// stored entry into a miss (or, worse, two inputs into one key).
func TestCacheGoldenKey(t *testing.T) {
	in := fixture(t)
	const golden = "a9d32b0f4a451962c78d8998936810091bca881ffab058d5c8b013f009d6a38f"
	if got := mustKey(t, in); got != golden {
		t.Errorf("Key of the fixed input = %s, want %s (KeyScheme %q)", got, golden, KeyScheme)
	}
	// And without files, item, needs or secrets.
	const goldenBare = "65c87f97f3b8a16fe71eab23704572c5b6c099051e56eade111c383d12a53e22"
	bare := Input{Spec: &attempt.Spec{Kind: "shell", Body: json.RawMessage(`{"shell":"echo hi"}`)}}
	if got := mustKey(t, bare); got != goldenBare {
		t.Errorf("Key of the bare input = %s, want %s", got, goldenBare)
	}

	// The bare key, written out byte by byte as the package documents
	// the encoding: strings with a 64-bit big-endian length, lists with a
	// count, a tag before each value.
	var b []byte
	u64 := func(n int) { b = binary.BigEndian.AppendUint64(b, uint64(n)) }
	str := func(s string) { u64(len(s)); b = append(b, s...) }
	str("tasuki cache key v1")
	str("kind")
	str("shell")
	str("body")
	b = append(b, '{')
	u64(1)
	str("shell")
	b = append(b, 's')
	str("echo hi")
	str("workdir")
	str("")
	str("outputs")
	u64(0)
	str("version")
	str("")
	str("item")
	b = append(b, '-')
	for _, f := range []string{"env", "secrets", "needs", "need files", "inputs", "files"} {
		str(f)
		u64(0)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != goldenBare {
		t.Errorf("the bare key written out by hand is %x, not %s", sum, goldenBare)
	}
}

// TestCacheKeyInputs covers how patterns resolve: globs that match nothing,
// ** at any depth, paths relative to the working directory or absolute.
func TestCacheKeyInputs(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a/1.csv":     "1",
		"a/b/2.csv":   "2",
		"a/b/c/3.csv": "3",
		"a/b/c/4.txt": "4",
	})
	spec := &attempt.Spec{Kind: "shell"}
	files := func(t *testing.T, inputs ...string) []string {
		t.Helper()
		got, err := (*Hasher)(nil).inputFiles(context.Background(), dir, inputs)
		if err != nil {
			t.Fatalf("inputFiles(%q): %v", inputs, err)
		}
		var out []string
		for _, f := range got {
			out = append(out, f.rel+":"+string(f.kind))
		}
		return out
	}
	for _, c := range []struct {
		inputs []string
		want   []string
	}{
		{[]string{"nothing/*.csv"}, nil},
		{[]string{"a/*.csv"}, []string{"a/1.csv:F"}},
		{[]string{"a/**/*.csv"}, []string{"a/1.csv:F", "a/b/2.csv:F", "a/b/c/3.csv:F"}},
		{[]string{"**/c/*"}, []string{"a/b/c/3.csv:F", "a/b/c/4.txt:F"}},
		{[]string{"a/b/c"}, []string{"a/b/c:D", "a/b/c/3.csv:F", "a/b/c/4.txt:F"}},
		{[]string{"a/b/c", "a/b/c/*.csv", "a/b/c/3.csv"}, []string{"a/b/c:D", "a/b/c/3.csv:F", "a/b/c/4.txt:F"}},
		{[]string{"a/?.csv", "a/[0-9].csv"}, []string{"a/1.csv:F"}},
		{[]string{filepath.Join(dir, "a", "b", "*.csv")}, []string{"a/b/2.csv:F"}},
		{[]string{"a/1.csv/*"}, nil},
	} {
		if got := files(t, c.inputs...); !slices.Equal(got, c.want) {
			t.Errorf("inputs %q reach %q, want %q", c.inputs, got, c.want)
		}
	}

	// A glob that matches nothing is no error and no file; the key still
	// says it was declared.
	none, err := Key(context.Background(), Input{Spec: spec, Dir: dir, Inputs: []string{"nothing/*.csv"}})
	if err != nil {
		t.Fatal(err)
	}
	if none == mustKey(t, Input{Spec: spec, Dir: dir}) {
		t.Error("declaring an input that matches nothing left the key as it was without inputs")
	}
	writeFiles(t, dir, map[string]string{"nothing/x.csv": ""})
	if mustKey(t, Input{Spec: spec, Dir: dir, Inputs: []string{"nothing/*.csv"}}) == none {
		t.Error("a first file matching the glob left the key unchanged")
	}
}

// TestCacheKeyOddFiles: links, loops of links and pipes in an input directory
// are recorded without being followed or read, so the key ends.
func TestCacheKeyOddFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"in/data.txt": "x", "target.txt": "linked content"})
	for _, l := range []struct{ target, name string }{
		{"..", "in/loop"},                   // a directory link back up: not followed
		{"../target.txt", "in/file-link"},   // a file link: hashed by content
		{"missing.txt", "in/dangling-link"}, // recorded by its target
	} {
		if err := os.Symlink(l.target, filepath.Join(dir, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "in", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := Input{Spec: &attempt.Spec{Kind: "shell"}, Dir: dir, Inputs: []string{"in"}}
	before := mustKey(t, in)
	got, err := (*Hasher)(nil).inputFiles(context.Background(), dir, in.Inputs)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, f := range got {
		kinds = append(kinds, f.rel+":"+string(f.kind))
	}
	want := []string{"in:D", "in/dangling-link:L", "in/data.txt:F", "in/file-link:F", "in/loop:L", "in/pipe:O"}
	if !slices.Equal(kinds, want) {
		t.Errorf("entries %q, want %q", kinds, want)
	}
	writeFiles(t, dir, map[string]string{"target.txt": "other content"})
	if mustKey(t, in) == before {
		t.Error("the content behind a file link changed and the key did not")
	}
}

func TestCacheKeyErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"data/a.csv": "a"})
	spec := &attempt.Spec{Kind: "shell", Body: json.RawMessage(`{}`)}
	for _, c := range []struct {
		name string
		in   Input
		want string
	}{
		{"no spec", Input{}, "no attempt spec"},
		{"missing path", Input{Spec: spec, Dir: dir, Inputs: []string{"data/x.csv"}}, "inputs: data/x.csv: no such file"},
		{"missing directory", Input{Spec: spec, Dir: dir, Inputs: []string{"nope"}}, "inputs: nope: no such file"},
		{"bad glob", Input{Spec: spec, Dir: dir, Inputs: []string{"data/[a.csv"}}, "inputs: data/[a.csv: not a valid glob"},
		{"empty path", Input{Spec: spec, Dir: dir, Inputs: []string{""}}, "inputs: : empty path"},
		{"body", Input{Spec: &attempt.Spec{Kind: "shell", Body: json.RawMessage(`{"shell":`)}}, "the task's body: not valid JSON"},
		{"item", Input{Spec: spec, Item: json.RawMessage(`1 2`)}, "the map item: not valid JSON: more than one value"},
		{"need", Input{Spec: &attempt.Spec{Kind: "shell", Needs: map[string]json.RawMessage{"up": json.RawMessage(`{x}`)}}}, "the result of need up: not valid JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := Key(context.Background(), c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Key = %q, %v; want an error containing %q", k, err, c.want)
			}
		})
	}

	if runtime.GOOS != "windows" && os.Getuid() != 0 {
		locked := filepath.Join(dir, "data", "locked")
		writeFiles(t, dir, map[string]string{"data/locked/x": "x"})
		if err := os.Chmod(locked, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(locked, 0o755) })
		_, err := Key(context.Background(), Input{Spec: spec, Dir: dir, Inputs: []string{"data"}})
		if err == nil || !strings.Contains(err.Error(), "inputs: data: data/locked: permission denied") {
			t.Errorf("an unreadable directory: %v", err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Key(ctx, Input{Spec: spec, Dir: dir, Inputs: []string{"data/a.csv"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Key with a cancelled context: %v", err)
	}
}

// TestCacheKeySecretsNeverInClear: no secret value appears in anything Key
// returns, error messages included.
func TestCacheKeySecretsNeverInClear(t *testing.T) {
	const secret = "s3cr3t-value-0123456789"
	in := Input{Spec: &attempt.Spec{Kind: "shell", Secrets: attempt.SecretEnv{"TOKEN": secret}, Env: map[string]string{"TOKEN": "shadowed"}}}
	k := mustKey(t, in)
	if strings.Contains(k, secret) {
		t.Fatal("the key holds the secret")
	}
	// The variable a secret overrides does not count.
	in.Spec.Env["TOKEN"] = "other"
	if mustKey(t, in) != k {
		t.Error("the value a secret overrides changed the key")
	}
	if d1, d2 := SecretDigest("A", "BC"), SecretDigest("AB", "C"); d1 == d2 {
		t.Error("SecretDigest does not separate name and value")
	}
}

// sparseFile creates a file of size bytes that takes no room on disk.
func sparseFile(t testing.TB, size int64) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestCacheKeyLargeInputStreams hashes a 100 MB input with a few hundred KB of
// memory: the file is read a chunk at a time, never held.
func TestCacheKeyLargeInputStreams(t *testing.T) {
	const size = 100 << 20
	name := sparseFile(t, size)
	in := Input{Spec: &attempt.Spec{Kind: "shell"}, Dir: filepath.Dir(name), Inputs: []string{"big.bin"}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	k := mustKey(t, in)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("hashing a %d MB input allocated %d KB; it must stream", size>>20, alloc>>10)
	}
	if k == mustKey(t, Input{Spec: in.Spec, Dir: in.Dir}) {
		t.Error("the input did not count")
	}
}

// BenchmarkKeyLargeInput measures hashing a 100 MB input (B/op shows it
// is not held in memory).
func BenchmarkCacheKeyLargeInput(b *testing.B) {
	const size = 100 << 20
	name := sparseFile(b, size)
	in := Input{Spec: &attempt.Spec{Kind: "shell"}, Dir: filepath.Dir(name), Inputs: []string{"big.bin"}}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Key(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKey measures a typical key: a body, a dozen variables, two
// needs, a few small input files.
func BenchmarkCacheKey(b *testing.B) {
	in := fixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Key(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
