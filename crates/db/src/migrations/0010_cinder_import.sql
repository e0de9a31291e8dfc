-- Clinker schema, version 10: the record of an import from Cinder's
-- database (`clinker manage cinder import`). Neutral dialect, rendered per
-- engine by migrate.rs. One row per import; its presence makes a second
-- import a no-op unless `--replace` is given.
CREATE TABLE cinder_imports (
    id @ID,
    source VARCHAR(255) NOT NULL,
    revision VARCHAR(64) NOT NULL,
    imported_at @BIGINT NOT NULL,
    report @TEXT
) @ENGINE;
