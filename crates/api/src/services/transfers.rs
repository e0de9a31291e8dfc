//! Volume transfers (Cinder's `transfer/api.py`): offering a volume to
//! another project and accepting the offer with its auth key.
//!
//! The auth key is shown once, in the create response; the database keeps
//! only a salted HMAC-SHA1 of it, as Cinder keeps `salt` and `crypt_hash`.
//! Ownership and quota usage move in one database transaction on accept.

use clinker_db::{AcceptRefusal, DbError, NewTransfer, OverQuota, TransferAcceptor, TransferQuery};
use clinker_rpc::RequestContext;
use clinker_types::model::Volume;
use clinker_types::transfer::Transfer;
use clinker_types::{SnapshotId, SnapshotStatus, TransferId};
use hmac::{Hmac, KeyInit, Mac};

use super::volumes::{get_volume, volume_not_found};
use super::{QuotaAction, lookup_error, quota_error, visible};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

/// `volume:create_transfer`.
pub const CREATE_POLICY: &str = "volume:create_transfer";
/// `volume:accept_transfer`.
pub const ACCEPT_POLICY: &str = "volume:accept_transfer";
/// `volume:delete_transfer`.
pub const DELETE_POLICY: &str = "volume:delete_transfer";
/// `volume:get_transfer`.
pub const GET_POLICY: &str = "volume:get_transfer";
/// `volume:get_all_transfers`.
pub const GET_ALL_POLICY: &str = "volume:get_all_transfers";

/// Cinder's `volume_transfer_salt_length`.
const SALT_LENGTH: usize = 8;
/// Cinder's `volume_transfer_key_length`.
const KEY_LENGTH: usize = 16;

/// Cinder's `TransferNotFound` text.
pub fn transfer_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Transfer {id} could not be found."))
}

/// Lowercase hex characters from the OS random source (Cinder's
/// `_get_random_string`: only characters a user can type).
fn random_hex(length: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..length)
        .map(|_| char::from(HEX[rand::random_range(0..16usize)]))
        .collect()
}

