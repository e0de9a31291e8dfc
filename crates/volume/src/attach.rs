//! Exports and connections (Cinder's `VolumeManager._connection_create`,
//! `attachment_update`, `attachment_delete`, `initialize_connection`,
//! `terminate_connection`, `detach_volume`, `remove_export` and
//! `_parse_connection_options`).
//!
//! Exports happen at attach time, not at create time: a volume is exported
//! (`create_export`, with its `provider_location`/`provider_auth` stored)
//! when a host connects, and the export is removed when the last attachment
//! that needs it goes. Every export decision runs under the volume's export
//! lock and reads the attachments afresh, so a connection being made and a
//! detach of another attachment never race each other into removing an
//! export somebody uses. Attachment rows change only through
//! [`clinker_db::AttachmentRepository`], one transaction each.

use clinker_db::{AttachmentConnection, DbError, ProviderUpdate};
use clinker_drivers::{DriverError, VolumeSpec};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{
    AttachmentDeleteArgs, AttachmentUpdateArgs, DetachVolumeArgs, InitializeConnectionArgs,
    RemoveExportArgs, TerminateConnectionArgs,
};
use clinker_runtime::GateGuard;
use clinker_types::connection::{ConnectionInfo, Connector};
use clinker_types::message_field::{self as mf, Action};
use clinker_types::model::{Attachment, Volume};
use clinker_types::{AttachStatus, AttachmentId, ErrorKind, RemoteError, VolumeId, VolumeStatus};
use serde_json::{Map, Value};

use crate::manager::{VolumeManager, db_remote, volume_spec};
use crate::usage::volume_payload;

/// Cinder's `DriverNotInitialized` text.
const DRIVER_NOT_READY: &str = "Volume driver not ready.";

/// Cinder's `VolumeNotFound` text.
fn volume_not_found(id: VolumeId) -> RemoteError {
    RemoteError::new(
        ErrorKind::NotFound,
        format!("Volume {id} could not be found."),
    )
}

/// Cinder's `VolumeAttachmentNotFound` text for a lookup by id.
fn attachment_not_found(id: AttachmentId) -> RemoteError {
    RemoteError::new(
        ErrorKind::NotFound,
        format!("Volume attachment could not be found with filter: attachment_id = {id}."),
    )
}

/// A backend failure as Cinder's `VolumeBackendAPIException` words it (the
/// API shows a generic text for internal errors; the log keeps this).
fn backend_error(detail: String) -> RemoteError {
    RemoteError::new(
        ErrorKind::Internal,
        format!("Bad or unexpected response from the storage volume backend API: {detail}"),
    )
}

/// A connector that a driver refused (Cinder turns
/// `InvalidConnectorException` into `InvalidInput`).
fn invalid_connector(err: &DriverError) -> RemoteError {
    RemoteError::new(
        ErrorKind::InvalidInput,
        format!("Invalid input received: {err}"),
    )
}

/// The `rw`/`ro` value of a mode, if it is one.
fn access_mode(mode: Option<&str>) -> Option<&'static str> {
    match mode {
        Some("rw") => Some("rw"),
        Some("ro") => Some("ro"),
        _ => None,
    }
}

/// Whether the volume's export must stay: another attachment is connected
/// (`attaching`/`attached`), or a legacy attach is under way (`os-reserve`
/// moved the volume to `attaching` and `os-initialize_connection` exported
/// it before `os-attach` writes the attachment row).
fn export_needed(volume: &Volume, excluding: Option<AttachmentId>) -> bool {
    let others_connected = volume.attachments.iter().any(|a| {
        Some(a.id) != excluding
            && matches!(
                a.attach_status,
                AttachStatus::Attached | AttachStatus::Attaching
            )
    });
    let legacy_attach_in_progress = volume.status == VolumeStatus::Attaching
        && !volume
            .attachments
            .iter()
            .any(|a| a.attach_status == AttachStatus::Attaching);
    others_connected || legacy_attach_in_progress
}

fn initiator(connector: Option<&Value>) -> Option<&str> {
    connector
        .and_then(|c| c.get("initiator"))
        .and_then(Value::as_str)
}

/// Why a connection could not be made, and whether state was touched.
enum ConnectFailure {
    /// The request itself is wrong; nothing was written.
    Refused(RemoteError),
    /// The backend failed after the request was accepted.
    Backend(RemoteError),
}

