package main

// TestDocCommands runs the command blocks of the documentation against a
// built tasuki, so that what a new user pastes works as written.
//
// The rules, which are what a document's author needs to know:
//
//   - Every fenced block tagged ```sh in README.md, docs/*.md and
//     examples/README.md runs, in document order, as one `sh -e` script per
//     document, in a fresh temporary directory holding a copy of examples/
//     (as the repository root does) with the built tasuki first on PATH.
//     Blocks tagged bash, shell, console or zsh are refused: tag them sh.
//   - A ```yaml block whose first line is a comment naming a relative file
//     (`# hello.yaml`) writes that file, where it stands in the document.
//   - A command the document says fails carries a trailing comment starting
//     with "exits N" (`tasuki run bad.yaml   # exits 1: ...`); its exit
//     status must be N. Every other command must succeed.
//   - A line that starts a server in the background (`tasuki server ... &`)
//     does so, and the script goes on once the server listens (or fails if
//     it never does). Servers are stopped (SIGTERM, then drained) when the
//     document ends. 127.0.0.1:8080 is replaced by a free port, which
//     servers started without --addr listen on too ($TASUKI_ADDR), so
//     documents run side by side and on machines where 8080 is taken.
//     Likewise /tmp/tasuki-examples, where the examples write, becomes a
//     directory of the document's own, in its commands and in its copy of
//     examples/, so that documents running side by side share no files.
//   - A block that cannot run here is tagged ```sh norun and listed in
//     notRun below with the reason. A norun block missing from the list, or
//     a listed block no longer marked, fails the test.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// docGlobs are the documents whose sh blocks run, from the repository root.
var docGlobs = []string{"README.md", "docs/*.md", "examples/README.md"}

// notRun is every ```sh norun block, by document and first line, and why it
// cannot run in this test.
var notRun = []struct{ doc, first, why string }{
	{"README.md", "go run ./cmd/tasuki server        # the server on the embedded store (./.tasuki) with the bundled examples, API and web UI on 127.0.0.1:8080",
		"works in a clone of the repository: it runs the test suite and a server in the foreground"},
	{"README.md", "go build -o tasuki ./cmd/tasuki",
		"builds from the repository's source; the test builds the same binary itself and puts it on PATH"},
	{"docs/pipeline-reference.md", `echo '{"rows": 42, "path": "s3://bucket/2026-01-31/"}' > "$TASUKI_RESULT"`,
		"a line of a task's command: $TASUKI_RESULT exists only inside a task"},
	{"docs/workers.md", "# on the server's host: a token for the workers (printed once)",
		"spans two machines, and its token is a placeholder to fill in"},
	{"docs/workers.md", "# on a worker machine, against a cluster of two servers",
		"spans three machines, with host names and a token to fill in"},
	{"docs/workers.md", "# on a worker machine, against a server with TLS from a private CA and client_ca set",
		"spans two machines, with certificates in /etc/tasuki and a token to fill in"},
	{"docs/security.md", "tasuki token create ci --role operator --namespace finance --expires 30d   # prints the token once",
		"a summary of the token commands; docs/server.md runs them against a server"},
	{"docs/security.md", "printf '%s\\n' \"$PASSWORD\" | tasuki user add alice --role operator --namespace finance",
		"a summary of the user commands, with a password to fill in and one typed at a terminal; docs/api.md runs 'user add' against a server"},
	{"docs/server.md", "tasuki server --addr 0.0.0.0:8443 --tls-cert /etc/tasuki/server.pem --tls-key /etc/tasuki/server-key.pem --allowed-hosts tasuki.internal",
		"listens on every interface with certificates from /etc/tasuki (docs/security.md runs the same with certificates it makes)"},
	{"examples/README.md", "go build -o tasuki ./cmd/tasuki     # or use an installed tasuki",
		"builds from the repository's source; the test builds the same binary itself and puts it on PATH"},
}

// docTimeout bounds one document's commands.
const docTimeout = 100 * time.Second

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// tasukiBinary builds cmd/tasuki once for the tests of this package, the
// way a user does (go build, so build information and VCS stamps are real).
func tasukiBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tasuki-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "tasuki")
		// -buildvcs=auto is go build's default; say it, since GOFLAGS may
		// turn it off and the version test wants the commit recorded.
		out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// block is one fenced block of a document.
