// Package outputs is the alerts stage: it delivers alerts to the people on call.
//
// In: alerts (crumbs.alerts, Avro crumbs.Alert), incidents when an output delivers them
// (crumbs.incidents, Avro crumbs.Incident) and alerts' triage states (the compacted
// crumbs.triage, Avro crumbs.TriageState), consumed as the consumer group crumbs-alerts.
// Out: each alert, at every output configured under alerts.outputs whose filters it passes
// (minimum severity, rules, tags, services): a webhook (JSON, HMAC-SHA256 signed, optional
// mTLS), Slack (incoming webhook), PagerDuty (Events v2: a trigger whose dedup key is the
// alert id, and a resolve when the alert's triage state becomes resolved or false_positive),
// Alertmanager (v2 API), syslog (RFC 5424 over UDP, TCP or TLS), e-mail (SMTP with STARTTLS)
// and JSON lines (standard output or a file rotated by size). Each output renders its
// templated fields over the alert and may be rate limited (a token bucket whose excess is
// summarised or delayed). An alert (or incident) may come in several versions, one id growing;
// each output's updates policy (none, final, all) says which versions after the first it
// delivers, each under a key of its own.
//
// Deliveries are retried with exponential backoff; one the receiver refused for its content,
// or that kept failing past the output's retry bound, goes to crumbs.dlq (header
// crumbs.output names the output) and is counted. The outcome of every delivery (delivered,
// summarized, dead_lettered) is written to the compacted topic crumbs.deliveries (Avro
// crumbs.Delivery), keyed by alert id and output name (and version, for a later version), in
// the partition of the record it came
// from, before that record's offset is committed; a stage assigned a partition reads the
// delivery state of that partition back first, so a record consumed again after a crash or a
// rebalance is not delivered again to an output that already took it. What cannot be made
// exactly once is a crash after a receiver acknowledged and before the state was written: that
// delivery is made again, with the same idempotency key (webhook Idempotency-Key header, e-mail
// Message-ID, PagerDuty dedup key, Alertmanager's labels), so that receivers which keep keys
// drop the duplicate. docs/outputs.md says what each output's "exactly once" amounts to.
package outputs
