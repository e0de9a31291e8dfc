-- Clinker schema, version 11 (PostgreSQL part): see 0011_scale.sqlite.sql.
ALTER TABLE volumes ADD COLUMN sort_name VARCHAR(255) GENERATED ALWAYS AS (COALESCE(display_name, '')) STORED;
ALTER TABLE volumes ADD COLUMN sort_updated_at BIGINT GENERATED ALWAYS AS (COALESCE(updated_at, 0)) STORED;
DROP INDEX volumes_project_created;
DROP INDEX volumes_created;
DROP INDEX snapshots_project_created;
