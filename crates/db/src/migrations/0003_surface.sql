-- Clinker schema, version 3: QoS specs, volume transfers, volume type
-- encryption and per-project default types. Neutral dialect, rendered per
-- engine by migrate.rs.

-- QoS specs (Cinder keeps them as key/value rows under a root row; here
-- the root is its own table and the specs a child table).
CREATE TABLE qos_specs (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    consumer VARCHAR(16) NOT NULL,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE UNIQUE INDEX qos_specs_name ON qos_specs (name);

CREATE TABLE qos_specs_items (
    qos_specs_id VARCHAR(36) NOT NULL,
    spec_key VARCHAR(255) NOT NULL,
    spec_value VARCHAR(255),
    PRIMARY KEY (qos_specs_id, spec_key)
) @ENGINE;

-- Volume types point at their QoS specs through volume_types.qos_specs_id
-- (created in version 1); this index serves the associations query.
CREATE INDEX volume_types_qos_specs ON volume_types (qos_specs_id);

-- Open transfer offers. The auth key is never stored: only a salted
-- HMAC of it. A row exists while its volume is awaiting-transfer.
CREATE TABLE transfers (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    volume_id VARCHAR(36) NOT NULL,
    display_name VARCHAR(255),
    salt VARCHAR(255) NOT NULL,
    crypt_hash VARCHAR(255) NOT NULL,
    no_snapshots @BIGINT NOT NULL DEFAULT 0,
    source_project_id VARCHAR(255),
    destination_project_id VARCHAR(255),
    accepted @BIGINT NOT NULL DEFAULT 0,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE UNIQUE INDEX transfers_volume ON transfers (volume_id);

-- Encryption specs of a volume type (at most one row per type).
CREATE TABLE encryption (
    volume_type_id VARCHAR(36) NOT NULL PRIMARY KEY,
    encryption_id VARCHAR(36) NOT NULL,
    provider VARCHAR(255) NOT NULL,
    cipher VARCHAR(255),
    key_size @BIGINT,
    control_location VARCHAR(16) NOT NULL,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;

-- Per-project default volume types (API 3.62).
CREATE TABLE default_volume_types (
    project_id VARCHAR(255) NOT NULL PRIMARY KEY,
    volume_type_id VARCHAR(36) NOT NULL,
    created_at @BIGINT NOT NULL,
    updated_at @BIGINT
) @ENGINE;
CREATE INDEX default_volume_types_type ON default_volume_types (volume_type_id);
