package outputs

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the stage's Prometheus metrics, labelled by output and type.
type metrics struct {
	reg                                                                           prometheus.Registerer
	delivered, retries, deadLettered, filtered, replays, resolved, updatesSkipped *prometheus.CounterVec
	failed, rateLimited                                                           *prometheus.CounterVec
	latency                                                                       *prometheus.HistogramVec
}

// outputMetrics are one output's metrics.
type outputMetrics struct {
	delivered, retries, deadLettered, filtered, replays, resolved, updatesSkipped prometheus.Counter
	transient, refused, summarized, delayed                                       prometheus.Counter
	latency                                                                       prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"output", "type"}
	counter := func(name, help string, extra ...string) *prometheus.CounterVec {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(labels, extra...)))
	}
	return &metrics{
		reg:          reg,
		delivered:    counter("crumbs_output_delivered_total", "Messages an output's receiver acknowledged (alerts, resolutions and rate-limit summaries)."),
		retries:      counter("crumbs_output_retries_total", "Delivery attempts made again after a failure."),
		failed:       counter("crumbs_output_failed_attempts_total", "Failed delivery attempts, by reason: transient (retried) or refused (the receiver refused the alert; dead-lettered).", "reason"),
		deadLettered: counter("crumbs_output_dead_lettered_total", "Deliveries given up and sent to the dead-letter topic."),
		filtered:     counter("crumbs_output_filtered_total", "Alerts an output's filters (severity, rules, tags, services) left out."),
		replays:      counter("crumbs_output_replays_skipped_total", "Alerts consumed again (after a restart or rebalance) that the output had already taken."),
		resolved:     counter("crumbs_output_resolved_total", "Alerts resolved at the receiver (PagerDuty) after their triage state became resolved or false_positive."),
		updatesSkipped: counter("crumbs_output_updates_skipped_total",
			"Later versions of an alert or incident the output's updates policy (none, final) leaves out."),
		rateLimited: counter("crumbs_output_rate_limited_total", "Alerts over an output's rate limit, by action: summarized or delayed.", "action"),
		latency: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crumbs_output_delivery_latency_seconds",
			Help:    "Time from the detector raising an alert (its record's timestamp) to the output's receiver acknowledging it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 1.5, 30), // 1 ms to ~2 h
		}, labels)),
	}
}

func (m *metrics) forOutput(name, typ string) outputMetrics {
	return outputMetrics{
		delivered: m.delivered.WithLabelValues(name, typ), retries: m.retries.WithLabelValues(name, typ),
		deadLettered: m.deadLettered.WithLabelValues(name, typ), filtered: m.filtered.WithLabelValues(name, typ),
		replays: m.replays.WithLabelValues(name, typ), resolved: m.resolved.WithLabelValues(name, typ),
		updatesSkipped: m.updatesSkipped.WithLabelValues(name, typ),
		transient:      m.failed.WithLabelValues(name, typ, "transient"), refused: m.failed.WithLabelValues(name, typ, "refused"),
		summarized: m.rateLimited.WithLabelValues(name, typ, "summarized"), delayed: m.rateLimited.WithLabelValues(name, typ, "delayed"),
		latency: m.latency.WithLabelValues(name, typ),
	}
}

// queued registers the gauge of an output's queue length.
func (m *metrics) queued(o *output) {
	if m.reg == nil {
		return
	}
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "crumbs_output_queue_length", Help: "Deliveries waiting for an output (bounded by alerts.max_in_flight).",
		ConstLabels: prometheus.Labels{"output": o.cfg.Name, "type": o.cfg.Type},
	}, func() float64 { return float64(len(o.queue)) }))
}

// register registers c on reg, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
