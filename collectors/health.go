package collectors

import (
	"fmt"
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
