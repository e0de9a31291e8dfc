//! Changing a volume's type (Cinder's `VolumeManager.retype`).
//!
//! The scheduler has checked the volume's pool against the new type and
//! cast the retype here with the pool it chose. When that is this backend
//! and the types differ only in what the driver accepts
//! ([`clinker_drivers::VolumeDriver::retype`]), the type changes in place:
//! one transaction changes the type, moves the per-type quota usage and
//! restores the status. Otherwise a migration would be needed; with
//! `migration_policy = never` the retype is abandoned (status restored,
//! user message), and `on-demand` migrates the volume to the pool the
//! scheduler chose (`crate::migration`), which applies the new type when
//! it completes.

use clinker_db::DbError;
use clinker_drivers::RetypeDiff;
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{MigrationPolicy, RetypeArgs};
use clinker_types::message_field::{self as mf, Detail};
use clinker_types::model::{Volume, VolumeType};
use clinker_types::{Host, RemoteError, VolumeStatus};

use crate::manager::{VolumeManager, db_remote, volume_spec};
use crate::usage::volume_payload;

/// What differs between two types (Cinder's `volume_types_diff`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TypeDiff {
    /// Extra specs and backend QoS, for the driver.
    pub(crate) driver: RetypeDiff,
    /// Whether the encryption specs differ (never changed in place).
    pub(crate) encryption_changed: bool,
}

impl TypeDiff {
    /// Nothing differs: the retype is only a change of the type's name.
    pub(crate) fn is_empty(&self) -> bool {
        self.driver.is_empty() && !self.encryption_changed
    }
}

impl VolumeManager {
    /// Compares a volume's current type with the new one.
    pub(crate) async fn type_diff(
        &self,
        old: Option<&VolumeType>,
        new: &VolumeType,
    ) -> Result<TypeDiff, DbError> {
        let mut diff = TypeDiff::default();
        let empty = std::collections::BTreeMap::new();
        let old_specs = old.map_or(&empty, |t| &t.extra_specs);
        for key in old_specs.keys().chain(new.extra_specs.keys()) {
            let (before, after) = (old_specs.get(key), new.extra_specs.get(key));
            if before != after {
                diff.driver
                    .extra_specs
                    .insert(key.clone(), (before.cloned(), after.cloned()));
            }
        }
        let old_qos = old.and_then(|t| t.qos_specs_id.clone());
        if old_qos != new.qos_specs_id {
            diff.driver.backend_qos_changed = self.backend_qos(old_qos.as_deref()).await?
                != self.backend_qos(new.qos_specs_id.as_deref()).await?;
        }
        let old_encryption = match old {
            Some(t) => self.db.get_type_encryption(t.id).await?,
            None => None,
        };
        let new_encryption = self.db.get_type_encryption(new.id).await?;
        let facts = |e: Option<clinker_types::volume_type_extras::VolumeTypeEncryption>| {
            e.map(|e| (e.provider, e.cipher, e.key_size, e.control_location))
        };
        diff.encryption_changed = facts(old_encryption) != facts(new_encryption);
        Ok(diff)
    }

