// Package clickhouse is the sink stage: it lands the pipeline's output in ClickHouse.
//
// In: enriched process events (crumbs.enriched.process) and alerts (crumbs.alerts), Avro
// records consumed from Kafka as the consumer group crumbs-sink. Out: rows in the
// process_events and alerts tables of the configured database (created and upgraded by the
// versioned migrations in schemas/clickhouse), and records that cannot be written, with their
// reason, on crumbs.dlq.
//
// Offsets are committed only after ClickHouse acknowledged the rows of every record before
// them, so a crash replays records rather than losing them. Replays leave no duplicates: the
// tables are ReplacingMergeTree keyed on the event id, and after a (re)start or a partition
// assignment the sink looks up which ids of a batch are already written and skips them.
package clickhouse
