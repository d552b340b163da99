// Package clickhouse is the sink stage: it lands the pipeline's output in ClickHouse, creates
// and upgrades its tables, and drops what is past retention. It writes only; the questions
// analysts ask of what it wrote are answered by package query.
//
// In: enriched events of every kind (crumbs.enriched.{process,network,file,identity,system}),
// alerts (crumbs.alerts) and context records (the compacted crumbs.context.{change,deploy,
// inventory,account}), alerts' triage (the compacted crumbs.triage) and its replayed dead letters (crumbs.retry.sink), Avro records consumed
// as the consumer group crumbs-sink. Each record is dispatched by its schema to the writer of
// its table, which batches it. Out: rows in the <kind>_events, alerts, alert_triage and context_* tables of
// the configured database (created and upgraded by the versioned migrations in
// schemas/clickhouse, which also create the materialised views dashboards read), and on
// crumbs.dlq, with their reason, the records that cannot be decoded and the rows ClickHouse
// refuses for their content. When ClickHouse is away (pkg/retry: a transient failure) the sink
// holds its batch and offsets and waits, without limit; it dead-letters nothing for that.
//
// One batch is written while the next is consumed and decoded (at most two batches held);
// offsets are committed batch after batch, only after ClickHouse acknowledged the rows of every
// record before them, so a crash replays records rather than losing them. Replays leave no duplicates: the
// event tables are ReplacingMergeTree keyed on the event id, and after a (re)start or a
// partition assignment the sink looks up which ids of a batch are already written and skips
// them; context tables keep the latest version per id (ReplacingMergeTree(updated_at)), alert_triage
// the highest version per alert (ReplacingMergeTree(version)).
// A goroutine of the sink drops partitions past each table's retention.
package clickhouse
