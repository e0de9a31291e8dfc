-- Clinker schema, version 11 (all engines): one index per supported sort
-- key of the volume list, each with the `created_at`, `id` tiebreak that
-- completes every order (query::complete_sort), behind the project, so a
-- page is a walk of PAGE index entries from the marker wherever it is.
-- The names are listed once more in volumes::VOLUME_LIST_INDEXES (MariaDB's
-- optimizer is told to use them).
CREATE INDEX volumes_list_created ON volumes (project_id, created_at, id);
CREATE INDEX volumes_list_name ON volumes (project_id, sort_name, created_at, id);
CREATE INDEX volumes_list_status ON volumes (project_id, status, created_at, id);
CREATE INDEX volumes_list_size ON volumes (project_id, size, created_at, id);
CREATE INDEX volumes_list_updated ON volumes (project_id, sort_updated_at, created_at, id);
CREATE INDEX volumes_list_id ON volumes (project_id, id, created_at);
-- Lists of every project (all_tenants) in the default order.
CREATE INDEX volumes_all_created ON volumes (created_at, id);
-- Counting the migration targets a project's users do not see.
CREATE INDEX volumes_migration ON volumes (project_id, migration_status);
CREATE INDEX snapshots_list_created ON snapshots (project_id, created_at, id);
CREATE INDEX snapshots_all_created ON snapshots (created_at, id);

-- Per-project volume count and size, changed in the same transactions as
-- the rows (as quota_usages is): `volumes/summary` and an unfiltered
-- `with_count` read one row instead of counting the project.
CREATE TABLE volume_counts (
    project_id VARCHAR(255) NOT NULL PRIMARY KEY,
    volumes @BIGINT NOT NULL,
    gigabytes @BIGINT NOT NULL
) @ENGINE;
INSERT INTO volume_counts (project_id, volumes, gigabytes)
    SELECT project_id, COUNT(*), SUM(size) FROM volumes GROUP BY project_id;

-- A metadata filter is driven by the matching metadata rows.
CREATE INDEX volume_metadata_value ON volume_metadata (kind, meta_key, meta_value, volume_id);
