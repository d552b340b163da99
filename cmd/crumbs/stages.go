package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	rpprof "runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/registry"
	"github.com/threatcrumbs/crumbs/detectors"
	"github.com/threatcrumbs/crumbs/enrichers"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/privilege"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
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
	creds    map[kafka.Role]kafka.Credentials // the embedded broker's roles, under crumbs up
	roles    map[kafka.Role]roleConfig        // resolved before dropping privileges (readRoles)
	user     *privilege.User                  // the service user, once looked up
	// gatherer is what /metrics serves: reg, and under crumbs up the collectors' too.
	gatherer prometheus.Gatherer
}

func newRuntime(cfg *Config) (*runtime, error) { return newRuntimeFor(cfg, "") }

// newRuntimeFor builds the runtime of one process; under crumbs up, process names it (collect
// or stages) in the label crumbs_process of the Go and process metrics, which both serve.
func newRuntimeFor(cfg *Config, process string) (*runtime, error) {
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	reg := prometheus.NewRegistry()
	var procReg prometheus.Registerer = reg
	if process != "" {
		procReg = prometheus.WrapRegistererWith(prometheus.Labels{"crumbs_process": process}, reg)
	}
	procReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt := &runtime{cfg: cfg, log: cfg.logger(), reg: reg, gatherer: reg, serde: serde}
	rt.useSchemaRegistry()
	return rt, nil
}

// useSchemaRegistry registers crumbs' schemas in the configured schema registry, so that the
// serde writes the Confluent framing and learns other producers' ids from the registry. A
// registry that refuses or does not answer within kafka.schema_registry.start_timeout
// leaves the process writing single-object encoding, said in an error log (and by crumbs
// doctor): the pipeline runs on, and readers with standard converters see the change.
func (rt *runtime) useSchemaRegistry() {
	cfg := rt.cfg.Kafka.SchemaRegistry
	if cfg.URL == "" {
		return
	}
	ctx := context.Background() // the process's whole life: the registry answers decoders until exit
	reg, err := kafka.NewSchemaRegistry(ctx, cfg)
	if err == nil {
		var subjects []string
		subjects, err = reg.Register(ctx, rt.serde, rt.cfg.Kafka.TopicSchemas(), rt.log)
		if err == nil {
			rt.log.Info("schemas registered: records carry the Confluent framing", "registry", cfg.URL, "subjects", len(subjects))
			return
		}
	}
	rt.log.Error("schema registry not used: records carry Avro single-object encoding, which Confluent converters cannot read",
		"registry", cfg.URL, "error", err)
}

func (rt *runtime) stageCounters(stage, group string) *telemetry.StageCounters {
	c := telemetry.NewStageCounters(prometheus.WrapRegistererWith(prometheus.Labels{"group": group}, rt.reg), stage, group)
	rt.counters = append(rt.counters, c)
	return c
}

// txnID is the transactional id of this instance of a stage: stable across restarts of the
// same host, so a restarted instance fences its predecessor and aborts its open transaction.
func (rt *runtime) txnID(group string) string { return group + "-" + rt.cfg.Host.Name }

// enricher builds the enricher, with the context API and the context directory sync when
// they are configured (enricher.api.listen, enricher.context_dir).
func (rt *runtime) enricher() (stage, error) {
	c := rt.cfg
	kcfg, err := rt.kafka(kafka.RoleEnricher)
	if err != nil {
		return nil, err
	}
	e, err := enrichers.New(c.Enricher, kcfg, enrichers.Deps{
		Log: rt.log, Metrics: rt.reg, Counters: rt.stageCounters("enrich", c.Enricher.Group),
		Serde: rt.serde, TransactionalID: rt.txnID(c.Enricher.Group),
	})
	if err != nil {
		return nil, err
	}
	group := stageGroup{e}
	// The context API and directory publish context: the context role's, not the enricher's.
	ctxcfg, err := rt.kafka(kafka.RoleContext)
	if err != nil && (c.Enricher.API.Listen != "" || c.Enricher.ContextDir != "") {
		return nil, err
	}
	if c.Enricher.API.Listen != "" {
		api, err := enrichers.NewContextAPI(c.Enricher, ctxcfg, rt.serde, rt.log)
		if err != nil {
			return nil, err
		}
		group = append(group, api)
	}
	if c.Enricher.ContextDir != "" {
		dir, err := enrichers.NewContextDir(c.Enricher, ctxcfg, rt.serde, rt.log)
		if err != nil {
			return nil, err
		}
		if err := dir.RegisterMetrics(rt.reg); err != nil {
			return nil, err
		}
		group = append(group, dir)
	}
	return group, nil
}

func (rt *runtime) detector() (stage, error) {
	c := rt.cfg
	kcfg, err := rt.kafka(kafka.RoleDetector)
	if err != nil {
		return nil, err
	}
	return detectors.New(c.Detector, kcfg, detectors.Deps{
		Log: rt.log, Metrics: rt.reg, Counters: rt.stageCounters("detect", c.Detector.Group),
		Serde: rt.serde, TransactionalID: rt.txnID(c.Detector.Group),
	})
}

