//! Clinker's Block Storage API v3: the HTTP face of Cinder, reimplemented.
//!
//! [`router`] builds the axum router that serves `GET /` (versions), and
//! every v3 route both with and without `/{project_id}` after `/v3`. A
//! request passes the pipeline in [`context`] (request id, authentication
//! ([`auth`]) and the policy in scope ([`policy`]),
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

pub mod auth;
pub mod context;
pub mod fault;
pub mod healthcheck;
pub mod links;
pub mod listing;
pub mod microversion;
pub mod policy;
pub mod request;
pub mod server;
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
    /// The availability zones creates are checked against
    /// (`az_cache_duration`).
    pub zones: Arc<services::ZoneCache>,
    /// The Glance client (`glance_api_servers` or the caller's catalog);
    /// `None` when it cannot be built, and then every image look-up fails
    /// as Cinder's does without an image service.
    pub glance: Option<Arc<clinker_image::GlanceClient>>,
}

/// The API router, authenticating as `[DEFAULT] auth_strategy` says.
///
/// Configuration problems (an htpasswd file that cannot be read, a policy
/// file that does not parse) make this router refuse every request; the
/// binary checks them first with [`auth::authenticator_from_config`] and
/// [`policy::Policy::from_config`] and refuses to start instead.
pub fn router(state: ApiState) -> Router {
    let authenticator = context::authenticator_for(&state.config);
    router_with_authenticator(state, authenticator)
}

/// The API router with an explicit [`Authenticator`] and the policy of
/// `[oslo_policy] policy_file` (every action refused if it cannot be
/// loaded).
pub fn router_with_authenticator(state: ApiState, authenticator: Arc<dyn Authenticator>) -> Router {
    let policy = policy::Policy::from_config(&state.config).unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot load the policy; refusing every action");
        policy::Policy::deny_all()
    });
    router_with_policy(state, authenticator, policy)
}

/// The API router with an explicit [`Authenticator`] and [`policy::Policy`]
/// (what the binary uses after checking both at start-up).
pub fn router_with_policy(
    state: ApiState,
    authenticator: Arc<dyn Authenticator>,
    policy: Arc<policy::Policy>,
) -> Router {
    let pipeline = Arc::new(context::Pipeline {
        authenticator,
        policy,
        public_endpoint: state.config.default.public_endpoint.clone(),
        proxy_headers: state.config.default.enable_proxy_headers_parsing,
        scheme: if state.config.ops.ssl.enabled() {
            "https"
        } else {
            "http"
        },
    });
    let health = Arc::new(healthcheck::Healthcheck {
        disable_by_file_path: state.config.ops.healthcheck.disable_by_file_path.clone(),
    });
    let v3_routes = v3::routes()
        .route_layer(axum::middleware::from_fn(context::remember_route))
        .with_state(state);
    let v3_service = v3_routes.map_request(context::strip_project_segment);
    Router::new()
        .route("/", get(v3::versions::root))
        .route(
            "/healthcheck",
            get(
                move |method: axum::http::Method, headers: axum::http::HeaderMap| {
                    let health = health.clone();
                    async move { health.respond(&method, &headers).await }
                },
            ),
        )
        .nest_service("/v3", v3_service)
        .fallback(v3::not_found)
        .layer(axum::middleware::from_fn_with_state(
            pipeline,
            context::pipeline,
        ))
}