type block struct {
	line  int    // line number of the opening fence
	lang  string // first word of the info string
	norun bool   // the info string says norun
	lines []string
}

// parseBlocks returns the fenced (```) blocks of a Markdown document.
func parseBlocks(doc string) ([]block, error) {
	var (
		out    []block
		cur    *block
		indent string
	)
	for i, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if cur == nil {
			if !strings.HasPrefix(trimmed, "```") {
				continue
			}
			info := strings.Fields(strings.TrimPrefix(trimmed, "```"))
			cur = &block{line: i + 1}
			if len(info) > 0 {
				cur.lang = info[0]
				for _, w := range info[1:] {
					cur.norun = cur.norun || w == "norun"
				}
			}
			indent = line[:len(line)-len(trimmed)]
			continue
		}
		if trimmed == "```" {
			out = append(out, *cur)
			cur = nil
			continue
		}
		cur.lines = append(cur.lines, strings.TrimPrefix(line, indent))
	}
	if cur != nil {
		return nil, fmt.Errorf("the block opened at line %d is never closed", cur.line)
	}
	return out, nil
}

var (
	fileComment = regexp.MustCompile(`^# ([A-Za-z0-9_][A-Za-z0-9_./-]*\.ya?ml)$`)
	serverLine  = regexp.MustCompile(`^(\s*tasuki server\b[^&#]*?)\s*&\s*(#.*)?$`)
	exitsLine   = regexp.MustCompile(`^(.*\S)\s+#\s*exits ([0-9]+)\b.*$`)
)

// docScript is a document turned into one shell script.
type docScript struct {
	text    strings.Builder
	servers int    // servers the script starts in the background
	addr    string // replaces 127.0.0.1:8080
	data    string // replaces /tmp/tasuki-examples
}

// examplesData is where the examples write their files.
const examplesData = "/tmp/tasuki-examples"

// serverFDs are the descriptors of the i-th server: the script gives the
// server's stderr to w and reads "listening" (or nothing) on r.
func serverFDs(i int) (w, r int) { return 3 + 2*i, 4 + 2*i }

// build turns the blocks of doc into the script. total is how many server
// lines the document has, so every server closes the others' descriptors.
func (s *docScript) build(doc string, blocks []block, total int) error {
	for _, b := range blocks {
		switch b.lang {
		case "yaml", "yml":
			if len(b.lines) == 0 {
				continue
			}
			m := fileComment.FindStringSubmatch(b.lines[0])
			if m == nil || strings.Contains(m[1], "..") {
				continue
			}
			body := strings.Join(b.lines, "\n")
			if strings.Contains(body, "DOCTEST_EOF") {
				return fmt.Errorf("%s:%d: the block contains DOCTEST_EOF", doc, b.line)
			}
			fmt.Fprintf(&s.text, "mkdir -p \"$(dirname '%s')\"\ncat > '%s' <<'DOCTEST_EOF'\n%s\nDOCTEST_EOF\n", m[1], m[1], body)
		case "bash", "shell", "console", "zsh", "shell-session":
			return fmt.Errorf("%s:%d: tag shell blocks ```sh so that this test runs them (```sh norun if they cannot run)", doc, b.line)
		case "sh":
			if b.norun {
				continue
			}
			fmt.Fprintf(&s.text, "printf '%%s\\n' '--- %s:%d' >&2\n", doc, b.line)
			for j, line := range b.lines {
				s.line(doc, b.line+1+j, line, total)
			}
		}
	}
	return nil
}

// line adds one line of an sh block, rewritten as the rules say.
func (s *docScript) line(doc string, n int, line string, total int) {
	line = strings.ReplaceAll(line, "127.0.0.1:8080", s.addr)
	if s.data != "" {
		line = strings.ReplaceAll(line, examplesData, s.data)
	}
	if m := serverLine.FindStringSubmatch(line); m != nil {
		w, r := serverFDs(s.servers)
		s.servers++
		closeAll := ""
		for i := 0; i < total; i++ {
			ow, or := serverFDs(i)
			closeAll += fmt.Sprintf(" %d>&- %d<&-", ow, or)
		}
		fmt.Fprintf(&s.text, "%s 2>&%d%s &\nexec %d>&-\n", m[1], w, closeAll, w)
		fmt.Fprintf(&s.text, "doctest_ready=; read doctest_ready <&%d || true; exec %d<&-\n", r, r)
		fmt.Fprintf(&s.text, "[ \"$doctest_ready\" = listening ] || { echo 'doctest: %s:%d: the server did not start' >&2; exit 98; }\n", doc, n)
		return
	}
	if m := exitsLine.FindStringSubmatch(line); m != nil {
		fmt.Fprintf(&s.text, "set +e\n%s\ndoctest_status=$?\nset -e\n", m[1])
		fmt.Fprintf(&s.text, "[ \"$doctest_status\" = %s ] || { echo \"doctest: %s:%d: exit status $doctest_status, the document says %s\" >&2; exit 97; }\n", m[2], doc, n, m[2])
		return
	}
	s.text.WriteString(line + "\n")
}

