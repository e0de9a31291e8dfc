//! The scheduler manager (Cinder's `scheduler/manager.py` with the
//! `FilterScheduler`): places volumes, claims their capacity in the
//! database, and casts the work to the chosen backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clinker_db::{ClaimOutcome, DbError, DbHandle};
use clinker_rpc::RequestContext;
use clinker_rpc::notify::Notifier;
use clinker_rpc::scheduler::{
    GetPoolsArgs, ScheduleCreateVolumeArgs, ScheduleExtendVolumeArgs, UpdateServiceCapabilitiesArgs,
};
use clinker_rpc::volume::{CreateVolumeArgs, ExtendVolumeArgs, VolumeRpcClient};
use clinker_types::message_field::{self as mf, Action, Detail};
use clinker_types::request_spec::{FilterProperties, RequestSpec, RetryState};
use clinker_types::{Clock, ErrorKind, Host, RemoteError, VolumeId, VolumeStatus};
use serde_json::{Value, json};

use crate::filters::{CapabilitiesFilter, Filter, FilterRequest, PoolState};

mod groups;
mod migrate;
mod retype;
use crate::host_manager::{HostManager, claim_limit_gb};
use crate::weighers::{Weigher, order_by_weight};

/// How long a create waits for a backend whose heartbeat is fresh but whose
/// queue cannot be reached (no consumer, broker away) before trying the next
/// backend. A broker restart takes services a few seconds to re-declare.
pub const UNREACHABLE_BACKEND_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Scheduler settings from the configuration.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// `scheduler_max_attempts`.
    pub max_attempts: u32,
    /// `service_down_time` seconds.
    pub service_down_time: u64,
    /// `message_ttl` seconds.
    pub message_ttl: u64,
    /// `scheduler_driver_init_wait_time`: how long a starting scheduler
    /// waits for its first capability report before placing anything.
    pub init_wait: Duration,
}

/// The scheduler manager.
pub struct SchedulerManager {
    db: DbHandle,
    volume_rpc: VolumeRpcClient,
    notifier: Notifier,
    host_manager: HostManager,
    filters: Vec<Box<dyn Filter>>,
    weighers: Vec<Box<dyn Weigher>>,
    options: SchedulerOptions,
    clock: Arc<dyn Clock>,
    started: tokio::time::Instant,
    /// The volume services, re-read at most every second: they change on
    /// the scale of heartbeats, and a burst of creates need not read them
    /// once per volume. Pool claims are always read fresh.
    services_cache:
        std::sync::Mutex<Option<(tokio::time::Instant, Vec<clinker_types::model::Service>)>>,
}

impl std::fmt::Debug for SchedulerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerManager")
            .field("filters", &self.filters)
            .field("options", &self.options)
            .finish()
    }
}

/// Why a volume could not be placed.
enum Placement {
    /// Placed and cast.
    Done,
    /// The volume is gone or placed elsewhere: nothing to do.
    NotWaiting,
    /// No pool could take it.
    NoValidBackend(String),
}