func (rt *runtime) sink() (stage, error) {
	c := rt.cfg
	kcfg, err := rt.kafka(kafka.RoleSink)
	if err != nil {
		return nil, err
	}
	return clickhouse.New(c.ClickHouse, kcfg, clickhouse.Deps{
		Log: rt.log, Metrics: rt.reg, Counters: rt.stageCounters("sink", c.ClickHouse.Group),
	})
}

// labelled runs a stage with the profile label stage=name on its goroutines and those they
// start (metrics.pprof).
type labelled struct {
	name string
	stage
}

func (l labelled) Run(ctx context.Context) error {
	var err error
	rpprof.Do(ctx, rpprof.Labels("stage", l.name), func(ctx context.Context) { err = l.stage.Run(ctx) })
	return err
}

// stageGroup runs stages side by side as one; Run returns when all have returned.
type stageGroup []stage

func (cs stageGroup) Run(ctx context.Context) error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, s := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Run(ctx) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// collectStage builds the collect stage from the collectors' factories: every enabled
// collector that can run on this host. A collector that cannot is reported and left out;
// the stage fails only when none can run (crumbscollectors.NothingRuns) or none is enabled
// (crumbscollectors.ErrNoneEnabled).
func (rt *runtime) collectStage() (stage, error) {
	c := rt.cfg
	kcfg, err := rt.kafka(kafka.RoleCollector)
	if err != nil {
		return nil, err
	}
	s, err := crumbscollectors.NewStage(crumbscollectors.StageConfig{
		Collectors: c.Collectors.byName(), HostRoot: c.Collectors.HostRoot, Spool: c.Collectors.Spool, Redact: c.Collectors.Redact, Health: c.Collectors.Health,
		Containers: c.Collectors.Containers,
	}, kcfg, registry.Factories(), crumbscollectors.StageDeps{
		Host: c.host(), Log: rt.log, Metrics: rt.reg, Serde: rt.serde,
		Counters: func(name string) *telemetry.StageCounters { return rt.stageCounters(name, "") },
	})
	if err != nil {
		return nil, err
	}
	return s, nil
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
	mux.Handle("/metrics", promhttp.HandlerFor(rt.gatherer, promhttp.HandlerOpts{}))
	if rt.cfg.Metrics.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
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

// ensureTopics creates the pipeline's topics that are missing, as far as the role may see and
// create them (the admin role creates them all).
func (rt *runtime) ensureTopics(ctx context.Context, r kafka.Role) error {
	kcfg, err := rt.kafka(r)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	return kcfg.EnsureTopics(ctx, cl, kcfg.AllTopics(rt.cfg.Detector.Group))
}

// alignTopics sets the configured retention on the pipeline's topics that exist (admin role).
func (rt *runtime) alignTopics(ctx context.Context) error {
	kcfg, err := rt.kafka(kafka.RoleAdmin)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	return kcfg.AlignTopics(ctx, cl, kcfg.AllTopics(rt.cfg.Detector.Group))
}

// runOne runs a single stage, acting as its Kafka role, until a signal, for
// `crumbs collect|enrich|detect|sink|deliver`. Started as root, it reads its role's
// credentials and binds its metrics port, then becomes the crumbs user: the collect stage
// once its programs are loaded, with the capabilities its collectors need; every other stage
// before it is built, with none.
func runOne(cmd *cobra.Command, role kafka.Role, build func(*runtime) (stage, error)) error {
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
	rt.readRoles(append([]kafka.Role{role}, alsoActsAs[role]...)...)
	stopMetrics, err := rt.serveMetrics(ctx)
	if err != nil {
		return err
	}
	defer stopMetrics()
	collect := role == kafka.RoleCollector
	if collect {
		if err := rt.ownCollectorDirs(); err != nil { // before the spool's first files
			return err
		}
	} else if err := rt.dropPrivileges(); err != nil {
		return err
	}
	if err := rt.ensureTopics(ctx, role); err != nil {
		return err
	}
	s, err := build(rt)
	if err != nil {
		return err
	}
	if collect { // loaded: what the collectors write becomes the service user's, as they do
		if err := rt.ownCollectorDirs(); err != nil {
			return err
		}
		if err := rt.dropPrivileges(collectorCapabilities(s)...); err != nil {
			return err
		}
	}
	return s.Run(ctx)
}

func collectCmd() *cobra.Command {
	return &cobra.Command{Use: "collect", Short: "Run the collectors, producing raw events to Kafka", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOne(cmd, kafka.RoleCollector, (*runtime).collectStage)
		}}
}

func enrichCmd() *cobra.Command {
	return &cobra.Command{Use: "enrich", Short: "Run the enricher: raw events joined with context, exactly once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOne(cmd, kafka.RoleEnricher, (*runtime).enricher)
		}}
}

func detectCmd() *cobra.Command {
	return &cobra.Command{Use: "detect", Short: "Run the detector: enriched events judged by rules, alerts out, exactly once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOne(cmd, kafka.RoleDetector, (*runtime).detector)
		}}
}

func sinkCmd() *cobra.Command {
	return &cobra.Command{Use: "sink", Short: "Run the ClickHouse sink: enriched events and alerts into ClickHouse", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOne(cmd, kafka.RoleSink, (*runtime).sink) }}
}
