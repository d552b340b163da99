-- 0001_process_events
-- process_events: one row per process exec, fork or exit from crumbs.enriched.process.
-- Idempotent on event_id: ReplacingMergeTree collapses rows with the same sorting key, and
-- the sink filters replays before inserting. `date` is the UTC day of `time`, set by the sink.
CREATE TABLE IF NOT EXISTS crumbs.process_events
(
    event_id          String,
    time              DateTime,
    time_ns           UInt64,
    date              Date,
    kind              LowCardinality(String),
    host_id           String,
    host_name         LowCardinality(String),
    action            LowCardinality(String),
    pid               Int32,
    ppid              Int32,
    cmd_line          String,
    args              Array(String),
    args_truncated    UInt8,
    cwd               String,
    exe_path          String,
    exe_name          LowCardinality(String),
    exe_sha256        String,
    uid               Int64,
    user_name         LowCardinality(String),
    gid               Int64,
    group_name        LowCardinality(String),
    login_uid         Int64,
    tty               String,
    cgroup_id         Int64,
    systemd_unit      LowCardinality(String),
    container_id      String,
    exit_code         Int32,
    parent_pid        Int32,
    parent_exe_path   String,
    parent_exe_name   LowCardinality(String),
    parent_exe_sha256 String,
    parent_cmd_line   String,
    service           LowCardinality(String),
    environment       LowCardinality(String),
    role              LowCardinality(String)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);

-- 0002_alerts
-- alerts: one row per alert from crumbs.alerts. Idempotent on alert_id (deterministic per
-- rule, group key and window). Alerts are few, so partitions are monthly. `date` is the UTC
-- day of `time`, set by the sink.
CREATE TABLE IF NOT EXISTS crumbs.alerts
(
    alert_id        String,
    time            DateTime,
    time_ns         UInt64,
    date            Date,
    rule_id         LowCardinality(String),
    title           String,
    severity        LowCardinality(String),
    tags            Array(String),
    group_key       String,
    host_id         String,
    host_name       LowCardinality(String),
    service         LowCardinality(String),
    window_start    DateTime,
    window_start_ns UInt64,
    window_end      DateTime,
    window_end_ns   UInt64,
    count           Int64,
    evidence        Array(String),
    summary         String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(date)
ORDER BY (rule_id, time, alert_id);

