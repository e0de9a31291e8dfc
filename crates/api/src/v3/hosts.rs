//! `/os-hosts` (Cinder's deprecated `contrib/hosts.py`, still exercised by
//! Tempest) and `/resource_filters` (3.33).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::filters::{Resource, allowed_filters};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion as mv;
use crate::policy;
use crate::request::Req;
use crate::services::VOLUME_BINARY;
use crate::views::{self, time};

/// `GET /os-hosts` (`?zone=`): enabled services as hosts.
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    policy::enforce(&req.context, "volume_extension:hosts", None)?;
    let services = state
        .db
        .list_services(None, None)
        .await
        .map_err(ApiError::from)?;
    let zone = req.param("zone").filter(|z| !z.is_empty());
    let now = state.clock.now();
    let down_time = state.config.default.service_down_time;
    let hosts: Vec<Value> = services
        .iter()
        .filter(|s| !s.disabled)
        .filter(|s| zone.is_none_or(|z| s.availability_zone == z))
        .map(|s| {
            json!({
                "host_name": s.host,
                "service": s.topic,
                "zone": s.availability_zone,
                "service-status": if s.is_up(now, down_time) { "available" } else { "unavailable" },
                "service-state": if s.disabled { "disabled" } else { "enabled" },
                "last-update": time(s.updated_at),
            })
        })
        .collect();
    Ok(views::ok(&json!({ "hosts": hosts })))
}

/// `GET /os-hosts/{host}`: volume and snapshot usage per project on a
/// volume service.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(host): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, "volume_extension:hosts", None)?;
    let services = state
        .db
        .list_services(Some(&host), Some(VOLUME_BINARY))
        .await
        .map_err(ApiError::from)?;
    if services.is_empty() {
        return Err(ApiError::not_found(format!(
            "Host {host} could not be found."
        )));
    }
    let volumes = state
        .db
        .volumes_on_backend(&host)
        .await
        .map_err(ApiError::from)?;
    let snapshots = state
        .db
        .snapshots_on_backend(&host)
        .await
        .map_err(ApiError::from)?;
    // (volume count, GiB, snapshot count, GiB) per project.
    let mut per_project: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
    for v in &volumes {
        let entry = per_project.entry(v.project_id.clone()).or_default();
        entry.0 += 1;
        entry.1 += v.size;
    }
    for s in &snapshots {
        if let Some(entry) = per_project.get_mut(&s.project_id) {
            entry.2 += 1;
            entry.3 += s.volume_size;
        }
    }
    let resource = |project: &str, (vc, vg, sc, sg): (i64, i64, i64, i64)| {
        json!({"resource": {
            "host": host,
            "project": project,
            "volume_count": vc.to_string(),
            "total_volume_gb": vg.to_string(),
            "snapshot_count": sc.to_string(),
            "total_snapshot_gb": sg.to_string(),
        }})
    };
    let total = per_project.values().fold((0, 0, 0, 0), |acc, v| {
        (acc.0 + v.0, acc.1 + v.1, acc.2 + v.2, acc.3 + v.3)
    });
    let mut resources = vec![resource("(total)", total)];
    resources.extend(per_project.iter().map(|(p, v)| resource(p, *v)));
    Ok(views::ok(&json!({ "host": resources })))
}

/// `GET /resource_filters[?resource=]` (3.33): the filters non-admins may
/// use, per resource (Cinder's default `resource_filters.json`).
pub async fn resource_filters(req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::RESOURCE_FILTER_CONFIG)?;
    let all: Vec<(&str, Vec<&str>)> = vec![
        ("volume", allowed_filters(Resource::Volume).to_vec()),
        ("backup", vec!["name", "status", "volume_id"]),
        ("snapshot", allowed_filters(Resource::Snapshot).to_vec()),
        ("group", vec!["name"]),
        ("group_snapshot", vec!["name", "status", "group_id"]),
        (
            "attachment",
            vec!["volume_id", "status", "instance_id", "attach_status"],
        ),
        ("message", allowed_filters(Resource::Message).to_vec()),
        ("pool", vec!["name", "volume_type"]),
        ("volume_type", vec!["is_public", "extra_specs"]),
    ];
    let wanted = req.param("resource");
    let items: Vec<Value> = all
        .into_iter()
        .filter(|(resource, _)| wanted.is_none_or(|w| w == *resource))
        .map(|(resource, filters)| json!({"resource": resource, "filters": filters}))
        .collect();
    Ok(views::ok(&json!({ "resource_filters": items })))
}
