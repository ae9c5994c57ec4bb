package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// BenchmarkOrchestration measures the runner, engine and SQLite store with
// a no-op task kind: the cost of orchestration per task, without processes.
func BenchmarkOrchestration(b *testing.B) {
	for _, shape := range []string{"wide", "chain"} {
		b.Run(shape, func(b *testing.B) {
			const n = 2000
			var sb strings.Builder
			sb.WriteString("name: bench\ntasks:\n")
			for i := range n {
				if shape == "chain" && i > 0 {
					fmt.Fprintf(&sb, "  - {id: t%d, run: 'true', needs: [t%d]}\n", i, i-1)
				} else {
					fmt.Fprintf(&sb, "  - {id: t%d, run: 'true'}\n", i)
				}
			}
			p, err := spec.Parse("bench.yaml", []byte(sb.String()))
			if err != nil {
				b.Fatal(err)
			}
			home := b.TempDir()
			st, err := sqlite.Open(context.Background(), filepath.Join(home, "tasuki.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			r := &Runner{Store: st, Logs: logs.NewFiles(filepath.Join(home, "logs")), Home: home, Parallel: 16,
				Executor: func(context.Context, *Attempt) AttemptResult { return AttemptResult{Outcome: attempt.Succeeded} }}
			b.ResetTimer()
			for range b.N {
				run, err := r.Create(context.Background(), p, nil, "manual")
				if err != nil {
					b.Fatal(err)
				}
				if got, err := r.Execute(context.Background(), run.ID); err != nil || got.State != engine.RunSucceeded {
					b.Fatal(err, got.State)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/task")
		})
	}
}
