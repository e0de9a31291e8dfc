//! Clinker's scheduler (Cinder's `cinder-scheduler`).
//!
//! Volume services report their capabilities by fanout; the
//! [`host_manager::HostManager`] keeps the latest report of each. A create
//! runs Cinder's filters (`AvailabilityZoneFilter`, `CapacityFilter`,
//! `CapabilitiesFilter`) and weighers (`CapacityWeigher`) over the pools of
//! up, enabled services, then claims the chosen pool's capacity in the
//! database ([`clinker_db::CapacityRepository::claim_volume_placement`]) so
//! several schedulers and concurrent requests can never over-commit a pool,
//! and casts the work to that backend.
//!
//! Depends on `clinker-types`, `clinker-config`, `clinker-runtime`,
//! `clinker-db` and `clinker-rpc`; never on drivers.

pub mod filters;
pub mod host_manager;
pub mod manager;
pub mod weighers;

pub use manager::{SchedulerManager, SchedulerOptions};
