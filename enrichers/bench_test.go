package enrichers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
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
// exactly-once loop without enrichment; it reports both (medians of benchRounds rounds) and the
// median and lowest of the rounds' ratios (target >= 0.5). Events pick a host and a binary
// uniformly at random, the worst case for the caches (real streams repeat hosts and binaries),
// and come in time order, give or take 5 s.
// b.N is the number of events per stage and round; run it with e.g. -benchtime 100000x.
func BenchmarkEnricher(b *testing.B) {
	// The broker is kfake in this process: its in-memory segments grow by copying, which
	// with its default 100 MiB segments sweeps the caches on every growth, more than a broker
	// appending to files does. Small segments keep that cost bounded for both stages.
	k, err := kafka.StartEmbedded(kafka.EmbeddedConfig{}, kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(1 << 20)}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Close)
	kcfg := testKafkaConfig(k.Addrs())
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
		ev := execEvent(fmt.Sprintf("host-%d", h), benchEventTime(rng, i, n), path, goodSHA, "svc")
		ev.Process.CmdLine = path + " --serve --port 8080"
		ev.Process.Args = []string{path, "--serve", "--port", "8080"}
		ev.Process.CWD = "/opt"
		ev.Process.Parent = schemas.Parent{PID: 1, File: schemas.File{Path: "/usr/lib/systemd/systemd", Name: "systemd"}, CmdLine: "/sbin/init"}
		events[i] = ev
	}
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := kcfg.EnsureTopics(context.Background(), cl, kcfg.AllTopics()); err != nil {
		b.Fatal(err)
	}
	produceRaw(b, kcfg, serde, events...)
	// Each stage writes to topics of its own, fresh in every round, so neither pays for the
	// broker's segments the other grew; the rounds alternate which stage goes first.
	b.ResetTimer()
	var pass, enrich []float64
	for round := range benchRounds {
		passOut, enrichOut := fmt.Sprintf("bench.pass.%d", round), fmt.Sprintf("bench.enriched.%d", round)
		b.StopTimer()
		if err := kcfg.EnsureTopics(context.Background(), cl, []kafka.TopicSpec{{Name: passOut}, {Name: enrichOut}}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		copyThrough := func(r *kgo.Record) ([]*kgo.Record, error) {
			return []*kgo.Record{{Topic: passOut, Key: r.Key, Value: r.Value, Headers: r.Headers}}, nil
		}
		enrichTo := func(recs []*kgo.Record) ([][]*kgo.Record, []error) {
			outs, errs := e.enrichBatch(recs)
			for _, out := range outs {
				for _, o := range out {
					o.Topic = enrichOut
				}
			}
			return outs, errs
		}
		runPass := func() {
			pass = append(pass, runBenchStage(b, kcfg, fmt.Sprintf("bench-pass-%d", round), n, kafka.Transform(copyThrough).Batch()))
		}
		runEnrich := func() {
			enrich = append(enrich, runBenchStage(b, kcfg, fmt.Sprintf("bench-enrich-%d", round), n, enrichTo))
		}
		if round%2 == 0 {
			runPass()
			runEnrich()
		} else {
			runEnrich()
			runPass()
		}
	}
	b.StopTimer()
	ratios := make([]float64, len(pass))
	for i := range pass {
		ratios[i] = enrich[i] / pass[i]
	}
	b.ReportMetric(median(pass), "pass_events/s/core")
	b.ReportMetric(median(enrich), "enrich_events/s/core")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(slices.Min(ratios), "min_ratio")
	held := e.Tables().Stats()
	b.ReportMetric(float64(held.Bytes[schemas.ContextDeploy]+held.Bytes[schemas.ContextChange]+held.Bytes[schemas.ContextInventory])/(1<<20), "context_MiB")
}

// benchRounds is how many times each stage runs; the figures are the medians.
const benchRounds = 5

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

// benchEventTime is the time of the i-th of n events: the stream spans two hours across the
// change windows' start and end, in order as hosts send it, each event up to 5 s late.
func benchEventTime(rng *rand.Rand, i, n int) time.Time {
	return t0.Add(-time.Hour + time.Duration(i)*2*time.Hour/time.Duration(n) - time.Duration(rng.IntN(5000))*time.Millisecond)
}

// runBenchStage consumes the n raw events with a transform through the exactly-once loop in
// its own group and returns events per CPU-second.
func runBenchStage(b *testing.B, kcfg kafka.Config, group string, n int, transform kafka.BatchTransform) float64 {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Int64
	start := cpuTime()
	var err error
	// Labelled, so that a -cpuprofile tells the stages apart (go tool pprof -tagfocus stage=enrich).
	pprof.Do(ctx, pprof.Labels("stage", strings.Split(group, "-")[1]), func(ctx context.Context) {
		err = kafka.RunTransact(ctx, kcfg, kafka.TransactConfig{
			Stage: group, Group: group, TransactionalID: group, Topics: []string{kcfg.Topics().Raw(schemas.KindProcess)},
			MaxPollRecords: 5000, Batch: transform,
			OnRecords: func(in, _, dlq int) {
				if dlq > 0 {
					b.Errorf("%s: %d records dead-lettered", group, dlq)
				}
				if done.Add(int64(in)) >= int64(n) {
					cancel()
				}
			},
		}, nil)
	})
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
