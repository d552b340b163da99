// Package detectors is the detect stage: it consumes enriched events, judges them with the
// rule engine (detectors/engine) over the built-in pack (detectors/rules) or a rules folder,
// and produces alerts to crumbs.alerts, exactly once.
package detectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/detectors/rules"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Config configures the detector (keys under `detector.`).
type Config struct {
	// Group is the detector's consumer group. Default "crumbs-detect".
	Group string `mapstructure:"group"`
	// RulesDir is a folder of rule files; empty means the built-in pack. Default "".
	RulesDir string `mapstructure:"rules_dir"`
	// Sources are the event kinds judged (enriched topics consumed). Default ["process"].
	Sources []string `mapstructure:"sources"`
	// MaxEvidence caps the evidence event ids an alert carries. Default 20.
	MaxEvidence int `mapstructure:"max_evidence"`
	// MaxPollRecords is how many records one transaction carries at most. Default 5000.
	MaxPollRecords int `mapstructure:"max_poll_records"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Group: "crumbs-detect", Sources: []string{"process"}, MaxEvidence: 20, MaxPollRecords: 5000}
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
		if s != "process" {
			errs = append(errs, fmt.Errorf("detector.sources: %q: no such event kind yet (have: process)", s))
		}
	}
	if c.RulesDir != "" {
		if st, err := os.Stat(c.RulesDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("detector.rules_dir: %q: not a readable folder", c.RulesDir))
		}
	}
	if c.MaxEvidence < 1 {
		errs = append(errs, fmt.Errorf("detector.max_evidence: %d: must be at least 1", c.MaxEvidence))
	}
	if c.MaxPollRecords < 1 {
		errs = append(errs, fmt.Errorf("detector.max_poll_records: %d: must be at least 1", c.MaxPollRecords))
	}
	return errors.Join(errs...)
}

// LoadRules loads the configured rule set: RulesDir, or the built-in pack.
func (c Config) LoadRules() ([]*engine.Rule, error) {
	if c.RulesDir == "" {
		return engine.LoadFS(rules.FS, rules.Dir)
	}
	return engine.LoadFS(os.DirFS(c.RulesDir), ".")
}

// Deps are what a Detector uses besides its configuration. Nil fields get defaults.
type Deps struct {
	Log             *slog.Logger
	Metrics         prometheus.Registerer
	Counters        *telemetry.StageCounters
	Serde           *avro.Serde
	TransactionalID string // stable per instance; default group + "-0"
}

// Detector is the detect stage.
type Detector struct {
	cfg    Config
	kcfg   kafka.Config
	deps   Deps
	engine *engine.Engine
	alerts uint64
}

// New loads the rules and returns a detector; a rule set with any invalid rule is refused.
func New(cfg Config, kcfg kafka.Config, deps Deps) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rs, err := cfg.LoadRules()
	if err != nil {
		return nil, fmt.Errorf("load rules:\n%w", err)
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Counters == nil {
		deps.Counters = telemetry.NewStageCounters(nil, "detect", cfg.Group)
	}
	if deps.Serde == nil {
		if deps.Serde, err = schemas.NewSerde(); err != nil {
			return nil, fmt.Errorf("detector: load schemas: %w", err)
		}
	}
	if deps.TransactionalID == "" {
		deps.TransactionalID = cfg.Group + "-0"
	}
	return &Detector{cfg: cfg, kcfg: kcfg, deps: deps, engine: engine.New(rs, cfg.MaxEvidence)}, nil
}

// Run judges events until ctx is done.
func (d *Detector) Run(ctx context.Context) error {
	t := d.kcfg.Topics()
	topics := make([]string, len(d.cfg.Sources))
	for i, s := range d.cfg.Sources {
		topics[i] = t.Enriched(s)
	}
	d.deps.Log.Info("detector starting", "rules", d.engine.Rules(), "sources", d.cfg.Sources)
	c := d.deps.Counters
	return kafka.RunTransact(ctx, d.kcfg, kafka.TransactConfig{
		Stage: "detect", Group: d.cfg.Group, TransactionalID: d.deps.TransactionalID,
		Topics: topics, MaxPollRecords: d.cfg.MaxPollRecords, Log: d.deps.Log,
		OnRecords: func(in, out, dlq int) { c.In(in); c.Out(out); c.DeadLettered(dlq) },
	}, d.judge)
}

// judge evaluates one enriched event and returns its alerts as records.
func (d *Detector) judge(r *kgo.Record) ([]*kgo.Record, error) {
	_, native, err := d.deps.Serde.Decode(r.Value)
	if err != nil {
		return nil, err
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("record is not an event")
	}
	alerts, err := d.engine.Evaluate(m)
	if err != nil {
		d.deps.Log.Warn("rule evaluation failed", "err", err)
	}
	out := make([]*kgo.Record, 0, len(alerts))
	for _, a := range alerts {
		v, err := d.deps.Serde.Encode(nil, schemas.AlertSchema, a.Native())
		if err != nil {
			return nil, fmt.Errorf("encode alert of rule %s: %w", a.RuleID, err)
		}
		out = append(out, &kgo.Record{Topic: d.kcfg.Topics().Alerts(), Key: []byte(a.RuleID + "|" + a.GroupKey), Value: v})
	}
	return out, nil
}
