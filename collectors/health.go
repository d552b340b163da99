package collectors

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatcrumbs/crumbs/schemas"
)

// HealthSchema is the full name of the health event's Avro schema (schemas/avro/health.avsc).
const HealthSchema = "crumbs.HealthEvent"

// KindHealth is the kind of health events.
const KindHealth = "health"

// Reasons an event is lost, the reason label of crumbs_collector_dropped_total.
const (
	ReasonRingBufferFull = "ring_buffer_full" // the kernel ring buffer was full
	ReasonSpoolFull      = "spool_full"       // Kafka was unreachable and the spool full
	ReasonUndeliverable  = "undeliverable"    // Kafka refused it and there is no spool, or the spool failed
	ReasonUnencodable    = "unencodable"      // it did not encode under its schema
)

// Reasons a collector does less than it could on this host, reported once when it starts.
const (
	ReasonCapabilityRefused = "capability_refused" // a feature works another way (Health.Way), which may lose something
	ReasonFeatureOff        = "feature_off"        // a feature does not work here
	ReasonCollectorOff      = "collector_off"      // the collector cannot run here
)

// reasons lists every reason, in the order health events report them.
var reasons = []string{ReasonRingBufferFull, ReasonSpoolFull, ReasonUndeliverable, ReasonUnencodable}

// HealthConfig configures health events (keys under `collectors.health.`).
type HealthConfig struct {
	// Interval is how often a collector's drop counts are checked; a health event is
	// published for each reason whose count grew, so at most one per reason and interval.
	// At least 1s. Default 10s.
	Interval time.Duration `mapstructure:"interval"`
}

// DefaultHealthConfig returns the documented defaults.
func DefaultHealthConfig() HealthConfig { return HealthConfig{Interval: 10 * time.Second} }

// Validate reports an invalid interval, naming its key.
func (c HealthConfig) Validate() error {
	if c.Interval < time.Second {
		return fmt.Errorf("collectors.health.interval: %s: must be at least 1s", c.Interval)
	}
	return nil
}

// Health is the body of a health event.
type Health = schemas.Health

// HealthEvent reports events a collector lost (schema crumbs.HealthEvent).
type HealthEvent = schemas.HealthEvent

// dropCounts counts a publisher's lost events per reason; kernel drops are read from the
// collector.
type dropCounts struct {
	spoolFull, undeliverable, unencodable atomic.Uint64
	kernel                                func() uint64
}

// total returns the count of one reason.
func (d *dropCounts) total(reason string) uint64 {
	switch reason {
	case ReasonRingBufferFull:
		if d.kernel == nil {
			return 0
		}
		return d.kernel()
	case ReasonSpoolFull:
		return d.spoolFull.Load()
	case ReasonUndeliverable:
		return d.undeliverable.Load()
	case ReasonUnencodable:
		return d.unencodable.Load()
	}
	return 0
}

// lost is what the publisher lost itself (every reason but the kernel's).
func (d *dropCounts) lost() uint64 {
	return d.spoolFull.Load() + d.undeliverable.Load() + d.unencodable.Load()
}

// register exports the counts as crumbs_collector_dropped_total{collector,reason}.
func (d *dropCounts) register(reg prometheus.Registerer, collector string) {
	if reg == nil {
		return
	}
	for _, reason := range reasons {
		_ = reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "crumbs_collector_dropped_total",
			Help:        "Events a collector lost, by reason (ring_buffer_full, spool_full, undeliverable, unencodable); never silent.",
			ConstLabels: prometheus.Labels{"collector": collector, "reason": reason},
		}, func() float64 { return float64(d.total(reason)) }))
	}
}

// healthEvents returns a health event for each reason whose count grew since reported, and
// updates reported.
func (d *dropCounts) healthEvents(collector string, host schemas.Host, now time.Time, reported map[string]uint64) []*HealthEvent {
	var out []*HealthEvent
	for _, reason := range reasons {
		total := d.total(reason)
		if total <= reported[reason] {
			continue
		}
		out = append(out, &HealthEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: now.UnixNano(), Host: host, Kind: KindHealth},
			Health: Health{Collector: collector, Reason: reason,
				Dropped: int64(total - reported[reason]), DroppedTotal: int64(total)},
		})
		reported[reason] = total
	}
	return out
}

// ReportEvents returns the health events of a collector's report: one per feature that
// does not work in full (capability_refused or feature_off), or one collector_off for a
// collector that cannot run.
func ReportEvents(r Report, host schemas.Host, now time.Time) []*HealthEvent {
	event := func(h Health) *HealthEvent {
		h.Collector = r.Collector
		return &HealthEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: now.UnixNano(), Host: host, Kind: KindHealth},
			Health:   h,
		}
	}
	if !r.Running {
		h := Health{Reason: ReasonCollectorOff, Way: "off", Lost: r.Lost()}
		if r.Reason != nil {
			h.Capability, h.Answer = string(r.Reason.Capability), r.Reason.Answer
		}
		return []*HealthEvent{event(h)}
	}
	var out []*HealthEvent
	for _, f := range r.Degraded() {
		h := Health{Reason: ReasonCapabilityRefused, Feature: f.Feature, Way: f.Way, Lost: f.Lost}
		if f.State == StateOff {
			h.Reason, h.Way = ReasonFeatureOff, "off"
		}
		var caps, answers []string
		for _, rf := range f.Refused {
			if !slices.Contains(caps, string(rf.Capability)) {
				caps = append(caps, string(rf.Capability))
			}
			if !slices.Contains(answers, rf.Answer) {
				answers = append(answers, rf.Answer)
			}
		}
		h.Capability, h.Answer = strings.Join(caps, ", "), strings.Join(answers, "; ")
		out = append(out, event(h))
	}
	return out
}

// registerReport exports a collector's report as gauges on reg:
// crumbs_collector_up{collector} (1 running, 0 cannot run here),
// crumbs_collector_capability{collector,capability,state} (1 for each capability tried, in
// state allowed, refused or disabled) and crumbs_collector_feature{collector,feature,state,way}
// (1 for each feature, in state full, fallback or off).
func registerReport(reg prometheus.Registerer, r Report) {
	if reg == nil {
		return
	}
	one := func(name, help string, labels prometheus.Labels, v float64) {
		_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return v }))
	}
	up := 0.0
	if r.Running {
		up = 1
	}
	one("crumbs_collector_up", "1 when the collector runs on this host, 0 when it cannot (see crumbs doctor).",
		prometheus.Labels{"collector": r.Collector}, up)
	for c, state := range r.Capabilities {
		one("crumbs_collector_capability", "Kernel capabilities a collector tried on this host: 1 in state allowed, refused (by the kernel) or disabled (by the configuration).",
			prometheus.Labels{"collector": r.Collector, "capability": string(c), "state": state}, 1)
	}
	for _, f := range r.Features {
		one("crumbs_collector_feature", "A collector's features on this host: 1 in state full, fallback (done another way, see way) or off.",
			prometheus.Labels{"collector": r.Collector, "feature": f.Feature, "state": string(f.State), "way": f.Way}, 1)
	}
}
