//! Prometheus metrics: the names Clinker records, declared once, and the
//! process-wide recorder behind `[metrics] listen`.
//!
//! Code records through the `metrics` facade (a no-op until
//! [`install_prometheus`] has run, so a process with metrics off pays a
//! relaxed atomic load per call). Labels are bounded: route templates,
//! method names, statuses, hosts and pools from the configuration — never
//! an id.

use std::sync::OnceLock;

pub use metrics::{counter, gauge, histogram};
pub use metrics_exporter_prometheus::PrometheusHandle;

/// API requests: `route` (template), `method`, `status`.
pub const API_REQUESTS: &str = "clinker_api_requests_total";
/// API request latency in seconds: `route`, `method`.
pub const API_REQUEST_SECONDS: &str = "clinker_api_request_duration_seconds";
/// RPC messages sent: `topic`, `method`, `kind` (`call`, `cast`,
/// `fanout`), `outcome` (`ok` or the error kind).
pub const RPC_MESSAGES: &str = "clinker_rpc_messages_total";
/// RPC send (cast) or round-trip (call) latency in seconds: `topic`,
/// `method`, `kind`.
pub const RPC_SECONDS: &str = "clinker_rpc_duration_seconds";
/// RPC messages served: `topic`, `method`, `outcome`.
pub const RPC_SERVED: &str = "clinker_rpc_served_total";
/// RPC handling time in seconds: `topic`, `method`.
pub const RPC_SERVED_SECONDS: &str = "clinker_rpc_served_duration_seconds";
/// Volumes by `status`.
pub const VOLUMES: &str = "clinker_volumes";
/// Snapshots by `status`.
pub const SNAPSHOTS: &str = "clinker_snapshots";
/// Unfinished operations in the journal (`workers` table).
pub const JOURNAL_BACKLOG: &str = "clinker_journal_backlog";
/// Pool capacity in bytes (the reports' GiB × 2³⁰): `pool` (`host@backend#pool`), `kind` (`total`,
/// `free`, `allocated`, `provisioned`).
pub const POOL_CAPACITY_BYTES: &str = "clinker_pool_capacity_bytes";
/// Seconds since a service's last heartbeat: `binary`, `host`.
pub const HEARTBEAT_AGE_SECONDS: &str = "clinker_service_heartbeat_age_seconds";
/// Database write transactions, after their retries: `outcome` (`commit`,
/// or the error kind that rolled it back).
pub const DB_TRANSACTIONS: &str = "clinker_db_transactions_total";
/// Database transaction attempts run again after a serialization
/// failure, deadlock or busy database.
pub const DB_TRANSACTION_RETRIES: &str = "clinker_db_transaction_retries_total";
/// Seconds spent waiting for a database connection: `pool` (`write`,
/// `read`).
pub const DB_POOL_WAIT_SECONDS: &str = "clinker_db_pool_wait_duration_seconds";
/// Volume driver operations: `operation` (the `VolumeDriver` method),
/// `outcome` (`ok` or the error kind).
pub const DRIVER_OPERATIONS: &str = "clinker_driver_operations_total";
/// Volume driver operation time in seconds: `operation`.
pub const DRIVER_OPERATION_SECONDS: &str = "clinker_driver_operation_duration_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls
/// return the same handle) and describes every metric.
///
/// # Errors
/// Another recorder was installed first.
pub fn install_prometheus() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    // Latency buckets from 1 ms to 60 s: API and RPC calls span both.
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&buckets)
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    if HANDLE.set(handle.clone()).is_err() {
        // Lost a race with another installer: use theirs.
        return HANDLE
            .get()
            .cloned()
            .ok_or_else(|| "no recorder".to_owned());
    }
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        API_REQUESTS,
        "API requests by route template, method and status."
    );
    describe_histogram!(API_REQUEST_SECONDS, Unit::Seconds, "API request latency.");
    describe_counter!(
        RPC_MESSAGES,
        "RPC messages sent, by method, kind and outcome."
    );
    describe_histogram!(
        RPC_SECONDS,
        Unit::Seconds,
        "RPC cast send and call round-trip time."
    );
    describe_counter!(RPC_SERVED, "RPC messages served, by method and outcome.");
    describe_histogram!(RPC_SERVED_SECONDS, Unit::Seconds, "RPC handling time.");
    describe_gauge!(VOLUMES, "Volumes by status.");
    describe_gauge!(SNAPSHOTS, "Snapshots by status.");
    describe_gauge!(
        JOURNAL_BACKLOG,
        "Unfinished operations in the operation journal."
    );
    describe_gauge!(
        POOL_CAPACITY_BYTES,
        Unit::Bytes,
        "Pool capacity in bytes by kind."
    );
    describe_gauge!(
        HEARTBEAT_AGE_SECONDS,
        Unit::Seconds,
        "Seconds since the service's last heartbeat."
    );
    describe_counter!(
        DB_TRANSACTIONS,
        "Database write transactions by outcome, after retries."
    );
    describe_counter!(
        DB_TRANSACTION_RETRIES,
        "Database transaction attempts retried after a conflict."
    );
    describe_histogram!(
        DB_POOL_WAIT_SECONDS,
        Unit::Seconds,
        "Time spent waiting for a database connection."
    );
    describe_counter!(
        DRIVER_OPERATIONS,
        "Volume driver operations by operation and outcome."
    );
    describe_histogram!(
        DRIVER_OPERATION_SECONDS,
        Unit::Seconds,
        "Volume driver operation time."
    );
}
