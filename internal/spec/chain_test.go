package spec

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestValidateHandBuilt(t *testing.T) {
	good := &Pipeline{Name: "built", Params: []Param{{Name: "n", Type: ParamInt, Default: 5}}, Tasks: []Task{
		{ID: "a", Run: Command{Argv: []string{"true"}}},
		{ID: "b", Run: Command{Shell: "echo"}, Needs: []string{"a"}, Retry: &Retry{Attempts: 2}},
	}}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	bad := &Pipeline{Params: []Param{{Name: "n", Type: ParamInt, Default: "x"}}, Env: map[string]string{"TASUKI_X": "1"}, Tasks: []Task{
		{ID: "a", Needs: []string{"c"}, Retry: &Retry{Jitter: 2}, Timeout: -1},
		{ID: "a b", Run: Command{Shell: "x"}},
	}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`missing required key "name" in pipeline`,
		`missing required key "run" in task "a"`,
		`missing required key "attempts" in retry`,
		`retry.jitter: expected a number from 0 to 1, got 2`,
		`timeout: expected a duration that is not negative`,
		`invalid task id "a b"`,
		`param "n": default: expected an integer like 42, got "x"`,
		`env: "TASUKI_X" is reserved`,
		`task "a" needs "c", which is not a task in this pipeline`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
	dup := &Pipeline{Name: "d", Tasks: []Task{{ID: "a", Run: Command{Shell: "x"}}, {ID: "a", Run: Command{Shell: "y"}}}}
	if err := dup.Validate(); err == nil || !strings.Contains(err.Error(), `duplicate task id "a" (first defined at task #1)`) {
		t.Errorf("duplicate: %v", err)
	}
	var nilp *Pipeline
	if err := nilp.Validate(); err == nil {
		t.Error("nil pipeline validates")
	}
}

// bigPipeline renders a pipeline of n tasks, each needing the previous one
// (a chain, the worst case for recursive graph algorithms).
func bigPipeline(n int, cycle bool) []byte {
	var b strings.Builder
	b.WriteString("name: big\ntasks:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - id: t%d\n    run: echo %d\n", i, i)
		switch {
		case i > 0:
			fmt.Fprintf(&b, "    needs: [t%d]\n", i-1)
		case cycle:
			fmt.Fprintf(&b, "    needs: [t%d]\n", n-1)
		}
	}
	return []byte(b.String())
}

func TestLongChain(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	start := time.Now()
	p, err := Parse("big.yaml", bigPipeline(n, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("parsed %d tasks in %v", n, time.Since(start))
	if len(p.Tasks) != n || p.Tasks[n-1].Needs[0] != fmt.Sprintf("t%d", n-2) {
		t.Errorf("parsed %d tasks", len(p.Tasks))
	}

	_, err = Parse("big.yaml", bigPipeline(n, true))
	if err == nil {
		t.Fatal("a cycle through every task was not found")
	}
	msg := err.Error()
	want := fmt.Sprintf("big.yaml:5:13: dependency cycle: t0 -> t%d -> t%d -> t%d -> t%d -> t%d -> t%d -> t%d -> … %d more … -> t3 -> t2 -> t1 -> t0 (each task needs the next)",
		n-1, n-2, n-3, n-4, n-5, n-6, n-7, n+1-12)
	if msg != want {
		t.Errorf("cycle error:\n got  %.300s\n want %s", msg, want)
	}
}

func BenchmarkParse100k(b *testing.B) {
	data := bigPipeline(100_000, false)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