// server is the test's side of a server the script starts.
type server struct {
	w, r   *os.File // the server's stderr (write end, given to the script); its read end
	rw, rr *os.File // the ready pipe: the script reads rr, the test writes rw
	log    strings.Builder
	done   chan struct{} // closed when the server's stderr ends: it exited
}

// watch copies the server's stderr into its log, tells the script when it
// listens, and closes done when the server is gone.
func (sv *server) watch() {
	defer close(sv.done)
	defer sv.rw.Close()
	told := false
	sc := bufio.NewScanner(sv.r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		sv.log.WriteString(sc.Text() + "\n")
		if !told && strings.Contains(sc.Text(), "tasuki server listening on") {
			told = true
			sv.rw.WriteString("listening\n")
			sv.rw.Close()
		}
	}
	io.Copy(io.Discard, sv.r)
}

func TestDocCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documentation's commands (about a minute)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build tasuki with")
	}
	bin := tasukiBinary(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, g := range docGlobs {
		m, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			docs = append(docs, rel)
		}
	}
	parsed := map[string][]block{}
	seen := map[string]bool{}
	for _, doc := range docs {
		raw, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parseBlocks(string(raw))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		parsed[doc] = blocks
		for _, b := range blocks {
			if !b.norun {
				continue
			}
			first := ""
			if len(b.lines) > 0 {
				first = b.lines[0]
			}
			seen[doc+"\x00"+first] = true
			listed := false
			for _, n := range notRun {
				listed = listed || (n.doc == doc && n.first == first)
			}
			if !listed {
				t.Errorf("%s:%d: a norun block that notRun does not list (first line %q): list it with the reason it cannot run", doc, b.line, first)
			}
		}
	}
	for _, n := range notRun {
		if !seen[n.doc+"\x00"+n.first] {
			t.Errorf("notRun lists %s %q, which is no longer a norun block there: remove it from the list", n.doc, n.first)
		}
	}
	for _, doc := range docs {
		blocks := parsed[doc]
		t.Run(doc, func(t *testing.T) {
			t.Parallel()
			total := 0
			for _, b := range blocks {
				if b.lang == "sh" && !b.norun {
					for _, l := range b.lines {
						if serverLine.MatchString(l) {
							total++
						}
					}
				}
			}
			runDoc(t, bin, root, doc, blocks, total)
		})
	}
}

