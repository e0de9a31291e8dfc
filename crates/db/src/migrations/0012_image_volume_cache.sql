-- Clinker schema, version 12: the image-volume cache (Cinder's
-- `image_volume_cache_entries`, same columns). One row per cached
-- image-volume: the volume `image-<image_id>` owned by the internal tenant
-- on `host` (host@backend#pool), the image's `updated_at` when it was
-- filled (an entry older than the image is stale) and its last use (the
-- LRU order of eviction). Times are microseconds since the epoch, as
-- everywhere in Clinker's schema.
CREATE TABLE image_volume_cache_entries (
    id @ID,
    host VARCHAR(255) NOT NULL,
    cluster_name VARCHAR(255),
    image_id VARCHAR(36) NOT NULL,
    image_updated_at @BIGINT,
    volume_id VARCHAR(36) NOT NULL,
    size @BIGINT NOT NULL,
    last_used @BIGINT NOT NULL
) @ENGINE;
CREATE INDEX ix_image_volume_cache_entries_host ON image_volume_cache_entries (host);
CREATE INDEX ix_image_volume_cache_entries_image_id ON image_volume_cache_entries (image_id);
CREATE UNIQUE INDEX ix_image_volume_cache_entries_volume_id ON image_volume_cache_entries (volume_id);
