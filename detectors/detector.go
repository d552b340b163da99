// Package detectors is the detect stage: it consumes enriched events, judges them with the
// rule engine (detectors/engine) over the built-in pack (detectors/rules) or a rules folder,
// and produces alerts to crumbs.alerts and window state to crumbs.state.<group>, with the
// consumed offsets, in one Kafka transaction (exactly once). A partition's state is restored
// from the changelog when it is assigned; rules reload on file change or SIGHUP. A partition
// that receives nothing for detector.idle_timeout has its watermark follow the wall clock, so
// a burst followed by silence still closes its windows (in a transaction of its own). It also
// reads the compacted crumbs.triage, and drops (and counts) the alerts that a false positive's
// suppression in force covers: the same rule on the same host, or with the same group key.
package detectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/detectors/rules"
	"github.com/threatcrumbs/crumbs/detectors/sigma"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Config configures the detector (keys under `detector.`).
type Config struct {
	// Group is the detector's consumer group; its state topic is crumbs.state.<group>.
	// Default "crumbs-detect".
	Group string `mapstructure:"group"`
	// RulesDir is a folder of rule files; empty means the built-in pack. Default "".
	RulesDir string `mapstructure:"rules_dir"`
	// Sources are the event kinds judged (enriched topics consumed). Default every kind of
	// schemas.Kinds.
	Sources []string `mapstructure:"sources"`
	// MaxEvidence caps the evidence event ids an alert carries. Default 20.
	MaxEvidence int `mapstructure:"max_evidence"`
	// MaxPollRecords is how many records one transaction carries at most. Default 5000.
	MaxPollRecords int `mapstructure:"max_poll_records"`
	// AllowedLateness is how far behind the highest event time seen of its kind on its
	// partition an event may be and still count in its window. Default 30s.
	AllowedLateness time.Duration `mapstructure:"allowed_lateness"`
	// IdleTimeout is how long a partition may receive no record before its watermark
	// follows the wall clock (now - allowed_lateness - idle_timeout, never backwards), so
	// windows close and alert after a burst followed by silence. 0 turns it off. It is also
	// how far an event kind's clock may lag the partition's highest before the kind is idle
	// and left out of the partition's watermark (the engine's Options.IdleTimeout; 0 there
	// means 10s). Default 10s.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxStateKeys caps the window states (rule, partition, group key) held in memory; the
	// least recently updated is evicted beyond it. Default 1000000.
	MaxStateKeys int `mapstructure:"max_state_keys"`
	// SigmaDirs are extra folders of Sigma rules, loaded beside RulesDir (or the built-in
	// pack) as one set. Default none.
	SigmaDirs []string `mapstructure:"sigma_dirs"`
	// SigmaRefused is what a Sigma file crumbs cannot evaluate does to the rule set: fail
	// (the set is invalid, as with a bad native rule) or skip (the file is logged with its
	// reason, counted in crumbs_detector_sigma_files_refused, and the rest loads). Default fail.
	SigmaRefused string `mapstructure:"sigma_refused"`
	// SigmaMinLevel is the lowest Sigma level loaded: informational, low, medium, high or
	// critical; a rule without a level counts as medium (the severity its alerts get). Rules
	// below it raise no alert of their own (a correlation above it may still use them).
	// Default medium.
	SigmaMinLevel string `mapstructure:"sigma_min_level"`
	// SigmaStatus are the Sigma statuses loaded (stable, test, experimental, deprecated,
	// unsupported); a rule without a status loads. Default stable, test and experimental:
	// SigmaHQ ships those three in its rules folders and moves deprecated and unsupported
	// rules out of them (a deprecated rule has a replacement; an unsupported one cannot be
	// expressed for usual backends).
	SigmaStatus []string `mapstructure:"sigma_status"`
	// SigmaOnChange is what a change window in force on an event's host or service does to
	// the alerts of Sigma rules, which cannot say it themselves: ignore (alert as if there
	// were none), suppress, or explain (alert one severity lower, naming the change). Default
	// explain: planned work still shows, below the alerts of unplanned work.
	SigmaOnChange string `mapstructure:"sigma_on_change"`
	// ReloadInterval is how often RulesDir is checked for changes (SIGHUP reloads at once).
	// Default 5s.
	ReloadInterval time.Duration `mapstructure:"reload_interval"`
	// MaxConditionCost bounds the cost of one CEL condition on one event, in CEL cost units
	// (about one per comparison, field read or list element visited; string operations count
	// their length): a rule whose condition's estimated worst cost is higher is refused when
	// the rules load, naming its file, line and the estimate; an evaluation that goes past it
	// is stopped, taken as no match, counted (crumbs_detector_conditions_interrupted_total) and
	// logged. Default 100000 (engine.DefaultMaxConditionCost).
	MaxConditionCost uint64 `mapstructure:"max_condition_cost"`
	// Throttle folds the alerts of a match, new_term or sequence rule for one host and group
	// key raised within this long of the first into that alert (its count grows; see the rule
	// option throttle, which overrides it per rule); 0 turns it off. Default 1m.
	Throttle time.Duration `mapstructure:"throttle"`
	// Incidents configures how alerts are tied into incidents.
	Incidents IncidentsConfig `mapstructure:"incidents"`
}