impl VolumeManager {
    fn export_lock_key(volume_id: VolumeId) -> String {
        format!("{volume_id}-export")
    }

    /// Enters the shutdown gate for a call (the attach calls are answered,
    /// not queued, so there is nothing to mark in flight).
    fn enter_for_call(&self) -> Result<GateGuard, RemoteError> {
        self.gate.enter().ok_or_else(|| {
            RemoteError::new(ErrorKind::Unavailable, "volume service is shutting down")
        })
    }

    fn require_driver(&self) -> Result<(), RemoteError> {
        if self.health().up {
            Ok(())
        } else {
            Err(RemoteError::new(ErrorKind::Unavailable, DRIVER_NOT_READY))
        }
    }

    async fn load_volume(&self, id: VolumeId) -> Result<Volume, RemoteError> {
        self.db.get_volume(id).await.map_err(|e| match e {
            DbError::NotFound { .. } => volume_not_found(id),
            other => db_remote(other),
        })
    }

    async fn load_attachment(&self, id: AttachmentId) -> Result<Attachment, RemoteError> {
        self.db.get_attachment(id).await.map_err(|e| match e {
            DbError::NotFound { .. } => attachment_not_found(id),
            other => db_remote(other),
        })
    }

    /// Removes the export unless something still needs it (the attachments
    /// are read afresh); failures are logged, as Cinder ignores them on
    /// detach.
    async fn remove_export_if_unused(&self, volume_id: VolumeId, excluding: Option<AttachmentId>) {
        let volume = match self.db.get_volume(volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return,
            Err(e) => {
                tracing::warn!(volume_id = %volume_id, error = %e, "cannot read the volume; keeping its export");
                return;
            }
        };
        if export_needed(&volume, excluding) {
            return;
        }
        if let Err(e) = self.driver.remove_export(&volume_spec(&volume)).await {
            tracing::warn!(volume_id = %volume_id, error = %e, "failed to remove the export; the start-up reconcile removes it");
        }
    }

    /// Cinder's `_parse_connection_options`: what the manager adds to the
    /// driver's connection data. `mode` is the attachment's mode when the
    /// caller chose one; otherwise the legacy `attached_mode`, then the
    /// `readonly` flag decide `access_mode`.
    async fn parse_connection_options(
        &self,
        volume: &Volume,
        info: &mut ConnectionInfo,
        mode: Option<&str>,
    ) {
        let data = &mut info.data;
        // No front-end QoS support yet: Cinder sends the key regardless.
        data.insert("qos_specs".into(), Value::Null);
        let access = access_mode(mode)
            .or_else(|| {
                access_mode(
                    volume
                        .admin_metadata
                        .get("attached_mode")
                        .map(String::as_str),
                )
            })
            .unwrap_or(
                if volume.admin_metadata.get("readonly").map(String::as_str) == Some("True") {
                    "ro"
                } else {
                    "rw"
                },
            );
        data.insert("access_mode".into(), Value::from(access));
        if data.get("encrypted").is_none_or(Value::is_null) {
            data.insert(
                "encrypted".into(),
                Value::Bool(volume.encryption_key_id.is_some()),
            );
        }
        let type_says_cacheable = match self.db.get_volume_type(volume.volume_type_id).await {
            Ok(t) => t
                .extra_specs
                .get("cacheable")
                .is_some_and(|v| v.trim() == "<is> True"),
            Err(_) => false,
        };
        // A driver may refuse caching; the type may only narrow it.
        let cacheable = match data.get("cacheable") {
            Some(Value::Bool(driver)) => *driver && type_says_cacheable,
            _ => type_says_cacheable,
        };
        data.insert("cacheable".into(), Value::Bool(cacheable));
        if data.get("discard").is_none_or(Value::is_null) && self.driver.report_discard_supported()
        {
            data.insert("discard".into(), Value::Bool(true));
        }
    }

