package detectors

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

func benchEvents(b *testing.B, n int) []map[string]any {
	b.Helper()
	evs := make([]map[string]any, 1024)
	for i := range evs {
		tool := n + i // half the events match one rule, half none, whatever n
		if i%2 == 0 {
			tool = (i / 2) % n
		}
		ev, err := engine.FixtureEvent("process", map[string]any{
			"time": int64(i) * int64(time.Millisecond), "action": "exec",
			"process": map[string]any{"file": map[string]any{"name": fmt.Sprint("tool", tool)}, "cmd_line": "tool -x"},
		}, fmt.Sprint("e", i))
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

// BenchmarkEngineRules measures events per second on one core with 10, 100 and 1000 rules.
func BenchmarkEngineRules(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			e, err := engine.New(nativeRules(b, n), engine.Options{})
			if err != nil {
				b.Fatal(err)
			}
			evs := benchEvents(b, n)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := e.Process(0, evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkStateMemory measures the memory of 100,000 active group keys of a threshold rule.
func BenchmarkStateMemory(b *testing.B) {
	r, ps := engine.ParseRule("t.yaml", []byte(strings.Join([]string{"id: t", "title: T", "severity: low", "source: identity",
		"kind: threshold", "condition: identity.result == \"failure\"", "group_by: [identity.target_user]", "window: 1h",
		"threshold: {value: 1000}"}, "\n")))
	if len(ps) > 0 {
		b.Fatal(ps)
	}
	const keys = 100000
	evs := make([]map[string]any, keys)
	for i := range evs {
		ev, err := engine.FixtureEvent("identity", map[string]any{"time": int64(i), "action": "auth",
			"identity": map[string]any{"result": "failure", "target_user": fmt.Sprint("user", i)}}, fmt.Sprint("e", i))
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = ev
	}
	var perKeys float64
	for i := 0; i < b.N; i++ {
		e, err := engine.New([]*engine.Rule{r}, engine.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, ev := range evs {
			if _, err := e.Process(0, ev); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := e.Changes(); err != nil { // the changelog flush of a batch clears its dirty set
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if e.Stats().Keys != keys {
			b.Fatalf("keys: %d", e.Stats().Keys)
		}
		perKeys = float64(after.HeapAlloc - before.HeapAlloc)
		runtime.KeepAlive(e)
	}
	b.ReportMetric(perKeys/(1<<20), "MiB/100k-keys")
	b.ReportMetric(perKeys/keys, "B/key")
}
