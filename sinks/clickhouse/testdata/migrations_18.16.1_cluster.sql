-- 0001_process_events
-- process_events: one row per process exec, fork or exit from crumbs.enriched.process.
-- Idempotent on event_id: ReplacingMergeTree collapses rows with the same sorting key, and
-- the sink filters replays before inserting. `date` is the UTC day of `time`, set by the sink.
CREATE TABLE IF NOT EXISTS crumbs.process_events_local ON CLUSTER crumbs_cluster
(
    event_id          String,
    time              DateTime,
    time_ns           UInt64,
    date              Date,
    kind              String,
    host_id           String,
    host_name         String,
    action            String,
    pid               Int32,
    ppid              Int32,
    cmd_line          String,
    args              Array(String),
    args_truncated    UInt8,
    cwd               String,
    exe_path          String,
    exe_name          String,
    exe_sha256        String,
    uid               Int64,
    user_name         String,
    gid               Int64,
    group_name        String,
    login_uid         Int64,
    tty               String,
    cgroup_id         Int64,
    systemd_unit      String,
    container_id      String,
    exit_code         Int32,
    parent_pid        Int32,
    parent_exe_path   String,
    parent_exe_name   String,
    parent_exe_sha256 String,
    parent_cmd_line   String,
    service           String,
    environment       String,
    role              String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/process_events', '{replica}')
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);

-- 0001_process_events
CREATE TABLE IF NOT EXISTS crumbs.process_events ON CLUSTER crumbs_cluster AS crumbs.process_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, process_events_local, cityHash64(event_id));

-- 0002_alerts
-- alerts: one row per alert from crumbs.alerts. Idempotent on alert_id (deterministic per
-- rule, group key and window). Alerts are few, so partitions are monthly. `date` is the UTC
-- day of `time`, set by the sink.
CREATE TABLE IF NOT EXISTS crumbs.alerts_local ON CLUSTER crumbs_cluster
(
    alert_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    rule_id         String,
    title           String,
    severity        String,
    tags            Array(String),
    group_key       String,
    host_id         String,
    host_name       String,
    service         String,
    window_start    DateTime,
    window_start_ns UInt64,
    window_end      DateTime,
    window_end_ns   UInt64,
    count           Int64,
    evidence        Array(String),
    summary         String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/alerts', '{replica}')
PARTITION BY toYYYYMM(date)
ORDER BY (rule_id, time, alert_id);

-- 0002_alerts
CREATE TABLE IF NOT EXISTS crumbs.alerts ON CLUSTER crumbs_cluster AS crumbs.alerts_local
ENGINE = Distributed(crumbs_cluster, crumbs, alerts_local, cityHash64(alert_id));

-- 0003_process_enrichment
-- process_events gains the enrichment columns every event table has: the change windows
-- active at the event (ids and types), the deployment current on its host, the artifact
-- verdict of its executable and the policy of its account. Rows written before stay with
-- empty values.
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN change_ids Array(String);

-- 0003_process_enrichment
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN change_types Array(String);

-- 0003_process_enrichment
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN deploy_id String;

-- 0003_process_enrichment
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN deploy_version String;

-- 0003_process_enrichment
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN verdict String;

-- 0003_process_enrichment
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN verdict_reason String;

-- 0003_process_enrichment
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN account_name String;

-- 0003_process_enrichment
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN account_type String;

-- 0003_process_enrichment
DROP TABLE IF EXISTS crumbs.process_events ON CLUSTER crumbs_cluster;

-- 0003_process_enrichment
CREATE TABLE IF NOT EXISTS crumbs.process_events ON CLUSTER crumbs_cluster AS crumbs.process_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, process_events_local, cityHash64(event_id));

-- 0004_event_tables
-- The event tables of the other kinds: one row per event from crumbs.enriched.<kind>.
-- Like process_events they are idempotent on event_id (ReplacingMergeTree, and the sink skips
-- replayed ids), partitioned by the UTC day of the event (`date`, set by the sink) so that
-- retention drops whole days, and ordered by host and time: a host's timeline reads one
-- contiguous range per day. Questions by service go through service_activity (0006), which
-- names the hosts a service ran on per minute. Every table carries the process that caused
-- the event (pid, executable, command line, user, cgroup) and the enrichment columns.