// IncidentsConfig configures incidents (keys under `detector.incidents.`): alerts of one
// process tree or login session on one host, each within Span of the one before, share an
// incident id, and the incident is raised on crumbs.incidents.
type IncidentsConfig struct {
	// Span is how long after an alert another of the same process tree joins its incident;
	// 0 turns incidents off. Default 10m.
	Span time.Duration `mapstructure:"span"`
	// MaxProcesses bounds the process table process trees are read from (fork and exec
	// events), oldest forgotten first. Default 65536.
	MaxProcesses int `mapstructure:"max_processes"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Group: "crumbs-detect", Sources: schemas.Kinds.Names(), MaxEvidence: 20, MaxPollRecords: 5000,
		AllowedLateness: 30 * time.Second, IdleTimeout: 10 * time.Second, MaxStateKeys: 1000000, ReloadInterval: 5 * time.Second,
		SigmaRefused: sigma.RefusedFail, MaxConditionCost: engine.DefaultMaxConditionCost,
		SigmaMinLevel: sigma.DefaultMinLevel, SigmaStatus: slices.Clone(sigma.DefaultStatuses), SigmaOnChange: engine.OnChangeExplain,
		Throttle: time.Minute, Incidents: IncidentsConfig{Span: 10 * time.Minute, MaxProcesses: 65536}}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("detector.group: must not be empty"))
	}
	if len(c.Sources) == 0 {
		errs = append(errs, errors.New("detector.sources: must name at least one kind"))
	}
	for _, s := range c.Sources {
		if !slices.Contains(schemas.Kinds.Names(), s) {
			errs = append(errs, fmt.Errorf("detector.sources: %q: no such event kind (have: %v)", s, schemas.Kinds.Names()))
		}
	}
	if c.RulesDir != "" {
		if st, err := os.Stat(c.RulesDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("detector.rules_dir: %q: not a readable folder", c.RulesDir))
		}
	}
	for i, dir := range c.SigmaDirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("detector.sigma_dirs.%d: %q: not a readable folder", i, dir))
		}
	}
	if c.SigmaRefused != sigma.RefusedFail && c.SigmaRefused != sigma.RefusedSkip {
		errs = append(errs, fmt.Errorf("detector.sigma_refused: %q: must be fail or skip", c.SigmaRefused))
	}
	if !slices.Contains(sigma.Levels, c.SigmaMinLevel) {
		errs = append(errs, fmt.Errorf("detector.sigma_min_level: %q: must be one of %v", c.SigmaMinLevel, sigma.Levels))
	}
	for i, st := range c.SigmaStatus {
		if !slices.Contains(sigma.Statuses, st) {
			errs = append(errs, fmt.Errorf("detector.sigma_status.%d: %q: must be one of %v", i, st, sigma.Statuses))
		}
	}
	if !slices.Contains([]string{engine.OnChangeIgnore, engine.OnChangeSuppress, engine.OnChangeExplain}, c.SigmaOnChange) {
		errs = append(errs, fmt.Errorf("detector.sigma_on_change: %q: must be ignore, suppress or explain", c.SigmaOnChange))
	}
	if c.Throttle < 0 {
		errs = append(errs, fmt.Errorf("detector.throttle: %s: must not be negative (0 turns it off)", c.Throttle))
	}
	if c.Incidents.Span < 0 {
		errs = append(errs, fmt.Errorf("detector.incidents.span: %s: must not be negative (0 turns incidents off)", c.Incidents.Span))
	}
	if c.Incidents.MaxProcesses < 1 {
		errs = append(errs, fmt.Errorf("detector.incidents.max_processes: %d: must be at least 1", c.Incidents.MaxProcesses))
	}
	if c.MaxEvidence < 1 {
		errs = append(errs, fmt.Errorf("detector.max_evidence: %d: must be at least 1", c.MaxEvidence))
	}
	if c.MaxPollRecords < 1 {
		errs = append(errs, fmt.Errorf("detector.max_poll_records: %d: must be at least 1", c.MaxPollRecords))
	}
	if c.AllowedLateness < 0 {
		errs = append(errs, fmt.Errorf("detector.allowed_lateness: %s: must not be negative", c.AllowedLateness))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("detector.idle_timeout: %s: must not be negative (0 turns it off)", c.IdleTimeout))
	}
	if c.MaxStateKeys < 1 {
		errs = append(errs, fmt.Errorf("detector.max_state_keys: %d: must be at least 1", c.MaxStateKeys))
	}
	if c.MaxConditionCost < 100 {
		errs = append(errs, fmt.Errorf("detector.max_condition_cost: %d: must be at least 100", c.MaxConditionCost))
	}
	if c.ReloadInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("detector.reload_interval: %s: must be at least 100ms", c.ReloadInterval))
	}
	return errors.Join(errs...)
}

// LoadRules loads the configured rule set: RulesDir (or the built-in pack) and SigmaDirs, as
// one set; Sigma files in any of them are read as Sigma. Refused Sigma files that
// sigma_refused skips are logged with slog's default logger.
func (c Config) LoadRules() ([]*engine.Rule, error) {
	rs, _, err := c.loadRules(slog.Default())
	return rs, err
}

// loadRules loads the rule set and returns how many Sigma files were refused and skipped.
func (c Config) loadRules(log *slog.Logger) ([]*engine.Rule, int, error) {
	dirs := []engine.RuleDir{{FS: rules.FS, Dir: rules.Dir}}
	if c.RulesDir != "" {
		dirs = []engine.RuleDir{{FS: os.DirFS(c.RulesDir), Dir: ".", Prefix: c.RulesDir}}
	}
	for _, d := range c.SigmaDirs {
		dirs = append(dirs, engine.RuleDir{FS: os.DirFS(d), Dir: ".", Prefix: d})
	}
	skipped := 0
	f := &sigma.Format{Refused: c.SigmaRefused, Filter: c.SigmaFilter(), OnSkip: func(r sigma.LintResult) {
		skipped++
		log.Warn("sigma rule file refused and skipped (detector.sigma_refused: skip)", "file", r.File, "reason", r.Reason())
	}}
	rs, err := engine.LoadDirs(dirs, f)
	for _, r := range f.Results {
		for _, w := range r.Warnings() {
			log.Warn("sigma rule warning (crumbs rules lint)", "file", r.File, "warning", w)
		}
	}
	for _, r := range rs {
		if r.Format == engine.FormatSigma && c.SigmaOnChange != "" {
			r.OnChange = c.SigmaOnChange
		}
	}
	if skipped > 0 && err == nil {
		log.Warn("sigma rule files skipped", "refused", skipped, "loaded", len(f.Results)-skipped)
	}
	if err == nil && f.Counts.Rules > 0 {
		log.Info("sigma rules", "summary", f.Counts.String())
	}
	return rs, skipped, err
}

// SigmaFilter is the Sigma level and status filter of sigma_min_level and sigma_status.
func (c Config) SigmaFilter() sigma.Filter {
	return sigma.Filter{MinLevel: c.SigmaMinLevel, Statuses: c.SigmaStatus}
}

func (c Config) engineOptions() engine.Options {
	update := c.Throttle
	if update <= 0 {
		update = time.Minute
	}
	return engine.Options{MaxEvidence: c.MaxEvidence, AllowedLateness: c.AllowedLateness, IdleTimeout: c.IdleTimeout,
		MaxStateKeys: c.MaxStateKeys, MaxConditionCost: c.MaxConditionCost, Throttle: c.Throttle,
		IncidentSpan: c.Incidents.Span, IncidentUpdate: update, MaxProcesses: c.Incidents.MaxProcesses}
}

// Deps are what a Detector uses besides its configuration. Nil fields get defaults.
type Deps struct {
	Log             *slog.Logger
	Metrics         prometheus.Registerer
	Counters        *telemetry.StageCounters
	Serde           *avro.Serde
	TransactionalID string // stable per instance; default group + "-0"
	// LoadRules replaces Config.LoadRules (the Sigma loader adds its rules here).
	LoadRules func() ([]*engine.Rule, error)
	// FailFlush, in tests, makes the state flush of a batch or of an idle tick fail (aborting
	// its transaction) when it returns true.
	FailFlush func() bool
}

// Detector is the detect stage.
type Detector struct {
	cfg  Config
	kcfg kafka.Config
	deps Deps

	mu       sync.Mutex // guards engine, owned and lastSeen: the poll loop and the group callbacks use them
	engine   *engine.Engine
	owned    map[string]map[int32]bool // topic -> assigned partitions
	lastSeen map[int32]time.Time       // partition -> when it was assigned, last gave a record or was held back
	// heldLogged are the quiet partitions held back from idleness (their lag cannot be read),
	// each logged once; with mu held.
	heldLogged map[int32]bool
	admin      *kadm.Client               // lists the offsets that tell a quiet partition from an idle one
	decoders   map[uint64]schemas.Decoder // schema fingerprint -> its generated decoder (nil: none); with mu held
	pending    atomic.Pointer[[]*engine.Rule]

	suppress *suppressions // false positives in force, from crumbs.triage

	late, evicted, keys, reloads, refused, sigmaSkipped atomic.Int64
	held                                                atomic.Int64
	interrupted                                         atomic.Uint64
	interruptLogged                                     time.Time // guarded by mu
	ruleStats                                           atomic.Pointer[map[string]engine.RuleStats]
	incidentsOff                                        atomic.Bool // crumbs.incidents cannot be written
}

// New loads the rules and returns a detector; a rule set with any invalid rule is refused.
func New(cfg Config, kcfg kafka.Config, deps Deps) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	d := &Detector{cfg: cfg, kcfg: kcfg, owned: map[string]map[int32]bool{}, lastSeen: map[int32]time.Time{}, heldLogged: map[int32]bool{}, decoders: map[uint64]schemas.Decoder{}, suppress: newSuppressions()}
	if deps.LoadRules == nil {
		deps.LoadRules = func() ([]*engine.Rule, error) {
			rs, skipped, err := cfg.loadRules(deps.Log)
			if err == nil {
				d.sigmaSkipped.Store(int64(skipped))
			}
			return rs, err
		}
	}
	rs, err := deps.LoadRules()
	if err != nil {
		return nil, fmt.Errorf("load rules:\n%w", err)
	}
	if deps.Counters == nil {
		deps.Counters = telemetry.NewStageCounters(nil, "detect", cfg.Group)
	}
	if deps.Serde == nil {
		if deps.Serde, err = avro.NewBuiltinSerde(); err != nil {
			return nil, fmt.Errorf("detector: load schemas: %w", err)
		}
	}
	if deps.TransactionalID == "" {
		deps.TransactionalID = cfg.Group + "-0"
	}
	eng, err := engine.New(rs, cfg.engineOptions())
	if err != nil {
		return nil, fmt.Errorf("load rules:\n%w", err)
	}
	d.deps, d.engine = deps, eng
	if err := d.registerMetrics(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Detector) registerMetrics() error {
	if d.deps.Metrics == nil {
		return nil
	}
	labels := prometheus.Labels{"group": d.cfg.Group}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crumbs_detector_late_events_total", ConstLabels: labels,
			Help: "Events older than their partition's watermark, left out of windows (they still reach ClickHouse)."},
			func() float64 { return float64(d.late.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crumbs_detector_state_evicted_total", ConstLabels: labels,
			Help: "Window states evicted under detector.max_state_keys."},
			func() float64 { return float64(d.evicted.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crumbs_detector_state_keys", ConstLabels: labels,
			Help: "Window states held in memory."},
			func() float64 { return float64(d.keys.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crumbs_detector_sigma_files_refused", ConstLabels: labels,
			Help: "Sigma rule files refused and skipped (detector.sigma_refused: skip) in the last rule set loaded; each is logged with its reason."},
			func() float64 { return float64(d.sigmaSkipped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crumbs_detector_conditions_interrupted_total", ConstLabels: labels,
			Help: "Condition evaluations stopped at detector.max_condition_cost (taken as no match)."},
			func() float64 { return float64(d.interrupted.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crumbs_detector_partitions_held", ConstLabels: labels,
			Help: "Partitions quiet for detector.idle_timeout but not taken as idle, their windows held open: records wait behind an open transaction, or their offsets cannot be listed."},
			func() float64 { return float64(d.held.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crumbs_detector_rule_reloads_total", ConstLabels: labels,
			Help: "Rule sets reloaded without a restart."},
			func() float64 { return float64(d.reloads.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crumbs_detector_rule_reloads_refused_total", ConstLabels: labels,
			Help: "Rule sets refused on reload (an invalid rule); the running set stayed."},
			func() float64 { return float64(d.refused.Load()) }),
		newRuleMetrics(d, labels),
	} {
		if err := d.deps.Metrics.Register(c); err != nil {
			return fmt.Errorf("detector: register metrics: %w", err)
		}
	}
	return nil
}

// ruleMetrics exports the engine's per-rule counters as of the last flush.
type ruleMetrics struct {
	d                           *Detector
	raised, grouped, suppressed *prometheus.Desc
}

func newRuleMetrics(d *Detector, labels prometheus.Labels) *ruleMetrics {
	return &ruleMetrics{d: d,
		raised: prometheus.NewDesc("crumbs_detector_alerts_raised_total",
			"Alerts a rule raised (first versions; a throttled alert's later versions are not counted again).", []string{"rule"}, labels),
		grouped: prometheus.NewDesc("crumbs_detector_alerts_grouped_total",
			"Alerts of a rule folded by its throttle window into an alert already raised (its count grew instead).", []string{"rule"}, labels),
		suppressed: prometheus.NewDesc("crumbs_detector_alerts_suppressed_total",
			"Alerts of a rule not raised, by reason: change_window (a change window in force and on_change: suppress), "+
				"false_positive (an analyst marked an alert of the same rule and host, or group key, a false positive with a suppression still in force).",
			[]string{"rule", "reason"}, labels),
	}
}

func (m *ruleMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.raised
	ch <- m.grouped
	ch <- m.suppressed
}

func (m *ruleMetrics) Collect(ch chan<- prometheus.Metric) {
	for id, n := range m.d.suppress.counts() {
		ch <- prometheus.MustNewConstMetric(m.suppressed, prometheus.CounterValue, float64(n), id, "false_positive")
	}
	p := m.d.ruleStats.Load()
	if p == nil {
		return
	}
	for id, s := range *p {
		ch <- prometheus.MustNewConstMetric(m.raised, prometheus.CounterValue, float64(s.Raised), id)
		ch <- prometheus.MustNewConstMetric(m.grouped, prometheus.CounterValue, float64(s.Grouped), id)
		ch <- prometheus.MustNewConstMetric(m.suppressed, prometheus.CounterValue, float64(s.Suppressed), id, "change_window")
	}
}

// Run judges events until ctx is done. Rules reload when RulesDir changes or on SIGHUP.
func (d *Detector) Run(ctx context.Context) error {
	t := d.kcfg.Topics()
	topics := make([]string, len(d.cfg.Sources))
	for i, s := range d.cfg.Sources {
		topics[i] = t.Enriched(s)
	}
	d.deps.Log.Info("detector starting", "rules", d.engine.Rules(), "index", d.engine.Index(), "sources", d.cfg.Sources)
	d.checkIncidentsTopic(ctx)
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.watchRules(wctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.suppress.run(wctx, d.kcfg, d.deps.Serde, d.deps.Log)
	}()
	defer func() { stop(); wg.Wait() }()
	if !d.suppress.waitReady(ctx, 10*time.Second) && ctx.Err() == nil {
		d.deps.Log.Warn("false positives' suppressions not read within 10s; judging without those not read yet", "topic", t.Triage())
	}
	c := d.deps.Counters
	state := t.State(d.cfg.Group)
	var tick func(context.Context) ([]*kgo.Record, []*kgo.Record, error)
	if d.cfg.IdleTimeout > 0 {
		cl, err := kgo.NewClient(d.kcfg.ClientOpts()...)
		if err != nil {
			return fmt.Errorf("detector: create the client that lists offsets: %w", err)
		}
		defer cl.Close()
		d.admin = kadm.NewClient(cl)
		tick = d.tick
	}
	return kafka.RunStateful(ctx, d.kcfg, kafka.StatefulConfig{
		TransactConfig: kafka.TransactConfig{
			Stage: "detect", Group: d.cfg.Group, TransactionalID: d.deps.TransactionalID,
			Topics: topics, MaxPollRecords: d.cfg.MaxPollRecords, Log: d.deps.Log,
			OnRecords: func(in, out, dlq int) { c.In(in); c.Out(out); c.DeadLettered(dlq) },
		},
		ManualPartitionTopics: []string{state},
		OnAssigned:            d.assigned,
		OnRevoked:             d.revoked,
		BeforeBatch:           d.applyReload,
		Flush:                 d.flush,
		OnAborted:             d.aborted,
		Tick:                  tick,
		InstanceID:            d.deps.TransactionalID, // a restart takes its partitions back at once
	}, d.judge, kgo.Balancers(kgo.RangeBalancer())) // the same partition of every source on one instance
}

// checkIncidentsTopic turns the production of incidents off, said once, when crumbs.incidents
// cannot be written (missing, or this role not granted it, as on a cluster whose ACLs predate
// incidents): a failing write would abort every transaction, alerts with it. Alerts keep their
// incident ids.
func (d *Detector) checkIncidentsTopic(ctx context.Context) {
	if d.cfg.Incidents.Span <= 0 {
		return
	}
	topic := d.kcfg.Topics().Incidents()
	cl, err := kgo.NewClient(d.kcfg.ClientOpts()...)
	if err != nil {
		return // the stage's own client will say what is wrong
	}
	defer cl.Close()
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(mctx, topic)
	if err != nil {
		return // Kafka away: the stage waits for it and finds out then
	}
	if td, ok := md.Topics[topic]; !ok || td.Err != nil {
		reason := "missing"
		if ok {
			reason = td.Err.Error()
		}
		d.incidentsOff.Store(true)
		d.deps.Log.Warn("incidents are not produced: their topic cannot be written; alerts still carry incident ids",
			"topic", topic, "reason", reason, "fix", "create the topic and grant the detector role write on it (crumbs kafka acls)")
	}
}

// judge evaluates one enriched event and returns its alerts as records.
func (d *Detector) judge(r *kgo.Record) ([]*kgo.Record, error) {
	d.mu.Lock()
	alerts, err := d.process(r)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	incidents := d.engine.Incidents()
	d.lastSeen[r.Partition] = time.Now()
	d.mu.Unlock()
	return d.alertRecords(alerts, incidents)
}

// process decodes an event and judges it, with d.mu held. An event written with the version
// of its schema that the generated codec reads is decoded by its kind's decoder, into memory
// reused from one event to the next, and judged field by field (engine.ProcessRecord); one
// written with an earlier version goes through goavro into the generated type; a schema
// without a generated codec into goavro's native form. An error is the record's (dead-lettered);
// a rule that could not be evaluated is logged.
func (d *Detector) process(r *kgo.Record) ([]*engine.Alert, error) {
	sc, body, err := d.deps.Serde.Frame(r.Value)
	if err != nil {
		return nil, err
	}
	var alerts []*engine.Alert
	if dec := d.decoder(sc); dec != nil {
		rec, derr := dec.Decode(body)
		if derr != nil {
			return nil, &avro.DecodeError{Schema: sc.Name, Err: derr}
		}
		alerts, err = d.engine.ProcessRecord(r.Partition, rec)
	} else if _, rec, derr := d.deps.Serde.DecodeRecord(r.Value); derr == nil {
		sr, ok := rec.(schemas.Record)
		if !ok {
			return nil, fmt.Errorf("%w: record is not an event", kafka.ErrBadRecord)
		}
		alerts, err = d.engine.ProcessRecord(r.Partition, sr)
	} else if errors.Is(derr, avro.ErrNoCodec) {
		_, native, derr := d.deps.Serde.Decode(r.Value)
		if derr != nil {
			return nil, derr
		}
		m, ok := native.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: record is not an event", kafka.ErrBadRecord)
		}
		alerts, err = d.engine.Process(r.Partition, m)
	} else {
		return nil, derr
	}
	if err != nil {
		d.deps.Log.Warn("rule evaluation failed", "err", err)
	}
	return alerts, nil
}

// decoder returns the reusing decoder of a schema version that has a generated codec, made
// on first use; nil for other versions and schemas. With d.mu held.
func (d *Detector) decoder(sc *avro.Schema) schemas.Decoder {
	if dec, ok := d.decoders[sc.Fingerprint]; ok {
		return dec
	}
	var dec schemas.Decoder
	if c, ok := schemas.CodecOf(sc.Name); ok && c.Fingerprint == sc.Fingerprint {
		dec = c.NewDecoder()
	}
	if len(d.decoders) < 64 { // a bound: each version of each schema seen
		d.decoders[sc.Fingerprint] = dec
	}
	return dec
}

// alertRecords encodes alerts for crumbs.alerts and incidents for crumbs.incidents; an
// alert a false positive's suppression covers is dropped.
func (d *Detector) alertRecords(alerts []*engine.Alert, incidents []*schemas.Incident) ([]*kgo.Record, error) {
	out := make([]*kgo.Record, 0, len(alerts)+len(incidents))
	now := time.Now()
	for _, a := range alerts {
		if d.suppress.suppressed(&a.Alert, now) {
			continue
		}
		v, err := d.deps.Serde.Encode(nil, schemas.AlertSchema, &a.Alert)
		if err != nil {
			return nil, fmt.Errorf("encode alert of rule %s: %w", a.RuleID, err)
		}
		out = append(out, &kgo.Record{Topic: d.kcfg.Topics().Alerts(), Key: []byte(a.RuleID + "|" + a.GroupKey), Value: v})
	}
	if d.incidentsOff.Load() {
		incidents = nil
	}
	for _, in := range incidents {
		v, err := d.deps.Serde.Encode(nil, schemas.IncidentSchema, in)
		if err != nil {
			return nil, fmt.Errorf("encode incident %s: %w", in.IncidentID, err)
		}
		out = append(out, &kgo.Record{Topic: d.kcfg.Topics().Incidents(), Key: []byte(in.IncidentID), Value: v})
	}
	return out, nil
}

// tick closes the windows of idle partitions: a partition that gave no record for
// idle_timeout has its clock moved to now - idle_timeout (its watermark to that less the
// allowed lateness). A quiet partition whose lag cannot be read is not idle: records may
// wait there behind an open transaction (an enricher that died in the middle of one, until
// the broker or its successor aborts it), and closing its windows on the wall clock would
// make that backlog late and lose the alerts it completes; its idleness counts again from
// when its offsets read clean. It returns the alerts and the state changes, produced in a
// transaction of their own; if that aborts, aborted rolls the state back to the changelog.
func (d *Detector) tick(ctx context.Context) (alerts, state []*kgo.Record, err error) {
	now := time.Now()
	d.mu.Lock()
	quiet := map[int32][]string{} // partition -> its source topics
	for topic, ps := range d.owned {
		for p := range ps {
			if seen, ok := d.lastSeen[p]; ok && now.Sub(seen) >= d.cfg.IdleTimeout {
				quiet[p] = append(quiet[p], topic)
			}
		}
	}
	d.mu.Unlock()
	held := d.heldBack(ctx, quiet)
	d.mu.Lock()
	var closed []*engine.Alert
	owned := d.partitionsLocked()
	for p := range quiet {
		seen, ok := d.lastSeen[p]
		if !owned[p] || !ok || now.Sub(seen) < d.cfg.IdleTimeout {
			continue // revoked or given a record meanwhile
		}
		if reason, ok := held[p]; ok {
			d.lastSeen[p] = now
			if !d.heldLogged[p] {
				d.heldLogged[p] = true
				d.deps.Log.Warn("partition quiet but not idle: its windows stay open until its records can be read",
					"partition", p, "reason", reason, "idle_timeout", d.cfg.IdleTimeout)
			}
			continue
		}
		if d.heldLogged[p] {
			delete(d.heldLogged, p)
			d.deps.Log.Info("partition readable again; idle after detector.idle_timeout without records", "partition", p)
		}
		closed = append(closed, d.engine.AdvanceIdle(p, now.Add(-d.cfg.IdleTimeout).UnixNano())...)
	}
	d.held.Store(int64(len(d.heldLogged)))
	incidents := d.engine.Incidents()
	changed := d.engine.Pending() // a window may close without an alert
	d.mu.Unlock()
	if len(closed) == 0 && len(incidents) == 0 && !changed {
		return nil, nil, nil
	}
	if alerts, err = d.alertRecords(closed, incidents); err != nil {
		return nil, nil, err
	}
	if state, err = d.flush(); err != nil {
		return nil, nil, err
	}
	return alerts, state, nil
}

// heldBack returns, of the quiet partitions (partition -> its source topics), those whose
// lag cannot be read, with the reason: a source partition whose high watermark is beyond its
// last stable offset holds records of an open transaction, which this read_committed
// consumer cannot see yet; a partition whose offsets cannot be listed is held too.
func (d *Detector) heldBack(ctx context.Context, quiet map[int32][]string) map[int32]string {
	held := map[int32]string{}
	if len(quiet) == 0 {
		return held
	}
	var topics []string
	for _, ts := range quiet {
		for _, t := range ts {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err := d.admin.ListEndOffsets(lctx, topics...)
	var stable kadm.ListedOffsets
	if err == nil {
		stable, err = d.admin.ListCommittedOffsets(lctx, topics...)
	}
	for p, ts := range quiet {
		if err != nil {
			held[p] = fmt.Sprintf("offsets cannot be listed: %v", err)
			continue
		}
		for _, t := range ts {
			end, ok1 := ends.Lookup(t, p)
			lso, ok2 := stable.Lookup(t, p)
			switch {
			case !ok1 || !ok2 || end.Err != nil || lso.Err != nil:
				held[p] = fmt.Sprintf("offsets of %s cannot be listed: %v", t, errors.Join(end.Err, lso.Err))
			case end.Offset > lso.Offset:
				held[p] = fmt.Sprintf("%s holds %d records beyond its last stable offset %d (an open transaction)", t, end.Offset-lso.Offset, lso.Offset)
			}
		}
	}
	return held
}

// flush returns the state changes since the last flush as changelog records, for the same
// transaction as the batch or tick that made them.
func (d *Detector) flush() ([]*kgo.Record, error) {
	if d.deps.FailFlush != nil && d.deps.FailFlush() {
		return nil, errors.New("flush failed on purpose (test)")
	}
	d.mu.Lock()
	changes, err := d.engine.Changes()
	st := d.engine.Stats()
	logInterrupt := false
	if before := d.interrupted.Swap(st.Interrupted); st.Interrupted > before && time.Since(d.interruptLogged) >= time.Minute {
		d.interruptLogged, logInterrupt = time.Now(), true
	}
	rs := d.engine.RuleStats()
	d.mu.Unlock()
	d.ruleStats.Store(&rs)
	if err != nil {
		return nil, err
	}
	if logInterrupt {
		d.deps.Log.Warn("condition evaluations stopped at their cost limit and taken as no match (logged at most once a minute)",
			"total", st.Interrupted, "last_rule", st.InterruptedRule, "limit", d.cfg.MaxConditionCost, "key", "detector.max_condition_cost")
	}
	d.late.Store(int64(st.Late))
	d.evicted.Store(int64(st.Evicted))
	d.keys.Store(int64(st.Keys))
	topic := d.kcfg.Topics().State(d.cfg.Group)
	out := make([]*kgo.Record, len(changes))
	for i, ch := range changes {
		out[i] = &kgo.Record{Topic: topic, Partition: ch.Partition, Key: ch.Key, Value: ch.Value}
	}
	return out, nil
}

// assigned restores the state of partitions newly owned, before their events are polled.
func (d *Detector) assigned(ctx context.Context, m map[string][]int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var fresh []int32
	before := d.partitionsLocked()
	for topic, ps := range m {
		if d.owned[topic] == nil {
			d.owned[topic] = map[int32]bool{}
		}
		for _, p := range ps {
			d.owned[topic][p] = true
		}
	}
	for p := range d.partitionsLocked() {
		if !before[p] {
			fresh = append(fresh, p)
		}
	}
	d.restoreLocked(ctx, fresh)
	now := time.Now() // idleness counts from when the partition is ready
	for _, p := range fresh {
		d.lastSeen[p] = now
	}
}

// revoked forgets partitions no longer owned in any source topic.
func (d *Detector) revoked(_ context.Context, m map[string][]int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	before := d.partitionsLocked()
	for topic, ps := range m {
		for _, p := range ps {
			delete(d.owned[topic], p)
		}
	}
	after := d.partitionsLocked()
	for p := range before {
		if !after[p] {
			d.engine.DropPartition(p)
			delete(d.lastSeen, p)
			delete(d.heldLogged, p)
		}
	}
}

// aborted rolls every owned partition back to its changelog.
func (d *Detector) aborted(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ps []int32
	for p := range d.partitionsLocked() {
		ps = append(ps, p)
	}
	d.restoreLocked(ctx, ps)
}

func (d *Detector) partitionsLocked() map[int32]bool {
	out := map[int32]bool{}
	for _, ps := range d.owned {
		for p := range ps {
			out[p] = true
		}
	}
	return out
}

// restoreLocked reloads partitions' state from the changelog; with d.mu held.
func (d *Detector) restoreLocked(ctx context.Context, parts []int32) {
	if len(parts) == 0 {
		return
	}
	slices.Sort(parts)
	for _, p := range parts {
		d.engine.DropPartition(p)
	}
	_, _ = d.engine.Changes() // nothing restored is to be written back
	n := 0
	err := kafka.ReadPartitions(ctx, d.kcfg, d.kcfg.Topics().State(d.cfg.Group), parts, func(r *kgo.Record) error {
		n++
		if err := d.engine.Restore(r.Key, r.Value); err != nil {
			d.deps.Log.Warn("skipping unreadable state record", "partition", r.Partition, "offset", r.Offset, "err", err)
		}
		return nil
	})
	if err != nil {
		d.deps.Log.Error("restore detector state", "partitions", parts, "err", err)
		return
	}
	d.deps.Log.Info("detector state restored", "partitions", parts, "records", n, "keys", d.engine.Stats().Keys)
}

// Reload loads the rule set again; the new set takes over before the next batch. An invalid
// set is refused whole (the error lists its problems) and the running set stays.
func (d *Detector) Reload() error {
	rs, err := d.deps.LoadRules()
	if err == nil {
		_, err = engine.New(rs, d.cfg.engineOptions()) // validate as the engine will
	}
	if err != nil {
		d.refused.Add(1)
		return fmt.Errorf("reload rules (the running set stays):\n%w", err)
	}
	d.pending.Store(&rs)
	return nil
}

// applyReload installs a reloaded rule set, between batches.
func (d *Detector) applyReload() {
	rs := d.pending.Swap(nil)
	if rs == nil {
		return
	}
	d.mu.Lock()
	err := d.engine.SetRules(*rs)
	n := d.engine.Rules()
	d.mu.Unlock()
	if err != nil {
		d.refused.Add(1)
		d.deps.Log.Error("rule reload refused; the running set stays", "err", err)
		return
	}
	d.reloads.Add(1)
	d.deps.Log.Info("rules reloaded", "rules", n)
}
