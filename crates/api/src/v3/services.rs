//! `/os-services`, `/os-availability-zone`, `/scheduler-stats/get_pools` and
//! `/capabilities/{host}` (Cinder's `api/v3/services.py`,
//! `contrib/availability_zones.py`, `contrib/scheduler_stats.py`,
//! `contrib/capabilities.py`).

use axum::extract::{Path, State};
use axum::response::Response;
use clinker_db::DbError;
use clinker_rpc::scheduler::GetPoolsArgs;
use clinker_rpc::volume::GetCapabilitiesArgs;
use clinker_types::Host;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion as mv;
use crate::policy;
use crate::request::Req;
use crate::services::{self, VOLUME_BINARY};
use crate::validation::{self, Format, JsonType, Pattern, Schema, nullable_string, object, of};
use crate::views::{self, ViewCtx, misc};

/// `GET /os-services` (`?host=`, `?binary=`).
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    policy::enforce(&req.context, "volume_extension:services:index", None)?;
    // Cinder's `_filter_host`: a bare host also matches its `host@backend`
    // and `host#pool` services; a `host@backend` matches its pools.
    let wanted_host = req.param("host").map(str::to_owned);
    let found: Vec<_> = state
        .db
        .list_services(None, req.param("binary"))
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .filter(|s| match &wanted_host {
            None => true,
            Some(h) => {
                s.host == *h
                    || s.host.strip_prefix(h.as_str()).is_some_and(|rest| {
                        rest.starts_with('#') || (!h.contains('@') && rest.starts_with('@'))
                    })
            }
        })
        .collect();
    let now = state.clock.now();
    let down_time = state.config.default.service_down_time;
    let ctx = ViewCtx::of(&req);
    let items: Vec<Value> = found
        .iter()
        .map(|s| misc::service(s, &ctx, s.is_up(now, down_time)))
        .collect();
    Ok(views::ok(&json!({ "services": items })))
}

fn cinder_host() -> Schema {
    of(&[JsonType::String, JsonType::Null])
        .length(Some(1), Some(255))
        .pattern(Pattern::CinderHost)
}

fn enable_disable_schema(with_reason: bool) -> Schema {
    let mut schema = object()
        .prop("binary", of(&[JsonType::String]).length(Some(1), Some(255)))
        .prop("host", cinder_host())
        .prop("cluster", nullable_string())
        .prop(
            "service",
            of(&[JsonType::String]).length(Some(1), Some(255)),
        );
    if with_reason {
        schema = schema.prop(
            "disabled_reason",
            of(&[JsonType::String])
                .length(Some(1), Some(255))
                .format(Format::DisabledReason),
        );
    }
    schema.any_of_required(&["binary", "service"]).closed()
}

