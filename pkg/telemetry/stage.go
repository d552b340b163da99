// Package telemetry holds what every stage reports about itself: counters of records in, out,
// dropped and dead-lettered (read by `crumbs up`'s status line), Prometheus metrics, and the
// HTTP server for /metrics and /healthz.
package telemetry

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StageCounters counts what one stage did. The zero value is ready; methods are safe for
// concurrent use.
type StageCounters struct {
	Stage   string // collect, enrich, detect or sink
	Group   string // its consumer group, "" for collectors
	in      atomic.Uint64
	out     atomic.Uint64
	dropped atomic.Uint64
	dlq     atomic.Uint64
	lag     atomic.Int64 // -1: not measured

	waitMu       sync.Mutex
	waitingSince time.Time // zero: not waiting
	waitReason   string
}

// NewStageCounters returns counters for a stage and registers them as Prometheus metrics on
// reg (nil: not registered).
func NewStageCounters(reg prometheus.Registerer, stage, group string) *StageCounters {
	s := &StageCounters{Stage: stage, Group: group}
	s.lag.Store(-1)
	if reg != nil {
		labels := prometheus.Labels{"stage": stage}
		for _, c := range []struct {
			name, help string
			v          *atomic.Uint64
		}{
			{"crumbs_stage_records_in_total", "Records the stage consumed or collected.", &s.in},
			{"crumbs_stage_records_out_total", "Records the stage produced or wrote.", &s.out},
			{"crumbs_stage_records_dropped_total", "Records the stage lost (kernel ring buffer full, spool full); never silent.", &s.dropped},
			{"crumbs_stage_records_dead_lettered_total", "Records the stage sent to the dead-letter topic.", &s.dlq},
		} {
			v := c.v
			_ = reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help, ConstLabels: labels},
				func() float64 { return float64(v.Load()) }))
		}
		_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crumbs_stage_waiting_seconds",
			Help:        "How long the stage has been waiting for its store or output to take a write again (0: not waiting).",
			ConstLabels: labels}, func() float64 {
			if since := s.Snapshot().WaitingSince; !since.IsZero() {
				return time.Since(since).Seconds()
			}
			return 0
		}))
		if group != "" {
			_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crumbs_stage_consumer_lag",
				Help: "Records of the stage's input topics not yet consumed by its consumer group, as last measured " +
					"(crumbs up measures it every status.interval); -1 before the first measure.",
				ConstLabels: prometheus.Labels{"stage": stage, "group": group}}, func() float64 { return float64(s.lag.Load()) }))
		}
	}
	return s
}

// SetLag records the consumer group's lag as last measured.
func (s *StageCounters) SetLag(n int64) { s.lag.Store(n) }

// In counts n records taken in.
func (s *StageCounters) In(n int) { s.in.Add(uint64(n)) }

// Out counts n records passed on.
func (s *StageCounters) Out(n int) { s.out.Add(uint64(n)) }

// Dropped counts n records lost.
func (s *StageCounters) Dropped(n int) { s.dropped.Add(uint64(n)) }

// DeadLettered counts n records sent to the dead-letter topic.
func (s *StageCounters) DeadLettered(n int) { s.dlq.Add(uint64(n)) }

// SetDropped sets the dropped total (for counts read from the kernel).
func (s *StageCounters) SetDropped(n uint64) { s.dropped.Store(n) }

// Waiting records that the stage holds its records and waits for its store or output to
// take them again, since its first failed attempt, for reason (one line, e.g.
// "clickhouse: connection refused"). Calling it again keeps the first since and updates the
// reason.
func (s *StageCounters) Waiting(since time.Time, reason string) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if s.waitingSince.IsZero() {
		s.waitingSince = since
	}
	s.waitReason = reason
}

// Resumed records that the stage's writes go through again.
func (s *StageCounters) Resumed() {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	s.waitingSince, s.waitReason = time.Time{}, ""
}

// Snapshot is a reading of a stage's counters.
type Snapshot struct {
	In, Out, Dropped, DeadLettered uint64
	// WaitingSince is when the stage started waiting for its store or output; zero when it
	// is not waiting. WaitReason says why.
	WaitingSince time.Time
	WaitReason   string
}

// Snapshot reads the counters.
func (s *StageCounters) Snapshot() Snapshot {
	s.waitMu.Lock()
	since, reason := s.waitingSince, s.waitReason
	s.waitMu.Unlock()
	return Snapshot{In: s.in.Load(), Out: s.out.Load(), Dropped: s.dropped.Load(), DeadLettered: s.dlq.Load(),
		WaitingSince: since, WaitReason: reason}
}
