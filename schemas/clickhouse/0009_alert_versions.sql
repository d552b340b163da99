-- alerts gain a version. A threshold or spike rule may alert early, before its window closes,
-- and again when the window closes, with the same alert_id and time, version 2 and the final
-- figures. The table is a ReplacingMergeTree ordered by (rule_id, time, alert_id), so merges
-- keep one row per alert: the last inserted, which is the latest version (an alert's versions
-- go through one Kafka partition, in order). Merging is eventual: readers take the highest
-- version of each alert_id (ORDER BY version DESC LIMIT 1 BY alert_id). Rows written before
-- have version 0.
{{.AddColumn "alerts" "version" "UInt64"}}
{{.Redistribute "alerts" "cityHash64(alert_id)"}}
-- alerts_hourly counted every row; it counts each alert once now, by its first version (1, or
-- 0 for rows of older detectors).
DROP TABLE IF EXISTS {{.Database}}.alerts_hourly_mv{{.OnCluster}};
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.alerts_hourly_mv{{.OnCluster}}
TO {{.Table "alerts_hourly"}}
AS SELECT toStartOfHour(time) AS hour, rule_id, severity, service, countIf(version <= 1) AS alerts
FROM {{.Table "alerts"}}
GROUP BY hour, rule_id, severity, service;
