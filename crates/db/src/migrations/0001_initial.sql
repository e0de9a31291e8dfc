-- Clinker schema, version 1. Written once in a neutral form; the migration
-- runner rewrites the type words for each engine (see migrate.rs):
--   @ID       auto-increment primary key
--   @BIGINT   64-bit integer
--   @TEXT     unbounded text
--   @ENGINE   table options (MariaDB: InnoDB, utf8mb4)
-- All times are microseconds since the epoch (BIGINT); all flags 0/1.

CREATE TABLE services (
    id @ID,
    uuid VARCHAR(36) NOT NULL,
    host VARCHAR(255) NOT NULL,
    binary_name VARCHAR(64) NOT NULL,
    topic VARCHAR(255) NOT NULL,
    report_count @BIGINT NOT NULL DEFAULT 0,
    disabled @BIGINT NOT NULL DEFAULT 0,
    disabled_reason VARCHAR(255),
    availability_zone VARCHAR(255) NOT NULL,
    rpc_current_version VARCHAR(36),
    backend_state VARCHAR(16),
    backend_state_reason @TEXT,
    frozen @BIGINT NOT NULL DEFAULT 0,
    replication_status VARCHAR(36),
    active_backend_id VARCHAR(255),
    cluster_name VARCHAR(255),
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT,
    modified_at @BIGINT
) @ENGINE;
CREATE UNIQUE INDEX services_host_binary ON services (host, binary_name);

