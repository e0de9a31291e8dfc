-- Clinker schema, version 13: the temporary resources a backup makes
-- (Cinder's `backups.temp_volume_id` and `temp_snapshot_id`). The ids are
-- recorded before (volume) or with (snapshot) the resource's own row, so
-- the backup service's start-up finds and removes what a crash left.
ALTER TABLE backups ADD COLUMN temp_volume_id VARCHAR(36);
ALTER TABLE backups ADD COLUMN temp_snapshot_id VARCHAR(36);
