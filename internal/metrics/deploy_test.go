package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	dto "github.com/prometheus/client_model/go"
)

// exported lists every metric name a server and a worker export, with the
// _bucket, _sum and _count series of histograms.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	s := NewServer(NewGauges(func() Snapshot {
		return Snapshot{Waiting: map[string]int{"gpu": 1}, PoolWaiting: map[string]int{"p": 1}, PoolInUse: map[string]int{"p": 1}}
	}))
	// Vectors export nothing until a label set is used: use each once.
	s.RunStarted("p")
	s.RunEnded("p", "succeeded")
	s.TaskEnded("p", "succeeded", 1)
	s.AttemptEnded("p", "succeeded", time.Second)
	s.AttemptWaited("", time.Second)
	s.PoolWaited("default", time.Second)
	s.LeaseEvent(LeaseGranted, 1)
	s.SchedulerLag(time.Second)
	s.StoreDone("apply", time.Millisecond, os.ErrClosed)
	s.LogBytes(1)
	s.HTTPDone("GET /runs", 200, time.Millisecond)
	s.DeadlineJudged("p", "at_risk", true, -time.Minute, true)
	s.SLOs(map[[2]string]bool{{"p", "dataset:d"}: true})
	w := NewWorker()
	w.AttemptEnded("succeeded", time.Second)
	w.Call("lease", nil)
	names := map[string]bool{}
	for _, reg := range []interface {
		Gather() ([]*dto.MetricFamily, error)
	}{s.Registry(), w.Registry()} {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			names[f.GetName()] = true
			if f.GetType() == dto.MetricType_HISTOGRAM {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					names[f.GetName()+suffix] = true
				}
			}
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\btasuki_[a-z_]+\b`)

// TestDeployReferencesExportedMetrics: the Grafana dashboard and the alert
// rules in deploy/ name only metrics tasuki exports, so renaming one
// without them fails here rather than on someone's wall display.
func TestDeployReferencesExportedMetrics(t *testing.T) {
	have := exported(t)
	root := filepath.Join("..", "..", "deploy")

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	data, err := os.ReadFile(filepath.Join(root, "grafana", "tasuki.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/tasuki.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			exprs = append(exprs, q)
		}
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err = os.ReadFile(filepath.Join(root, "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yaml: %v", err)
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			exprs = append(exprs, r.Expr)
		}
	}
	for _, want := range []string{"TasukiNoLeader", "TasukiSchedulerLagging", "TasukiWorkersGone", "TasukiSlotsStuck"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yaml lacks %s (the issue's: scheduler lagging, no leader, workers gone, tasks stuck waiting for slots)", want)
		}
	}
	used := 0
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			used++
			if !have[name] {
				t.Errorf("deploy/ names %s, which tasuki does not export (in %q)", name, strings.TrimSpace(e))
			}
		}
	}
	if used == 0 {
		t.Fatal("no metric found in deploy/: the test reads nothing")
	}
}
