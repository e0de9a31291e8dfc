-- Attachments (API 3.27+ and the legacy attach actions). The table itself is
-- in 0001; Nova lists attachments by instance (`GET /attachments?instance_id=`)
-- and the legacy `os-attach` finds an instance's attachment of a volume, so
-- the instance gets an index. The connector lives in
-- `volume_attachment.connector` (Cinder's `attachment_specs` table is
-- deprecated there and not needed here).
CREATE INDEX volume_attachment_instance ON volume_attachment (instance_uuid);
