//! The `fake` target helper (Cinder's `cinder/volume/targets/fake.py`):
//! exports nothing, yet answers like an iSCSI target — `provider_location`,
//! generated CHAP credentials and the iSCSI `connection_info` with
//! `(tid, lun) = (0, 0)` — so API-level tests can attach without a target.

use std::path::Path;

use clinker_config::TargetConfig;

use super::{ChapCredentials, IscsiSettings, TargetHelper};
use crate::{DriverError, VolumeSpec};

/// The fake helper.
#[derive(Debug)]
pub struct FakeTarget {
    settings: IscsiSettings,
}

impl FakeTarget {
    /// A fake helper with a backend's target options.
    pub fn new(config: &TargetConfig) -> Self {
        Self {
            settings: IscsiSettings::from_config(config),
        }
    }
}

#[async_trait::async_trait]
impl TargetHelper for FakeTarget {
    fn helper_name(&self) -> &'static str {
        "fake"
    }

    fn settings(&self) -> &IscsiSettings {
        &self.settings
    }

    fn lun(&self) -> u32 {
        0
    }

    async fn create_iscsi_target(
        &self,
        _volume: &VolumeSpec,
        _iqn: &str,
        _path: &Path,
        _chap: &ChapCredentials,
    ) -> Result<String, DriverError> {
        Ok("0".into())
    }

    async fn remove_iscsi_target(&self, _volume_name: &str, _iqn: &str) -> Result<(), DriverError> {
        Ok(())
    }

    async fn list_targets(&self) -> Result<Vec<super::ListedTarget>, DriverError> {
        Ok(Vec::new())
    }

    async fn target_is_complete(&self, _iqn: &str) -> Result<bool, DriverError> {
        Ok(true)
    }

    async fn reconcile_targets(
        &self,
        _wanted: &[super::WantedExport],
        _backing_root: &Path,
    ) -> Result<super::ReconcileReport, DriverError> {
        Ok(super::ReconcileReport::default())
    }
}
