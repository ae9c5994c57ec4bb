package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// projectTexts are the files whose words a reader follows: the docs, the
// examples and their comments.
func projectTexts(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, g := range []string{"*.md", "docs/*.md", "examples/*", "examples/*/*", "bench/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
				out = append(out, f)
			}
		}
	}
	if len(out) < 8 {
		t.Fatalf("found only %v", out)
	}
	return out
}

// TestDocsPointAtFilesThatExist: a document or example that names a file
// of the project (DESIGN.md, docs/server.md, a link) names one that exists.
func TestDocsPointAtFilesThatExist(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	mdName := regexp.MustCompile(`(?:^|[\s(\x60"'\[])((?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-]+\.md)\b`)
	link := regexp.MustCompile(`\]\(([^)#\s]+)`)
	for _, file := range projectTexts(t, root) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		var names []string
		for _, m := range mdName.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			if !strings.Contains(m[1], "://") && !strings.HasPrefix(m[1], "mailto:") {
				names = append(names, m[1])
			}
		}
		for _, name := range names {
			if strings.HasPrefix(name, "bench/out/") {
				continue // what running the benchmarks writes
			}
			// A name is relative to the file that says it, or to the root.
			if exists(filepath.Join(filepath.Dir(file), name)) || exists(filepath.Join(root, name)) {
				continue
			}
			t.Errorf("%s names %s, which the project does not have", rel, name)
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestDocsNameRealCommands: every `tasuki WORD` the docs show is a command
// tasuki has (its --help exits 0), so a renamed command cannot linger in a
// page as it did with 'tasuki serve'.
func TestDocsNameRealCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tasuki")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build tasuki with")
	}
	bin := tasukiBinary(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Not a path ending in tasuki (bench/out/tasuki): the command.
	cmd := regexp.MustCompile(`(?:^|[^/\w.-])tasuki ([a-z][a-z-]+)\b`)
	// Words after "tasuki" that are prose, not commands.
	prose := []string{"is", "has", "itself", "does", "to", "keeps", "was", "can", "will", "the", "and", "when", "that", "treats", "finds", "records", "if"}
	seen := map[string][]string{}
	for _, file := range projectTexts(t, root) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		// Commands appear in code: spans and fenced blocks.
		for _, code := range codeOf(string(b)) {
			for _, m := range cmd.FindAllStringSubmatch(code, -1) {
				seen[m[1]] = append(seen[m[1]], rel)
			}
		}
	}
	if len(seen) < 10 {
		t.Fatalf("found only %v", seen)
	}
	for word, files := range seen {
		if slices.Contains(prose, word) {
			continue
		}
		if err := exec.Command(bin, word, "--help").Run(); err != nil {
			t.Errorf("%v show `tasuki %s`, which is not a command (--help: %v)", slices.Compact(files), word, err)
		}
	}
}

// codeOf returns the code of a Markdown text (its `spans` and fenced
// blocks), or the whole text for other files.
func codeOf(text string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			out = append(out, line)
			continue
		}
		parts := strings.Split(line, "`")
		for i := 1; i < len(parts); i += 2 {
			out = append(out, parts[i])
		}
	}
	return out
}