    /// Validates the connector, exports the volume (storing the export's
    /// provider fields) and asks the driver how to reach it.
    async fn connection_create(
        &self,
        volume: &Volume,
        connector: &Connector,
        mode: Option<&str>,
        excluding: Option<AttachmentId>,
    ) -> Result<ConnectionInfo, ConnectFailure> {
        self.driver
            .validate_connector(connector)
            .map_err(|e| match e {
                DriverError::InvalidInput(_) => ConnectFailure::Refused(invalid_connector(&e)),
                other => ConnectFailure::Backend(backend_error(format!(
                    "Validate volume connection failed (error: {other})."
                ))),
            })?;
        let update = self
            .driver
            .create_export(&volume_spec(volume), connector)
            .await
            .map_err(|e| {
                ConnectFailure::Backend(backend_error(format!(
                    "Create export for volume failed ({e})."
                )))
            })?;
        let mut spec: VolumeSpec = volume_spec(volume);
        if update != clinker_drivers::ModelUpdate::default() {
            let provider = ProviderUpdate {
                provider_location: update.provider_location.clone(),
                provider_auth: update.provider_auth.clone(),
                provider_id: update.provider_id.clone(),
            };
            if let Err(e) = self.db.save_export(volume.id, provider).await {
                self.remove_export_if_unused(volume.id, excluding).await;
                return Err(ConnectFailure::Backend(RemoteError::new(
                    e.kind(),
                    format!("Failed to export for volume: {e}"),
                )));
            }
            if update.provider_location.is_some() {
                spec.provider_location = update.provider_location;
            }
            if update.provider_auth.is_some() {
                spec.provider_auth = update.provider_auth;
            }
        }
        let mut info = match self.driver.initialize_connection(&spec, connector).await {
            Ok(info) => info,
            Err(e) => {
                self.remove_export_if_unused(volume.id, excluding).await;
                return Err(ConnectFailure::Backend(backend_error(format!(
                    "Driver initialize connection failed (error: {e})."
                ))));
            }
        };
        self.parse_connection_options(volume, &mut info, mode).await;
        Ok(info)
    }

    /// Marks a failed attachment and tells its owner why.
    async fn fail_attachment_update(
        &self,
        context: &RequestContext,
        volume: &Volume,
        attachment_id: AttachmentId,
        action: Action,
        driver_up: bool,
    ) {
        if let Err(e) = self.db.fail_attachment(attachment_id).await {
            tracing::warn!(attachment_id = %attachment_id, error = %e, "cannot mark the attachment error_attaching");
        }
        let detail = if driver_up {
            mf::ATTACH_ERROR
        } else {
            mf::DRIVER_NOT_INITIALIZED
        };
        self.record_message(
            context,
            &volume.project_id,
            mf::RESOURCE_VOLUME,
            volume.id.to_string(),
            action,
            detail,
        )
        .await;
    }

