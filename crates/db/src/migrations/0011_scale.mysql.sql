-- Clinker schema, version 11 (MariaDB part): see 0011_scale.sqlite.sql.
-- MariaDB indexes virtual columns; it has no indexes on expressions.
ALTER TABLE volumes ADD COLUMN sort_name VARCHAR(255) AS (COALESCE(display_name, '')) VIRTUAL;
ALTER TABLE volumes ADD COLUMN sort_updated_at BIGINT AS (COALESCE(updated_at, 0)) VIRTUAL;
DROP INDEX volumes_project_created ON volumes;
DROP INDEX volumes_created ON volumes;
DROP INDEX snapshots_project_created ON snapshots;
