package predict

import (
	"slices"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

var t0 = time.Date(2026, 3, 2, 19, 0, 0, 0, time.UTC)

const s = time.Second

func graph(t *testing.T, defs ...engine.NodeDef) *engine.Graph {
	t.Helper()
	g, err := engine.NewGraph(defs)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func node(id string, needs ...string) engine.NodeDef { return engine.NodeDef{ID: id, Needs: needs} }

func wait(id string, poke time.Duration, needs ...string) engine.NodeDef {
	return engine.NodeDef{ID: id, Needs: needs, Wait: &engine.WaitPolicy{Poke: poke}}
}

func ids(g *engine.Graph, path []int) []string {
	out := make([]string, len(path))
	for i, j := range path {
		out[i] = g.Node(j).ID
	}
	return out
}

// TestPredict covers the critical path across branches and what each state
// of a task counts.
func TestPredict(t *testing.T) {
	// a -> (b, c) -> d, and a lone e.
	diamond := []engine.NodeDef{node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c"), node("e")}
	pending := func(est ...time.Duration) []Task {
		ts := make([]Task, len(est))
		for i, e := range est {
			ts[i] = Task{State: engine.TaskPending, Estimate: e}
		}
		return ts
	}
	tests := []struct {
		name  string
		defs  []engine.NodeDef
		tasks func() []Task
		left  time.Duration
		path  []string
		block []string
	}{
		{"nothing started: the longer branch", diamond, func() []Task { return pending(2*s, 10*s, 30*s, 5*s, 20*s) },
			37 * s, []string{"a", "c", "d"}, nil},
		{"the other branch when it is longer", diamond, func() []Task { return pending(2*s, 40*s, 30*s, 5*s, 20*s) },
			47 * s, []string{"a", "b", "d"}, nil},
		{"a lone task longer than the chain", diamond, func() []Task { return pending(2*s, 10*s, 30*s, 5*s, 60*s) },
			60 * s, []string{"e"}, nil},
		{"finished tasks count nothing", diamond, func() []Task {
			ts := pending(2*s, 10*s, 30*s, 5*s, 1*s)
			ts[0].State, ts[2].State = engine.TaskSucceeded, engine.TaskSkipped
			return ts
		}, 15 * s, []string{"b", "d"}, nil},
		{"a running task counts what remains", diamond, func() []Task {
			ts := pending(2*s, 10*s, 30*s, 5*s, 1*s)
			ts[0].State = engine.TaskSucceeded
			ts[2] = Task{State: engine.TaskRunning, StartedAt: t0.Add(-25 * s), Estimate: 30 * s}
			return ts
		}, 15 * s, []string{"b", "d"}, nil},
		{"a running task past its estimate counts a little", diamond, func() []Task {
			ts := pending(2*s, 10*s, 30*s, 5*s, 1*s)
			ts[0].State, ts[1].State = engine.TaskSucceeded, engine.TaskSucceeded
			ts[2] = Task{State: engine.TaskRunning, StartedAt: t0.Add(-time.Hour), Estimate: 30 * s}
			return ts
		}, 6 * s, []string{"c", "d"}, nil},
		{"retry_wait counts the backoff left and a new attempt", diamond, func() []Task {
			ts := pending(2*s, 10*s, 3*s, 5*s, 1*s)
			ts[0].State = engine.TaskSucceeded
			ts[2] = Task{State: engine.TaskRetryWait, ReadyAt: t0.Add(20 * s), Estimate: 3 * s}
			return ts
		}, 28 * s, []string{"c", "d"}, nil},
		{"a failed task blocks and counts as tried again", diamond, func() []Task {
			ts := pending(2*s, 10*s, 3*s, 5*s, 1*s)
			ts[0].State = engine.TaskSucceeded
			ts[1].State = engine.TaskFailed
			ts[3].State = engine.TaskUpstreamFailed
			return ts
		}, 15 * s, []string{"b", "d"}, []string{"b"}},
		{"everything finished", []engine.NodeDef{node("a")}, func() []Task {
			return []Task{{State: engine.TaskSucceeded, Estimate: 9 * s}}
		}, 0, nil, nil},
		{"a wait still waiting counts its poke", []engine.NodeDef{wait("relay", 30*s), node("merge", "relay")}, func() []Task {
			return []Task{{State: engine.TaskWaiting, StartedAt: t0.Add(-time.Hour), Estimate: time.Second}, {State: engine.TaskPending, Estimate: 8 * s}}
		}, 38 * s, []string{"relay", "merge"}, nil},
		{"a wait counts what remains of its usual wait", []engine.NodeDef{wait("relay", 30*s), node("merge", "relay")}, func() []Task {
			return []Task{{State: engine.TaskWaiting, StartedAt: t0.Add(-10 * time.Minute), Estimate: 40 * time.Minute}, {State: engine.TaskPending, Estimate: 8 * s}}
		}, 30*time.Minute + 8*s, []string{"relay", "merge"}, nil},
		{"a wait not yet started counts its estimate", []engine.NodeDef{node("a"), wait("relay", 30*s, "a")}, func() []Task {
			return []Task{{State: engine.TaskRunning, StartedAt: t0, Estimate: 5 * s}, {State: engine.TaskPending, Estimate: 2 * s}}
		}, 7 * s, []string{"a", "relay"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := graph(t, tt.defs...)
			p := Model{}.Predict(g, tt.tasks(), t0)
			if p.Remaining != tt.left || !p.Finish.Equal(t0.Add(tt.left)) {
				t.Errorf("remaining %s (finish %s), want %s", p.Remaining, p.Finish, tt.left)
			}
			if got := ids(g, p.Path); !slices.Equal(got, tt.path) {
				t.Errorf("critical path %q, want %q", got, tt.path)
			}
			if got := ids(g, p.Blocked); !slices.Equal(got, tt.block) {
				t.Errorf("blocked %q, want %q", got, tt.block)
			}
		})
	}
}

// TestPredictWideGraph: a long chain and a wide fan-out cost time linear in
// the graph and pick the chain.
func TestPredictWideGraph(t *testing.T) {
	const n = 20000
	defs := make([]engine.NodeDef, 0, 2*n)
	tasks := make([]Task, 0, 2*n)
	for i := range n {
		d := node("chain-" + itoa(i))
		if i > 0 {
			d.Needs = []string{"chain-" + itoa(i-1)}
		}
		defs = append(defs, d, node("fan-"+itoa(i)))
		tasks = append(tasks, Task{State: engine.TaskPending, Estimate: s}, Task{State: engine.TaskPending, Estimate: 100 * s})
	}
	g := graph(t, defs...)
	p := Model{}.Predict(g, tasks, t0)
	if p.Remaining != n*s || len(p.Path) != n {
		t.Errorf("remaining %s over %d tasks, want %s over %d", p.Remaining, len(p.Path), n*s, n)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestPercentile checks the nearest-rank percentile.
func TestPercentile(t *testing.T) {
	twenty := make([]time.Duration, 20)
	for i := range twenty {
		twenty[19-i] = time.Duration(i+1) * s // 20s .. 1s, unsorted on purpose
	}
	tests := []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 0.9, 0},
		{[]time.Duration{7 * s}, 0.9, 7 * s},
		{twenty, 0.9, 18 * s},
		{twenty, 0.5, 10 * s},
		{twenty, 1, 20 * s},
		{twenty, 0.01, 1 * s},
		{[]time.Duration{1 * s, 2 * s, 100 * s}, 0.9, 100 * s},
		{[]time.Duration{1 * s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s, 8 * s, 9 * s, 100 * s}, 0.9, 9 * s},
	}
	for _, tt := range tests {
		if got := Percentile(tt.samples, tt.p); got != tt.want {
			t.Errorf("Percentile(%v, %v) = %s, want %s", tt.samples, tt.p, got, tt.want)
		}
	}
	if twenty[0] != 20*s {
		t.Error("Percentile sorted its argument")
	}
}

// TestEstimate covers history percentiles and priors.
func TestEstimate(t *testing.T) {
	hist := func(ds ...time.Duration) []time.Duration { return ds }
	tests := []struct {
		name     string
		m        Model
		samples  []time.Duration
		expected time.Duration
		want     time.Duration
	}{
		{"neither: the small default", Model{}, nil, 0, DefaultEstimate},
		{"a prior alone", Model{}, nil, 8 * s, 8 * s},
		{"the prior beats too few samples", Model{}, hist(30*s, 31*s), 8 * s, 8 * s},
		{"enough samples beat the prior", Model{}, hist(30*s, 31*s, 40*s), 8 * s, 40 * s},
		{"a few samples beat nothing", Model{}, hist(3*s, 5*s), 0, 5 * s},
		{"p90 of twenty", Model{}, hist(1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 1*s, 9*s, 9*s, 60*s), 0, 9 * s},
		{"a model of its own", Model{Percentile: 0.5, MinSamples: 1, Default: time.Minute}, hist(1*s, 2*s, 3*s), 8 * s, 2 * s},
		{"a model's default", Model{Default: time.Minute}, nil, 0, time.Minute},
	}
	for _, tt := range tests {
		if got := tt.m.Estimate(tt.samples, tt.expected); got != tt.want {
			t.Errorf("%s: Estimate = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestAtRiskBeforeTheMiss is the acceptance case at the level of
// the prediction: a 20 s deadline, a relay wait (poke 1s) that keeps
// waiting, then a task expected to take 8s. Checked every second, the
// prediction passes the deadline at 12 s after the start at the latest
// (here at 12 s: 12 + 1 + 8 > 20), long before the deadline itself.
func TestAtRiskBeforeTheMiss(t *testing.T) {
	g := graph(t, wait("relay", time.Second), node("publish", "relay"))
	m := Model{}
	est := []time.Duration{m.Estimate(nil, 0), m.Estimate(nil, 8*s)}
	deadline := t0.Add(20 * s)
	var raised time.Duration = -1
	for el := time.Duration(0); el <= 20*s; el += s {
		tasks := []Task{
			{State: engine.TaskWaiting, StartedAt: t0, Estimate: est[0]},
			{State: engine.TaskPending, Estimate: est[1]},
		}
		p := m.Predict(g, tasks, t0.Add(el))
		if p.Finish.After(deadline) {
			raised = el
			if got := ids(g, p.Path); !slices.Equal(got, []string{"relay", "publish"}) {
				t.Errorf("critical path %q", got)
			}
			break
		}
	}
	if raised < 0 || raised > 12*s {
		t.Fatalf("at risk at %s after the start, want no later than 12s", raised)
	}
	t.Logf("at risk %s after the start", raised)
}
