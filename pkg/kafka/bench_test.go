package kafka_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

// BenchmarkEmbeddedProduceAuth measures what authentication and ACLs cost producers of the
// embedded broker: two brokers side by side, each persisting to a data directory as under
// `crumbs up`, one open and one with SASL/SCRAM and the role ACLs, each fed by a producer
// with the collectors' settings (idempotent, acks=all) as the collector role. Each round
// produces the same records (400 bytes, keyed by ten hosts) to both in chunks of 20,000,
// alternating open, auth, auth, open, ... (five chunks each), so that the host's speed, which
// drifts over seconds on a shared machine, weighs on both alike; b.N is the number of rounds.
// Reported: records/s of each over all rounds and auth/open, their ratio (target >= 0.95; the
// log has each round's, whose spread is the host's noise), and auth/open-cpu, the CPU time
// this process spent per record producing to the auth broker over the open one (<= 1.05).
func BenchmarkEmbeddedProduceAuth(b *testing.B) {
	const chunk, chunks = 20000, 5
	ctx := context.Background()
	cfg := kafka.DefaultConfig()
	cfg.Embedded = kafka.EmbeddedConfig{Port: 0, DataDir: filepath.Join(b.TempDir(), "open")}
	open, err := kafka.StartEmbedded(cfg.Embedded)
	if err != nil {
		b.Fatal(err)
	}
	defer open.Close()
	scfg := cfg
	scfg.Embedded = kafka.EmbeddedConfig{Port: 0, DataDir: filepath.Join(b.TempDir(), "secure")}
	secure, err := kafka.StartSecureEmbedded(ctx, scfg, testScope(scfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer secure.Close()

	type side struct {
		name     string
		admin    kafka.Config
		producer kafka.Config
		cl       *kgo.Client
		took     time.Duration
		cpu      time.Duration // CPU time of this process (both brokers and producers) while producing to this side
	}
	sides := []*side{
		{name: "open", admin: open.ClientConfig(cfg, kafka.RoleAdmin), producer: open.ClientConfig(cfg, kafka.RoleCollector)},
		{name: "auth", admin: secure.ClientConfig(scfg, kafka.RoleAdmin), producer: secure.ClientConfig(scfg, kafka.RoleCollector)},
	}
	topic := cfg.Topics().Raw("process")
	for _, s := range sides {
		adm, err := kgo.NewClient(s.admin.ClientOpts()...)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.admin.EnsureTopics(ctx, adm, []kafka.TopicSpec{{Name: topic}}); err != nil {
			b.Fatal(err)
		}
		adm.Close()
		if s.cl, err = kgo.NewClient(append(s.producer.ClientOpts(), kgo.RequiredAcks(kgo.AllISRAcks()))...); err != nil {
			b.Fatal(err)
		}
		defer s.cl.Close()
	}
	value := make([]byte, 400)
	_, _ = rand.Read(value)
	keys := make([][]byte, 10)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "%032x", i+1)
	}
	produce := func(s *side, n int) time.Duration {
		var failed atomic.Int64
		cpu0 := cpuTime(b)
		start := time.Now()
		for i := range n {
			s.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: keys[i%len(keys)], Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
		if err := s.cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		s.cpu += cpuTime(b) - cpu0
		if f := failed.Load(); f > 0 {
			b.Fatalf("%s: %d records failed", s.name, f)
		}
		return took
	}
	for _, s := range sides { // connections, metadata and producer ids before the clock runs
		produce(s, 1000)
		s.cpu = 0
	}
	var ratios []float64
	b.ResetTimer()
	for range b.N {
		var took [2]time.Duration
		for c := range 2 * chunks {
			j := (c + c/2) % 2 // 0 1 1 0 0 1 1 0 ...
			d := produce(sides[j], chunk)
			took[j] += d
			sides[j].took += d
		}
		ratios = append(ratios, took[0].Seconds()/took[1].Seconds()) // auth rate / open rate
	}
	b.StopTimer()
	b.Logf("auth/open per round: %.3f", ratios)
	for _, s := range sides {
		b.ReportMetric(float64(chunk*chunks*b.N)/s.took.Seconds(), s.name+"-records/s")
	}
	b.ReportMetric(sides[0].took.Seconds()/sides[1].took.Seconds(), "auth/open")
	// CPU per record, auth over open: less at the mercy of other work on the host than
	// wall time (target <= 1.05).
	b.ReportMetric(sides[1].cpu.Seconds()/sides[0].cpu.Seconds(), "auth/open-cpu")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
