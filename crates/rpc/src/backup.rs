//! The backup service's RPC API (Cinder's `backup/rpcapi.py`), declared
//! with [`crate::api`]: the argument types and one list of methods, from
//! which the handler trait the backup manager implements
//! ([`BackupManagerApi`], served with
//! [`serve_backup_api!`](crate::serve_backup_api)), the version table
//! ([`METHODS`]), the dispatch ([`BackupEndpoint`]) and the client the API
//! uses ([`BackupRpcClient`]) are generated. Casts go to the queue of the
//! backup's host (`cinder-backup.<host>`).
//!
//! Version history (Cinder's numbering):
//! - 2.0: create_backup, restore_backup, delete_backup, reset_status,
//!   check_support_to_force_delete (the 1.x compatibility removed).
//! - 2.2: publish_service_capabilities.
//! - 2.4: restore_backup carries `volume_is_new` (current).
//!
//! Not served yet: export_record, import_record (2.0), continue_backup
//! (2.3), set_log_levels and get_log_levels (2.1).

use clinker_types::{BackupId, VolumeId};
use serde::{Deserialize, Serialize};

use crate::Version;

/// The backup service's topic.
pub const TOPIC: &str = "cinder-backup";
/// The highest version this build serves and sends.
pub const CURRENT_VERSION: Version = Version::new(2, 4);

/// `create_backup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBackupArgs {
    /// The backup (its row is `creating`, its volume `backing-up`).
    pub backup_id: BackupId,
}

/// `restore_backup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreBackupArgs {
    /// The backup (its row is `restoring`).
    pub backup_id: BackupId,
    /// The volume written (its row is `restoring-backup`).
    pub volume_id: VolumeId,
    /// Whether the volume was created for this restore (zeroed, so only
    /// non-zero data needs writing).
    #[serde(default)]
    pub volume_is_new: bool,
}

/// `delete_backup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteBackupArgs {
    /// The backup (its row is `deleting`).
    pub backup_id: BackupId,
}

/// `reset_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetBackupStatusArgs {
    /// The backup.
    pub backup_id: BackupId,
    /// `available` or `error`.
    pub status: String,
}

crate::api::rpc_api! {
    module: backup,
    service: "backup service",
    topic: TOPIC,
    version: CURRENT_VERSION,
    route: host,
    /// What the backup manager serves. Every method has a default
    /// answering `NotImplemented`; the backup manager implements all of
    /// them through [`serve_backup_api!`](crate::serve_backup_api).
    handler: BackupManagerApi,
    /// Dispatches backup RPC messages to a [`BackupManagerApi`].
    endpoint: BackupEndpoint,
    /// The client (Cinder's `BackupAPI` in `backup/rpcapi.py`).
    client: BackupRpcClient,
    /// Implements [`BackupManagerApi`](crate::backup::BackupManagerApi)
    /// for a type by forwarding every method to the type's inherent method
    /// of the same name: `serve_backup_api!(BackupManager)`.
    serve: serve_backup_api,
    methods: {
        /// Makes a backup (full or incremental).
        cast create_backup(args: CreateBackupArgs) { since: 2.0, serialized_by: args.backup_id }
        /// Restores a backup into a volume.
        cast restore_backup(args: RestoreBackupArgs) {
            since: 2.4,
            serialized_by: args.backup_id,
        }
        /// Deletes a backup's objects, then its row.
        cast delete_backup(args: DeleteBackupArgs) { since: 2.0, serialized_by: args.backup_id }
        /// Sets a backup's status (administrator), checking what the
        /// driver holds.
        cast reset_status(args: ResetBackupStatusArgs) { since: 2.0 }
        /// Whether the driver can delete a backup that is being made or
        /// restored.
        call check_support_to_force_delete() -> bool { since: 2.0 }
        /// Reports capabilities (the backup service has none to schedule
        /// on yet; answered for Cinder's fanout).
        fanout publish_service_capabilities() { since: 2.2 }
    }
}