CREATE TABLE volume_types (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    description VARCHAR(255),
    is_public @BIGINT NOT NULL DEFAULT 1,
    qos_specs_id VARCHAR(36),
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE UNIQUE INDEX volume_types_name ON volume_types (name);

CREATE TABLE volume_type_extra_specs (
    volume_type_id VARCHAR(36) NOT NULL,
    spec_key VARCHAR(255) NOT NULL,
    spec_value VARCHAR(255) NOT NULL,
    PRIMARY KEY (volume_type_id, spec_key)
) @ENGINE;

CREATE TABLE volume_type_projects (
    volume_type_id VARCHAR(36) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    PRIMARY KEY (volume_type_id, project_id)
) @ENGINE;

CREATE TABLE volumes (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    host VARCHAR(255),
    size @BIGINT NOT NULL,
    availability_zone VARCHAR(255) NOT NULL,
    status VARCHAR(32) NOT NULL,
    attach_status VARCHAR(32) NOT NULL,
    migration_status VARCHAR(255),
    display_name VARCHAR(255),
    display_description VARCHAR(255),
    provider_location VARCHAR(255),
    provider_auth VARCHAR(255),
    provider_id VARCHAR(255),
    volume_type_id VARCHAR(36) NOT NULL,
    snapshot_id VARCHAR(36),
    source_volid VARCHAR(36),
    bootable @BIGINT NOT NULL DEFAULT 0,
    multiattach @BIGINT NOT NULL DEFAULT 0,
    encryption_key_id VARCHAR(36),
    consistencygroup_id VARCHAR(36),
    group_id VARCHAR(36),
    replication_status VARCHAR(255),
    previous_status VARCHAR(255),
    service_uuid VARCHAR(36),
    shared_targets @BIGINT,
    use_quota @BIGINT NOT NULL DEFAULT 1,
    cluster_name VARCHAR(255),
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT,
    scheduled_at @BIGINT,
    launched_at @BIGINT
) @ENGINE;
CREATE INDEX volumes_project_created ON volumes (project_id, created_at);
CREATE INDEX volumes_created ON volumes (created_at);
CREATE INDEX volumes_host ON volumes (host);
CREATE INDEX volumes_snapshot ON volumes (snapshot_id);
CREATE INDEX volumes_source ON volumes (source_volid);

-- User metadata (kind 'user'), admin metadata ('admin') and glance image
-- metadata ('glance') of volumes, in one table so a list loads them with one
-- query.
CREATE TABLE volume_metadata (
    volume_id VARCHAR(36) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    meta_key VARCHAR(255) NOT NULL,
    meta_value VARCHAR(255) NOT NULL,
    PRIMARY KEY (volume_id, kind, meta_key)
) @ENGINE;

CREATE TABLE volume_attachment (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    volume_id VARCHAR(36) NOT NULL,
    instance_uuid VARCHAR(36),
    attached_host VARCHAR(255),
    mountpoint VARCHAR(255),
    attach_time @BIGINT,
    detach_time @BIGINT,
    attach_status VARCHAR(32) NOT NULL,
    attach_mode VARCHAR(8),
    connection_info @TEXT,
    connector @TEXT,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE INDEX volume_attachment_volume ON volume_attachment (volume_id);

CREATE TABLE snapshots (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    volume_id VARCHAR(36) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    status VARCHAR(32) NOT NULL,
    progress VARCHAR(255),
    volume_size @BIGINT NOT NULL,
    display_name VARCHAR(255),
    display_description VARCHAR(255),
    provider_location VARCHAR(255),
    volume_type_id VARCHAR(36) NOT NULL,
    group_snapshot_id VARCHAR(36),
    use_quota @BIGINT NOT NULL DEFAULT 1,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE INDEX snapshots_volume ON snapshots (volume_id);
CREATE INDEX snapshots_project_created ON snapshots (project_id, created_at);

CREATE TABLE snapshot_metadata (
    snapshot_id VARCHAR(36) NOT NULL,
    meta_key VARCHAR(255) NOT NULL,
    meta_value VARCHAR(255) NOT NULL,
    PRIMARY KEY (snapshot_id, meta_key)
) @ENGINE;

-- Per-project limits; absent rows fall back to the 'default' quota class,
-- then to the configuration.
CREATE TABLE quotas (
    project_id VARCHAR(255) NOT NULL,
    resource VARCHAR(255) NOT NULL,
    hard_limit @BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
) @ENGINE;

CREATE TABLE quota_classes (
    class_name VARCHAR(255) NOT NULL,
    resource VARCHAR(255) NOT NULL,
    hard_limit @BIGINT NOT NULL,
    PRIMARY KEY (class_name, resource)
) @ENGINE;

-- Usage counters, changed in the same transaction as the resource rows they
-- count, so they always equal a recount.
CREATE TABLE quota_usages (
    project_id VARCHAR(255) NOT NULL,
    resource VARCHAR(255) NOT NULL,
    in_use @BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, resource)
) @ENGINE;

-- The operation journal (Cinder's `workers`): one row per unfinished
-- operation, written in the same transaction as the status change that
-- starts it.
CREATE TABLE workers (
    id @ID,
    resource_type VARCHAR(40) NOT NULL,
    resource_id VARCHAR(36) NOT NULL,
    status VARCHAR(32) NOT NULL,
    service_host VARCHAR(255),
    detail_json @TEXT,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE UNIQUE INDEX workers_resource ON workers (resource_type, resource_id);
CREATE INDEX workers_service_host ON workers (service_host);

-- Capacity claimed on each pool (`host@backend#pool`): the sum of the sizes
-- of the volumes placed there, kept in the same transactions that place,
-- extend and delete them.
CREATE TABLE pool_allocations (
    pool VARCHAR(255) NOT NULL PRIMARY KEY,
    allocated_gb @BIGINT NOT NULL DEFAULT 0
) @ENGINE;

CREATE TABLE messages (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    request_id VARCHAR(255),
    resource_type VARCHAR(255) NOT NULL,
    resource_uuid VARCHAR(36),
    event_id VARCHAR(255) NOT NULL,
    message_level VARCHAR(255) NOT NULL,
    user_message VARCHAR(255) NOT NULL,
    created_at @BIGINT NOT NULL,
    expires_at @BIGINT NOT NULL
) @ENGINE;
CREATE INDEX messages_project ON messages (project_id, created_at);
CREATE INDEX messages_expires ON messages (expires_at);
