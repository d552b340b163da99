package collectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatcrumbs/crumbs/collectors/containers"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// StageConfig configures the collect stage.
type StageConfig struct {
	// Collectors holds each collector's configuration by name (Factory.Name); a factory
	// without one is built with its defaults.
	Collectors map[string]any
	// HostRoot is where the host's root directory is in this process's view (Deps.HostRoot).
	HostRoot string
	// Spool, Redact, Health and Containers apply to every collector.
	Spool      SpoolConfig
	Redact     RedactConfig
	Health     HealthConfig
	Containers containers.Config
}

// StageDeps is what the collect stage takes from the process that runs it.
type StageDeps struct {
	Host    schemas.Host
	Log     *slog.Logger
	Metrics prometheus.Registerer
	Serde   *avro.Serde
	// Counters returns the records-in/out/dropped counters of one collector (the status
	// line reads them); nil counts nowhere.
	Counters func(collector string) *telemetry.StageCounters
}

// ErrNoneEnabled is NewStage's error when the configuration enables no collector.
var ErrNoneEnabled = errors.New("collectors: every collector is disabled")

// NothingRuns is NewStage's error when collectors are enabled but none can run on this
// host; Reports says why for each.
type NothingRuns struct{ Reports []Report }

func (e *NothingRuns) Error() string {
	var why []string
	for _, r := range e.Reports {
		w := r.Collector
		if r.Reason != nil {
			w += ": " + string(r.Reason.Capability) + ": " + r.Reason.Answer
		}
		why = append(why, w)
	}
	return "no collector can run on this host (" + strings.Join(why, "; ") + "); crumbs doctor says what this host allows"
}

// Stage is the collect stage: every enabled collector that can run on this host, each
// publishing its events to crumbs.raw.<name>. A collector that cannot run here is reported
// (a warning, crumbs_collector_up 0, a collector_off health event) and the others run.
type Stage struct {
	log     *slog.Logger
	host    schemas.Host
	running []*runningCollector
	reports []Report             // of every enabled collector, running or not
	meta    *containers.Resolver // nil: container metadata off
}

// runningCollector is one collector of the stage and its publisher.
type runningCollector struct {
	name, schema string
	col          Collector
	pub          *Publisher
	counters     *telemetry.StageCounters
}

// NewStage builds the enabled collectors, in the factories' order, each with the
// collectors built before it (Deps.Built), and a publisher for each one that runs. A
// collector that cannot run here (an *Unavailable) is left out and reported; any other
// error stops the build, releasing what was built. It returns ErrNoneEnabled or a
// *NothingRuns when there is nothing to run.
func NewStage(cfg StageConfig, kcfg kafka.Config, factories []Factory, deps StageDeps) (*Stage, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	s := &Stage{log: deps.Log, host: deps.Host}
	var built []Collector
	fail := func(err error) (*Stage, error) {
		s.Close()
		return nil, err
	}
	red, err := NewRedactor(cfg.Redact)
	if err != nil {
		return nil, err
	}
	if cfg.Containers.Enabled {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // bounds the sockets' first answers
		s.meta, err = containers.New(ctx, cfg.Containers, deps.Log, deps.Metrics)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("container metadata: %w", err)
		}
	}
	enabled := 0
	for _, f := range factories {
		c, ok := cfg.Collectors[f.Name]
		if !ok {
			c = f.DefaultConfig()
		}
		if !f.Enabled(c) {
			continue
		}
		enabled++
		col, err := f.New(c, Deps{Host: deps.Host, HostRoot: cfg.HostRoot, Log: deps.Log, Built: built}) // each names itself in its logs
		var un *Unavailable
		switch {
		case errors.As(err, &un):
			s.reports = append(s.reports, un.Report)
			registerReport(deps.Metrics, un.Report)
			continue
		case err != nil:
			return fail(fmt.Errorf("%s collector: %w", f.Name, err))
		}
		built = append(built, col)
		rep := col.Report()
		s.reports = append(s.reports, rep)
		registerReport(deps.Metrics, rep)
		rc := &runningCollector{name: f.Name, schema: f.Schema, col: col}
		s.running = append(s.running, rc)
		if deps.Counters != nil {
			rc.counters = deps.Counters(f.Name)
		}
		rc.pub, err = NewPublisher(kcfg, deps.Serde, rc.counters,
			WithCollector(f.Name, deps.Host, deps.Log), WithSpool(cfg.Spool),
			WithRedactor(red), WithContainers(s.meta), WithHealth(cfg.Health, col.KernelDrops, deps.Metrics))
		if err != nil {
			return fail(err)
		}
	}
	if enabled == 0 {
		return fail(ErrNoneEnabled)
	}
	if len(s.running) == 0 {
		return fail(&NothingRuns{Reports: s.reports})
	}
	return s, nil
}

// Reports says what each enabled collector does on this host.
func (s *Stage) Reports() []Report { return s.reports }

// Close releases the collectors and publishers of a stage that will not Run, giving the
// publishers a few seconds to flush.
func (s *Stage) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, rc := range s.running {
		if rc.pub != nil {
			_ = rc.pub.Close(ctx)
		}
		rc.col.Close()
	}
	s.meta.Close()
}

// Run publishes the health events of what does not work in full here, then runs every
// collector until ctx is done, and returns once each has flushed what it published.
func (s *Stage) Run(ctx context.Context) error {
	s.reportHealth(ctx)
	errs := make([]error, len(s.running))
	var wg, metaWG sync.WaitGroup
	metaCtx, stopMeta := context.WithCancel(ctx)
	if s.meta != nil { // asks the container runtimes while the collectors publish
		metaWG.Go(func() { _ = s.meta.Run(metaCtx) })
	}
	for i, rc := range s.running {
		wg.Go(func() { errs[i] = rc.run(ctx, s.log, s.host.ID) })
	}
	wg.Wait()
	stopMeta()
	metaWG.Wait()
	s.meta.Close()
	return errors.Join(errs...)
}

// reportHealth publishes a health event for each feature that does not work in full, and
// one for each collector that cannot run (through the first running collector's publisher:
// the event names the collector).
func (s *Stage) reportHealth(ctx context.Context) {
	now := time.Now()
	for _, rep := range s.reports {
		pub := s.running[0].pub
		for _, rc := range s.running {
			if rc.name == rep.Collector {
				pub = rc.pub
			}
		}
		for _, ev := range ReportEvents(rep, s.host, now) {
			if err := pub.PublishHealth(ctx, ev); err != nil {
				s.log.Warn("health event not published", "collector", rep.Collector, "error", err)
			}
		}
	}
}

// run runs one collector, publishing each event, and reports its drops every second.
func (rc *runningCollector) run(ctx context.Context, log *slog.Logger, hostID string) error {
	done := make(chan struct{})
	go func() { // drops are read from the collector's counters
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var reported uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				failed, last := rc.pub.Failed()
				if rc.counters != nil {
					rc.counters.SetDropped(rc.col.KernelDrops() + failed)
				}
				if failed > reported {
					log.Warn("events not delivered to Kafka", "collector", rc.name, "count", failed-reported, "last_error", last)
					reported = failed
				}
			}
		}
	}()
	err := rc.col.Run(ctx, func(event any) {
		if err := rc.pub.Publish(ctx, rc.name, rc.schema, hostID, event); err != nil {
			log.Warn("event not published", "collector", rc.name, "err", err)
		}
	})
	<-done
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return errors.Join(err, rc.pub.Close(fctx))
}
