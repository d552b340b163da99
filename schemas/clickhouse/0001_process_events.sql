-- process_events: one row per process exec, fork or exit from crumbs.enriched.process.
-- Idempotent on event_id: ReplacingMergeTree collapses rows with the same sorting key, and
-- the sink filters replays before inserting. `date` is the UTC day of `time`, set by the sink.
CREATE TABLE IF NOT EXISTS {{.Table "process_events"}}{{.OnCluster}}
(
    event_id          String,
    time              DateTime,
    time_ns           UInt64,
    date              Date,
    kind              {{.LowCardinality "String"}},
    host_id           String,
    host_name         {{.LowCardinality "String"}},
    action            {{.LowCardinality "String"}},
    pid               Int32,
    ppid              Int32,
    cmd_line          String,
    args              Array(String),
    args_truncated    UInt8,
    cwd               String,
    exe_path          String,
    exe_name          {{.LowCardinality "String"}},
    exe_sha256        String,
    uid               Int64,
    user_name         {{.LowCardinality "String"}},
    gid               Int64,
    group_name        {{.LowCardinality "String"}},
    login_uid         Int64,
    tty               String,
    cgroup_id         Int64,
    systemd_unit      {{.LowCardinality "String"}},
    container_id      String,
    exit_code         Int32,
    parent_pid        Int32,
    parent_exe_path   String,
    parent_exe_name   {{.LowCardinality "String"}},
    parent_exe_sha256 String,
    parent_cmd_line   String,
    service           {{.LowCardinality "String"}},
    environment       {{.LowCardinality "String"}},
    role              {{.LowCardinality "String"}}
)
ENGINE = {{.Engine "process_events" "ReplacingMergeTree"}}
PARTITION BY toYYYYMMDD(date)
ORDER BY (host_name, time, event_id);
{{.Distributed "process_events" "cityHash64(event_id)"}}
