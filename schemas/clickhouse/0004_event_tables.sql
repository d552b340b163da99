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
CREATE TABLE IF NOT EXISTS {{.Table "network_events"}}{{.OnCluster}}
(
    event_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    host_id         String,
    host_name       {{.LowCardinality "String"}},
    action          {{.LowCardinality "String"}},
    pid             Int32,
    exe_path        String,
    exe_name        {{.LowCardinality "String"}},
    exe_sha256      String,
    cmd_line        String,
    uid             Int64,
    user_name       {{.LowCardinality "String"}},
    cgroup_id       Int64,
    systemd_unit    {{.LowCardinality "String"}},
    container_id    String,
    direction       {{.LowCardinality "String"}},
    protocol        {{.LowCardinality "String"}},
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
    service         {{.LowCardinality "String"}},
    environment     {{.LowCardinality "String"}},
    role            {{.LowCardinality "String"}},
    change_ids      Array(String),
    change_types    Array(String),
    deploy_id       String,
    deploy_version  String,
    verdict         {{.LowCardinality "String"}},
    verdict_reason  String,
    account_name    String,
    account_type    {{.LowCardinality "String"}}
)
ENGINE = {{.Engine "network_events" "ReplacingMergeTree"}}
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);
{{.Distributed "network_events" "cityHash64(event_id)"}}

-- file_events: changes under watched paths (create, write, rename, delete, chmod, chown) and
-- scan findings (scan_added, scan_removed, scan_changed) with the file's hash, owner and mode.
CREATE TABLE IF NOT EXISTS {{.Table "file_events"}}{{.OnCluster}}
(
    event_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    host_id         String,
    host_name       {{.LowCardinality "String"}},
    action          {{.LowCardinality "String"}},
    pid             Int32,
    exe_path        String,
    exe_name        {{.LowCardinality "String"}},
    exe_sha256      String,
    cmd_line        String,
    uid             Int64,
    user_name       {{.LowCardinality "String"}},
    cgroup_id       Int64,
    systemd_unit    {{.LowCardinality "String"}},
    container_id    String,
    file_path       String,
    file_name       String,
    new_path        String,
    file_sha256     String,
    file_size       Int64,
    file_owner      {{.LowCardinality "String"}},
    file_group      {{.LowCardinality "String"}},
    file_uid        Int64,
    file_gid        Int64,
    file_mode       {{.LowCardinality "String"}},
    changed         Array(String),
    service         {{.LowCardinality "String"}},
    environment     {{.LowCardinality "String"}},
    role            {{.LowCardinality "String"}},
    change_ids      Array(String),
    change_types    Array(String),
    deploy_id       String,
    deploy_version  String,
    verdict         {{.LowCardinality "String"}},
    verdict_reason  String,
    account_name    String,
    account_type    {{.LowCardinality "String"}}
)
ENGINE = {{.Engine "file_events" "ReplacingMergeTree"}}
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);
{{.Distributed "file_events" "cityHash64(event_id)"}}

-- identity_events: authentications, sessions and credential changes. identity_service is the
-- program that authenticated (sshd, sudo, su, login); service is the enrichment's service.
CREATE TABLE IF NOT EXISTS {{.Table "identity_events"}}{{.OnCluster}}
(
    event_id         String,
    time             DateTime,
    time_ns          UInt64,
    date             Date,
    host_id          String,
    host_name        {{.LowCardinality "String"}},
    action           {{.LowCardinality "String"}},
    pid              Int32,
    exe_path         String,
    exe_name         {{.LowCardinality "String"}},
    exe_sha256       String,
    cmd_line         String,
    uid              Int64,
    user_name        {{.LowCardinality "String"}},
    cgroup_id        Int64,
    systemd_unit     {{.LowCardinality "String"}},
    container_id     String,
    identity_service {{.LowCardinality "String"}},
    user             String,
    target_user      String,
    remote_host      String,
    result           {{.LowCardinality "String"}},
    code             Int32,
    old_uid          Int64,
    new_uid          Int64,
    old_gid          Int64,
    new_gid          Int64,
    service          {{.LowCardinality "String"}},
    environment      {{.LowCardinality "String"}},
    role             {{.LowCardinality "String"}},
    change_ids       Array(String),
    change_types     Array(String),
    deploy_id        String,
    deploy_version   String,
    verdict          {{.LowCardinality "String"}},
    verdict_reason   String,
    account_name     String,
    account_type     {{.LowCardinality "String"}}
)
ENGINE = {{.Engine "identity_events" "ReplacingMergeTree"}}
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);
{{.Distributed "identity_events" "cityHash64(event_id)"}}

-- system_events: resource use of a service (systemd unit, cgroup, container) or of the whole
-- host over one interval.
CREATE TABLE IF NOT EXISTS {{.Table "system_events"}}{{.OnCluster}}
(
    event_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    host_id         String,
    host_name       {{.LowCardinality "String"}},
    scope           {{.LowCardinality "String"}},
    unit            {{.LowCardinality "String"}},
    cgroup_id       Int64,
    interval_ns     Int64,
    cpu_seconds     Float64,
    memory_bytes    Int64,
    process_count   Int64,
    connections     Int64,
    bytes_sent      Int64,
    bytes_received  Int64,
    service         {{.LowCardinality "String"}},
    environment     {{.LowCardinality "String"}},
    role            {{.LowCardinality "String"}},
    change_ids      Array(String),
    change_types    Array(String),
    deploy_id       String,
    deploy_version  String,
    verdict         {{.LowCardinality "String"}},
    verdict_reason  String,
    account_name    String,
    account_type    {{.LowCardinality "String"}}
)
ENGINE = {{.Engine "system_events" "ReplacingMergeTree"}}
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);
{{.Distributed "system_events" "cityHash64(event_id)"}}
