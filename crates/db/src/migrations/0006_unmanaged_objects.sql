-- Clinker schema, version 6: backend objects left behind by an unmanage.
-- Neutral dialect, rendered per engine by migrate.rs.

-- Cinder never deletes the data of an unmanaged volume or snapshot. The
-- start-up orphan sweep removes backend objects no row owns, so an
-- unmanage records the name its data stays under here, in the transaction
-- that removes the row; the sweep skips recorded names, and managing the
-- object again forgets the record with the transaction that finishes it.
CREATE TABLE unmanaged_objects (
    name VARCHAR(255) NOT NULL,
    service_host VARCHAR(255) NOT NULL,
    resource_type VARCHAR(16) NOT NULL,
    resource_id VARCHAR(36) NOT NULL,
    created_at @BIGINT NOT NULL,
    PRIMARY KEY (service_host, name)
) @ENGINE;
CREATE INDEX unmanaged_objects_name ON unmanaged_objects (name);
