package lease

import (
	"context"
	"fmt"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/tracing"
)

// BenchmarkRunLocal is the broker's cost of an attempt run by the
// in-process executor (a no-op), with tracing off (no Tracer: what a
// server without OTEL_* variables does) and on (an SDK provider
// exporting to memory), so the cost of tracing off can be compared with
// the code before tracing existed and the cost of tracing on is known.
//
//	go test -run '^$' -bench RunLocal -benchtime 20000x ./internal/lease/
func BenchmarkRunLocal(b *testing.B) {
	for _, traced := range []bool{false, true} {
		b.Run(fmt.Sprintf("traced=%v", traced), func(b *testing.B) {
			br, _, _ := newBroker(b)
			if traced {
				tp := tracing.NewProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
				defer tp.Shutdown(context.Background())
				br.Tracer = tp.Tracer("bench")
			}
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() {
				br.RunLocal(ctx, 4, nil, func(context.Context, *runner.Attempt) runner.AttemptResult {
					return runner.AttemptResult{Outcome: attempt.Succeeded}
				})
			})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a := offered(1, "t", 0)
				if res := br.Run(context.Background(), a); res.Outcome != attempt.Succeeded {
					b.Fatal(res)
				}
			}
			b.StopTimer()
			stop()
			wg.Wait()
		})
	}
}
