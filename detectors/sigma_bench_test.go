package detectors

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// sigmaCorpus is the shared Sigma corpus, <repo root>/../shared/sigma/rules.
func sigmaCorpus(tb testing.TB) string {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared", "sigma", "rules"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("sigma corpus: %v", err)
	}
	return dir
}

// benchRecords are enriched records as a busy host sends them: execs of common tools with
// ordinary command lines, file writes and outbound connections; few match any rule.
func benchRecords(b *testing.B) []*kgo.Record {
	b.Helper()
	serde, err := schemas.NewSerde()
	if err != nil {
		b.Fatal(err)
	}
	tools := []string{"/usr/bin/ls", "/usr/bin/grep", "/usr/bin/git", "/usr/local/go/bin/go", "/usr/bin/bash", "/usr/bin/python3", "/usr/bin/curl", "/usr/sbin/sshd"}
	out := make([]*kgo.Record, 1024)
	for i := range out {
		tool := tools[i%len(tools)]
		proc := map[string]any{"file": map[string]any{"path": tool, "name": filepath.Base(tool)}, "pid": int64(1000 + i),
			"cmd_line": fmt.Sprintf("%s --Color=Auto -n %d /home/Dev/Project/src/File%d.go", filepath.Base(tool), i, i),
			"args":     []any{filepath.Base(tool), "--Color=Auto", "-n", fmt.Sprint(i)}, "cwd": "/home/Dev/Project",
			"parent": map[string]any{"file": map[string]any{"path": "/usr/bin/bash"}, "cmd_line": "-bash"}}
		raw := map[string]any{"time": int64(i) * int64(time.Millisecond), "process": proc}
		kind := []string{"process", "process", "file", "network"}[i%4]
		switch kind {
		case "process":
			raw["action"] = "exec"
		case "file":
			raw["action"] = "write"
			raw["file"] = map[string]any{"path": fmt.Sprintf("/home/Dev/Project/build/Out%d.o", i)}
		case "network":
			raw["action"] = "connect"
			raw["network"] = map[string]any{"direction": "outbound", "protocol": "tcp",
				"dst_endpoint": map[string]any{"ip": "192.0.2.10", "port": int64(443), "hostname": "Proxy.Example.org"}}
		}
		ev, err := engine.FixtureEvent(kind, raw, fmt.Sprint("e", i))
		if err != nil {
			b.Fatal(err)
		}
		v, err := serde.Encode(nil, schemas.EventSchemas[kind], ev)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = &kgo.Record{Topic: "crumbs.enriched." + kind, Value: v}
	}
	return out
}

// benchDetector is a detector over the given rule loader, never run: the benchmark calls
// its per-record stage function (decode, judge, encode the alerts).
func benchDetector(b *testing.B, cfg Config, load func() ([]*engine.Rule, error)) *Detector {
	b.Helper()
	d, err := New(cfg, kafka.DefaultConfig(), Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), LoadRules: load})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// judgeRate runs the records through d's stage function on this goroutine (one core) and
// returns events per second.
func judgeRate(b *testing.B, d *Detector, recs []*kgo.Record) float64 {
	b.Helper()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := d.judge(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
	return float64(b.N) / time.Since(start).Seconds()
}

// BenchmarkDetectorSigmaCorpus measures the detect stage's events per second on one core
// with the whole Sigma corpus loaded (refused files skipped), against the same stage with no
// rules, and reports their ratio.
func BenchmarkDetectorSigmaCorpus(b *testing.B) {
	recs := benchRecords(b)
	cfg := DefaultConfig()
	cfg.SigmaDirs, cfg.SigmaRefused = []string{sigmaCorpus(b)}, "skip"
	corpus := benchDetector(b, cfg, nil)
	none := benchDetector(b, DefaultConfig(), func() ([]*engine.Rule, error) { return nil, nil })
	b.Logf("sigma corpus: %d engine rules", corpus.engine.Rules())
	b.ResetTimer()
	withRules := judgeRate(b, corpus, recs)
	b.StopTimer()
	noRules := judgeRate(b, none, recs)
	b.ReportMetric(withRules, "events/s")
	b.ReportMetric(noRules, "events/s-no-rules")
	b.ReportMetric(withRules/noRules, "ratio")
}
