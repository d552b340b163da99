-- alerts_first: one row per alert, as first raised (version 0 or 1), with the columns the
-- console's inbox filters and counts by. alerts holds a row per version until merges fold
-- them, so counting alerts there needs a deduplication per alert id over the whole range
-- (seconds over a million alerts on 18.16); a view on the inserts sees each version once, and
-- a plain count over alerts_first is exact. Its sorting key starts with time: the inbox asks
-- for ranges of time. A row written twice (an insert retried after a partial failure) has the
-- same key and merges away. The backfill takes the alerts written before this migration.
--
-- alerts_facets_hourly: how many alerts (as first raised) each value of each inbox facet has
-- per hour: severity, rule, service, host and tag. The inbox's counts for a range with no
-- other filter read it for the whole hours and alerts_first for the edges, instead of
-- grouping every alert of the range. It is filled before its view exists (an empty table
-- only: a migration run again adds nothing twice); alerts the sink inserts between the two
-- statements are not counted, which only a sink running beside a migrating one can do.
CREATE TABLE IF NOT EXISTS {{.Table "alerts_first"}}{{.OnCluster}}
(
    alert_id   String,
    time       DateTime,
    time_ns    UInt64,
    date       Date,
    rule_id    {{.LowCardinality "String"}},
    severity   {{.LowCardinality "String"}},
    tags       Array(String),
    host_name  {{.LowCardinality "String"}},
    service    {{.LowCardinality "String"}}
)
ENGINE = {{.Engine "alerts_first" "ReplacingMergeTree"}}
PARTITION BY toYYYYMM(date)
ORDER BY (time, alert_id);
{{.Distributed "alerts_first" "cityHash64(alert_id)"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.alerts_first_mv{{.OnCluster}}
TO {{.Table "alerts_first"}}
AS SELECT alert_id, time, time_ns, date, rule_id, severity, tags, host_name, service
FROM {{.Table "alerts"}}
WHERE version <= 1;
INSERT INTO {{.Database}}.alerts_first (alert_id, time, time_ns, date, rule_id, severity, tags, host_name, service)
SELECT alert_id, argMin(time, version), argMin(time_ns, version), argMin(date, version), argMin(rule_id, version),
    argMin(severity, version), argMin(tags, version), argMin(host_name, version), argMin(service, version)
FROM {{.Database}}.alerts
WHERE alert_id {{.NotIn}} (SELECT alert_id FROM {{.Database}}.alerts_first)
GROUP BY alert_id;
CREATE TABLE IF NOT EXISTS {{.Table "alerts_facets_hourly"}}{{.OnCluster}}
(
    hour    DateTime,
    facet   {{.LowCardinality "String"}},
    value   String,
    alerts  UInt64
)
ENGINE = {{.Engine "alerts_facets_hourly" "SummingMergeTree"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, facet, value);
{{.Distributed "alerts_facets_hourly" "rand()"}}
INSERT INTO {{.Database}}.alerts_facets_hourly (hour, facet, value, alerts)
SELECT toStartOfHour(time) AS hour, f.1 AS facet, f.2 AS value, count() AS alerts
FROM {{.Database}}.alerts_first
ARRAY JOIN arrayConcat([('severity', concat(severity, '')), ('rule', concat(rule_id, '')), ('service', concat(service, '')),
    ('host', concat(host_name, ''))], arrayMap(t -> ('tag', t), tags)) AS f
WHERE (SELECT count() FROM {{.Database}}.alerts_facets_hourly) = 0
GROUP BY hour, facet, value;
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.alerts_facets_hourly_mv{{.OnCluster}}
TO {{.Table "alerts_facets_hourly"}}
AS SELECT toStartOfHour(time) AS hour, f.1 AS facet, f.2 AS value, count() AS alerts
FROM {{.Table "alerts"}}
ARRAY JOIN arrayConcat([('severity', concat(severity, '')), ('rule', concat(rule_id, '')), ('service', concat(service, '')),
    ('host', concat(host_name, ''))], arrayMap(t -> ('tag', t), tags)) AS f
WHERE version <= 1
GROUP BY hour, facet, value;
