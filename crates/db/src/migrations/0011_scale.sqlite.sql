-- Clinker schema, version 11 (SQLite part): the sort keys of nullable
-- columns as NOT NULL generated columns, so that a list ordered by them
-- walks an index (`COALESCE` in the query itself hides every index), and
-- the list indexes that replace the narrower ones of version 1.
ALTER TABLE volumes ADD COLUMN sort_name VARCHAR(255) GENERATED ALWAYS AS (COALESCE(display_name, '')) VIRTUAL;
ALTER TABLE volumes ADD COLUMN sort_updated_at INTEGER GENERATED ALWAYS AS (COALESCE(updated_at, 0)) VIRTUAL;
DROP INDEX volumes_project_created;
DROP INDEX volumes_created;
DROP INDEX snapshots_project_created;
