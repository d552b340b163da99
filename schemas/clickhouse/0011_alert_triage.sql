-- alert_triage: the triage of alerts (state, assignee, notes, a false positive's suppression),
-- one row per version of an alert's triage, from the compacted topic crumbs.triage. Merges keep
-- the highest version of each alert (ReplacingMergeTree(version)); merging is eventual, so
-- readers take the latest with argMax(..., version) GROUP BY alert_id. A tombstone on the
-- topic is a row with deleted = 1. The table holds triaged alerts only, so it stays small
-- beside alerts and is not partitioned (a partition boundary would keep versions of one alert
-- from merging). Sharded like alerts, by alert id, so an alert's versions share a shard.
CREATE TABLE IF NOT EXISTS {{.Table "alert_triage"}}{{.OnCluster}}
(
    alert_id        String,
    version         UInt64,
    state           {{.LowCardinality "String"}},
    assignee        String,
    updated_at      UInt64,
    updated_by      String,
    note_at         Array(UInt64),
    note_by         Array(String),
    note_text       Array(String),
    rule_id         String,
    host_name       String,
    group_key       String,
    alert_time      UInt64,
    severity        {{.LowCardinality "String"}},
    service         {{.LowCardinality "String"}},
    tags            Array(String),
    suppress_until  UInt64,
    suppress_scope  {{.LowCardinality "String"}},
    deleted         UInt8
)
ENGINE = {{.Engine "alert_triage" "ReplacingMergeTree" "version"}}
ORDER BY alert_id;
{{.Distributed "alert_triage" "cityHash64(alert_id)"}}