impl SchedulerManager {
    /// A manager.
    pub fn new(
        db: DbHandle,
        volume_rpc: VolumeRpcClient,
        notifier: Notifier,
        filters: Vec<Box<dyn Filter>>,
        weighers: Vec<Box<dyn Weigher>>,
        options: SchedulerOptions,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            volume_rpc,
            notifier,
            host_manager: HostManager::new(),
            filters,
            weighers,
            options,
            clock,
            started: tokio::time::Instant::now(),
            services_cache: std::sync::Mutex::new(None),
        }
    }

    /// The capability cache.
    pub fn host_manager(&self) -> &HostManager {
        &self.host_manager
    }

    fn internal(e: impl std::fmt::Display, kind: ErrorKind) -> RemoteError {
        RemoteError::new(kind, e.to_string())
    }

    fn db_error(e: DbError) -> RemoteError {
        RemoteError::new(e.kind(), e.to_string())
    }

    /// Waits (bounded by `init_wait` from start-up) for the first report, so
    /// a scheduler that just started does not fail requests it could serve
    /// a moment later.
    async fn wait_until_ready(&self) {
        if self.host_manager.report_count() > 0 {
            return;
        }
        let deadline = self.started + self.options.init_wait;
        let _ = tokio::time::timeout_at(deadline, self.host_manager.wait_for_report()).await;
    }

    async fn volume_services(&self) -> Result<Vec<clinker_types::model::Service>, RemoteError> {
        let now = tokio::time::Instant::now();
        if let Ok(cache) = self.services_cache.lock()
            && let Some((at, services)) = cache.as_ref()
            && now.duration_since(*at) < Duration::from_secs(1)
        {
            return Ok(services.clone());
        }
        let services = self
            .db
            .list_services(None, Some("cinder-volume"))
            .await
            .map_err(Self::db_error)?;
        if let Ok(mut cache) = self.services_cache.lock() {
            *cache = Some((now, services.clone()));
        }
        Ok(services)
    }

    async fn current_pools(&self) -> Result<Vec<PoolState>, RemoteError> {
        let services = self.volume_services().await?;
        let allocations = self.db.pool_allocations().await.map_err(Self::db_error)?;
        Ok(self.host_manager.pools(
            &services,
            &allocations,
            self.clock.now(),
            self.options.service_down_time,
        ))
    }

    fn filter_request(spec: &RequestSpec) -> FilterRequest {
        FilterRequest {
            size: spec.size,
            availability_zone: spec.availability_zone.clone(),
            availability_zones: spec.availability_zones.clone(),
            extra_specs: spec.volume_type.extra_specs.clone(),
            extend_attached: false,
        }
    }

    /// Filters and weighs the candidate pools for a request, best first.
    async fn candidates(
        &self,
        spec: &RequestSpec,
        retry: &RetryState,
    ) -> Result<Vec<PoolState>, RemoteError> {
        let request = Self::filter_request(spec);
        let pinned: Option<Host> = spec
            .resource_backend
            .as_deref()
            .and_then(|h| h.parse().ok());
        let pools: Vec<PoolState> = self
            .current_pools()
            .await?
            .into_iter()
            .filter(|p| !retry.backends.contains(&p.host))
            .filter(|p| match &pinned {
                None => true,
                Some(pin) if pin.pool.is_some() => p.host == pin.to_string(),
                Some(pin) => p.service_host == pin.service_host(),
            })
            .filter(|p| self.filters.iter().all(|f| f.passes(p, &request)))
            .collect();
        Ok(order_by_weight(pools, &request, &self.weighers))
    }

    async fn place_volume(
        &self,
        context: &RequestContext,
        args: &ScheduleCreateVolumeArgs,
    ) -> Result<Placement, RemoteError> {
        let spec = &args.request_spec;
        let mut retry = args.filter_properties.retry.clone().unwrap_or_default();
        if retry.num_attempts >= self.options.max_attempts {
            return Ok(Placement::NoValidBackend(format!(
                "Exceeded max scheduling attempts {} for resource {}",
                self.options.max_attempts, spec.volume_id
            )));
        }
        let thick = Self::filter_request(spec).is_thick();
        let mut transient_failures = 0u32;
        for pool in self.candidates(spec, &retry).await? {
            let limit = claim_limit_gb(&pool, thick);
            match self
                .db
                .claim_volume_placement(spec.volume_id, &pool.host, spec.size, limit)
                .await
                .map_err(Self::db_error)?
            {
                ClaimOutcome::NotWaiting => return Ok(Placement::NotWaiting),
                // Another scheduler or request took the room since the
                // report; the next pool may still have some.
                ClaimOutcome::NoCapacity => continue,
                ClaimOutcome::Claimed => {}
            }
            retry.num_attempts += 1;
            retry.backends.push(pool.host.clone());
            let cast = CreateVolumeArgs {
                volume_id: spec.volume_id,
                request_spec: spec.clone(),
                filter_properties: FilterProperties {
                    retry: if self.options.max_attempts > 1 {
                        Some(retry.clone())
                    } else {
                        None
                    },
                },
                allow_reschedule: self.options.max_attempts > 1,
            };
            match self.cast_create(context, &pool.host, &cast).await {
                Ok(()) => {
                    tracing::info!(volume_id = %spec.volume_id, pool = %pool.host, "placed volume");
                    return Ok(Placement::Done);
                }
                Err(e) => {
                    // The backend's queue stayed unreachable for the whole
                    // wait: give the capacity back and try the next pool.
                    tracing::warn!(volume_id = %spec.volume_id, pool = %pool.host, error = %e, "cast to backend failed");
                    transient_failures += 1;
                    self.db
                        .release_volume_placement(spec.volume_id, &pool.host)
                        .await
                        .map_err(Self::db_error)?;
                }
            }
        }
        if transient_failures > 0 {
            // Every backend that passed the filters is up by its heartbeat
            // but could not be reached now (a broker restart, a service
            // re-declaring its queues): not a placement failure. The cast
            // is run again; a backend that is really gone stops passing
            // the filters once its heartbeat is older than
            // service_down_time, and then the create fails as Cinder's does.
            return Err(RemoteError::new(
                ErrorKind::Unavailable,
                format!(
                    "{transient_failures} backend(s) for volume {} unreachable right now",
                    spec.volume_id
                ),
            ));
        }
        Ok(Placement::NoValidBackend(match &retry.exc {
            Some(last) => format!("No valid backend was found. {last}"),
            None => "No valid backend was found. No weighed backends available".to_owned(),
        }))
    }

    /// Casts `create_volume` to `host`. A queue with no consumer right now
    /// (the service re-declaring after a broker restart) or a broker away
    /// is waited for up to [`UNREACHABLE_BACKEND_WAIT`] before the pool is
    /// given up.
    async fn cast_create(
        &self,
        context: &RequestContext,
        host: &str,
        cast: &CreateVolumeArgs,
    ) -> Result<(), clinker_rpc::RpcError> {
        let deadline = tokio::time::Instant::now() + UNREACHABLE_BACKEND_WAIT;
        let mut backoff = clinker_rpc::backoff::Backoff::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(2),
        );
        loop {
            match self.volume_rpc.create_volume(context, host, cast).await {
                Err(e)
                    if e.kind() == ErrorKind::Unavailable
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::info!(volume_id = %cast.volume_id, pool = host, error = %e, "backend unreachable; waiting for it");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    async fn record_message(
        &self,
        context: &RequestContext,
        project_id: &str,
        volume_id: VolumeId,
        action: Action,
        detail: Detail,
    ) {
        let message = mf::build_message(
            project_id,
            Some(&context.request_id),
            mf::RESOURCE_VOLUME,
            Some(volume_id.to_string()),
            action,
            detail,
            self.clock.now(),
            self.options.message_ttl,
        );
        if let Err(e) = self.db.create_message(&message).await {
            tracing::warn!(volume_id = %volume_id, error = %e, "could not store user message");
        }
    }

    /// The request a lost create is placed again with: the one its journal
    /// row kept when the API accepted it (its image or backup included),
    /// else, for rows written before the journal kept it, one rebuilt from
    /// the volume's row.
    async fn lost_create_spec(
        &self,
        volume: &clinker_types::model::Volume,
    ) -> Result<RequestSpec, RemoteError> {
        match self.db.journal_request_spec(&volume.id.to_string()).await {
            Ok(Some(spec)) if spec.volume_id == volume.id => return Ok(spec),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(volume_id = %volume.id, error = %e, "cannot read the create's request from the journal; rebuilding it from the volume");
            }
        }
        self.spec_from_row(volume).await
    }

    /// Rebuilds a volume's request spec from its row: size, zone, type and
    /// the source it must stay with. What a lost cast carried is all in the
    /// database (scheduler hints aside, which Clinker does not act on).
    async fn spec_from_row(
        &self,
        volume: &clinker_types::model::Volume,
    ) -> Result<RequestSpec, RemoteError> {
        let volume_type = self.db.get_volume_type(volume.volume_type_id).await.ok();
        let availability_zones = volume_type
            .as_ref()
            .and_then(|t| t.extra_specs.get("RESKEY:availability_zones"))
            .map(|zones| {
                zones
                    .split(',')
                    .map(|z| z.trim().to_owned())
                    .filter(|z| !z.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let resource_backend = match (volume.snapshot_id, volume.source_volid) {
            (Some(snapshot_id), _) => self
                .db
                .get_snapshot(snapshot_id)
                .await
                .ok()
                .and_then(|s| s.host),
            (None, Some(source)) => self.db.get_volume(source).await.ok().and_then(|v| v.host),
            // A volume of a group lives on its group's backend.
            (None, None) => match volume.group_id.as_deref().map(str::parse) {
                Some(Ok(group_id)) => self
                    .db
                    .get_group(group_id)
                    .await
                    .ok()
                    .and_then(|g| g.host)
                    .map(|h| service_host(&h)),
                _ => None,
            },
        };
        Ok(RequestSpec {
            volume_id: volume.id,
            size: volume.size,
            availability_zone: Some(volume.availability_zone.clone()),
            availability_zones,
            volume_type: clinker_types::request_spec::TypeSpec {
                id: Some(volume.volume_type_id),
                name: volume_type.as_ref().map(|t| t.name.clone()),
                extra_specs: volume_type.map(|t| t.extra_specs).unwrap_or_default(),
            },
            snapshot_id: volume.snapshot_id,
            source_volid: volume.source_volid,
            image_id: None,
            backup_id: None,
            resource_backend,
            project_id: volume.project_id.clone(),
            scheduler_hints: BTreeMap::new(),
        })
    }

    /// Places again the creates no scheduler placed (their cast was lost
    /// with a process that died, or a scheduler died mid-request), so
    /// nothing stays `creating`: each is placed, or fails with a message.
    /// Concurrent schedulers doing the same are safe: only one claim of a
    /// volume can succeed.
    pub async fn resume_unplaced_creates(&self, older_than: Duration) {
        let micros = i64::try_from(older_than.as_micros()).unwrap_or(i64::MAX);
        let cutoff = self.clock.now().plus_micros(-micros);
        let entries = match self.db.unplaced_journal(cutoff).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the operation journal");
                return;
            }
        };
        for entry in entries {
            if entry.resource_type == clinker_types::model::JournalResource::Group {
                self.resume_unplaced_group(&entry).await;
                continue;
            }
            let Ok(volume_id) = entry.resource_id.parse::<VolumeId>() else {
                continue;
            };
            let Ok(volume) = self.db.get_volume(volume_id).await else {
                continue;
            };
            if volume.status != VolumeStatus::Creating || volume.host.is_some() {
                continue;
            }
            tracing::info!(volume_id = %volume_id, "placing a create whose request was lost");
            let context = RequestContext::internal("scheduler");
            let outcome = match self.lost_create_spec(&volume).await {
                Ok(spec) => {
                    let args = ScheduleCreateVolumeArgs {
                        request_spec: spec,
                        filter_properties: FilterProperties::default(),
                    };
                    self.create_volume(&context, args).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                tracing::warn!(volume_id = %volume_id, error = %e, "could not place a lost create");
            }
        }
    }

    /// Deletes user messages past their expiry.
    pub async fn reap_expired_messages(&self) {
        if let Err(e) = self.db.delete_expired_messages(self.clock.now()).await {
            tracing::warn!(error = %e, "cannot reap expired messages");
        }
    }
}

clinker_rpc::serve_scheduler_api!(SchedulerManager);

/// The handlers of the scheduler RPC API (its declaration in
/// `clinker_rpc::scheduler` has their docs); `create_group`, `retype` and
/// `migrate_volume` are in `groups.rs`, `retype.rs` and `migrate.rs`.
impl SchedulerManager {
    pub(crate) async fn create_volume(
        &self,
        context: &RequestContext,
        args: ScheduleCreateVolumeArgs,
    ) -> Result<(), RemoteError> {
        self.wait_until_ready().await;
        let spec = &args.request_spec;
        match self.place_volume(context, &args).await {
            Ok(Placement::Done | Placement::NotWaiting) => Ok(()),
            Ok(Placement::NoValidBackend(reason)) => {
                tracing::warn!(volume_id = %spec.volume_id, %reason, "no valid backend");
                match self.db.fail_volume_create(spec.volume_id).await {
                    Ok(_) => {
                        self.record_message(
                            context,
                            &spec.project_id,
                            spec.volume_id,
                            mf::SCHEDULE_ALLOCATE_VOLUME,
                            mf::NO_BACKEND_AVAILABLE,
                        )
                        .await;
                        self.notifier
                            .error(
                                "scheduler.create_volume",
                                json!({"volume_id": spec.volume_id, "state": "error", "method": "create_volume", "reason": reason}),
                            )
                            .await;
                    }
                    // Deleted meanwhile: nothing to report.
                    Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => {}
                    Err(e) => return Err(Self::db_error(e)),
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn extend_volume(
        &self,
        context: &RequestContext,
        args: ScheduleExtendVolumeArgs,
    ) -> Result<(), RemoteError> {
        self.wait_until_ready().await;
        let volume = self
            .db
            .get_volume(args.volume_id)
            .await
            .map_err(Self::db_error)?;
        if volume.status != VolumeStatus::Extending {
            return Ok(());
        }
        let delta = args.new_size - volume.size;
        let pool = volume.host.clone().unwrap_or_default();
        let request = FilterRequest {
            size: delta,
            extend_attached: volume.previous_status.as_deref() == Some("in-use"),
            ..FilterRequest::default()
        };
        let candidate = self
            .current_pools()
            .await?
            .into_iter()
            .find(|p| p.host == pool);
        let fits = candidate.as_ref().is_some_and(|p| {
            crate::filters::CapacityFilter.passes(p, &request)
                && CapabilitiesFilter.passes(p, &request)
        });
        let claimed = match (&candidate, fits) {
            (Some(p), true) => {
                self.db
                    .claim_extend(&pool, delta, claim_limit_gb(p, false))
                    .await
                    .map_err(Self::db_error)?
                    == ClaimOutcome::Claimed
            }
            _ => false,
        };
        if claimed {
            let cast = ExtendVolumeArgs {
                volume_id: args.volume_id,
                new_size: args.new_size,
            };
            match self.volume_rpc.extend_volume(context, &pool, &cast).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(volume_id = %args.volume_id, error = %e, "cast of extend failed");
                    self.db
                        .claim_extend(&pool, -delta, i64::MAX)
                        .await
                        .map_err(Self::db_error)?;
                }
            }
        }
        // No room (or the backend is gone): Cinder restores the previous
        // status and tells the user.
        self.db
            .abort_volume_extend(args.volume_id, args.new_size)
            .await
            .map_err(Self::db_error)?;
        self.record_message(
            context,
            &volume.project_id,
            args.volume_id,
            mf::EXTEND_VOLUME,
            mf::NO_BACKEND_AVAILABLE,
        )
        .await;
        Ok(())
    }

    pub(crate) async fn update_service_capabilities(
        &self,
        _context: &RequestContext,
        args: UpdateServiceCapabilitiesArgs,
    ) -> Result<(), RemoteError> {
        let Value::Object(capabilities) = args.capabilities else {
            return Err(Self::internal(
                "capabilities must be an object",
                ErrorKind::InvalidInput,
            ));
        };
        self.host_manager
            .update(&args.host, capabilities, args.timestamp);
        Ok(())
    }

    pub(crate) async fn get_pools(
        &self,
        _context: &RequestContext,
        args: GetPoolsArgs,
    ) -> Result<Value, RemoteError> {
        let pools = self.current_pools().await?;
        let extra_specs: BTreeMap<String, String> = args
            .filters
            .get("extra_specs")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let type_request = FilterRequest {
            extra_specs,
            ..FilterRequest::default()
        };
        let listed: Vec<Value> = pools
            .into_iter()
            .filter(|p| CapabilitiesFilter.passes(p, &type_request))
            .filter(|p| {
                args.filters.iter().all(|(key, wanted)| match key.as_str() {
                    "extra_specs" => true,
                    "name" => wanted.as_str() == Some(p.host.as_str()),
                    other => p.capabilities.get(other).is_some_and(|have| {
                        have == wanted
                            || wanted
                                .as_str()
                                .is_some_and(|w| have.to_string().trim_matches('"') == w)
                    }),
                })
            })
            .map(|p| {
                let mut capabilities = p.capabilities.0;
                #[allow(clippy::cast_precision_loss)]
                let allocated = p.allocated_gb as f64;
                capabilities.insert("allocated_capacity_gb".into(), json!(allocated));
                json!({"name": p.host, "capabilities": Value::Object(capabilities)})
            })
            .collect();
        Ok(Value::Array(listed))
    }
}

/// `host@backend` of a `host@backend#pool` (the text itself when it does
/// not parse).
pub(crate) fn service_host(host: &str) -> String {
    host.parse::<Host>()
        .map(|h| h.service_host())
        .unwrap_or_else(|_| host.to_owned())
}