-- network_events: connection lifecycle steps (connect, accept, update, close), listening
-- sockets, UDP flows and DNS answers. Bytes and packets on update and close events count what
-- passed since the connection's previous report.
CREATE TABLE IF NOT EXISTS crumbs.network_events_local ON CLUSTER crumbs_cluster
(
    event_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    host_id         String,
    host_name       String,
    action          String,
    pid             Int32,
    exe_path        String,
    exe_name        String,
    exe_sha256      String,
    cmd_line        String,
    uid             Int64,
    user_name       String,
    cgroup_id       Int64,
    systemd_unit    String,
    container_id    String,
    direction       String,
    protocol        String,
    ip_version      Int32,
    src_ip          String,
    src_port        Int32,
    src_hostname    String,
    dst_ip          String,
    dst_port        Int32,
    dst_hostname    String,
    bytes_sent      Int64,
    bytes_received  Int64,
    packets         Int64,
    duration_ns     Int64,
    dns_answers     Array(String),
    service         String,
    environment     String,
    role            String,
    change_ids      Array(String),
    change_types    Array(String),
    deploy_id       String,
    deploy_version  String,
    verdict         String,
    verdict_reason  String,
    account_name    String,
    account_type    String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/network_events', '{replica}')
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);

-- 0004_event_tables
CREATE TABLE IF NOT EXISTS crumbs.network_events ON CLUSTER crumbs_cluster AS crumbs.network_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, network_events_local, cityHash64(event_id));

-- 0004_event_tables
-- file_events: changes under watched paths (create, write, rename, delete, chmod, chown) and
-- scan findings (scan_added, scan_removed, scan_changed) with the file's hash, owner and mode.
CREATE TABLE IF NOT EXISTS crumbs.file_events_local ON CLUSTER crumbs_cluster
(
    event_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    host_id         String,
    host_name       String,
    action          String,
    pid             Int32,
    exe_path        String,
    exe_name        String,
    exe_sha256      String,
    cmd_line        String,
    uid             Int64,
    user_name       String,
    cgroup_id       Int64,
    systemd_unit    String,
    container_id    String,
    file_path       String,
    file_name       String,
    new_path        String,
    file_sha256     String,
    file_size       Int64,
    file_owner      String,
    file_group      String,
    file_uid        Int64,
    file_gid        Int64,
    file_mode       String,
    changed         Array(String),
    service         String,
    environment     String,
    role            String,
    change_ids      Array(String),
    change_types    Array(String),
    deploy_id       String,
    deploy_version  String,
    verdict         String,
    verdict_reason  String,
    account_name    String,
    account_type    String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/file_events', '{replica}')
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);

-- 0004_event_tables
CREATE TABLE IF NOT EXISTS crumbs.file_events ON CLUSTER crumbs_cluster AS crumbs.file_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, file_events_local, cityHash64(event_id));

-- 0004_event_tables
-- identity_events: authentications, sessions and credential changes. identity_service is the
-- program that authenticated (sshd, sudo, su, login); service is the enrichment's service.
CREATE TABLE IF NOT EXISTS crumbs.identity_events_local ON CLUSTER crumbs_cluster
(
    event_id         String,
    time             DateTime,
    time_ns          UInt64,
    date             Date,
    host_id          String,
    host_name        String,
    action           String,
    pid              Int32,
    exe_path         String,
    exe_name         String,
    exe_sha256       String,
    cmd_line         String,
    uid              Int64,
    user_name        String,
    cgroup_id        Int64,
    systemd_unit     String,
    container_id     String,
    identity_service String,
    user             String,
    target_user      String,
    remote_host      String,
    result           String,
    code             Int32,
    old_uid          Int64,
    new_uid          Int64,
    old_gid          Int64,
    new_gid          Int64,
    service          String,
    environment      String,
    role             String,
    change_ids       Array(String),
    change_types     Array(String),
    deploy_id        String,
    deploy_version   String,
    verdict          String,
    verdict_reason   String,
    account_name     String,
    account_type     String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/identity_events', '{replica}')
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);

-- 0004_event_tables
CREATE TABLE IF NOT EXISTS crumbs.identity_events ON CLUSTER crumbs_cluster AS crumbs.identity_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, identity_events_local, cityHash64(event_id));

-- 0004_event_tables
-- system_events: resource use of a service (systemd unit, cgroup, container) or of the whole
-- host over one interval.
CREATE TABLE IF NOT EXISTS crumbs.system_events_local ON CLUSTER crumbs_cluster
(
    event_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    host_id         String,
    host_name       String,
    scope           String,
    unit            String,
    cgroup_id       Int64,
    interval_ns     Int64,
    cpu_seconds     Float64,
    memory_bytes    Int64,
    process_count   Int64,
    connections     Int64,
    bytes_sent      Int64,
    bytes_received  Int64,
    service         String,
    environment     String,
    role            String,
    change_ids      Array(String),
    change_types    Array(String),
    deploy_id       String,
    deploy_version  String,
    verdict         String,
    verdict_reason  String,
    account_name    String,
    account_type    String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/system_events', '{replica}')
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);

