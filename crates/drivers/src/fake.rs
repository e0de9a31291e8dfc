//! The fake driver: no storage, every operation succeeds (Cinder's
//! `FakeLoggingVolumeDriver`, used by Tempest's reference run). It keeps the
//! names it created in memory so deletes and clones of unknown objects can
//! be told apart in tests, and can be told to fail every create to exercise
//! rescheduling.

use std::collections::BTreeSet;
use std::sync::Mutex;

use clinker_config::{BackendConfig, FakeDriverOptions, OverSubscription};
use clinker_types::connection::{ConnectionInfo, Connector};
use serde_json::{Map, Value, json};

use crate::{DriverError, ModelUpdate, SnapshotSpec, VolumeDriver, VolumeSpec};

/// The fake driver.
#[derive(Debug)]
pub struct FakeDriver {
    backend_name: String,
    options: FakeDriverOptions,
    reserved_percentage: u8,
    max_over_subscription_ratio: f64,
    objects: Mutex<BTreeSet<String>>,
}

impl FakeDriver {
    /// A fake backend.
    pub fn new(backend: &BackendConfig, options: FakeDriverOptions) -> Self {
        Self {
            backend_name: backend.volume_backend_name.clone(),
            options,
            reserved_percentage: backend.reserved_percentage,
            max_over_subscription_ratio: match backend.max_over_subscription_ratio {
                OverSubscription::Ratio(r) => r,
                OverSubscription::Auto => 1.0,
            },
            objects: Mutex::new(BTreeSet::new()),
        }
    }

    fn insert(&self, name: &str) {
        if let Ok(mut o) = self.objects.lock() {
            o.insert(name.to_owned());
        }
    }

    fn remove(&self, name: &str) {
        if let Ok(mut o) = self.objects.lock() {
            o.remove(name);
        }
    }

    fn fail_if_told(&self) -> Result<(), DriverError> {
        if self.options.fail_create {
            return Err(DriverError::Backend(
                "fake backend configured to fail creates".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl VolumeDriver for FakeDriver {
    fn driver_name(&self) -> &'static str {
        "fake"
    }

    async fn do_setup(&self) -> Result<(), DriverError> {
        Ok(())
    }

    async fn check_for_setup_error(&self) -> Result<(), DriverError> {
        Ok(())
    }

    async fn get_volume_stats(&self) -> Result<Map<String, Value>, DriverError> {
        let (total, free) = if self.options.capacity_gb > 0.0 {
            (
                json!(self.options.capacity_gb),
                json!(self.options.capacity_gb),
            )
        } else {
            (json!("infinite"), json!("infinite"))
        };
        let count = self
            .objects
            .lock()
            .map(|o| o.iter().filter(|n| n.starts_with("volume-")).count())
            .unwrap_or(0);
        let mut report = Map::new();
        report.insert("volume_backend_name".into(), json!(self.backend_name));
        report.insert("vendor_name".into(), json!("Open Source"));
        report.insert("driver_version".into(), json!("1.0"));
        report.insert("storage_protocol".into(), json!("fake"));
        report.insert("online_extend_support".into(), json!(true));
        report.insert(
            "pools".into(),
            json!([{
                "pool_name": self.backend_name,
                "total_capacity_gb": total,
                "free_capacity_gb": free,
                "reserved_percentage": self.reserved_percentage,
                "provisioned_capacity_gb": 0,
                "max_over_subscription_ratio": self.max_over_subscription_ratio,
                "thin_provisioning_support": true,
                "thick_provisioning_support": true,
                "total_volumes": count,
                "multiattach": true,
                "QoS_support": false,
                "backend_state": "up",
            }]),
        );
        Ok(report)
    }

    async fn create_volume(&self, volume: &VolumeSpec) -> Result<ModelUpdate, DriverError> {
        self.fail_if_told()?;
        self.insert(&volume.name);
        Ok(ModelUpdate::default())
    }

    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        _snapshot: &SnapshotSpec,
    ) -> Result<ModelUpdate, DriverError> {
        self.fail_if_told()?;
        self.insert(&volume.name);
        Ok(ModelUpdate::default())
    }

    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        _source: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError> {
        self.fail_if_told()?;
        self.insert(&volume.name);
        Ok(ModelUpdate::default())
    }

    async fn delete_volume(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        self.remove(&volume.name);
        Ok(())
    }

    /// The temporary volume's name becomes the migrated volume's.
    async fn update_migrated_volume(
        &self,
        volume: &VolumeSpec,
        new_volume: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError> {
        self.remove(&new_volume.name);
        self.insert(&volume.name);
        Ok(ModelUpdate::default())
    }

    async fn extend_volume(
        &self,
        _volume: &VolumeSpec,
        _new_size_gb: i64,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    async fn create_snapshot(&self, snapshot: &SnapshotSpec) -> Result<ModelUpdate, DriverError> {
        self.insert(&snapshot.name);
        Ok(ModelUpdate::default())
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> Result<(), DriverError> {
        self.remove(&snapshot.name);
        Ok(())
    }

    /// Nothing to revert: the fake backend keeps no data.
    async fn revert_to_snapshot(
        &self,
        _volume: &VolumeSpec,
        _snapshot: &SnapshotSpec,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    async fn create_export(
        &self,
        _volume: &VolumeSpec,
        _connector: &Connector,
    ) -> Result<ModelUpdate, DriverError> {
        Ok(ModelUpdate::default())
    }

    async fn ensure_export(&self, _volume: &VolumeSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn remove_export(&self, _volume: &VolumeSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        _connector: &Connector,
    ) -> Result<ConnectionInfo, DriverError> {
        let mut data = Map::new();
        data.insert("volume_id".into(), json!(volume.id.to_string()));
        Ok(ConnectionInfo {
            driver_volume_type: "fake".into(),
            data,
        })
    }

    async fn terminate_connection(
        &self,
        _volume: &VolumeSpec,
        _connector: Option<&Connector>,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    async fn list_volume_names(&self) -> Result<Option<Vec<String>>, DriverError> {
        // Fake objects do not survive a restart; there is nothing to reconcile.
        Ok(None)
    }
}