fn text(body: &Map<String, Value>, key: &str) -> Option<String> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `PUT /os-services/{action}`: `enable`, `disable`, `disable-log-reason`,
/// `freeze`, `thaw`.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(action): Path<String>,
) -> ApiResult<Response> {
    let body_value = req.body_value();
    let body = body_value.as_object().cloned().unwrap_or_default();
    match action.as_str() {
        "enable" | "disable" | "disable-log-reason" => {
            let with_reason = action == "disable-log-reason";
            validation::validate(&enable_disable_schema(with_reason), &body_value)?;
            policy::enforce(&req.context, "volume_extension:services:update", None)?;
            let host = text(&body, "host")
                .ok_or_else(|| ApiError::invalid_input("Host field is missing."))?;
            let service = body
                .get("service")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let binary = body
                .get("binary")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let binary_key = if binary.is_empty() {
                service.clone()
            } else {
                binary.clone()
            };
            let disabled = action != "enable";
            let reason = if with_reason {
                body.get("disabled_reason")
                    .and_then(Value::as_str)
                    .map(|r| r.trim().to_owned())
            } else {
                None
            };
            state
                .db
                .set_service_disabled(&host, &binary_key, disabled, reason.as_deref())
                .await
                .map_err(|e| match e {
                    DbError::NotFound { .. } => ApiError::not_found(format!(
                        "Service {binary_key} could not be found on host {host}."
                    )),
                    other => other.into(),
                })?;
            let mut answer = json!({
                "host": host,
                "service": service,
                "binary": binary,
                "status": if disabled { "disabled" } else { "enabled" },
                "disabled": disabled,
            });
            if with_reason && let Some(obj) = answer.as_object_mut() {
                obj.insert("disabled_reason".into(), json!(reason));
            }
            Ok(views::ok(&answer))
        }
        "freeze" | "thaw" => {
            let schema = object()
                .prop("cluster", nullable_string())
                .prop("host", cinder_host())
                .closed();
            validation::validate(&schema, &body_value)?;
            policy::enforce(&req.context, "volume_extension:services:update", None)?;
            let rule = if action == "freeze" {
                "volume:freeze_host"
            } else {
                "volume:thaw_host"
            };
            policy::enforce(&req.context, rule, None)?;
            let cluster = if req.version.matches(mv::REPLICATION_CLUSTER) {
                text(&body, "cluster")
            } else {
                None
            };
            let host = text(&body, "host");
            if cluster.is_some() == host.is_some() {
                return Err(ApiError::invalid_input(
                    if req.version.matches(mv::REPLICATION_CLUSTER) {
                        "One and only one of cluster and host must be set."
                    } else {
                        "Host field is missing."
                    },
                ));
            }
            let volume_services = state
                .db
                .list_services(None, Some(VOLUME_BINARY))
                .await
                .map_err(ApiError::from)?;
            let known = volume_services.iter().any(|s| match (&host, &cluster) {
                (Some(h), _) => s.host == *h,
                (None, Some(c)) => s.cluster_name.as_deref() == Some(c.as_str()),
                (None, None) => false,
            });
            if !known {
                return Err(ApiError::bad_request(match (&host, &cluster) {
                    (Some(h), _) => format!("No service found with host={h}"),
                    (None, c) => format!(
                        "No service found with cluster={}",
                        c.clone().unwrap_or_default()
                    ),
                }));
            }
            Err(ApiError::not_implemented(
                "Freezing and thawing backends is not supported by this API server yet.",
            ))
        }
        _ => Err(ApiError::not_found(crate::fault::RESOURCE_NOT_FOUND)),
    }
}

/// `GET /os-availability-zone`.
pub async fn availability_zones(State(state): State<ApiState>, _req: Req) -> ApiResult<Response> {
    let zones = services::availability_zones(&state).await?;
    Ok(views::ok(&misc::availability_zones(&zones)))
}

/// `GET /scheduler-stats/get_pools[?detail=true]`: a call to a scheduler;
/// 503 when none answers.
pub async fn get_pools(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    policy::enforce(
        &req.context,
        "scheduler_extension:scheduler_stats:get_pools",
        None,
    )?;
    let detail = validation::bool_param("detail", req.param("detail"))?;
    let mut filters = Map::new();
    if req.version.matches(mv::POOL_FILTER) {
        for (key, value) in &req.query {
            if key == "detail"
                || (key == "volume_type" && !req.version.matches(mv::POOL_TYPE_FILTER))
            {
                continue;
            }
            if !matches!(key.as_str(), "name" | "volume_type") {
                return Err(ApiError::bad_request(format!(
                    "Invalid filters {key} are found in query options."
                )));
            }
            filters.insert(key.clone(), json!(value));
        }
    }
    let answer = state
        .scheduler_rpc
        .get_pools(&req.context, &GetPoolsArgs { filters })
        .await
        .map_err(ApiError::from)?;
    Ok(views::ok(&misc::pools(&answer, detail)))
}

/// `GET /capabilities/{host}`: a call to that backend's volume service.
pub async fn capabilities(
    State(state): State<ApiState>,
    req: Req,
    Path(host): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, "volume_extension:capabilities", None)?;
    let not_found = || ApiError::not_found(format!("Can't find service: {host}"));
    let wanted = host
        .parse::<Host>()
        .map(|h| h.service_host())
        .map_err(|_| not_found())?;
    let volume_services = state
        .db
        .list_services(None, Some(VOLUME_BINARY))
        .await
        .map_err(ApiError::from)?;
    let service = volume_services
        .iter()
        .find(|s| s.host == wanted || s.cluster_name.as_deref() == Some(wanted.as_str()))
        .ok_or_else(not_found)?;
    let topic = service
        .cluster_name
        .clone()
        .unwrap_or_else(|| service.host.clone());
    let discover = GetCapabilitiesArgs { discover: false };
    let caps = state
        .volume_rpc
        .get_capabilities(&req.context, &service.host, &discover)
        .await
        .map_err(ApiError::from)?;
    Ok(views::ok(&misc::capabilities(&caps, &topic)))
}
