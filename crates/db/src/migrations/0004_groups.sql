-- Generic volume groups: group types with their specs and access lists,
-- groups with the volume types they may hold, and group snapshots.
-- Neutral dialect as in 0001 (see migrate.rs). The groups table is called
-- volume_groups because GROUPS is a reserved word on MySQL 8.

CREATE TABLE group_types (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    description VARCHAR(255),
    is_public @BIGINT NOT NULL DEFAULT 1,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE UNIQUE INDEX group_types_name ON group_types (name);

CREATE TABLE group_type_specs (
    group_type_id VARCHAR(36) NOT NULL,
    spec_key VARCHAR(255) NOT NULL,
    spec_value VARCHAR(255) NOT NULL,
    PRIMARY KEY (group_type_id, spec_key)
) @ENGINE;

CREATE TABLE group_type_projects (
    group_type_id VARCHAR(36) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    PRIMARY KEY (group_type_id, project_id)
) @ENGINE;

CREATE TABLE volume_groups (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    host VARCHAR(255),
    cluster_name VARCHAR(255),
    availability_zone VARCHAR(255) NOT NULL,
    status VARCHAR(32) NOT NULL,
    display_name VARCHAR(255),
    display_description VARCHAR(255),
    group_type_id VARCHAR(36) NOT NULL,
    group_snapshot_id VARCHAR(36),
    source_group_id VARCHAR(36),
    replication_status VARCHAR(255),
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE INDEX volume_groups_project_created ON volume_groups (project_id, created_at);
CREATE INDEX volume_groups_type ON volume_groups (group_type_id);

-- The volume types a group may hold, in the order they were given
-- (Cinder's group_volume_type_mapping).
CREATE TABLE group_volume_types (
    group_id VARCHAR(36) NOT NULL,
    volume_type_id VARCHAR(36) NOT NULL,
    type_position @BIGINT NOT NULL,
    PRIMARY KEY (group_id, volume_type_id)
) @ENGINE;
CREATE INDEX group_volume_types_type ON group_volume_types (volume_type_id);

CREATE TABLE group_snapshots (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    group_id VARCHAR(36) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    status VARCHAR(32) NOT NULL,
    display_name VARCHAR(255),
    display_description VARCHAR(255),
    group_type_id VARCHAR(36) NOT NULL,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE INDEX group_snapshots_group ON group_snapshots (group_id);
CREATE INDEX group_snapshots_project_created ON group_snapshots (project_id, created_at);

CREATE INDEX volumes_group ON volumes (group_id);
CREATE INDEX snapshots_group_snapshot ON snapshots (group_snapshot_id);

-- Cinder's db sync creates this type for consistency groups migrated to
-- generic groups; its id is fixed here (types::group::DEFAULT_CGSNAPSHOT_TYPE_ID).
INSERT INTO group_types (id, name, description, is_public, created_at, updated_at)
VALUES ('a9d4b3cb-87a5-4b35-9f3a-5e0c0f0ad3c1', 'default_cgsnapshot_type',
        'Default group type for migrating cgsnapshot', 1, 0, NULL);
INSERT INTO group_type_specs (group_type_id, spec_key, spec_value)
VALUES ('a9d4b3cb-87a5-4b35-9f3a-5e0c0f0ad3c1', 'consistent_group_snapshot_enabled', '<is> True');
