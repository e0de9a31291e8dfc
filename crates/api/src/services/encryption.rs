//! Encryption: a volume type's encryption specs (Cinder's
//! `contrib/volume_type_encryption.py`) and a volume's encryption metadata
//! (`contrib/volume_encryption_metadata.py`).
//!
//! There is no key manager: a volume of an encrypted type carries a key id
//! without a secret behind it (see
//! [`clinker_types::volume_type_extras::new_encryption_key_id`]).

use clinker_db::{DbError, EncryptionUpdate, NewEncryption};
use clinker_rpc::RequestContext;
use clinker_types::VolumeTypeId;
use clinker_types::model::VolumeType;
use clinker_types::volume_type_extras::VolumeTypeEncryption;
use serde_json::{Map, Value, json};

use super::types::get_type;
use super::volumes::authorized_volume;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;
use crate::views::time;

/// `volume_extension:volume_type_encryption:create`.
pub const CREATE_POLICY: &str = "volume_extension:volume_type_encryption:create";
/// `volume_extension:volume_type_encryption:get`.
pub const GET_POLICY: &str = "volume_extension:volume_type_encryption:get";
/// `volume_extension:volume_type_encryption:update`.
pub const UPDATE_POLICY: &str = "volume_extension:volume_type_encryption:update";
/// `volume_extension:volume_type_encryption:delete`.
pub const DELETE_POLICY: &str = "volume_extension:volume_type_encryption:delete";
/// `volume_extension:volume_encryption_metadata`.
pub const METADATA_POLICY: &str = "volume_extension:volume_encryption_metadata";

/// Cinder's `VolumeTypeEncryptionNotFound` text.
pub fn encryption_not_found(type_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Volume type encryption for type {type_id} does not exist."
    ))
}

/// The encryption row as Cinder's controller returns it (every column of
/// the model, soft-delete columns included).
pub fn encryption_specs(e: &VolumeTypeEncryption) -> Map<String, Value> {
    let mut specs = Map::new();
    specs.insert("volume_type_id".into(), json!(e.volume_type_id.to_string()));
    specs.insert("encryption_id".into(), json!(e.encryption_id));
    specs.insert("provider".into(), json!(e.provider));
    specs.insert("cipher".into(), json!(e.cipher));
    specs.insert("key_size".into(), json!(e.key_size));
    specs.insert(
        "control_location".into(),
        json!(e.control_location.as_str()),
    );
    specs.insert("created_at".into(), time(Some(e.created_at)));
    specs.insert("updated_at".into(), time(e.updated_at));
    specs.insert("deleted".into(), json!(false));
    specs.insert("deleted_at".into(), Value::Null);
    specs
}

async fn checked_type(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
) -> ApiResult<VolumeTypeId> {
    Ok(get_type::<VolumeType>(state, ctx, type_id).await?.id)
}

/// A type's encryption specs (`{}` when it has none).
///
/// # Errors
/// 403, 404 for the type.
pub async fn get_type_encryption(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
) -> ApiResult<Option<VolumeTypeEncryption>> {
    policy::enforce(ctx, GET_POLICY, None)?;
    let id = checked_type(state, ctx, type_id).await?;
    state
        .db
        .get_type_encryption(id)
        .await
        .map_err(ApiError::from)
}

/// Makes a type encrypted.
///
/// # Errors
/// 400 while the type is in use or already encrypted, 404 for the type.
pub async fn create_type_encryption(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
    new: NewEncryption,
) -> ApiResult<VolumeTypeEncryption> {
    policy::enforce(ctx, CREATE_POLICY, None)?;
    let not_found = || ApiError::not_found(format!("Volume type {type_id} could not be found."));
    let Ok(id) = type_id.parse::<VolumeTypeId>() else {
        return Err(not_found());
    };
    state
        .db
        .create_type_encryption(id, new)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => {
                ApiError::bad_request("Cannot create encryption specs. Volume type in use.")
            }
            DbError::Conflict(_) => ApiError::bad_request(format!(
                "Volume type encryption for type {type_id} already exists."
            )),
            DbError::NotFound { .. } => not_found(),
            other => other.into(),
        })
}

/// Changes a type's encryption specs.
///
/// # Errors
/// 404 for the type or its encryption, 400 while the type is in use.
pub async fn update_type_encryption(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
    update: EncryptionUpdate,
) -> ApiResult<VolumeTypeEncryption> {
    policy::enforce(ctx, UPDATE_POLICY, None)?;
    let id = checked_type(state, ctx, type_id).await?;
    state
        .db
        .update_type_encryption(id, update)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => {
                ApiError::bad_request("Cannot update encryption specs. Volume type in use.")
            }
            DbError::NotFound { .. } => encryption_not_found(type_id),
            other => other.into(),
        })
}

/// Makes a type unencrypted.
///
/// # Errors
/// 400 while the type is in use, 404 when it has no encryption.
pub async fn delete_type_encryption(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
) -> ApiResult<()> {
    policy::enforce(ctx, DELETE_POLICY, None)?;
    let Ok(id) = type_id.parse::<VolumeTypeId>() else {
        return Err(encryption_not_found(type_id));
    };
    state
        .db
        .delete_type_encryption(id)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => {
                ApiError::bad_request("Cannot delete encryption specs. Volume type in use.")
            }
            DbError::NotFound { .. } => encryption_not_found(type_id),
            other => other.into(),
        })
}

/// A volume's encryption metadata (Cinder's
/// `volume_encryption_metadata_get`): the key id (null when unencrypted)
/// and, for an encrypted type, its `control_location`, `cipher`,
/// `key_size` and `provider`.
///
/// # Errors
/// 404 for an invisible volume, 403.
pub async fn volume_encryption_metadata(
    state: &ApiState,
    ctx: &RequestContext,
    volume_id: &str,
) -> ApiResult<Map<String, Value>> {
    let volume = authorized_volume(state, ctx, volume_id, METADATA_POLICY).await?;
    let mut metadata = Map::new();
    metadata.insert("encryption_key_id".into(), json!(volume.encryption_key_id));
    if let Some(e) = state
        .db
        .get_type_encryption(volume.volume_type_id)
        .await
        .map_err(ApiError::from)?
    {
        metadata.insert(
            "control_location".into(),
            json!(e.control_location.as_str()),
        );
        metadata.insert("cipher".into(), json!(e.cipher));
        metadata.insert("key_size".into(), json!(e.key_size));
        metadata.insert("provider".into(), json!(e.provider));
    }
    Ok(metadata)
}
