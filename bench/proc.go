package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// procCase is one "N processes at parallelism P" row.
type procCase struct {
	n, p  int
	shell bool // run: "true" (through /bin/sh -c) instead of run: ["true"]
	key   string
	name  string
	// floor is the shell command that runs the same processes without tasuki.
	floor     string
	floorName string
	target    bool // the 1.5× target applies
	info      string
}

// procResult collects the repetitions of one case.
type procResult struct {
	tasuki, floor, exec []time.Duration
	rss                 int64
}

// procRows runs N independent `true` tasks through the real CLI beside the
// same N processes run by xargs -P, repetitions interleaved so that both see
// the same machine.
func procRows(ctx context.Context, o *options) ([]row, error) {
	var cases []procCase
	add := func(n, p int, shell bool) {
		c := procCase{n: n, p: p, shell: shell, target: n >= 10_000 && !shell}
		form, floorCmd := "argv", "true"
		if shell {
			form, floorCmd = "shell", "sh -c true"
		}
		c.key = fmt.Sprintf("proc-%d-j%d", n, p)
		if shell {
			c.key = fmt.Sprintf("proc-shell-%d-j%d", n, p)
		}
		c.name = fmt.Sprintf("%s × `true`, -j %d (%s: `run: %s`)", commas(n), p, form, map[bool]string{false: `["true"]`, true: `"true"`}[shell])
		if n == 1 {
			c.name = "1 × `true` (fixed cost of `tasuki run`: start, fresh store, one task)"
		}
		c.floor = fmt.Sprintf("seq %d | xargs -P %d -n 1 %s", n, p, floorCmd)
		c.floorName = fmt.Sprintf("`xargs -P %d %s`", p, floorCmd)
		if o.want(c.key) {
			cases = append(cases, c)
		}
	}
	add(1, 2, false)
	add(1_000, 2, false)
	add(1_000, 16, false)
	if !o.quick {
		add(10_000, 2, false)
		add(10_000, 16, false)
		add(10_000, 16, true)
	}
	if len(cases) == 0 {
		return nil, nil
	}
	dir := filepath.Join(o.work, "proc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := map[string]string{}
	results := make([]procResult, len(cases))
	for rep := 1; rep <= o.reps; rep++ {
		for i, c := range cases {
			fk := fmt.Sprintf("%d-%v", c.n, c.shell)
			if files[fk] == "" {
				path, err := writeFile(dir, "independent-"+fk+".yaml", func(w io.Writer) { independentPipeline(w, c.n, c.shell) })
				if err != nil {
					return nil, err
				}
				files[fk] = path
			}
			fl, err := runChild(ctx, dir, false, "sh", "-c", c.floor)
			if err != nil {
				return nil, err
			}
			t, exec, err := tasukiRun(ctx, o, files[fk], c.p, fmt.Sprintf("%s-rep%d", c.key, rep), rep == o.reps)
			if err != nil {
				return nil, err
			}
			r := &results[i]
			r.floor = append(r.floor, fl.wall)
			r.tasuki = append(r.tasuki, t.wall)
			r.exec = append(r.exec, exec)
			r.rss = max(r.rss, t.maxRSS)
			progress("[rep %d/%d] %s: tasuki %s (peak RSS %s), floor %s", rep, o.reps, c.key, secs(t.wall), mb(t.maxRSS), secs(fl.wall))
		}
	}
	var rows []row
	for i, c := range cases {
		r := results[i]
		tm, fm := best(r.tasuki), best(r.floor)
		ratio := float64(tm) / float64(fm)
		rw := row{
			key: c.key, name: c.name, value: secs(tm), base: c.floorName + ": " + secs(fm),
			ratio: fmt.Sprintf("%.2f×", ratio), mem: "RSS " + mb(r.rss),
		}
		switch {
		case c.n == 1:
			rw.ratio, rw.target = "", "(information)"
		case c.target:
			rw.target, rw.met = "≤ 1.5× floor", metStr(ratio <= 1.5)
		case c.shell:
			rw.target = "(information)"
		}
		if len(r.tasuki) > 1 {
			rw.notes = append(rw.notes, fmt.Sprintf("%s: tasuki runs %s; floor runs %s (best of each in the table); ratio of each back-to-back pair %s.", c.key, durList(r.tasuki), durList(r.floor), pairRatios(r.tasuki, r.floor)))
		}
		if c.n > 1 {
			rw.notes = append(rw.notes, fmt.Sprintf("%s: the run itself took %s by tasuki's own summary, the rest of the wall time is starting the process, opening a fresh store, parsing the file and creating the run; %s/task of wall time above the floor.",
				c.key, secs(best(r.exec)), perTask(tm-fm, c.n)))
		}
		rows = append(rows, rw)
	}
	return rows, nil
}

// chainRows runs 200 `true` tasks each needing the previous one beside a
// shell loop running /bin/true 200 times.
func chainRows(ctx context.Context, o *options) ([]row, error) {
	const n = 200
	key := "chain-200"
	if !o.want(key) {
		return nil, nil
	}
	dir := filepath.Join(o.work, "chain")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	file, err := writeFile(dir, "chain.yaml", func(w io.Writer) { chainPipeline(w, n, `["true"]`) })
	if err != nil {
		return nil, err
	}
	loop := fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", n)
	var tw, fw, ew []time.Duration
	var rss int64
	for rep := 1; rep <= o.reps; rep++ {
		fl, err := runChild(ctx, dir, false, "sh", "-c", loop)
		if err != nil {
			return nil, err
		}
		t, exec, err := tasukiRun(ctx, o, file, 4, fmt.Sprintf("%s-rep%d", key, rep), rep == o.reps)
		if err != nil {
			return nil, err
		}
		tw, fw, ew = append(tw, t.wall), append(fw, fl.wall), append(ew, exec)
		rss = max(rss, t.maxRSS)
		progress("[rep %d/%d] %s: tasuki %s, shell loop %s", rep, o.reps, key, secs(t.wall), secs(fl.wall))
	}
	tm, fm := best(tw), best(fw)
	rw := row{
		key:   key,
		name:  "chain of 200 `true` tasks, each needing the previous",
		value: fmt.Sprintf("%s (%s/task)", secs(tm), perTask(tm, n)),
		base:  fmt.Sprintf("shell loop of `/bin/true`: %s (%s/task)", secs(fm), perTask(fm, n)),
		ratio: fmt.Sprintf("%.2f×", float64(tm)/float64(fm)),
		mem:   "RSS " + mb(rss), target: "(information)",
	}
	rw.notes = append(rw.notes, fmt.Sprintf("%s: the run itself took %s by tasuki's own summary: %s/task of hand-over (start the next task after one ends, both written to the store) above the loop's fork/exec.",
		key, secs(best(ew)), perTask(best(ew)-fm, n)))
	if len(tw) > 1 {
		rw.notes = append(rw.notes, fmt.Sprintf("%s: tasuki runs %s; loop runs %s (best of each in the table); ratio of each back-to-back pair %s.", key, durList(tw), durList(fw), pairRatios(tw, fw)))
	}
	return []row{rw}, nil
}

func perTask(d time.Duration, n int) string {
	per := d / time.Duration(n)
	if per < time.Millisecond && per > -time.Millisecond {
		if per < 100*time.Microsecond && per > -100*time.Microsecond {
			return fmt.Sprintf("%.1f µs", float64(per)/float64(time.Microsecond))
		}
		return fmt.Sprintf("%.0f µs", float64(per)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2f ms", float64(per)/float64(time.Millisecond))
}

var summaryRe = regexp.MustCompile(`succeeded in (\S+)`)

// tasukiRun runs `tasuki run FILE` on a fresh data directory and returns the
// process and the run time tasuki itself reports.
func tasukiRun(ctx context.Context, o *options, file string, parallel int, label string, profile bool) (child, time.Duration, error) {
	home := filepath.Join(o.work, "home-"+label)
	defer os.RemoveAll(home)
	args := []string{"run", file, "--home", home, "-j", strconv.Itoa(parallel), "-q", "--progress", "compact"}
	if profile && o.profile {
		args = append(args, "--cpuprofile", filepath.Join(o.outDir, "profiles", label+".prof"))
	}
	c, err := runChild(ctx, filepath.Dir(file), true, o.bin, args...)
	if err != nil {
		return c, 0, err
	}
	var exec time.Duration
	if m := summaryRe.FindStringSubmatch(c.out); m != nil {
		exec, _ = time.ParseDuration(m[1])
	}
	return c, exec, nil
}

// independentPipeline writes n tasks without needs.
func independentPipeline(w io.Writer, n int, shell bool) {
	run := `["true"]`
	if shell {
		run = `"true"`
	}
	fmt.Fprintf(w, "name: bench-independent\ndescription: %d independent tasks running true\ntasks:\n", n)
	for i := range n {
		fmt.Fprintf(w, "  - id: t%d\n    run: %s\n", i, run)
	}
}

// chainPipeline writes n tasks, each needing the one before.
func chainPipeline(w io.Writer, n int, run string) {
	fmt.Fprintf(w, "name: bench-chain\ndescription: a chain of %d tasks\ntasks:\n", n)
	for i := range n {
		fmt.Fprintf(w, "  - id: t%d\n    run: %s\n", i, run)
		if i > 0 {
			fmt.Fprintf(w, "    needs: [t%d]\n", i-1)
		}
	}
}
