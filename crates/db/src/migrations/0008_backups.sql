-- Clinker schema, version 8: volume backups (Cinder's `backups` and
-- `backup_metadata`). Neutral dialect, rendered per engine by migrate.rs.

-- One row per backup. `status` is the lock (compare-and-swap as for
-- volumes); `container` and `service_metadata` are recorded before the
-- first object is written, so a restart after a crash can find and delete
-- the objects of a backup left in `creating`. The number of dependent
-- (incremental) backups is counted from `parent_id`, never stored.
CREATE TABLE backups (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    volume_id VARCHAR(36) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    host VARCHAR(255),
    availability_zone VARCHAR(255),
    display_name VARCHAR(255),
    display_description VARCHAR(255),
    container VARCHAR(255),
    status VARCHAR(32) NOT NULL,
    fail_reason VARCHAR(255),
    service_metadata VARCHAR(255),
    service VARCHAR(255),
    size @BIGINT NOT NULL,
    object_count @BIGINT NOT NULL DEFAULT 0,
    parent_id VARCHAR(36),
    snapshot_id VARCHAR(36),
    data_timestamp @BIGINT NOT NULL,
    restore_volume_id VARCHAR(36),
    encryption_key_id VARCHAR(36),
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE INDEX backups_volume ON backups (volume_id);
CREATE INDEX backups_parent ON backups (parent_id);
CREATE INDEX backups_project_created ON backups (project_id, created_at);
CREATE INDEX backups_host ON backups (host);

CREATE TABLE backup_metadata (
    backup_id VARCHAR(36) NOT NULL,
    meta_key VARCHAR(255) NOT NULL,
    meta_value VARCHAR(255) NOT NULL,
    PRIMARY KEY (backup_id, meta_key)
) @ENGINE;
