//! Clinker's Block Storage API v3: the HTTP face of Cinder, reimplemented.
//!
//! [`router`] builds the axum router that serves `GET /` (versions), and
//! every v3 route both with and without `/{project_id}` after `/v3`. A
//! request passes the pipeline in [`context`] (request id, noauth context,
//! microversion, body limits and decoding), then a thin handler in [`v3`]
//! that parses it, calls a service in [`services`] (Cinder's
//! `volume/api.py`: validation, compare-and-swap through the database, RPC
//! casts) and renders the result with a view in [`views`] gated by the
//! negotiated microversion. Every failure is an [`ApiError`] whose HTTP
//! status and Cinder fault name come from the one table in [`fault`].
//!
//! Depends on `clinker-types`, `clinker-config`, `clinker-db` and
//! `clinker-rpc` only: the scheduler and volume services are reached over
//! RPC, never linked.

pub mod context;
pub mod fault;
pub mod links;
pub mod listing;
pub mod microversion;
pub mod policy;
pub mod request;
pub mod services;
pub mod v3;
pub mod validation;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use clinker_db::DbHandle;
use clinker_rpc::scheduler::SchedulerRpcClient;
use clinker_rpc::volume::VolumeRpcClient;
use clinker_types::Clock;
use tower::ServiceExt;

pub use context::{Authenticator, NoAuth};
pub use fault::{ApiError, ApiResult};

/// Everything a handler may use.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// The database.
    pub db: DbHandle,
    /// Casts and calls to the schedulers.
    pub scheduler_rpc: SchedulerRpcClient,
    /// Casts and calls to the volume services.
    pub volume_rpc: VolumeRpcClient,
    /// The configuration.
    pub config: Arc<clinker_config::Config>,
    /// The clock (service liveness).
    pub clock: Arc<dyn Clock>,
}

/// The API router, authenticating as `[DEFAULT] auth_strategy` says.
pub fn router(state: ApiState) -> Router {
    let authenticator = context::authenticator_for(&state.config);
    router_with_authenticator(state, authenticator)
}

/// The API router with an explicit [`Authenticator`] (tests, and the seam
/// for Keystone).
pub fn router_with_authenticator(state: ApiState, authenticator: Arc<dyn Authenticator>) -> Router {
    let pipeline = Arc::new(context::Pipeline {
        authenticator,
        public_endpoint: state.config.default.public_endpoint.clone(),
    });
    let v3_routes = v3::routes().with_state(state);
    let v3_service = v3_routes.map_request(context::strip_project_segment);
    Router::new()
        .route("/", get(v3::versions::root))
        .route("/healthcheck", get(v3::versions::healthcheck))
        .nest_service("/v3", v3_service)
        .fallback(v3::not_found)
        .layer(axum::middleware::from_fn_with_state(
            pipeline,
            context::pipeline,
        ))
}
