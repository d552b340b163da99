package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/process"
	"github.com/threatcrumbs/crumbs/detectors"
	"github.com/threatcrumbs/crumbs/enrichers"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// stage is what every stage package returns: Run returns when ctx is done, after flushing.
type stage interface {
	Run(ctx context.Context) error
}

// runtime is what the stages of one process share.
type runtime struct {
	cfg      *Config
	log      *slog.Logger
	reg      *prometheus.Registry
	serde    *avro.Serde
	counters []*telemetry.StageCounters
}

func newRuntime(cfg *Config) (*runtime, error) {
	serde, err := schemas.NewSerde()
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &runtime{cfg: cfg, log: cfg.logger(), reg: reg, serde: serde}, nil
}

func (rt *runtime) stageCounters(stage, group string) *telemetry.StageCounters {
	c := telemetry.NewStageCounters(prometheus.WrapRegistererWith(prometheus.Labels{"group": group}, rt.reg), stage, group)
	rt.counters = append(rt.counters, c)
	return c
}

// txnID is the transactional id of this instance of a stage: stable across restarts of the
// same host, so a restarted instance fences its predecessor and aborts its open transaction.
func (rt *runtime) txnID(group string) string { return group + "-" + rt.cfg.Host.Name }

func (rt *runtime) enricher() (stage, error) {
	c := rt.cfg
	return enrichers.New(c.Enricher, c.Kafka, enrichers.Deps{
		Log: rt.log, Metrics: rt.reg, Counters: rt.stageCounters("enrich", c.Enricher.Group),
		Serde: rt.serde, TransactionalID: rt.txnID(c.Enricher.Group),
	})
}

func (rt *runtime) detector() (stage, error) {
	c := rt.cfg
	return detectors.New(c.Detector, c.Kafka, detectors.Deps{
		Log: rt.log, Metrics: rt.reg, Counters: rt.stageCounters("detect", c.Detector.Group),
		Serde: rt.serde, TransactionalID: rt.txnID(c.Detector.Group),
	})
}

func (rt *runtime) sink() (stage, error) {
	c := rt.cfg
	return clickhouse.New(c.ClickHouse, c.Kafka, clickhouse.Deps{
		Log: rt.log, Metrics: rt.reg, Counters: rt.stageCounters("sink", c.ClickHouse.Group),
	})
}

// processCollector runs the process collector and publishes what it sees.
type processCollector struct {
	rt        *runtime
	collector *process.Collector
	pub       *crumbscollectors.Publisher
	counters  *telemetry.StageCounters
}

func (rt *runtime) collector() (stage, error) {
	c := rt.cfg
	counters := rt.stageCounters("collect", "")
	pub, err := crumbscollectors.NewPublisher(c.Kafka, rt.serde, counters)
	if err != nil {
		return nil, err
	}
	col, err := process.New(c.Collectors.Process, c.host(), rt.log)
	if err != nil {
		_ = pub.Close(context.Background())
		return nil, fmt.Errorf("process collector: %w", err)
	}
	return &processCollector{rt: rt, collector: col, pub: pub, counters: counters}, nil
}

func (p *processCollector) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { // kernel drops are read from the collector's counters
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var reported uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				failed, last := p.pub.Failed()
				p.counters.SetDropped(p.collector.Stats().KernelDrops + failed)
				if failed > reported {
					p.rt.log.Warn("events not delivered to Kafka", "count", failed-reported, "last_error", last)
					reported = failed
				}
			}
		}
	}()
	hostID := p.rt.cfg.Host.ID
	err := p.collector.Run(ctx, func(ev *schemas.ProcessEvent) {
		if err := p.pub.Publish(ctx, schemas.KindProcess, schemas.ProcessSchema, hostID, ev.Native()); err != nil {
			p.rt.log.Warn("event not published", "err", err)
		}
	})
	<-done
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return errors.Join(err, p.pub.Close(fctx))
}

// serveMetrics serves /metrics and /healthz until ctx is done.
func (rt *runtime) serveMetrics(ctx context.Context) (func(), error) {
	addr := rt.cfg.Metrics.Listen
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(rt.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// ensureTopics creates the pipeline's topics that are missing.
func (rt *runtime) ensureTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(rt.cfg.Kafka.ClientOpts()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	return rt.cfg.Kafka.EnsureTopics(ctx, cl, rt.cfg.Kafka.AllTopics())
}

// runOne runs a single stage until a signal, for `crumbs collect|enrich|detect|sink`.
func runOne(cmd *cobra.Command, build func(*runtime) (stage, error)) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	if len(cfg.Kafka.Brokers) == 0 {
		return &exitCode{2, errors.New("kafka.brokers: a single stage needs brokers (crumbs up runs an embedded one)")}
	}
	rt, err := newRuntime(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext(cmd)
	defer cancel()
	if err := rt.ensureTopics(ctx); err != nil {
		return err
	}
	stopMetrics, err := rt.serveMetrics(ctx)
	if err != nil {
		return err
	}
	defer stopMetrics()
	s, err := build(rt)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

func collectCmd() *cobra.Command {
	return &cobra.Command{Use: "collect", Short: "Run the collectors, producing raw events to Kafka", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOne(cmd, (*runtime).collector) }}
}

func enrichCmd() *cobra.Command {
	return &cobra.Command{Use: "enrich", Short: "Run the enricher: raw events joined with context, exactly once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOne(cmd, (*runtime).enricher) }}
}

func detectCmd() *cobra.Command {
	return &cobra.Command{Use: "detect", Short: "Run the detector: enriched events judged by rules, alerts out, exactly once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOne(cmd, (*runtime).detector) }}
}

func sinkCmd() *cobra.Command {
	return &cobra.Command{Use: "sink", Short: "Run the ClickHouse sink: enriched events and alerts into ClickHouse", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOne(cmd, (*runtime).sink) }}
}
