-- Context records from the compacted crumbs.context.<kind> topics, as the organisation
-- planned them. One row per version of a record: ReplacingMergeTree(updated_at) keeps the
-- latest per id, so read them with FINAL. A tombstone is written as a row with deleted = 1
-- (and updated_at from the tombstone's Kafka timestamp); readers filter `deleted = 0`.
-- Context is small and never expires, so the tables are not partitioned.

-- context_changes: planned changes, launches, campaigns and maintenance windows. Empty hosts
-- means every host of its services. expected_* are the announced effects, index-aligned.
CREATE TABLE IF NOT EXISTS {{.Table "context_changes"}}{{.OnCluster}}
(
    id                      String,
    type                    {{.LowCardinality "String"}},
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
ENGINE = {{.Engine "context_changes" "ReplacingMergeTree" "updated_at"}}
ORDER BY id;
{{.Distributed "context_changes" "cityHash64(id)"}}

-- context_deploys: deployments of a service version with their artifact manifests
-- (artifact_* index-aligned).
CREATE TABLE IF NOT EXISTS {{.Table "context_deploys"}}{{.OnCluster}}
(
    id               String,
    service          {{.LowCardinality "String"}},
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
ENGINE = {{.Engine "context_deploys" "ReplacingMergeTree" "updated_at"}}
ORDER BY id;
{{.Distributed "context_deploys" "cityHash64(id)"}}

-- context_inventory: which service, environment and role a host serves.
CREATE TABLE IF NOT EXISTS {{.Table "context_inventory"}}{{.OnCluster}}
(
    id           String,
    host         String,
    service      {{.LowCardinality "String"}},
    environment  {{.LowCardinality "String"}},
    role         {{.LowCardinality "String"}},
    updated_at   UInt64,
    deleted      UInt8
)
ENGINE = {{.Engine "context_inventory" "ReplacingMergeTree" "updated_at"}}
ORDER BY id;
{{.Distributed "context_inventory" "cityHash64(id)"}}

-- context_accounts: an account's kind and login policy.
CREATE TABLE IF NOT EXISTS {{.Table "context_accounts"}}{{.OnCluster}}
(
    id               String,
    name             String,
    type             {{.LowCardinality "String"}},
    interactive      UInt8,
    allowed_sources  Array(String),
    allowed_users    Array(String),
    updated_at       UInt64,
    deleted          UInt8
)
ENGINE = {{.Engine "context_accounts" "ReplacingMergeTree" "updated_at"}}
ORDER BY id;
{{.Distributed "context_accounts" "cityHash64(id)"}}
