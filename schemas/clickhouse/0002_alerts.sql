-- alerts: one row per alert from crumbs.alerts. Idempotent on alert_id (deterministic per
-- rule, group key and window). Alerts are few, so partitions are monthly. `date` is the UTC
-- day of `time`, set by the sink.
CREATE TABLE IF NOT EXISTS {{.Table "alerts"}}{{.OnCluster}}
(
    alert_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    rule_id         {{.LowCardinality "String"}},
    title           String,
    severity        {{.LowCardinality "String"}},
    tags            Array(String),
    group_key       String,
    host_id         String,
    host_name       {{.LowCardinality "String"}},
    service         {{.LowCardinality "String"}},
    window_start    DateTime,
    window_start_ns UInt64,
    window_end      DateTime,
    window_end_ns   UInt64,
    count           Int64,
    evidence        Array(String),
    summary         String
)
ENGINE = {{.Engine "alerts" "ReplacingMergeTree"}}
PARTITION BY toYYYYMM(date)
ORDER BY (rule_id, time, alert_id);
{{.Distributed "alerts" "cityHash64(alert_id)"}}