// runDoc runs a document's script in a fresh directory.
func runDoc(t *testing.T, bin, root, doc string, blocks []block, total int) {
	if 3+2*total > 10 {
		t.Fatalf("%s starts %d servers; sh handles descriptors up to 9, so at most 3", doc, total)
	}
	work := t.TempDir()
	data := filepath.Join(work, ".examples-data")
	if err := copyDir(filepath.Join(root, "examples"), filepath.Join(work, "examples"), examplesData, data); err != nil {
		t.Fatal(err)
	}
	s := &docScript{addr: freeAddr(t), data: data}
	if err := s.build(doc, blocks, total); err != nil {
		t.Fatal(err)
	}
	if s.text.Len() == 0 {
		return
	}
	// The docs use a few common tools beside tasuki; a machine without one
	// skips the document, except in CI, where that is a broken setup.
	for _, tool := range []string{"curl", "jq"} {
		if !regexp.MustCompile(`\b` + tool + `\b`).MatchString(s.text.String()) {
			continue
		}
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s uses %s, which this CI machine lacks", doc, tool)
			}
			t.Skipf("%s uses %s, which this machine lacks", doc, tool)
		}
	}
	scriptPath := filepath.Join(t.TempDir(), "doc.sh")
	if err := os.WriteFile(scriptPath, []byte(s.text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	servers := make([]*server, total)
	var extra []*os.File
	for i := range servers {
		sv := &server{done: make(chan struct{})}
		var err error
		if sv.r, sv.w, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
		if sv.rr, sv.rw, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
		servers[i] = sv
		extra = append(extra, sv.w, sv.rr)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	home := filepath.Join(work, ".home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), docTimeout)
	defer cancel()
	cmd := exec.Command("sh", "-e", scriptPath)
	cmd.Dir = work
	cmd.Env = []string{
		"PATH=" + filepath.Dir(bin) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"LANG=C.UTF-8",
		"USER=doctest",
		// Servers the document starts stop within seconds at its end, and
		// listen where its 127.0.0.1:8080 was rewritten to.
		"TASUKI_DRAIN_GRACE=2s",
		"TASUKI_ADDR=" + s.addr,
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, sv := range servers {
		sv.w.Close() // the script and its server hold it now
		sv.rr.Close()
		go sv.watch()
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var runErr error
	select {
	case runErr = <-waited:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		runErr = fmt.Errorf("still running after %s", docTimeout)
		<-waited
	}
	// Stop the servers the document left running: SIGTERM drains them.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	stopped := time.NewTimer(30 * time.Second)
	defer stopped.Stop()
	for i, sv := range servers {
		select {
		case <-sv.done:
		case <-stopped.C:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-sv.done
			t.Errorf("%s: server %d did not stop within 30s of SIGTERM", doc, i+1)
		}
	}
	b, _ := os.ReadFile(out.Name())
	if testing.Verbose() {
		t.Logf("%s: the output ends:\n%s", doc, tail(string(b), 60))
	}
	if runErr != nil {
		var logs strings.Builder
		for i, sv := range servers {
			fmt.Fprintf(&logs, "\n--- log of server %d:\n%s", i+1, tail(sv.log.String(), 40))
		}
		var ee *exec.ExitError
		if errors.As(runErr, &ee) {
			runErr = fmt.Errorf("exit status %d", ee.ExitCode())
		}
		t.Fatalf("%s: the commands failed (%v); the output ends:\n%s%s", doc, runErr, tail(string(b), 80), logs.String())
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"[...]"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// freeAddr is a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// copyDir copies the regular files of a directory tree, with each old
// text replaced by the new one after it (pairs).
func copyDir(src, dst string, replace ...string) error {
	r := strings.NewReplacer(replace...)
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, []byte(r.Replace(string(b))), 0o644)
	})
}

// TestParseBlocks pins the parts of the rules the documents rely on.
func TestParseBlocks(t *testing.T) {
	doc := "text\n```sh\ntasuki run a.yaml   # exits 1: a fails\n```\n  ```yaml\n  # a.yaml\n  name: a\n  ```\n```sh norun\ngo install x\n```\n"
	blocks, err := parseBlocks(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 || blocks[0].lang != "sh" || blocks[1].lines[0] != "# a.yaml" || !blocks[2].norun {
		t.Fatalf("blocks = %+v", blocks)
	}
	s := &docScript{addr: "127.0.0.1:9"}
	if err := s.build("d.md", blocks, 0); err != nil {
		t.Fatal(err)
	}
	got := s.text.String()
	for _, want := range []string{"cat > 'a.yaml' <<'DOCTEST_EOF'\n# a.yaml\nname: a\nDOCTEST_EOF", "set +e\ntasuki run a.yaml\ndoctest_status=$?", `= 1 ]`} {
		if !strings.Contains(got, want) {
			t.Errorf("script lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "go install") {
		t.Errorf("a norun block ran:\n%s", got)
	}
	if _, err := parseBlocks("```sh\nnever closed\n"); err == nil {
		t.Error("an unclosed block was accepted")
	}
	var bad docScript
	if err := bad.build("d.md", []block{{line: 1, lang: "bash", lines: []string{"ls"}}}, 0); err == nil {
		t.Error("a bash block was accepted")
	}
	s = &docScript{addr: "127.0.0.1:9"}
	s.line("d.md", 1, "tasuki server --pipelines examples --addr 127.0.0.1:8080 &   # the API", 1)
	if got := s.text.String(); !strings.Contains(got, "tasuki server --pipelines examples --addr 127.0.0.1:9 2>&3 3>&- 4<&- &") {
		t.Errorf("server line became:\n%s", got)
	}
}
