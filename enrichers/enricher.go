package enrichers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Deps are what an Enricher uses besides its configuration. Nil fields get defaults.
type Deps struct {
	Log             *slog.Logger
	Metrics         prometheus.Registerer
	Counters        *telemetry.StageCounters
	Serde           *avro.Serde
	TransactionalID string // stable per instance; default group + "-0"
}

// Enricher is the enrich stage.
type Enricher struct {
	cfg       Config
	kcfg      kafka.Config
	deps      Deps
	inventory *Inventory
}

// New returns an enricher; nothing is opened until Run.
func New(cfg Config, kcfg kafka.Config, deps Deps) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Counters == nil {
		deps.Counters = telemetry.NewStageCounters(nil, "enrich", cfg.Group)
	}
	if deps.Serde == nil {
		s, err := schemas.NewSerde()
		if err != nil {
			return nil, fmt.Errorf("enricher: load schemas: %w", err)
		}
		deps.Serde = s
	}
	if deps.TransactionalID == "" {
		deps.TransactionalID = cfg.Group + "-0"
	}
	e := &Enricher{cfg: cfg, kcfg: kcfg, deps: deps, inventory: NewInventory(cfg.MaxContextRecords)}
	if deps.Metrics != nil {
		_ = deps.Metrics.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "crumbs_enricher_context_records", Help: "Context records held in memory.",
			ConstLabels: prometheus.Labels{"kind": "inventory"},
		}, func() float64 { n, _ := e.inventory.Len(); return float64(n) }))
	}
	return e, nil
}

// Run materialises the context topics, waits until they are read in full, then enriches
// events until ctx is done.
func (e *Enricher) Run(ctx context.Context) error {
	t := e.kcfg.Topics()
	table, err := kafka.OpenTable(ctx, e.kcfg, []string{t.Context("inventory")}, e.applyContext, e.deps.Log)
	if err != nil {
		return fmt.Errorf("enricher: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = table.Run(ctx)
	}()
	defer wg.Wait()

	select {
	case <-table.Ready():
	case <-ctx.Done():
		return nil
	}
	held, _ := e.inventory.Len()
	e.deps.Log.Info("context materialised", "stage", "enrich", "inventory", held)

	topics := make([]string, len(e.cfg.Kinds))
	for i, k := range e.cfg.Kinds {
		topics[i] = t.Raw(k)
	}
	c := e.deps.Counters
	return kafka.RunTransact(ctx, e.kcfg, kafka.TransactConfig{
		Stage: "enrich", Group: e.cfg.Group, TransactionalID: e.deps.TransactionalID,
		Topics: topics, MaxPollRecords: e.cfg.MaxPollRecords, Log: e.deps.Log,
		OnRecords: func(in, out, dlq int) { c.In(in); c.Out(out); c.DeadLettered(dlq) },
	}, e.enrich)
}

// applyContext applies one context record; undecodable ones are logged and skipped, since
// they were refused at publish time and cannot be re-published from here.
func (e *Enricher) applyContext(r *kgo.Record) {
	if r.Value == nil {
		e.inventory.Delete(string(r.Key))
		return
	}
	_, native, err := e.deps.Serde.Decode(r.Value)
	if err != nil {
		e.deps.Log.Warn("undecodable context record", "topic", r.Topic, "offset", r.Offset, "err", err)
		return
	}
	rec, err := schemas.InventoryFromNative(native)
	if err != nil {
		e.deps.Log.Warn("invalid context record", "topic", r.Topic, "offset", r.Offset, "err", err)
		return
	}
	e.inventory.Put(rec)
}

// errNotAnEvent is the dead-letter reason for records whose schema is not an event's.
var errNotAnEvent = errors.New("record is not an event")

// enrich sets the enrichment of one raw event and returns the enriched record.
func (e *Enricher) enrich(r *kgo.Record) ([]*kgo.Record, error) {
	sc, native, err := e.deps.Serde.Decode(r.Value)
	if err != nil {
		return nil, err
	}
	m, ok := native.(map[string]any)
	if !ok || m["kind"] == nil {
		return nil, fmt.Errorf("%w: schema %s", errNotAnEvent, sc.Name)
	}
	env, err := schemas.EnvelopeFromNative(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotAnEvent, err)
	}
	if !slices.Contains(kafka.Kinds, env.Kind) {
		return nil, fmt.Errorf("%w: unknown kind %q", errNotAnEvent, env.Kind)
	}
	en := &schemas.Enrichment{}
	if inv, ok := e.inventory.Lookup(env.Host.Name); ok {
		en.Service, en.Environment, en.Role = inv.Service, inv.Environment, inv.Role
	}
	m["enrichment"] = schemas.EnrichmentNative(en)
	value, err := e.deps.Serde.Encode(nil, sc.Name, m)
	if err != nil {
		return nil, fmt.Errorf("re-encode enriched event: %w", err)
	}
	return []*kgo.Record{{
		Topic: e.kcfg.Topics().Enriched(env.Kind), Key: r.Key, Value: value, Headers: r.Headers,
	}}, nil
}
