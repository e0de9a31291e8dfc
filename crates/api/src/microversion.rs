//! Microversions of the Block Storage API v3 (Cinder's
//! `api/openstack/api_version_request.py` and `api/microversions.py`).
//!
//! A request names its version in `OpenStack-API-Version: volume 3.x`
//! (also inside a comma-separated multi-service header); `latest` means
//! [`MAX`]; no header means [`MIN`]. A malformed version is a 400, one
//! outside [`MIN`]–[`MAX`] a 406. Handlers gate fields and methods with
//! [`ApiVersion::matches`] against the named constants below, which keep
//! Cinder's names so a Cinder developer can grep for them.

use std::fmt;

use crate::fault::ApiError;

/// A `major.minor` API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Always 3 for this API.
    pub major: u16,
    /// 0–71.
    pub minor: u16,
}

impl ApiVersion {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    /// Whether this version is `min` or later (Cinder's
    /// `req_version.matches(min, None)`).
    pub fn matches(self, min: ApiVersion) -> bool {
        self >= min
    }

    /// Whether this version is strictly below `version` (Cinder's
    /// `matches(None, get_prior_version(version))`).
    pub fn is_before(self, version: ApiVersion) -> bool {
        self < version
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The lowest version served.
pub const MIN: ApiVersion = ApiVersion::new(3, 0);
/// The highest version served (`_MAX_API_VERSION`).
pub const MAX: ApiVersion = ApiVersion::new(3, 71);
/// The date of [`MAX`] in the versions document (`UPDATED`).
pub const UPDATED: &str = "2023-08-31T00:00:00Z";
/// The request and response header.
pub const HEADER: &str = "OpenStack-API-Version";
/// The service name in [`HEADER`].
pub const SERVICE: &str = "volume";

/// `/messages` (3.3).
/// `visibility` and `protected` in `os-volume_upload_image`.
pub const UPLOAD_IMAGE_PARAMS: ApiVersion = ApiVersion::new(3, 1);
/// `os-reimage`.
pub const SUPPORT_REIMAGE_VOLUME: ApiVersion = ApiVersion::new(3, 68);
/// Cinder's `MESSAGES`.
pub const MESSAGES: ApiVersion = ApiVersion::new(3, 3);
/// Pagination of `/messages` (3.5).
pub const MESSAGES_PAGINATION: ApiVersion = ApiVersion::new(3, 5);
/// `cluster` in `os-services` (3.7).
pub const CLUSTER_SUPPORT: ApiVersion = ApiVersion::new(3, 7);
/// `glance_metadata` volume list filter (3.4).
pub const VOLUME_LIST_GLANCE_METADATA: ApiVersion = ApiVersion::new(3, 4);
/// Strict `bootable` list filter (3.2).
pub const VOLUME_LIST_BOOTABLE: ApiVersion = ApiVersion::new(3, 2);
/// `group_id` volume list filter (3.10).
pub const VOLUME_LIST_GROUP: ApiVersion = ApiVersion::new(3, 10);
/// Group types and group specs (3.11).
pub const GROUP_TYPE: ApiVersion = ApiVersion::new(3, 11);
/// `GET /volumes/summary` (3.12).
pub const VOLUME_SUMMARY: ApiVersion = ApiVersion::new(3, 12);
/// `group_id` in the volume detail and create body (3.13).
pub const GROUP_VOLUME: ApiVersion = ApiVersion::new(3, 13);
/// `group_snapshot_id` in the snapshot detail (3.14).
pub const GROUP_SNAPSHOTS: ApiVersion = ApiVersion::new(3, 14);
/// `os-migrate_volume` and manage requests take `cluster` (3.16).
pub const VOLUME_MIGRATE_CLUSTER: ApiVersion = ApiVersion::new(3, 16);
/// `reset_status` of group snapshots (3.19).
pub const GROUP_SNAPSHOT_RESET_STATUS: ApiVersion = ApiVersion::new(3, 19);
/// `reset_status` of groups (3.20).
pub const GROUP_VOLUME_RESET_STATUS: ApiVersion = ApiVersion::new(3, 20);
/// `provider_id` in the volume detail, admin only (3.21).
pub const VOLUME_DETAIL_PROVIDER_ID: ApiVersion = ApiVersion::new(3, 21);
/// `metadata` snapshot list filter (3.22).
pub const SNAPSHOT_LIST_METADATA_FILTER: ApiVersion = ApiVersion::new(3, 22);
/// `?force=true` on volume delete (3.23).
pub const VOLUME_DELETE_FORCE: ApiVersion = ApiVersion::new(3, 23);
/// `volumes` in the group detail with `?list_volume=true` (3.25).
pub const GROUP_VOLUME_LIST: ApiVersion = ApiVersion::new(3, 25);
/// Replication on clusters; `cluster` in freeze/thaw (3.26).
pub const REPLICATION_CLUSTER: ApiVersion = ApiVersion::new(3, 26);
/// The attachments API (3.27).
pub const NEW_ATTACH: ApiVersion = ApiVersion::new(3, 27);
/// Filters on `get_pools` (3.28).
pub const POOL_FILTER: ApiVersion = ApiVersion::new(3, 28);
/// Pagination, sorting and filters of group snapshot lists (3.29).
pub const GROUP_SNAPSHOT_PAGINATION: ApiVersion = ApiVersion::new(3, 29);
/// Snapshot sort by `name` (3.30).
pub const SNAPSHOT_SORT: ApiVersion = ApiVersion::new(3, 30);
/// Filters checked against the resource filter list (3.31).
pub const RESOURCE_FILTER: ApiVersion = ApiVersion::new(3, 31);
/// `GET /resource_filters` (3.33).
pub const RESOURCE_FILTER_CONFIG: ApiVersion = ApiVersion::new(3, 33);
/// `key~=value` like filters (3.34).
pub const LIKE_FILTER: ApiVersion = ApiVersion::new(3, 34);
/// `volume_type` filter on `get_pools` (3.35).
pub const POOL_TYPE_FILTER: ApiVersion = ApiVersion::new(3, 35);
/// `metadata` in the volume summary (3.36).
pub const VOLUME_SUMMARY_METADATA: ApiVersion = ApiVersion::new(3, 36);
/// Group replication; `replication_status` in the group detail (3.38).
pub const GROUP_REPLICATION: ApiVersion = ApiVersion::new(3, 38);
/// `?project_id=` on `/limits` for admins (3.39).
pub const LIMITS_ADMIN_FILTER: ApiVersion = ApiVersion::new(3, 39);
/// `user_id` in the snapshot detail (3.41).
pub const SNAPSHOT_LIST_USER_ID: ApiVersion = ApiVersion::new(3, 41);
/// `os-extend` of `in-use` volumes (3.42).
pub const VOLUME_EXTEND_INUSE: ApiVersion = ApiVersion::new(3, 42);
/// `os-complete` on attachments (3.44).
pub const NEW_ATTACH_COMPLETION: ApiVersion = ApiVersion::new(3, 44);
/// `count` in lists with `?with_count=true` (3.45).
pub const SUPPORT_COUNT_INFO: ApiVersion = ApiVersion::new(3, 45);
/// `backup_id` in the volume create body (3.47).
pub const VOLUME_CREATE_FROM_BACKUP: ApiVersion = ApiVersion::new(3, 47);
/// `shared_targets` and `service_uuid` in the volume detail (3.48).
pub const VOLUME_SHARED_TARGETS_AND_SERVICE_FIELDS: ApiVersion = ApiVersion::new(3, 48);
/// `backend_state` in `os-services` (3.49).
pub const BACKEND_STATE_REPORT: ApiVersion = ApiVersion::new(3, 49);
/// Strict request schemas for volume create/update (3.53).
pub const SUPPORT_VOLUME_SCHEMA_CHANGES: ApiVersion = ApiVersion::new(3, 53);
/// `mode` in attachment create (3.54).
pub const ATTACHMENT_CREATE_MODE_ARG: ApiVersion = ApiVersion::new(3, 54);
/// `project_id` in group and group snapshot details, admin only (3.58).
pub const GROUP_GROUPSNAPSHOT_PROJECT_ID: ApiVersion = ApiVersion::new(3, 58);
/// Time comparison list filters (3.60).
pub const VOLUME_TIME_COMPARISON_FILTER: ApiVersion = ApiVersion::new(3, 60);
/// `cluster_name` in the volume detail, admin only (3.61).
pub const VOLUME_CLUSTER_NAME: ApiVersion = ApiVersion::new(3, 61);
/// `volume_type_id` in the volume detail (3.63).
pub const VOLUME_TYPE_ID_IN_VOLUME_DETAIL: ApiVersion = ApiVersion::new(3, 63);
/// `encryption_key_id` in the volume detail (3.64).
pub const ENCRYPTION_KEY_ID_IN_DETAILS: ApiVersion = ApiVersion::new(3, 64);
/// 3.9: `PUT /backups/{id}`.
pub const BACKUP_UPDATE: ApiVersion = ApiVersion::new(3, 9);
/// 3.18: `os-backup-project-attr:project_id` in backup views.
pub const BACKUP_PROJECT: ApiVersion = ApiVersion::new(3, 18);
/// 3.43: backup metadata.
pub const BACKUP_METADATA: ApiVersion = ApiVersion::new(3, 43);
/// 3.51: `availability_zone` in backup create.
pub const BACKUP_AZ: ApiVersion = ApiVersion::new(3, 51);
/// 3.56: `user_id` in backup views.
pub const BACKUP_PROJECT_USER_ID: ApiVersion = ApiVersion::new(3, 56);
/// `consumes_quota` in volume and snapshot details and filters (3.65).
pub const USE_QUOTA: ApiVersion = ApiVersion::new(3, 65);
/// Snapshots of in-use volumes without `force` (3.66).
pub const SNAPSHOT_IN_USE: ApiVersion = ApiVersion::new(3, 66);
/// A null `shared_targets` is shown as null instead of true (3.69).
pub const SHARED_TARGETS_TRISTATE: ApiVersion = ApiVersion::new(3, 69);
/// The `revert` volume action (3.40).
pub const VOLUME_REVERT: ApiVersion = ApiVersion::new(3, 40);
/// `/volume-transfers` and `no_snapshots` (3.55).
pub const TRANSFER_WITH_SNAPSHOTS: ApiVersion = ApiVersion::new(3, 55);
/// `source_project_id`, `destination_project_id`, `accepted` in transfers (3.57).
pub const TRANSFER_WITH_HISTORY: ApiVersion = ApiVersion::new(3, 57);
/// Pagination and sorting of transfer lists (3.59).
pub const SUPPORT_TRANSFER_PAGINATION: ApiVersion = ApiVersion::new(3, 59);
/// `/default-types` (3.62).
pub const DEFAULT_TYPE_OVERRIDES: ApiVersion = ApiVersion::new(3, 62);
/// `/manageable_volumes` and `/manageable_snapshots` (3.8).
pub const MANAGE_EXISTING_LIST: ApiVersion = ApiVersion::new(3, 8);
/// `cluster` in the manageable lists (3.17).
pub const MANAGE_EXISTING_CLUSTER: ApiVersion = ApiVersion::new(3, 17);
/// Transfers of encrypted volumes (3.70).
pub const TRANSFER_ENCRYPTED_VOLUME: ApiVersion = ApiVersion::new(3, 70);

/// Why the version header could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// Not `X.Y` (400).
    Malformed(String),
    /// Outside the served range (406).
    Unsupported(ApiVersion),
}

impl From<VersionError> for ApiError {
    fn from(err: VersionError) -> Self {
        match err {
            VersionError::Malformed(text) => ApiError::bad_request(format!(
                "API Version String {text} is of invalid format. Must be of format MajorNum.MinorNum."
            )),
            VersionError::Unsupported(version) => ApiError::NotAcceptable(format!(
                "Version {version} is not supported by the API. Minimum is {MIN} and maximum is {MAX}."
            )),
        }
    }
}

/// Parses `X.Y` as Cinder's `APIVersionRequest` does: no leading zeros, no
/// signs, no spaces.
pub fn parse_version(text: &str) -> Result<ApiVersion, VersionError> {
    let malformed = || VersionError::Malformed(text.to_owned());
    let (major, minor) = text.split_once('.').ok_or_else(malformed)?;
    let number = |part: &str, allow_zero: bool| -> Option<u16> {
        let digits_only = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let leading_zero = part.len() > 1 && part.starts_with('0');
        if !digits_only || leading_zero || (!allow_zero && part == "0") {
            return None;
        }
        part.parse().ok()
    };
    let major = number(major, false).ok_or_else(malformed)?;
    let minor = number(minor, true).ok_or_else(malformed)?;
    Ok(ApiVersion::new(major, minor))
}

/// Negotiates the version of a request from its [`HEADER`] value.
pub fn negotiate(header: Option<&str>) -> Result<ApiVersion, VersionError> {
    let Some(header) = header else {
        return Ok(MIN);
    };
    // Cinder takes the first comma-separated entry that mentions the
    // service and expects exactly "volume <version>" there.
    let entry = header.split(',').find(|entry| entry.contains(SERVICE));
    let Some(entry) = entry else {
        return Err(VersionError::Malformed(header.trim().to_owned()));
    };
    let mut tokens = entry.split_whitespace();
    let (Some(_service), Some(version), None) = (tokens.next(), tokens.next(), tokens.next())
    else {
        return Err(VersionError::Malformed(entry.trim().to_owned()));
    };
    if version == "latest" {
        return Ok(MAX);
    }
    let requested = parse_version(version)?;
    if requested < MIN || requested > MAX {
        return Err(VersionError::Unsupported(requested));
    }
    Ok(requested)
}

/// Fails with a bare 404 when `version` is below `min` (Cinder's
/// `VersionNotFoundForAPIMethod`: the method looks as if it did not exist).
pub fn require(version: ApiVersion, min: ApiVersion) -> Result<(), ApiError> {
    if version.matches(min) {
        Ok(())
    } else {
        Err(ApiError::not_found(crate::fault::RESOURCE_NOT_FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_cinder() {
        assert_eq!(negotiate(None), Ok(MIN));
        assert_eq!(negotiate(Some("volume 3.0")), Ok(MIN));
        assert_eq!(negotiate(Some("volume latest")), Ok(MAX));
        assert_eq!(negotiate(Some("volume 3.71")), Ok(MAX));
        assert_eq!(
            negotiate(Some("compute 2.1, volume 3.27")),
            Ok(ApiVersion::new(3, 27))
        );
        assert_eq!(
            negotiate(Some("volume 3.72")),
            Err(VersionError::Unsupported(ApiVersion::new(3, 72)))
        );
        assert_eq!(
            negotiate(Some("volume 2.0")),
            Err(VersionError::Unsupported(ApiVersion::new(2, 0)))
        );
        assert!(matches!(
            negotiate(Some("volume 3.x")),
            Err(VersionError::Malformed(_))
        ));
        assert!(matches!(
            negotiate(Some("volume 3.07")),
            Err(VersionError::Malformed(_))
        ));
        assert!(matches!(
            negotiate(Some("volume")),
            Err(VersionError::Malformed(_))
        ));
        assert!(matches!(
            negotiate(Some("compute 2.1")),
            Err(VersionError::Malformed(_))
        ));
    }

    #[test]
    fn messages_are_cinder_texts() {
        let err: ApiError = VersionError::Unsupported(ApiVersion::new(3, 72)).into();
        assert_eq!(
            err.user_message(),
            "Version 3.72 is not supported by the API. Minimum is 3.0 and maximum is 3.71."
        );
        let err: ApiError = VersionError::Malformed("3.x".into()).into();
        assert_eq!(
            err.user_message(),
            "API Version String 3.x is of invalid format. Must be of format MajorNum.MinorNum."
        );
    }

    #[test]
    fn gating_compares_versions() {
        assert!(ApiVersion::new(3, 13).matches(GROUP_VOLUME));
        assert!(!ApiVersion::new(3, 12).matches(GROUP_VOLUME));
        assert!(ApiVersion::new(3, 9).is_before(VOLUME_LIST_GROUP));
        assert!(require(MIN, MESSAGES).is_err());
        assert!(require(MESSAGES, MESSAGES).is_ok());
    }
}