    /// The specs the backend enforces from the QoS specs `id` (none for
    /// front-end-only specs).
    async fn backend_qos(
        &self,
        id: Option<&str>,
    ) -> Result<Option<std::collections::BTreeMap<String, Option<String>>>, DbError> {
        let Some(id) = id.and_then(|i| i.parse().ok()) else {
            return Ok(None);
        };
        match self.db.get_qos_specs(id).await {
            Ok(q) if q.consumer.is_back_end() => Ok(Some(q.specs)),
            Ok(_) | Err(DbError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Moves a `retyping` volume to the new type in place, or hands it to
    /// a migration when allowed, or abandons it.
    pub(crate) async fn retype(
        &self,
        context: &RequestContext,
        args: RetypeArgs,
    ) -> Result<(), RemoteError> {
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Retyping {
            return Ok(());
        }
        let new_type = match self.db.get_volume_type(args.new_type_id).await {
            Ok(t) => t,
            Err(DbError::NotFound { .. }) => {
                return self
                    .abandon_retype(context, &volume, mf::UNKNOWN_ERROR)
                    .await;
            }
            Err(e) => return Err(db_remote(e)),
        };
        let old_type = match self.db.get_volume_type(volume.volume_type_id).await {
            Ok(t) => Some(t),
            Err(DbError::NotFound { .. }) => None,
            Err(e) => return Err(db_remote(e)),
        };
        let diff = self
            .type_diff(old_type.as_ref(), &new_type)
            .await
            .map_err(db_remote)?;
        let here = args
            .host
            .parse::<Host>()
            .map(|h| h.service_host())
            .unwrap_or_else(|_| args.host.clone())
            == self.host();
        let retyped = if diff.is_empty() {
            true
        } else if here && !diff.encryption_changed && self.driver_ready().is_ok() {
            match self
                .driver
                .retype(&volume_spec(&volume), &diff.driver)
                .await
            {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Cinder falls back to a migration on a driver error.
                    tracing::warn!(volume_id = %volume.id, error = %e, "driver failed to retype in place");
                    false
                }
            }
        } else {
            false
        };
        if !retyped {
            return match args.migration_policy {
                MigrationPolicy::Never => {
                    tracing::info!(volume_id = %volume.id, "retype requires migration but is not allowed");
                    self.abandon_retype(context, &volume, mf::RETYPE_REQUIRES_MIGRATION)
                        .await
                }
                MigrationPolicy::OnDemand => self.migrate_for_retype(context, &volume, &args).await,
            };
        }
        match self.db.finish_volume_retype(volume.id, new_type.id).await {
            Ok(done) => {
                tracing::info!(volume_id = %volume.id, new_type = %new_type.name, "volume retyped in place");
                self.notifier
                    .info("volume.retype", volume_payload(&done))
                    .await;
                Ok(())
            }
            // The new type's quota filled up since the API checked it.
            Err(DbError::OverQuota(over)) => {
                tracing::warn!(volume_id = %volume.id, resource = %over.resource, "retype refused by quota");
                self.abandon_retype(context, &volume, mf::QUOTA_EXCEED)
                    .await
            }
            Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => Ok(()),
            Err(e) => Err(db_remote(e)),
        }
    }

    /// Restores the volume's status without changing its type, with a
    /// user message saying why.
    pub(crate) async fn abandon_retype(
        &self,
        context: &RequestContext,
        volume: &Volume,
        detail: Detail,
    ) -> Result<(), RemoteError> {
        match self.db.abort_volume_retype(volume.id).await {
            Ok(_) => {}
            Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        }
        self.record_message(
            context,
            &volume.project_id,
            mf::RESOURCE_VOLUME,
            volume.id.to_string(),
            mf::RETYPE_VOLUME,
            detail,
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use clinker_db::NewVolumeType;
    use clinker_rpc::RequestContext;
    use clinker_rpc::volume::{MigrationPolicy, RetypeArgs};
    use clinker_types::VolumeStatus;
    use clinker_types::volume_type_extras::QosConsumer;

    use crate::test_support::{TestDriver, TestManager};

    async fn new_type(
        t: &TestManager,
        name: &str,
        specs: &[(&str, &str)],
    ) -> clinker_types::VolumeTypeId {
        t.db.create_volume_type(NewVolumeType {
            name: name.into(),
            description: None,
            is_public: true,
            extra_specs: specs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
        .await
        .unwrap()
        .id
    }

    async fn run(
        t: &TestManager,
        volume: clinker_types::VolumeId,
        new_type: clinker_types::VolumeTypeId,
        policy: MigrationPolicy,
    ) {
        t.db.begin_volume_retype(volume, new_type, serde_json::json!({}))
            .await
            .unwrap();
        let args = RetypeArgs {
            volume_id: volume,
            new_type_id: new_type,
            host: t.pool.clone(),
            migration_policy: policy,
        };
        t.manager
            .retype(&RequestContext::internal("test"), args)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn scheduler_level_differences_retype_in_place() {
        let t = TestManager::new(TestDriver::Fake).await;
        let gold = new_type(
            &t,
            "gold",
            &[
                ("volume_backend_name", "fake"),
                ("multiattach", "<is> True"),
            ],
        )
        .await;
        let volume = t.volume("__DEFAULT__").await;
        run(&t, volume, gold, MigrationPolicy::Never).await;
        let v = t.db.get_volume(volume).await.unwrap();
        assert_eq!(
            (v.status, v.volume_type_id),
            (VolumeStatus::Available, gold)
        );
        assert!(v.multiattach);
        assert!(
            t.db.journal_for_backend("node1@fake")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(t.messages(volume).await.is_empty());
    }

    #[tokio::test]
    async fn backend_specific_changes_need_a_migration() {
        let t = TestManager::new(TestDriver::Fake).await;
        let thick = new_type(&t, "thick", &[("provisioning:type", "thick")]).await;
        let volume = t.volume("__DEFAULT__").await;
        let original = t.db.get_volume(volume).await.unwrap().volume_type_id;
        run(&t, volume, thick, MigrationPolicy::Never).await;
        let v = t.db.get_volume(volume).await.unwrap();
        assert_eq!(
            (v.status, v.volume_type_id),
            (VolumeStatus::Available, original)
        );
        // on-demand to the volume's own backend has nowhere to migrate.
        run(&t, volume, thick, MigrationPolicy::OnDemand).await;
        let v = t.db.get_volume(volume).await.unwrap();
        assert_eq!(
            (v.status, v.volume_type_id),
            (VolumeStatus::Available, original)
        );
        assert_eq!(
            t.messages(volume).await,
            [
                "retype volume:Retype requires migration but is not allowed.",
                "retype volume:Retype requires migration but is not allowed."
            ]
        );
    }

    #[tokio::test]
    async fn back_end_qos_and_encryption_differences_are_seen() {
        let t = TestManager::new(TestDriver::Fake).await;
        let plain = t.db.get_volume_type_by_name("__DEFAULT__").await.unwrap();
        let limited = new_type(&t, "limited", &[]).await;
        let qos =
            t.db.create_qos_specs(clinker_db::NewQosSpecs {
                name: "iops".into(),
                consumer: QosConsumer::BackEnd,
                specs: BTreeMap::from([("total_iops_sec".to_owned(), "100".to_owned())]),
            })
            .await
            .unwrap();
        t.db.associate_qos_specs(qos.id, limited).await.unwrap();
        let limited = t.db.get_volume_type(limited).await.unwrap();
        let diff = t.manager.type_diff(Some(&plain), &limited).await.unwrap();
        assert!(diff.driver.backend_qos_changed && !diff.driver.is_backend_neutral());
        // Front-end specs are the hypervisor's business, not the backend's.
        t.db.update_qos_specs(qos.id, Some(QosConsumer::FrontEnd), &BTreeMap::new())
            .await
            .unwrap();
        let diff = t.manager.type_diff(Some(&plain), &limited).await.unwrap();
        assert!(diff.is_empty(), "{diff:?}");
        // Encryption differences are never changed in place.
        t.db.create_type_encryption(
            limited.id,
            clinker_db::NewEncryption {
                provider: "luks".into(),
                cipher: None,
                key_size: None,
                control_location: clinker_types::volume_type_extras::ControlLocation::FrontEnd,
            },
        )
        .await
        .unwrap();
        let diff = t.manager.type_diff(Some(&plain), &limited).await.unwrap();
        assert!(diff.encryption_changed && !diff.is_empty());
        let volume = t.volume("__DEFAULT__").await;
        run(&t, volume, limited.id, MigrationPolicy::Never).await;
        assert_eq!(
            t.db.get_volume(volume).await.unwrap().volume_type_id,
            plain.id
        );
    }

    #[tokio::test]
    async fn an_interrupted_retype_is_abandoned_at_start_up() {
        let t = TestManager::new(TestDriver::Fake).await;
        let gold = new_type(&t, "gold", &[]).await;
        let volume = t.volume("__DEFAULT__").await;
        t.db.begin_volume_retype(volume, gold, serde_json::json!({}))
            .await
            .unwrap();
        t.manager
            .recover(&RequestContext::internal("test"), None)
            .await;
        let v = t.db.get_volume(volume).await.unwrap();
        assert_eq!(v.status, VolumeStatus::Available);
        assert_ne!(v.volume_type_id, gold);
        assert_eq!(
            t.messages(volume).await,
            ["retype volume:The volume service restarted during the operation."]
        );
    }
}