    /// `attachment_update`: exports the volume to the connector, records the
    /// connection (attachment and volume `attaching`) and returns the
    /// flattened connection info. A refused connector changes nothing; a
    /// backend failure leaves the attachment `error_attaching` (the volume
    /// stays reserved, as in Cinder) with a user message.
    pub(crate) async fn attachment_update(
        &self,
        context: &RequestContext,
        args: AttachmentUpdateArgs,
    ) -> Result<Map<String, Value>, RemoteError> {
        let _active = self.enter_for_call()?;
        let _export = self
            .locks
            .lock(&Self::export_lock_key(args.volume_id))
            .await;
        let volume = self.load_volume(args.volume_id).await?;
        let attachment = self.load_attachment(args.attachment_id).await?;
        if attachment.volume_id != volume.id {
            return Err(RemoteError::new(
                ErrorKind::InvalidInput,
                "Invalid input received: Mismatched volume and attachment",
            ));
        }
        self.notifier
            .info("volume.attach.start", volume_payload(&volume))
            .await;
        if let Err(e) = self.require_driver() {
            self.fail_attachment_update(
                context,
                &volume,
                attachment.id,
                mf::UPDATE_ATTACHMENT,
                false,
            )
            .await;
            return Err(e);
        }
        // The mode chosen at create time (3.54) wins over the connector's,
        // which Cinder still honours for older callers.
        let mut connector = args.connector;
        let chosen = access_mode(attachment.attach_mode.as_deref());
        let mode = chosen
            .or_else(|| access_mode(connector.get("mode").and_then(Value::as_str)))
            .unwrap_or("rw");
        if chosen.is_some() {
            connector.insert("mode".into(), Value::from(mode));
        }
        let info = match self
            .connection_create(&volume, &connector, Some(mode), Some(attachment.id))
            .await
        {
            Ok(info) => info,
            Err(ConnectFailure::Refused(e)) => return Err(e),
            Err(ConnectFailure::Backend(e)) => {
                tracing::error!(volume_id = %volume.id, attachment_id = %attachment.id, error = %e, "attachment update failed");
                self.fail_attachment_update(
                    context,
                    &volume,
                    attachment.id,
                    mf::UPDATE_ATTACHMENT,
                    true,
                )
                .await;
                return Err(e);
            }
        };
        let enforce_multipath = connector
            .get("enforce_multipath")
            .cloned()
            .unwrap_or(Value::Bool(false));
        let mut flat = match info.to_flat_json(Some(&attachment.id.to_string())) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        flat.insert("enforce_multipath".into(), enforce_multipath);
        let connection = AttachmentConnection {
            attached_host: connector
                .get("host")
                .and_then(Value::as_str)
                .map(str::to_owned),
            mountpoint: Some(
                connector
                    .get("mountpoint")
                    .and_then(Value::as_str)
                    .unwrap_or("na")
                    .to_owned(),
            ),
            attach_mode: mode.to_owned(),
            connector: Value::Object(connector),
            connection_info: Value::Object(flat.clone()),
        };
        match self.db.connect_attachment(attachment.id, connection).await {
            Ok(_) => Ok(flat),
            Err(e) => {
                // Deleted or moved on while we exported: nobody will use
                // this connection.
                tracing::warn!(attachment_id = %attachment.id, error = %e, "attachment changed while connecting; undoing the export");
                self.remove_export_if_unused(volume.id, Some(attachment.id))
                    .await;
                Err(match e {
                    DbError::NotFound {
                        resource: "attachment",
                        ..
                    } => attachment_not_found(attachment.id),
                    DbError::NotFound { .. } => volume_not_found(volume.id),
                    DbError::InvalidState(reason) => RemoteError::new(
                        ErrorKind::InvalidState,
                        format!("Invalid volume: {reason}"),
                    ),
                    other => db_remote(other),
                })
            }
        }
    }

