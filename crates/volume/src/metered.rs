//! The backend's driver as the manager holds it: every `VolumeDriver`
//! operation counted by name and outcome and timed for the metrics
//! endpoint (`clinker_driver_operations_total`,
//! `clinker_driver_operation_duration_seconds`). Labels are the method
//! name and `ok` or the error kind: bounded, never an id.
//!
//! Every trait method is forwarded here, including those with a default
//! body, so a driver's own implementation is always the one that runs; a
//! method added to `VolumeDriver` must be added to the list below too.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use clinker_drivers::targets::ReconcileReport;
use clinker_drivers::{
    DriverError, ImageLocations, ImageSink, ImageSource, LocalDevice, ManageRef, ManageableObject,
    ModelUpdate, RetypeDiff, SnapshotSpec, VolumeDriver, VolumeSpec,
};
use clinker_runtime::metrics;
use clinker_types::connection::{ConnectionInfo, Connector};
use serde_json::{Map, Value};

/// A driver whose operations are measured.
#[derive(Debug)]
pub(crate) struct MeteredDriver {
    inner: Arc<dyn VolumeDriver>,
}

impl MeteredDriver {
    pub(crate) fn new(inner: Arc<dyn VolumeDriver>) -> Self {
        Self { inner }
    }
}

fn record(operation: &'static str, started: Instant, error: Option<&DriverError>) {
    metrics::histogram!(metrics::DRIVER_OPERATION_SECONDS, "operation" => operation)
        .record(started.elapsed());
    let outcome = error.map_or("ok", |e| e.kind().label());
    metrics::counter!(
        metrics::DRIVER_OPERATIONS,
        "operation" => operation,
        "outcome" => outcome
    )
    .increment(1);
}

/// The `VolumeDriver` impl: the synchronous methods forwarded as they
/// are, each `async fn name(args) -> Result<T, DriverError>` forwarded and
/// measured.
macro_rules! metered_driver {
    ($(async fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ok:ty;)*) => {
        #[async_trait::async_trait]
        impl VolumeDriver for MeteredDriver {
            fn driver_name(&self) -> &'static str {
                self.inner.driver_name()
            }

            fn validate_connector(&self, connector: &Connector) -> Result<(), DriverError> {
                self.inner.validate_connector(connector)
            }

            fn report_discard_supported(&self) -> bool {
                self.inner.report_discard_supported()
            }

            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ok, DriverError> {
                    let started = Instant::now();
                    let result = self.inner.$name($($arg),*).await;
                    record(stringify!($name), started, result.as_ref().err());
                    result
                }
            )*
        }
    };
}

metered_driver! {
    async fn do_setup(&self) -> ();
    async fn check_for_setup_error(&self) -> ();
    async fn get_volume_stats(&self) -> Map<String, Value>;
    async fn create_volume(&self, volume: &VolumeSpec) -> ModelUpdate;
    async fn create_volume_from_snapshot(&self, volume: &VolumeSpec, snapshot: &SnapshotSpec) -> ModelUpdate;
    async fn create_cloned_volume(&self, volume: &VolumeSpec, source: &VolumeSpec) -> ModelUpdate;
    async fn delete_volume(&self, volume: &VolumeSpec) -> ();
    async fn extend_volume(&self, volume: &VolumeSpec, new_size_gb: i64) -> ();
    async fn create_snapshot(&self, snapshot: &SnapshotSpec) -> ModelUpdate;
    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> ();
    async fn create_export(&self, volume: &VolumeSpec, connector: &Connector) -> ModelUpdate;
    async fn ensure_export(&self, volume: &VolumeSpec) -> ();
    async fn remove_export(&self, volume: &VolumeSpec) -> ();
    async fn initialize_connection(&self, volume: &VolumeSpec, connector: &Connector) -> ConnectionInfo;
    async fn terminate_connection(&self, volume: &VolumeSpec, connector: Option<&Connector>) -> ();
    async fn list_volume_names(&self) -> Option<Vec<String>>;
    async fn local_device(&self, volume: &VolumeSpec) -> Option<LocalDevice>;
    async fn image_sink(&self, volume: &VolumeSpec) -> Option<Box<dyn ImageSink>>;
    async fn image_overwrite_sink(&self, volume: &VolumeSpec) -> Option<Box<dyn ImageSink>>;
    async fn image_source(&self, volume: &VolumeSpec) -> Option<ImageSource>;
    async fn clone_image(&self, volume: &VolumeSpec, image: &ImageLocations) -> Option<ModelUpdate>;
    async fn revert_to_snapshot(&self, volume: &VolumeSpec, snapshot: &SnapshotSpec) -> ();
    async fn retype(&self, volume: &VolumeSpec, diff: &RetypeDiff) -> bool;
    async fn update_migrated_volume(&self, volume: &VolumeSpec, new_volume: &VolumeSpec) -> ModelUpdate;
    async fn manage_existing_get_size(&self, volume: &VolumeSpec, reference: &ManageRef) -> i64;
    async fn manage_existing(&self, volume: &VolumeSpec, reference: &ManageRef) -> ModelUpdate;
    async fn manage_existing_snapshot_get_size(&self, snapshot: &SnapshotSpec, reference: &ManageRef) -> i64;
    async fn manage_existing_snapshot(&self, snapshot: &SnapshotSpec, reference: &ManageRef) -> ModelUpdate;
    async fn get_manageable_volumes(&self, managed_ids: &HashSet<String>) -> Vec<ManageableObject>;
    async fn get_manageable_snapshots(&self, managed_ids: &HashSet<String>) -> Vec<ManageableObject>;
    async fn unmanage(&self, volume: &VolumeSpec) -> String;
    async fn unmanage_snapshot(&self, snapshot: &SnapshotSpec) -> String;
    async fn reconcile_exports(&self, exported: &[VolumeSpec]) -> Option<ReconcileReport>;
}
