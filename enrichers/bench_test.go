package enrichers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Context loaded for the benchmark, as the issue sets it.
const (
	benchHosts     = 10_000
	benchServices  = 1_000
	benchChanges   = 1_000
	benchManifest  = 100_000 // entries over all deploys
	benchArtifacts = benchManifest / benchServices
)

// loadBenchContext fills tables with the benchmark's context: each host serves one service,
// each service has one deploy listing benchArtifacts files and one change window.
func loadBenchContext(b *testing.B, tables *ContextTables) {
	b.Helper()
	for h := range benchHosts {
		put(b, tables, &schemas.InventoryRecord{ID: fmt.Sprintf("host-%d", h), Host: fmt.Sprintf("host-%d", h),
			Service: fmt.Sprintf("svc-%d", h%benchServices), Environment: "prod", Role: "web"})
	}
	for s := range benchServices {
		d := &schemas.DeployRecord{ID: fmt.Sprintf("DEP-%d", s), Service: fmt.Sprintf("svc-%d", s), Version: "1.0.0", DeployedAt: ts(-time.Hour)}
		for a := range benchArtifacts {
			d.Artifacts = append(d.Artifacts, schemas.Artifact{Path: fmt.Sprintf("/opt/svc-%d/bin/tool-%d", s, a), SHA256: goodSHA, Owner: "svc", Group: "svc", Mode: "0755"})
		}
		put(b, tables, d)
	}
	for c := range benchChanges {
		put(b, tables, &schemas.ChangeRecord{ID: fmt.Sprintf("CHG-%d", c), Type: schemas.ChangePlanned, Title: "planned",
			Services: []string{fmt.Sprintf("svc-%d", c%benchServices)}, StartsAt: ts(0), EndsAt: ts(time.Hour)})
	}
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEnricher measures the enricher's events per second per core (events over CPU
// seconds of the whole process, broker included) with the context loaded, and the same
// for a pass-through stage that consumes and produces the same records through the same
// exactly-once loop without enrichment; it reports both and their ratio (target >= 0.5).
// b.N is the number of events; run it with e.g. -benchtime 50000x.
func BenchmarkEnricher(b *testing.B) {
	kcfg := startKafka(b)
	e, err := New(DefaultConfig(), kcfg, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	loadBenchContext(b, e.Tables())
	serde := e.deps.Serde
	rng := rand.New(rand.NewPCG(1, 2))
	n := max(b.N, 1000)
	events := make([]any, n)
	for i := range events {
		h, s := rng.IntN(benchHosts), 0
		s = h % benchServices
		path := fmt.Sprintf("/opt/svc-%d/bin/tool-%d", s, rng.IntN(benchArtifacts))
		if i%4 == 0 {
			path = "/usr/bin/curl"
		}
		ev := execEvent(fmt.Sprintf("host-%d", h), t0.Add(time.Duration(rng.IntN(7200))*time.Second-time.Hour), path, goodSHA, "svc")
		ev.Process.CmdLine = path + " --serve --port 8080"
		ev.Process.Args = []string{path, "--serve", "--port", "8080"}
		ev.Process.CWD = "/opt"
		ev.Process.Parent = schemas.Parent{PID: 1, File: schemas.File{Path: "/usr/lib/systemd/systemd", Name: "systemd"}, CmdLine: "/sbin/init"}
		events[i] = ev
	}
	produceRaw(b, kcfg, serde, events...)
	b.ResetTimer()

	copyThrough := func(r *kgo.Record) ([]*kgo.Record, error) {
		return []*kgo.Record{{Topic: kcfg.Topics().Enriched(schemas.KindProcess), Key: r.Key, Value: r.Value, Headers: r.Headers}}, nil
	}
	passRate := runBenchStage(b, kcfg, "bench-pass", n, copyThrough)
	enrichRate := runBenchStage(b, kcfg, "bench-enrich", n, e.enrich)
	b.StopTimer()
	b.ReportMetric(passRate, "pass_events/s/core")
	b.ReportMetric(enrichRate, "enrich_events/s/core")
	b.ReportMetric(enrichRate/passRate, "ratio")
	held := e.Tables().Stats()
	b.ReportMetric(float64(held.Bytes[schemas.ContextDeploy]+held.Bytes[schemas.ContextChange]+held.Bytes[schemas.ContextInventory])/(1<<20), "context_MiB")
}

// runBenchStage consumes the n raw events with a transform through the exactly-once loop in
// its own group and returns events per CPU-second.
func runBenchStage(b *testing.B, kcfg kafka.Config, group string, n int, transform kafka.Transform) float64 {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Int64
	start := cpuTime()
	err := kafka.RunTransact(ctx, kcfg, kafka.TransactConfig{
		Stage: group, Group: group, TransactionalID: group, Topics: []string{kcfg.Topics().Raw(schemas.KindProcess)},
		MaxPollRecords: 5000,
		OnRecords: func(in, _, dlq int) {
			if dlq > 0 {
				b.Errorf("%s: %d records dead-lettered", group, dlq)
			}
			if done.Add(int64(in)) >= int64(n) {
				cancel()
			}
		},
	}, transform)
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / (cpuTime() - start).Seconds()
}

// BenchmarkEnrichValue measures the transform alone (no Kafka) with the benchmark's context.
func BenchmarkEnrichValue(b *testing.B) {
	e := newTestEnricher(b)
	loadBenchContext(b, e.Tables())
	raw := encodeEvent(b, e.deps.Serde, execEvent("host-17", t0.Add(time.Minute), "/opt/svc-17/bin/tool-3", goodSHA, "svc"))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := e.EnrichValue(raw); err != nil {
			b.Fatal(err)
		}
	}
}