-- 0004_event_tables
CREATE TABLE IF NOT EXISTS crumbs.system_events ON CLUSTER crumbs_cluster AS crumbs.system_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, system_events_local, cityHash64(event_id));

-- 0005_context
-- Context records from the compacted crumbs.context.<kind> topics, as the organisation
-- planned them. One row per version of a record: ReplacingMergeTree(updated_at) keeps the
-- latest per id, so read them with FINAL. A tombstone is written as a row with deleted = 1
-- (and updated_at from the tombstone's Kafka timestamp); readers filter `deleted = 0`.
-- Context is small and never expires, so the tables are not partitioned.

-- context_changes: planned changes, launches, campaigns and maintenance windows. Empty hosts
-- means every host of its services. expected_* are the announced effects, index-aligned.
CREATE TABLE IF NOT EXISTS crumbs.context_changes_local ON CLUSTER crumbs_cluster
(
    id                      String,
    type                    String,
    title                   String,
    services                Array(String),
    hosts                   Array(String),
    starts_at               DateTime,
    ends_at                 DateTime,
    expected_service        Array(String),
    expected_metric         Array(String),
    expected_up_to_factor   Array(Float64),
    updated_at              UInt64,
    deleted                 UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/context_changes', '{replica}', updated_at)
ORDER BY id;

-- 0005_context
CREATE TABLE IF NOT EXISTS crumbs.context_changes ON CLUSTER crumbs_cluster AS crumbs.context_changes_local
ENGINE = Distributed(crumbs_cluster, crumbs, context_changes_local, cityHash64(id));

-- 0005_context
-- context_deploys: deployments of a service version with their artifact manifests
-- (artifact_* index-aligned).
CREATE TABLE IF NOT EXISTS crumbs.context_deploys_local ON CLUSTER crumbs_cluster
(
    id               String,
    service          String,
    version          String,
    hosts            Array(String),
    deployed_at      DateTime,
    artifact_path    Array(String),
    artifact_sha256  Array(String),
    artifact_owner   Array(String),
    artifact_group   Array(String),
    artifact_mode    Array(String),
    updated_at       UInt64,
    deleted          UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/context_deploys', '{replica}', updated_at)
ORDER BY id;

-- 0005_context
CREATE TABLE IF NOT EXISTS crumbs.context_deploys ON CLUSTER crumbs_cluster AS crumbs.context_deploys_local
ENGINE = Distributed(crumbs_cluster, crumbs, context_deploys_local, cityHash64(id));

-- 0005_context
-- context_inventory: which service, environment and role a host serves.
CREATE TABLE IF NOT EXISTS crumbs.context_inventory_local ON CLUSTER crumbs_cluster
(
    id           String,
    host         String,
    service      String,
    environment  String,
    role         String,
    updated_at   UInt64,
    deleted      UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/context_inventory', '{replica}', updated_at)
ORDER BY id;

-- 0005_context
CREATE TABLE IF NOT EXISTS crumbs.context_inventory ON CLUSTER crumbs_cluster AS crumbs.context_inventory_local
ENGINE = Distributed(crumbs_cluster, crumbs, context_inventory_local, cityHash64(id));

-- 0005_context
-- context_accounts: an account's kind and login policy.
CREATE TABLE IF NOT EXISTS crumbs.context_accounts_local ON CLUSTER crumbs_cluster
(
    id               String,
    name             String,
    type             String,
    interactive      UInt8,
    allowed_sources  Array(String),
    allowed_users    Array(String),
    updated_at       UInt64,
    deleted          UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/context_accounts', '{replica}', updated_at)
ORDER BY id;

-- 0005_context
CREATE TABLE IF NOT EXISTS crumbs.context_accounts ON CLUSTER crumbs_cluster AS crumbs.context_accounts_local
ENGINE = Distributed(crumbs_cluster, crumbs, context_accounts_local, cityHash64(id));

-- 0006_views
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
CREATE TABLE IF NOT EXISTS crumbs.alerts_hourly_local ON CLUSTER crumbs_cluster
(
    hour      DateTime,
    rule_id   String,
    severity  String,
    service   String,
    alerts    UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/crumbs/alerts_hourly', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, rule_id, severity, service);

-- 0006_views
CREATE TABLE IF NOT EXISTS crumbs.alerts_hourly ON CLUSTER crumbs_cluster AS crumbs.alerts_hourly_local
ENGINE = Distributed(crumbs_cluster, crumbs, alerts_hourly_local, rand());

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.alerts_hourly_mv ON CLUSTER crumbs_cluster
TO crumbs.alerts_hourly_local
AS SELECT toStartOfHour(time) AS hour, rule_id, severity, service, count() AS alerts
FROM crumbs.alerts_local
GROUP BY hour, rule_id, severity, service;

-- 0006_views
-- service_graph_minute: outbound connections per minute from a service (and host) to a
-- destination (its host name when the collector resolved one, else its address) and port.
-- connections counts connects and UDP flows; bytes add up what updates and closes report.
CREATE TABLE IF NOT EXISTS crumbs.service_graph_minute_local ON CLUSTER crumbs_cluster
(
    minute          DateTime,
    src_service     String,
    dst             String,
    dst_port        Int32,
    protocol        String,
    src_host        String,
    connections     UInt64,
    bytes_sent      Int64,
    bytes_received  Int64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/crumbs/service_graph_minute', '{replica}')
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, src_service, dst, dst_port, protocol, src_host);

-- 0006_views
CREATE TABLE IF NOT EXISTS crumbs.service_graph_minute ON CLUSTER crumbs_cluster AS crumbs.service_graph_minute_local
ENGINE = Distributed(crumbs_cluster, crumbs, service_graph_minute_local, rand());

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.service_graph_minute_mv ON CLUSTER crumbs_cluster
TO crumbs.service_graph_minute_local
AS SELECT toStartOfMinute(time) AS minute, service AS src_service,
    if(dst_hostname != '', dst_hostname, dst_ip) AS dst, dst_port, protocol, host_name AS src_host,
    countIf(action IN ('connect', 'udp_flow')) AS connections,
    sum(bytes_sent) AS bytes_sent, sum(bytes_received) AS bytes_received
FROM crumbs.network_events_local
WHERE direction = 'outbound'
GROUP BY minute, src_service, dst, dst_port, protocol, src_host;

-- 0006_views
-- executions_by_service: per service, executable and hash (and its artifact verdict), the
-- first and last time it was executed, how often and on how many hosts, per month (so that
-- retention can drop old months; merge months with minMerge/maxMerge/countMerge/uniqMerge).
CREATE TABLE IF NOT EXISTS crumbs.executions_by_service_local ON CLUSTER crumbs_cluster
(
    month       Date,
    service     String,
    exe_path    String,
    exe_sha256  String,
    verdict     String,
    first_seen  AggregateFunction(min, DateTime),
    last_seen   AggregateFunction(max, DateTime),
    executions  AggregateFunction(count),
    hosts       AggregateFunction(uniq, String)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/crumbs/executions_by_service', '{replica}')
PARTITION BY toYYYYMM(month)
ORDER BY (service, exe_path, exe_sha256, verdict, month);

-- 0006_views
CREATE TABLE IF NOT EXISTS crumbs.executions_by_service ON CLUSTER crumbs_cluster AS crumbs.executions_by_service_local
ENGINE = Distributed(crumbs_cluster, crumbs, executions_by_service_local, rand());

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.executions_by_service_mv ON CLUSTER crumbs_cluster
TO crumbs.executions_by_service_local
AS SELECT toStartOfMonth(date) AS month, service, exe_path, exe_sha256, verdict,
    minState(time) AS first_seen, maxState(time) AS last_seen, countState() AS executions,
    uniqState(host_name) AS hosts
FROM crumbs.process_events_local
WHERE action = 'exec'
GROUP BY month, service, exe_path, exe_sha256, verdict;

-- 0006_views
-- logins_by_account: authentications and session opens per hour, by the account logged into
-- (the target user when there is one, as with su and sudo, else the user), the source (remote
-- host), the authenticating program and the result.
CREATE TABLE IF NOT EXISTS crumbs.logins_by_account_local ON CLUSTER crumbs_cluster
(
    hour              DateTime,
    account           String,
    source            String,
    result            String,
    identity_service  String,
    user              String,
    host_name         String,
    service           String,
    account_type      String,
    logins            UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/crumbs/logins_by_account', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, account, source, result, identity_service, user, host_name, service, account_type);

-- 0006_views
CREATE TABLE IF NOT EXISTS crumbs.logins_by_account ON CLUSTER crumbs_cluster AS crumbs.logins_by_account_local
ENGINE = Distributed(crumbs_cluster, crumbs, logins_by_account_local, rand());

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.logins_by_account_mv ON CLUSTER crumbs_cluster
TO crumbs.logins_by_account_local
AS SELECT toStartOfHour(time) AS hour, if(target_user != '', target_user, user) AS account,
    remote_host AS source, result, identity_service, user, host_name, service, account_type,
    count() AS logins
FROM crumbs.identity_events_local
WHERE action IN ('auth', 'session_open')
GROUP BY hour, account, source, result, identity_service, user, host_name, service, account_type;

-- 0006_views
-- service_activity: events per minute, service, host and kind. It is the index of questions
-- by service: which hosts a service ran on in a time range, so that its timeline reads the
-- raw tables by (host_name, time), their sorting key.
CREATE TABLE IF NOT EXISTS crumbs.service_activity_local ON CLUSTER crumbs_cluster
(
    minute     DateTime,
    service    String,
    host_name  String,
    kind       String,
    events     UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/crumbs/service_activity', '{replica}')
PARTITION BY toYYYYMMDD(minute)
ORDER BY (service, minute, host_name, kind);

-- 0006_views
CREATE TABLE IF NOT EXISTS crumbs.service_activity ON CLUSTER crumbs_cluster AS crumbs.service_activity_local
ENGINE = Distributed(crumbs_cluster, crumbs, service_activity_local, rand());

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.service_activity_process_mv ON CLUSTER crumbs_cluster
TO crumbs.service_activity_local
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'process' AS kind, count() AS events
FROM crumbs.process_events_local GROUP BY minute, service, host_name;

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.service_activity_network_mv ON CLUSTER crumbs_cluster
TO crumbs.service_activity_local
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'network' AS kind, count() AS events
FROM crumbs.network_events_local GROUP BY minute, service, host_name;

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.service_activity_file_mv ON CLUSTER crumbs_cluster
TO crumbs.service_activity_local
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'file' AS kind, count() AS events
FROM crumbs.file_events_local GROUP BY minute, service, host_name;

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.service_activity_identity_mv ON CLUSTER crumbs_cluster
TO crumbs.service_activity_local
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'identity' AS kind, count() AS events
FROM crumbs.identity_events_local GROUP BY minute, service, host_name;

-- 0006_views
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.service_activity_system_mv ON CLUSTER crumbs_cluster
TO crumbs.service_activity_local
AS SELECT toStartOfMinute(time) AS minute, service, host_name, 'system' AS kind, count() AS events
FROM crumbs.system_events_local GROUP BY minute, service, host_name;

-- 0007_alert_metadata
-- alerts gain the rule's author and Sigma level (Sigma's licence asks for the author's credit
-- where matches are shown), the rule's format, and what change awareness did: the severity
-- before an explaining change lowered it, the change ids and the explanation. Rows written
-- before stay with empty values.
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN author String;

-- 0007_alert_metadata
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN level String;

-- 0007_alert_metadata
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN rule_source String;

-- 0007_alert_metadata
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN original_severity String;

-- 0007_alert_metadata
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN changes Array(String);

-- 0007_alert_metadata
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN explanation String;

-- 0007_alert_metadata
DROP TABLE IF EXISTS crumbs.alerts ON CLUSTER crumbs_cluster;

-- 0007_alert_metadata
CREATE TABLE IF NOT EXISTS crumbs.alerts ON CLUSTER crumbs_cluster AS crumbs.alerts_local
ENGINE = Distributed(crumbs_cluster, crumbs, alerts_local, cityHash64(alert_id));

-- 0008_service_graph_bytes
-- service_graph_minute summed the bytes of every outbound network event, but an update
-- carries a connection's bytes so far, not since the last one: a connection long enough to
-- be updated was counted once per update and again at its close. Its bytes now come from the
-- events that carry a connection's final figures (its close, or the connect of a connection
-- that closed within the collector's coalesce window) and from udp_flow events (each one sums
-- its own interval), counted in the minute they arrive. Rows written before stay as they are.
DROP TABLE IF EXISTS crumbs.service_graph_minute_mv ON CLUSTER crumbs_cluster;

-- 0008_service_graph_bytes
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.service_graph_minute_mv ON CLUSTER crumbs_cluster
TO crumbs.service_graph_minute_local
AS SELECT toStartOfMinute(time) AS minute, service AS src_service,
    if(dst_hostname != '', dst_hostname, dst_ip) AS dst, dst_port, protocol, host_name AS src_host,
    countIf(action IN ('connect', 'udp_flow')) AS connections,
    sumIf(bytes_sent, action != 'update') AS bytes_sent,
    sumIf(bytes_received, action != 'update') AS bytes_received
FROM crumbs.network_events_local
WHERE direction = 'outbound'
GROUP BY minute, src_service, dst, dst_port, protocol, src_host;

-- 0009_alert_versions
-- alerts gain a version. A threshold or spike rule may alert early, before its window closes,
-- and again when the window closes, with the same alert_id and time, version 2 and the final
-- figures. The table is a ReplacingMergeTree ordered by (rule_id, time, alert_id), so merges
-- keep one row per alert: the last inserted, which is the latest version (an alert's versions
-- go through one Kafka partition, in order). Merging is eventual: readers take the highest
-- version of each alert_id (ORDER BY version DESC LIMIT 1 BY alert_id). Rows written before
-- have version 0.
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN version UInt64;

-- 0009_alert_versions
DROP TABLE IF EXISTS crumbs.alerts ON CLUSTER crumbs_cluster;

-- 0009_alert_versions
CREATE TABLE IF NOT EXISTS crumbs.alerts ON CLUSTER crumbs_cluster AS crumbs.alerts_local
ENGINE = Distributed(crumbs_cluster, crumbs, alerts_local, cityHash64(alert_id));

-- 0009_alert_versions
-- alerts_hourly counted every row; it counts each alert once now, by its first version (1, or
-- 0 for rows of older detectors).
DROP TABLE IF EXISTS crumbs.alerts_hourly_mv ON CLUSTER crumbs_cluster;

-- 0009_alert_versions
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.alerts_hourly_mv ON CLUSTER crumbs_cluster
TO crumbs.alerts_hourly_local
AS SELECT toStartOfHour(time) AS hour, rule_id, severity, service, countIf(version <= 1) AS alerts
FROM crumbs.alerts_local
GROUP BY hour, rule_id, severity, service;

-- 0010_alert_incidents
-- alerts gain the incident they belong to (alerts of one process tree or login session on one
-- host within detector.incidents.span share it; crumbs.incidents carries the incident) and
-- whether the row is the final version of a throttled or early alert (no later version
-- follows). Rows written before have an empty incident_id and final 0.
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN incident_id String;

-- 0010_alert_incidents
ALTER TABLE crumbs.alerts_local ON CLUSTER crumbs_cluster ADD COLUMN final UInt8;

-- 0010_alert_incidents
DROP TABLE IF EXISTS crumbs.alerts ON CLUSTER crumbs_cluster;

-- 0010_alert_incidents
CREATE TABLE IF NOT EXISTS crumbs.alerts ON CLUSTER crumbs_cluster AS crumbs.alerts_local
ENGINE = Distributed(crumbs_cluster, crumbs, alerts_local, cityHash64(alert_id));

-- 0011_alert_triage
-- alert_triage: the triage of alerts (state, assignee, notes, a false positive's suppression),
-- one row per version of an alert's triage, from the compacted topic crumbs.triage. Merges keep
-- the highest version of each alert (ReplacingMergeTree(version)); merging is eventual, so
-- readers take the latest with argMax(..., version) GROUP BY alert_id. A tombstone on the
-- topic is a row with deleted = 1. The table holds triaged alerts only, so it stays small
-- beside alerts and is not partitioned (a partition boundary would keep versions of one alert
-- from merging). Sharded like alerts, by alert id, so an alert's versions share a shard.
CREATE TABLE IF NOT EXISTS crumbs.alert_triage_local ON CLUSTER crumbs_cluster
(
    alert_id        String,
    version         UInt64,
    state           String,
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
    severity        String,
    service         String,
    tags            Array(String),
    suppress_until  UInt64,
    suppress_scope  String,
    deleted         UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/alert_triage', '{replica}', version)
ORDER BY alert_id;

-- 0011_alert_triage
CREATE TABLE IF NOT EXISTS crumbs.alert_triage ON CLUSTER crumbs_cluster AS crumbs.alert_triage_local
ENGINE = Distributed(crumbs_cluster, crumbs, alert_triage_local, cityHash64(alert_id));

-- 0012_alerts_first
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
CREATE TABLE IF NOT EXISTS crumbs.alerts_first_local ON CLUSTER crumbs_cluster
(
    alert_id   String,
    time       DateTime,
    time_ns    UInt64,
    date       Date,
    rule_id    String,
    severity   String,
    tags       Array(String),
    host_name  String,
    service    String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/crumbs/alerts_first', '{replica}')
PARTITION BY toYYYYMM(date)
ORDER BY (time, alert_id);

-- 0012_alerts_first
CREATE TABLE IF NOT EXISTS crumbs.alerts_first ON CLUSTER crumbs_cluster AS crumbs.alerts_first_local
ENGINE = Distributed(crumbs_cluster, crumbs, alerts_first_local, cityHash64(alert_id));

-- 0012_alerts_first
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.alerts_first_mv ON CLUSTER crumbs_cluster
TO crumbs.alerts_first_local
AS SELECT alert_id, time, time_ns, date, rule_id, severity, tags, host_name, service
FROM crumbs.alerts_local
WHERE version <= 1;

-- 0012_alerts_first
INSERT INTO crumbs.alerts_first (alert_id, time, time_ns, date, rule_id, severity, tags, host_name, service)
SELECT alert_id, argMin(time, version), argMin(time_ns, version), argMin(date, version), argMin(rule_id, version),
    argMin(severity, version), argMin(tags, version), argMin(host_name, version), argMin(service, version)
FROM crumbs.alerts
WHERE alert_id GLOBAL NOT IN (SELECT alert_id FROM crumbs.alerts_first)
GROUP BY alert_id;

-- 0012_alerts_first
CREATE TABLE IF NOT EXISTS crumbs.alerts_facets_hourly_local ON CLUSTER crumbs_cluster
(
    hour    DateTime,
    facet   String,
    value   String,
    alerts  UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/crumbs/alerts_facets_hourly', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, facet, value);

-- 0012_alerts_first
CREATE TABLE IF NOT EXISTS crumbs.alerts_facets_hourly ON CLUSTER crumbs_cluster AS crumbs.alerts_facets_hourly_local
ENGINE = Distributed(crumbs_cluster, crumbs, alerts_facets_hourly_local, rand());

-- 0012_alerts_first
INSERT INTO crumbs.alerts_facets_hourly (hour, facet, value, alerts)
SELECT toStartOfHour(time) AS hour, f.1 AS facet, f.2 AS value, count() AS alerts
FROM crumbs.alerts_first
ARRAY JOIN arrayConcat([('severity', concat(severity, '')), ('rule', concat(rule_id, '')), ('service', concat(service, '')),
    ('host', concat(host_name, ''))], arrayMap(t -> ('tag', t), tags)) AS f
WHERE (SELECT count() FROM crumbs.alerts_facets_hourly) = 0
GROUP BY hour, facet, value;

-- 0012_alerts_first
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.alerts_facets_hourly_mv ON CLUSTER crumbs_cluster
TO crumbs.alerts_facets_hourly_local
AS SELECT toStartOfHour(time) AS hour, f.1 AS facet, f.2 AS value, count() AS alerts
FROM crumbs.alerts_local
ARRAY JOIN arrayConcat([('severity', concat(severity, '')), ('rule', concat(rule_id, '')), ('service', concat(service, '')),
    ('host', concat(host_name, ''))], arrayMap(t -> ('tag', t), tags)) AS f
WHERE version <= 1
GROUP BY hour, facet, value;

-- 0013_process_lineage
-- process_events gains what names a process and its parent beyond their pids (their start
-- times: a pid alone may be reused), the effective ids after an exec (a setuid or setgid
-- executable's), the session, and what the standard input and output were at exec (a shell
-- reading from a socket is a reverse shell). Rows written before stay with zero or empty
-- values (euid and egid -1: unknown).
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN start_time Int64;

-- 0013_process_lineage
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN parent_start_time Int64;

-- 0013_process_lineage
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN euid Int64 DEFAULT -1;

-- 0013_process_lineage
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN egid Int64 DEFAULT -1;

-- 0013_process_lineage
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN session_id Int32;

-- 0013_process_lineage
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN stdin_type String;

-- 0013_process_lineage
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN stdout_type String;

-- 0013_process_lineage
DROP TABLE IF EXISTS crumbs.process_events ON CLUSTER crumbs_cluster;

-- 0013_process_lineage
CREATE TABLE IF NOT EXISTS crumbs.process_events ON CLUSTER crumbs_cluster AS crumbs.process_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, process_events_local, cityHash64(event_id));

-- 0014_container_metadata
-- Every event table that names a process gains what the container runtime and the Kubernetes
-- API say about its container (process.container in the events): container name, image and
-- image id, and the pod's name, namespace, labels (key=value) and workload. Rows written
-- before, and events of processes in no container, keep empty values.
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_name String;

-- 0014_container_metadata
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_image String;

-- 0014_container_metadata
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_image_id String;

-- 0014_container_metadata
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_name String;

-- 0014_container_metadata
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_namespace String;

-- 0014_container_metadata
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_labels Array(String);

-- 0014_container_metadata
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN workload_kind String;

-- 0014_container_metadata
ALTER TABLE crumbs.process_events_local ON CLUSTER crumbs_cluster ADD COLUMN workload_name String;

-- 0014_container_metadata
DROP TABLE IF EXISTS crumbs.process_events ON CLUSTER crumbs_cluster;

-- 0014_container_metadata
CREATE TABLE IF NOT EXISTS crumbs.process_events ON CLUSTER crumbs_cluster AS crumbs.process_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, process_events_local, cityHash64(event_id));

-- 0014_container_metadata
ALTER TABLE crumbs.network_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_name String;

-- 0014_container_metadata
ALTER TABLE crumbs.network_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_image String;

-- 0014_container_metadata
ALTER TABLE crumbs.network_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_image_id String;

-- 0014_container_metadata
ALTER TABLE crumbs.network_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_name String;

-- 0014_container_metadata
ALTER TABLE crumbs.network_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_namespace String;

-- 0014_container_metadata
ALTER TABLE crumbs.network_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_labels Array(String);

-- 0014_container_metadata
ALTER TABLE crumbs.network_events_local ON CLUSTER crumbs_cluster ADD COLUMN workload_kind String;

-- 0014_container_metadata
ALTER TABLE crumbs.network_events_local ON CLUSTER crumbs_cluster ADD COLUMN workload_name String;

-- 0014_container_metadata
DROP TABLE IF EXISTS crumbs.network_events ON CLUSTER crumbs_cluster;

-- 0014_container_metadata
CREATE TABLE IF NOT EXISTS crumbs.network_events ON CLUSTER crumbs_cluster AS crumbs.network_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, network_events_local, cityHash64(event_id));

-- 0014_container_metadata
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_name String;

-- 0014_container_metadata
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_image String;

-- 0014_container_metadata
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_image_id String;

-- 0014_container_metadata
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_name String;

-- 0014_container_metadata
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_namespace String;

-- 0014_container_metadata
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_labels Array(String);

-- 0014_container_metadata
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN workload_kind String;

-- 0014_container_metadata
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN workload_name String;

-- 0014_container_metadata
DROP TABLE IF EXISTS crumbs.file_events ON CLUSTER crumbs_cluster;

-- 0014_container_metadata
CREATE TABLE IF NOT EXISTS crumbs.file_events ON CLUSTER crumbs_cluster AS crumbs.file_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, file_events_local, cityHash64(event_id));

-- 0014_container_metadata
ALTER TABLE crumbs.identity_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_name String;

-- 0014_container_metadata
ALTER TABLE crumbs.identity_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_image String;

-- 0014_container_metadata
ALTER TABLE crumbs.identity_events_local ON CLUSTER crumbs_cluster ADD COLUMN container_image_id String;

-- 0014_container_metadata
ALTER TABLE crumbs.identity_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_name String;

-- 0014_container_metadata
ALTER TABLE crumbs.identity_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_namespace String;

-- 0014_container_metadata
ALTER TABLE crumbs.identity_events_local ON CLUSTER crumbs_cluster ADD COLUMN pod_labels Array(String);

-- 0014_container_metadata
ALTER TABLE crumbs.identity_events_local ON CLUSTER crumbs_cluster ADD COLUMN workload_kind String;

-- 0014_container_metadata
ALTER TABLE crumbs.identity_events_local ON CLUSTER crumbs_cluster ADD COLUMN workload_name String;

-- 0014_container_metadata
DROP TABLE IF EXISTS crumbs.identity_events ON CLUSTER crumbs_cluster;

-- 0014_container_metadata
CREATE TABLE IF NOT EXISTS crumbs.identity_events ON CLUSTER crumbs_cluster AS crumbs.identity_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, identity_events_local, cityHash64(event_id));

-- 0015_service_graph_summaries
-- service_graph_minute counted one connection per outbound connect (and udp_flow) event. With
-- collectors.network.summarize, a connect_summary event stands for network.packets short
-- connections to one destination: it now counts as that many (and its bytes, the totals of
-- those connections, are summed as before). Rows written before stay as they are.
DROP TABLE IF EXISTS crumbs.service_graph_minute_mv ON CLUSTER crumbs_cluster;

-- 0015_service_graph_summaries
CREATE MATERIALIZED VIEW IF NOT EXISTS crumbs.service_graph_minute_mv ON CLUSTER crumbs_cluster
TO crumbs.service_graph_minute_local
AS SELECT toStartOfMinute(time) AS minute, service AS src_service,
    if(dst_hostname != '', dst_hostname, dst_ip) AS dst, dst_port, protocol, host_name AS src_host,
    countIf(action IN ('connect', 'udp_flow')) + toUInt64(sumIf(packets, action = 'connect_summary')) AS connections,
    sumIf(bytes_sent, action != 'update') AS bytes_sent,
    sumIf(bytes_received, action != 'update') AS bytes_received
FROM crumbs.network_events_local
WHERE direction = 'outbound'
GROUP BY minute, src_service, dst, dst_port, protocol, src_host;

-- 0016_file_mtime
-- file_events gains the file's modification time after the event: a utimes event (touch -d,
-- -r) shows the time a file was set to, so that timestamps set back can be told from
-- ordinary ones. Rows written before stay at 0.
ALTER TABLE crumbs.file_events_local ON CLUSTER crumbs_cluster ADD COLUMN file_mtime Int64;

-- 0016_file_mtime
DROP TABLE IF EXISTS crumbs.file_events ON CLUSTER crumbs_cluster;

-- 0016_file_mtime
CREATE TABLE IF NOT EXISTS crumbs.file_events ON CLUSTER crumbs_cluster AS crumbs.file_events_local
ENGINE = Distributed(crumbs_cluster, crumbs, file_events_local, cityHash64(event_id));

