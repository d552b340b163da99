-- Aggregates that dashboards and `crumbs timeline` read instead of scanning raw events. Each
-- is a small table fed by materialised views on the raw tables: every INSERT the sink makes
-- is aggregated as it lands, and background merges fold the rows together (SummingMergeTree
-- sums the numeric columns outside the key; AggregatingMergeTree merges -State values, read
-- back with -Merge). Readers still aggregate with GROUP BY, since merging is eventual. The
-- views see only rows inserted after they exist. The sink skips replayed ids before
-- inserting, so replays do not inflate the counts.
-- On a cluster, views and tables are local to each node (the raw rows of a node feed its
-- aggregates) and the Distributed tables in front of the aggregates read every shard.

-- alerts_hourly: alerts per hour by rule, severity and service.
CREATE TABLE IF NOT EXISTS {{.Table "alerts_hourly"}}{{.OnCluster}}
(
    hour      DateTime,
    rule_id   {{.LowCardinality "String"}},
    severity  {{.LowCardinality "String"}},
    service   {{.LowCardinality "String"}},
    alerts    UInt64
)
ENGINE = {{.Engine "alerts_hourly" "SummingMergeTree"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, rule_id, severity, service);
{{.Distributed "alerts_hourly" "rand()"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.alerts_hourly_mv{{.OnCluster}}
TO {{.Table "alerts_hourly"}}
AS SELECT toStartOfHour(time) AS hour, rule_id, severity, service, count() AS alerts
FROM {{.Table "alerts"}}
GROUP BY hour, rule_id, severity, service;

-- service_graph_minute: outbound connections per minute from a service (and host) to a
-- destination (its host name when the collector resolved one, else its address) and port.
-- connections counts connects and UDP flows; bytes add up what updates and closes report.
CREATE TABLE IF NOT EXISTS {{.Table "service_graph_minute"}}{{.OnCluster}}
(
    minute          DateTime,
    src_service     {{.LowCardinality "String"}},
    dst             String,
    dst_port        Int32,
    protocol        {{.LowCardinality "String"}},
    src_host        {{.LowCardinality "String"}},
    connections     UInt64,
    bytes_sent      Int64,
    bytes_received  Int64
)
ENGINE = {{.Engine "service_graph_minute" "SummingMergeTree"}}
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, src_service, dst, dst_port, protocol, src_host);
{{.Distributed "service_graph_minute" "rand()"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.service_graph_minute_mv{{.OnCluster}}
TO {{.Table "service_graph_minute"}}
AS SELECT toStartOfMinute(time) AS minute, service AS src_service,
    if(dst_hostname != '', dst_hostname, dst_ip) AS dst, dst_port, protocol, host_name AS src_host,
    countIf(action IN ('connect', 'udp_flow')) AS connections,
    sum(bytes_sent) AS bytes_sent, sum(bytes_received) AS bytes_received
FROM {{.Table "network_events"}}
WHERE direction = 'outbound'
GROUP BY minute, src_service, dst, dst_port, protocol, src_host;

-- executions_by_service: per service, executable and hash (and its artifact verdict), the
-- first and last time it was executed, how often and on how many hosts, per month (so that
-- retention can drop old months; merge months with minMerge/maxMerge/countMerge/uniqMerge).
CREATE TABLE IF NOT EXISTS {{.Table "executions_by_service"}}{{.OnCluster}}
(
    month       Date,
    service     {{.LowCardinality "String"}},
    exe_path    String,
    exe_sha256  String,
    verdict     {{.LowCardinality "String"}},
    first_seen  AggregateFunction(min, DateTime),
    last_seen   AggregateFunction(max, DateTime),
    executions  AggregateFunction(count),
    hosts       AggregateFunction(uniq, String)
)
ENGINE = {{.Engine "executions_by_service" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(month)
ORDER BY (service, exe_path, exe_sha256, verdict, month);
{{.Distributed "executions_by_service" "rand()"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.executions_by_service_mv{{.OnCluster}}
TO {{.Table "executions_by_service"}}
AS SELECT toStartOfMonth(date) AS month, service, exe_path, exe_sha256, verdict,
    minState(time) AS first_seen, maxState(time) AS last_seen, countState() AS executions,
    uniqState(host_name) AS hosts
FROM {{.Table "process_events"}}
WHERE action = 'exec'
GROUP BY month, service, exe_path, exe_sha256, verdict;

-- logins_by_account: authentications and session opens per hour, by the account logged into
-- (the target user when there is one, as with su and sudo, else the user), the source (remote
-- host), the authenticating program and the result.
CREATE TABLE IF NOT EXISTS {{.Table "logins_by_account"}}{{.OnCluster}}
(
    hour              DateTime,
    account           String,
    source            String,
    result            {{.LowCardinality "String"}},
    identity_service  {{.LowCardinality "String"}},
    user              String,
    host_name         {{.LowCardinality "String"}},
    service           {{.LowCardinality "String"}},
    account_type      {{.LowCardinality "String"}},
    logins            UInt64
)
ENGINE = {{.Engine "logins_by_account" "SummingMergeTree"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, account, source, result, identity_service, user, host_name, service, account_type);
{{.Distributed "logins_by_account" "rand()"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.logins_by_account_mv{{.OnCluster}}
TO {{.Table "logins_by_account"}}
AS SELECT toStartOfHour(time) AS hour, if(target_user != '', target_user, user) AS account,
    remote_host AS source, result, identity_service, user, host_name, service, account_type,
    count() AS logins
FROM {{.Table "identity_events"}}
WHERE action IN ('auth', 'session_open')
GROUP BY hour, account, source, result, identity_service, user, host_name, service, account_type;

-- service_activity: events per minute, service, host and kind. It is the index of questions
-- by service: which hosts a service ran on in a time range, so that its timeline reads the
-- raw tables by (host_name, time), their sorting key.
CREATE TABLE IF NOT EXISTS {{.Table "service_activity"}}{{.OnCluster}}
(
    minute     DateTime,
    service    {{.LowCardinality "String"}},
    host_name  {{.LowCardinality "String"}},
    kind       {{.LowCardinality "String"}},
    events     UInt64
)
ENGINE = {{.Engine "service_activity" "SummingMergeTree"}}
PARTITION BY toYYYYMMDD(minute)
ORDER BY (service, minute, host_name, kind);
{{.Distributed "service_activity" "rand()"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.service_activity_process_mv{{.OnCluster}}
TO {{.Table "service_activity"}}
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'process' AS kind, count() AS events
FROM {{.Table "process_events"}} GROUP BY minute, service, host_name;
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.service_activity_network_mv{{.OnCluster}}
TO {{.Table "service_activity"}}
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'network' AS kind, count() AS events
FROM {{.Table "network_events"}} GROUP BY minute, service, host_name;
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.service_activity_file_mv{{.OnCluster}}
TO {{.Table "service_activity"}}
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'file' AS kind, count() AS events
FROM {{.Table "file_events"}} GROUP BY minute, service, host_name;
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.service_activity_identity_mv{{.OnCluster}}
TO {{.Table "service_activity"}}
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'identity' AS kind, count() AS events
FROM {{.Table "identity_events"}} GROUP BY minute, service, host_name;
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.service_activity_system_mv{{.OnCluster}}
TO {{.Table "service_activity"}}
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'system' AS kind, count() AS events
FROM {{.Table "system_events"}} GROUP BY minute, service, host_name;