    /// `attachment_delete`: ends the host's connection (unless another
    /// attachment of the same initiator still uses it), removes the export
    /// when no other attachment needs it, then removes the attachment and
    /// settles the volume. A failed terminate keeps the attachment (Cinder
    /// raises); a failed export removal does not (Cinder ignores it, and the
    /// start-up reconcile removes stale exports).
    pub(crate) async fn attachment_delete(
        &self,
        _context: &RequestContext,
        args: AttachmentDeleteArgs,
    ) -> Result<(), RemoteError> {
        let _active = self.enter_for_call()?;
        let _export = self
            .locks
            .lock(&Self::export_lock_key(args.volume_id))
            .await;
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        let attachment = match self.db.get_attachment(args.attachment_id).await {
            Ok(a) if a.volume_id == volume.id => a,
            // Already gone: deletes are idempotent.
            Ok(_) | Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        self.require_driver()?;
        self.notifier
            .info("volume.detach.start", volume_payload(&volume))
            .await;
        if let Some(connector) = attachment.connector.as_ref() {
            let own = initiator(Some(connector));
            let shared_host = own.is_some()
                && volume.attachments.iter().any(|a| {
                    a.id != attachment.id
                        && matches!(
                            a.attach_status,
                            AttachStatus::Attached | AttachStatus::Attaching
                        )
                        && initiator(a.connector.as_ref()) == own
                });
            if !shared_host {
                let connector_map = connector.as_object().cloned().unwrap_or_default();
                self.driver
                    .terminate_connection(&volume_spec(&volume), Some(&connector_map))
                    .await
                    .map_err(|e| {
                        backend_error(format!("Terminate volume connection failed: {e}"))
                    })?;
            }
            if !export_needed(&volume, Some(attachment.id))
                && let Err(e) = self.driver.remove_export(&volume_spec(&volume)).await
            {
                tracing::warn!(volume_id = %volume.id, error = %e, "failed to remove the export on detach; ignoring");
            }
        }
        let settled = self
            .db
            .detach_attachment(volume.id, Some(attachment.id))
            .await
            .map_err(db_remote)?;
        self.notifier
            .info("volume.detach.end", volume_payload(&settled))
            .await;
        Ok(())
    }

    /// The legacy `initialize_connection`: exports the volume and returns
    /// the nested connection info; attachment rows are not touched.
    pub(crate) async fn initialize_connection(
        &self,
        context: &RequestContext,
        args: InitializeConnectionArgs,
    ) -> Result<ConnectionInfo, RemoteError> {
        let _active = self.enter_for_call()?;
        let _export = self
            .locks
            .lock(&Self::export_lock_key(args.volume_id))
            .await;
        self.require_driver()?;
        let volume = self.load_volume(args.volume_id).await?;
        match self
            .connection_create(&volume, &args.connector, None, None)
            .await
        {
            Ok(mut info) => {
                let enforce = args
                    .connector
                    .get("enforce_multipath")
                    .cloned()
                    .unwrap_or(Value::Bool(false));
                info.data.insert("enforce_multipath".into(), enforce);
                Ok(info)
            }
            Err(ConnectFailure::Refused(e)) => Err(e),
            Err(ConnectFailure::Backend(e)) => {
                tracing::error!(volume_id = %volume.id, error = %e, "initialize_connection failed");
                self.record_message(
                    context,
                    &volume.project_id,
                    mf::RESOURCE_VOLUME,
                    volume.id.to_string(),
                    mf::ATTACH_VOLUME,
                    mf::ATTACH_ERROR,
                )
                .await;
                Err(e)
            }
        }
    }

    /// The legacy `terminate_connection`: ends one host's connection (the
    /// export stays; `detach_volume` or `remove_export` removes it).
    pub(crate) async fn terminate_connection(
        &self,
        _context: &RequestContext,
        args: TerminateConnectionArgs,
    ) -> Result<(), RemoteError> {
        let _active = self.enter_for_call()?;
        let _export = self
            .locks
            .lock(&Self::export_lock_key(args.volume_id))
            .await;
        self.require_driver()?;
        let volume = self.load_volume(args.volume_id).await?;
        self.driver
            .terminate_connection(&volume_spec(&volume), args.connector.as_ref())
            .await
            .map_err(|e| backend_error(format!("Terminate volume connection failed: {e}")))
    }

    /// The legacy `detach_volume`: removes the export when this was the last
    /// attachment needing it (a failure keeps the attachment, as Cinder's
    /// `RemoveExportException` does), then removes the attachment and
    /// settles the volume. No attachment, or one that is already gone, only
    /// settles the volume.
    pub(crate) async fn detach_volume(
        &self,
        _context: &RequestContext,
        args: DetachVolumeArgs,
    ) -> Result<(), RemoteError> {
        let _active = self.enter_for_call()?;
        let _export = self
            .locks
            .lock(&Self::export_lock_key(args.volume_id))
            .await;
        let volume = self.load_volume(args.volume_id).await?;
        let attachment = match args.attachment_id {
            None => None,
            Some(id) => match self.db.get_attachment(id).await {
                Ok(a) if a.volume_id == volume.id => Some(a),
                Ok(_) | Err(DbError::NotFound { .. }) => {
                    tracing::info!(volume_id = %volume.id, "detach called, but the volume is not attached");
                    None
                }
                Err(e) => return Err(db_remote(e)),
            },
        };
        let Some(attachment) = attachment else {
            self.db
                .detach_attachment(volume.id, args.attachment_id)
                .await
                .map_err(db_remote)?;
            return Ok(());
        };
        self.require_driver()?;
        self.notifier
            .info("volume.detach.start", volume_payload(&volume))
            .await;
        if !export_needed(&volume, Some(attachment.id)) {
            self.driver
                .remove_export(&volume_spec(&volume))
                .await
                .map_err(|e| {
                    RemoteError::new(
                        ErrorKind::Internal,
                        format!("Failed to remove export for volume {}: {e}", volume.id),
                    )
                })?;
        }
        let settled = self
            .db
            .detach_attachment(volume.id, Some(attachment.id))
            .await
            .map_err(db_remote)?;
        self.notifier
            .info("volume.detach.end", volume_payload(&settled))
            .await;
        Ok(())
    }

    /// `remove_export` (cast): removes the export unless an attachment or an
    /// attach under way still needs it.
    pub(crate) async fn remove_export(
        &self,
        _context: &RequestContext,
        args: RemoveExportArgs,
    ) -> Result<(), RemoteError> {
        let _active = self.enter_for_call()?;
        let _export = self
            .locks
            .lock(&Self::export_lock_key(args.volume_id))
            .await;
        if !self.health().up {
            tracing::warn!(volume_id = %args.volume_id, "driver not ready; the start-up reconcile removes the export");
            return Ok(());
        }
        self.remove_export_if_unused(args.volume_id, None).await;
        Ok(())
    }

    /// At start-up, after re-exporting attached volumes: makes the target
    /// helper's exports match the volumes that need one (in use, or with a
    /// connected attachment, or a legacy attach under way), so targets left
    /// by a crash between a detach and its export removal go away.
    pub(crate) async fn reconcile_exports(&self) {
        let volumes = match self.db.volumes_on_backend(self.host()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list this backend's volumes; exports not reconciled");
                return;
            }
        };
        let wanted: Vec<VolumeSpec> = volumes
            .iter()
            .filter(|v| v.status == VolumeStatus::InUse || export_needed(v, None))
            .map(volume_spec)
            .collect();
        match self.driver.reconcile_exports(&wanted).await {
            Ok(Some(report)) => {
                if !report.removed.is_empty() || !report.created.is_empty() {
                    tracing::info!(removed = ?report.removed, created = ?report.created, "reconciled exports");
                }
                for (volume, reason) in report.failed {
                    tracing::warn!(volume = %volume, %reason, "could not reconcile the export");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reconcile exports"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinker_types::model::Attachment;

    fn volume(status: VolumeStatus, attachments: &[AttachStatus]) -> Volume {
        let id = VolumeId::new_random();
        Volume {
            id,
            user_id: "u".into(),
            project_id: "p".into(),
            host: None,
            size: 1,
            availability_zone: "nova".into(),
            status,
            attach_status: AttachStatus::Detached,
            migration_status: None,
            display_name: None,
            display_description: None,
            provider_location: None,
            provider_auth: None,
            provider_id: None,
            volume_type_id: clinker_types::VolumeTypeId::new_random(),
            volume_type_name: None,
            snapshot_id: None,
            source_volid: None,
            bootable: false,
            multiattach: true,
            encryption_key_id: None,
            consistencygroup_id: None,
            group_id: None,
            replication_status: None,
            previous_status: None,
            service_uuid: None,
            shared_targets: None,
            use_quota: true,
            cluster_name: None,
            created_at: clinker_types::Timestamp(0),
            updated_at: None,
            scheduled_at: None,
            launched_at: None,
            metadata: Default::default(),
            admin_metadata: Default::default(),
            glance_metadata: Default::default(),
            attachments: attachments
                .iter()
                .map(|s| Attachment {
                    id: AttachmentId::new_random(),
                    volume_id: id,
                    instance_uuid: None,
                    attached_host: None,
                    mountpoint: None,
                    attach_time: None,
                    detach_time: None,
                    attach_status: *s,
                    attach_mode: None,
                    connection_info: None,
                    connector: None,
                })
                .collect(),
        }
    }

    #[test]
    fn exports_stay_while_someone_needs_them() {
        use AttachStatus as A;
        use VolumeStatus as S;
        // The last connected attachment goes: the export goes.
        let v = volume(S::InUse, &[A::Attached]);
        assert!(!export_needed(&v, Some(v.attachments[0].id)));
        // Another instance is still attached (multiattach).
        let v = volume(S::InUse, &[A::Attached, A::Attached]);
        assert!(export_needed(&v, Some(v.attachments[0].id)));
        // Only a reservation is left: nothing is connected.
        let v = volume(S::InUse, &[A::Attached, A::Reserved]);
        assert!(!export_needed(&v, Some(v.attachments[0].id)));
        // os-reserve + os-initialize_connection, no row yet.
        assert!(export_needed(&volume(S::Attaching, &[]), None));
        // An attachments-API connection being deleted is not a legacy
        // attach under way.
        let v = volume(S::Attaching, &[A::Attaching]);
        assert!(!export_needed(&v, Some(v.attachments[0].id)));
        assert!(!export_needed(&volume(S::Available, &[]), None));
    }

    #[test]
    fn modes_are_rw_or_ro_only() {
        assert_eq!(access_mode(Some("ro")), Some("ro"));
        assert_eq!(access_mode(Some("null")), None);
        assert_eq!(access_mode(None), None);
    }
}