/// Cinder's `_get_crypt_hash`: HMAC-SHA1 of the key, keyed by the salt, in
/// hex.
pub fn crypt_hash(salt: &str, auth_key: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(salt.as_bytes()) else {
        return String::new();
    };
    mac.update(auth_key.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two hashes without an early exit, so the time taken says
/// nothing about how much of a guessed key was right.
fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What a create request asks for.
#[derive(Clone, Debug)]
pub struct CreateTransfer {
    /// The volume to offer.
    pub volume_id: String,
    /// The offer's name.
    pub name: Option<String>,
    /// Leave the snapshots behind (3.55).
    pub no_snapshots: bool,
    /// Whether encrypted volumes may be offered (3.70).
    pub allow_encrypted: bool,
}

/// Offers a volume; returns the transfer and its auth key (shown once).
///
/// # Errors
/// 404 for an invisible volume, 400 with Cinder's texts.
pub async fn create_transfer(
    state: &ApiState,
    ctx: &RequestContext,
    request: CreateTransfer,
) -> ApiResult<(Transfer, String)> {
    let volume = get_volume(state, ctx, &request.volume_id).await?;
    policy::enforce(ctx, CREATE_POLICY, Some(&volume.project_id))?;
    if volume.status != clinker_types::VolumeStatus::Available {
        return Err(ApiError::invalid_state(
            "Invalid volume: status must be available",
        ));
    }
    if volume.encryption_key_id.is_some() {
        if !request.allow_encrypted {
            return Err(ApiError::invalid_state(
                "Invalid volume: transferring encrypted volume is not supported",
            ));
        }
        if request.no_snapshots {
            return Err(ApiError::invalid_state(
                "Invalid volume: transferring an encrypted volume without its snapshots is not supported",
            ));
        }
    }
    if !request.no_snapshots
        && let Some(snapshot) = unavailable_snapshot(state, &volume).await?
    {
        return Err(ApiError::invalid_state(format!(
            "Invalid snapshot: snapshot: {snapshot} status must be available"
        )));
    }
    let salt = random_hex(SALT_LENGTH);
    let auth_key = random_hex(KEY_LENGTH);
    let id = TransferId::new_random();
    let new = NewTransfer {
        id,
        volume_id: volume.id,
        display_name: request.name,
        crypt_hash: crypt_hash(&salt, &auth_key),
        salt,
        no_snapshots: request.no_snapshots,
    };
    let transfer = state.db.create_transfer(new).await.map_err(|e| match e {
        DbError::InvalidState(_) => ApiError::invalid_state(format!(
            "Invalid volume: Transfer {id}: Volume id {} expected in available state.",
            volume.id
        )),
        other => lookup_error(other, || volume_not_found(&request.volume_id)),
    })?;
    Ok((transfer, auth_key))
}

/// The first snapshot of the volume that is not `available`, if any.
async fn unavailable_snapshot(state: &ApiState, volume: &Volume) -> ApiResult<Option<SnapshotId>> {
    let snapshots = state
        .db
        .snapshots_of_volume(volume.id)
        .await
        .map_err(ApiError::from)?;
    Ok(snapshots
        .iter()
        .find(|s| s.status != SnapshotStatus::Available)
        .map(|s| s.id))
}

/// A transfer the caller may see: the owner project of its volume, or an
/// admin.
///
/// # Errors
/// 404 "Transfer X could not be found.".
pub async fn get_transfer(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Transfer> {
    policy::enforce(ctx, GET_POLICY, None)?;
    let transfer = find_any(state, id).await?;
    if visible(ctx, &transfer.volume_project_id) {
        Ok(transfer)
    } else {
        Err(transfer_not_found(id))
    }
}

async fn find_any(state: &ApiState, id: &str) -> ApiResult<Transfer> {
    let Ok(transfer_id) = id.parse::<TransferId>() else {
        return Err(transfer_not_found(id));
    };
    state
        .db
        .get_transfer(transfer_id)
        .await
        .map_err(|e| lookup_error(e, || transfer_not_found(id)))
}

/// Lists transfers: the caller's project's, or every project's for an
/// admin asking with `all_tenants`.
///
/// # Errors
/// 404 for an unknown marker.
pub async fn list_transfers(
    state: &ApiState,
    ctx: &RequestContext,
    all_tenants: bool,
    mut query: TransferQuery,
) -> ApiResult<Vec<Transfer>> {
    policy::enforce(ctx, GET_ALL_POLICY, None)?;
    query.project_id = if ctx.is_admin && all_tenants {
        None
    } else {
        Some(ctx.project_id.clone())
    };
    let marker = query.page.marker.map(|m| m.to_string()).unwrap_or_default();
    state
        .db
        .list_transfers(&query)
        .await
        .map_err(|e| lookup_error(e, || transfer_not_found(&marker)))
}

/// Withdraws an offer; its volume becomes `available` again.
///
/// # Errors
/// 404.
pub async fn delete_transfer(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<()> {
    let transfer = find_any(state, id).await?;
    if !visible(ctx, &transfer.volume_project_id) {
        return Err(transfer_not_found(id));
    }
    policy::enforce(ctx, DELETE_POLICY, Some(&transfer.volume_project_id))?;
    state
        .db
        .delete_transfer(transfer.id)
        .await
        .map_err(|e| lookup_error(e, || transfer_not_found(id)))?;
    Ok(())
}

/// Cinder's 413 texts for a refused accept. The gigabytes refusal is
/// caught by the controller and shown without the exception's class name;
/// the others pass through the fault wrapper, which adds it.
fn accept_quota_error(refusal: &AcceptRefusal) -> ApiError {
    let (over, snapshots): (&OverQuota, bool) = match refusal {
        AcceptRefusal::Volume(over) => (over, false),
        AcceptRefusal::Snapshots(over) => (over, true),
    };
    if over.resource.contains("gigabytes") && over.resource != "per_volume_gigabytes" {
        return ApiError::over_quota(format!(
            "Requested volume or snapshot exceeds allowed {} quota. Requested {}G, quota is {}G and {}G has been consumed.",
            over.resource, over.requested, over.limit, over.in_use
        ));
    }
    let action = if snapshots {
        QuotaAction::CreateSnapshot {
            size: over.requested,
        }
    } else {
        QuotaAction::CreateVolume {
            size: over.requested,
        }
    };
    quota_error(over, action)
}

/// Accepts an offer as the caller's project and user.
///
/// # Errors
/// 404 (transfer), 400 (wrong key, statuses, group), 413 (quota).
pub async fn accept_transfer(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    auth_key: &str,
) -> ApiResult<(Transfer, Volume)> {
    policy::enforce(ctx, ACCEPT_POLICY, None)?;
    // Any project may accept: the transfer is looked up across projects.
    let transfer = find_any(state, id).await?;
    if !hashes_equal(&crypt_hash(&transfer.salt, auth_key), &transfer.crypt_hash) {
        tracing::warn!(transfer_id = %transfer.id, "transfer accept with a wrong auth key");
        return Err(ApiError::invalid_state(format!(
            "Invalid auth key: Attempt to transfer {id} with invalid auth key."
        )));
    }
    let volume = state
        .db
        .get_volume(transfer.volume_id)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(&transfer.volume_id.to_string())))?;
    if volume.consistencygroup_id.is_some() || volume.group_id.is_some() {
        return Err(ApiError::invalid_state(format!(
            "Invalid volume: Volume {} must not be part of a consistency group.",
            volume.id
        )));
    }
    if !transfer.no_snapshots
        && let Some(snapshot) = unavailable_snapshot(state, &volume).await?
    {
        return Err(ApiError::invalid_state(format!(
            "Invalid snapshot: Transfer {id}: Snapshot {snapshot} is not in the expected available state."
        )));
    }
    let acceptor = TransferAcceptor {
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
    };
    let moved = state
        .db
        .accept_transfer(transfer.id, &acceptor)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => ApiError::invalid_state(format!(
                "Invalid volume: Transfer {id}: Volume id {} expected in awaiting-transfer state.",
                transfer.volume_id
            )),
            other => lookup_error(other, || transfer_not_found(id)),
        })?
        .map_err(|refusal| accept_quota_error(&refusal))?;
    tracing::info!(volume_id = %moved.id, transfer_id = %transfer.id, project_id = %ctx.project_id, "volume transferred");
    Ok((transfer, moved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_cinder() {
        // Python: hmac.new(b"salt", b"key", hashlib.sha1).hexdigest()
        assert_eq!(
            crypt_hash("salt", "key"),
            "69eb624e7367f772094a6123333dfee42bb7a1a1"
        );
        assert_ne!(crypt_hash("salt", "key"), crypt_hash("salt", "kez"));
        assert_ne!(crypt_hash("salt", "key"), crypt_hash("salu", "key"));
        assert!(hashes_equal("abc", "abc"));
        assert!(!hashes_equal("abc", "abd"));
        assert!(!hashes_equal("abc", "ab"));
    }

    #[test]
    fn random_keys_are_typable_hex() {
        let key = random_hex(KEY_LENGTH);
        assert_eq!(key.len(), 16);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(random_hex(KEY_LENGTH), key);
    }
}
