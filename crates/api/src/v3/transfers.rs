//! Volume transfers: the legacy `/os-volume-transfer` (Cinder's
//! `contrib/volume_transfer.py`) and `/volume-transfers` (3.55+, Cinder's
//! `api/v3/volume_transfer.py`: `no_snapshots`, encrypted volumes from
//! 3.70, pagination and sorting from 3.59).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{Page, SortDir, TransferColumn, TransferQuery};
use serde_json::Value;

use crate::ApiState;
use crate::fault::ApiResult;
use crate::listing::{self, Params, invalid_sort_key};
use crate::microversion as mv;
use crate::request::Req;
use crate::services::transfers::{self as service, CreateTransfer};
use crate::validation::{
    self, JsonType, Schema, body_of, bool_from_value, bool_param, boolean, object, of, uuid,
};
use crate::views::{self, ViewCtx, transfers as view};

/// Which path served the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// `/os-volume-transfer`: no `no_snapshots`, no encrypted volumes, the
    /// list always in creation order.
    Legacy,
    /// `/volume-transfers` (3.55+).
    V355,
}

fn check_family(req: &Req, family: Family) -> ApiResult<()> {
    match family {
        Family::Legacy => Ok(()),
        Family::V355 => mv::require(req.version, mv::TRANSFER_WITH_SNAPSHOTS),
    }
}

fn create_schema(with_snapshots: bool) -> Schema {
    let mut transfer = object()
        .prop("volume_id", uuid())
        .prop("name", of(&[JsonType::String, JsonType::Null]));
    if with_snapshots {
        transfer = transfer.prop("no_snapshots", boolean());
    }
    body_of("transfer", transfer.required(&["volume_id"]).closed())
}

fn accept_schema() -> Schema {
    body_of(
        "accept",
        object()
            .prop("auth_key", of(&[JsonType::String, JsonType::Integer]))
            .required(&["auth_key"])
            .closed(),
    )
}

/// Cinder's `name_skip_leading_trailing_spaces` on a transfer name.
fn transfer_name(value: Option<&Value>) -> ApiResult<Option<String>> {
    match value {
        Some(Value::String(raw)) => validation::checked_name(raw).map(Some),
        _ => Ok(None),
    }
}

async fn create(state: ApiState, req: Req, family: Family) -> ApiResult<Response> {
    check_family(&req, family)?;
    let body = req.body_value();
    validation::validate(&create_schema(family == Family::V355), &body)?;
    let transfer = req.body_object("transfer");
    let request = CreateTransfer {
        volume_id: transfer
            .get("volume_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        name: transfer_name(transfer.get("name"))?,
        no_snapshots: transfer
            .get("no_snapshots")
            .and_then(bool_from_value)
            .unwrap_or(false),
        allow_encrypted: family == Family::V355
            && req.version.matches(mv::TRANSFER_ENCRYPTED_VOLUME),
    };
    let (created, auth_key) = service::create_transfer(&state, &req.context, request).await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &view::created(&created, &auth_key, &ViewCtx::of(&req)),
    ))
}

fn column(key: &str) -> Option<TransferColumn> {
    Some(match key {
        "id" => TransferColumn::Id,
        "volume_id" => TransferColumn::VolumeId,
        "display_name" => TransferColumn::DisplayName,
        "source_project_id" => TransferColumn::SourceProjectId,
        "destination_project_id" => TransferColumn::DestinationProjectId,
        "created_at" => TransferColumn::CreatedAt,
        "updated_at" => TransferColumn::UpdatedAt,
        "no_snapshots" => TransferColumn::NoSnapshots,
        "accepted" => TransferColumn::Accepted,
        _ => return None,
    })
}

async fn list(state: ApiState, req: Req, family: Family, detailed: bool) -> ApiResult<Response> {
    check_family(&req, family)?;
    let mut params = Params::new(&req.query);
    let all_tenants = match params.pop("all_tenants") {
        Some(value) if req.is_admin() => bool_param("all_tenants", Some(&value))?,
        _ => false,
    };
    let page = listing::pagination(&mut params, state.config.default.osapi_max_limit)?;
    let paginated = family == Family::V355 && req.version.matches(mv::SUPPORT_TRANSFER_PAGINATION);
    let sort = if paginated {
        listing::sort_params(&mut params)?
            .into_iter()
            .map(|(key, dir)| {
                let key = if key == "name" {
                    "display_name"
                } else {
                    key.as_str()
                };
                column(key).map(|c| (c, dir)).ok_or_else(invalid_sort_key)
            })
            .collect::<ApiResult<Vec<_>>>()?
    } else {
        // Before 3.59 lists are in creation order, oldest first.
        vec![
            (TransferColumn::CreatedAt, SortDir::Asc),
            (TransferColumn::Id, SortDir::Asc),
        ]
    };
    let mut filters = Vec::new();
    for (key, value) in params.into_filters() {
        let key = if key == "name" {
            "display_name".to_owned()
        } else {
            key
        };
        match column(&key) {
            Some(c) => {
                let value = match c {
                    TransferColumn::NoSnapshots | TransferColumn::Accepted => {
                        match validation::bool_from_str(&value) {
                            Some(b) => i64::from(b).to_string(),
                            None => value,
                        }
                    }
                    _ => value,
                };
                filters.push((c, value));
            }
            // Cinder matches nothing for a filter that is not a column.
            None => {
                return Ok(views::ok(&view::list(
                    &[],
                    &ViewCtx::of(&req),
                    detailed,
                    page.limit,
                )));
            }
        }
    }
    let marker = match page.marker.as_deref() {
        Some(m) if paginated => Some(m.parse().map_err(|_| service::transfer_not_found(m))?),
        _ => None,
    };
    let query = TransferQuery {
        project_id: None,
        filters,
        sort,
        page: Page {
            marker,
            limit: Some(page.limit),
            offset: Some(page.offset),
        },
    };
    let transfers = service::list_transfers(&state, &req.context, all_tenants, query).await?;
    Ok(views::ok(&view::list(
        &transfers,
        &ViewCtx::of(&req),
        detailed,
        page.limit,
    )))
}

async fn show(state: ApiState, req: Req, family: Family, id: String) -> ApiResult<Response> {
    check_family(&req, family)?;
    let found = service::get_transfer(&state, &req.context, &id).await?;
    Ok(views::ok(&view::show(&found, &ViewCtx::of(&req))))
}

async fn delete(state: ApiState, req: Req, family: Family, id: String) -> ApiResult<Response> {
    check_family(&req, family)?;
    service::delete_transfer(&state, &req.context, &id).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

async fn accept(state: ApiState, req: Req, family: Family, id: String) -> ApiResult<Response> {
    check_family(&req, family)?;
    let body = req.body_value();
    validation::validate(&accept_schema(), &body)?;
    // An integer key is compared as its decimal text, as Python's str().
    let auth_key = match &body["accept"]["auth_key"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let (transfer, _) = service::accept_transfer(&state, &req.context, &id, &auth_key).await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &view::accepted(&transfer, &ViewCtx::of(&req)),
    ))
}

/// `GET /os-volume-transfer`.
pub async fn legacy_index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(state, req, Family::Legacy, false).await
}

/// `GET /os-volume-transfer/detail`.
pub async fn legacy_detail(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(state, req, Family::Legacy, true).await
}

/// `POST /os-volume-transfer` (202).
pub async fn legacy_create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    create(state, req, Family::Legacy).await
}

/// `GET /os-volume-transfer/{id}`.
pub async fn legacy_show(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    show(state, req, Family::Legacy, id).await
}

/// `DELETE /os-volume-transfer/{id}` (202).
pub async fn legacy_delete(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    delete(state, req, Family::Legacy, id).await
}

/// `POST /os-volume-transfer/{id}/accept` (202).
pub async fn legacy_accept(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    accept(state, req, Family::Legacy, id).await
}

/// `GET /volume-transfers` (3.55).
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(state, req, Family::V355, false).await
}

/// `GET /volume-transfers/detail` (3.55).
pub async fn detail(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(state, req, Family::V355, true).await
}

/// `POST /volume-transfers` (3.55, 202).
pub async fn create_v355(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    create(state, req, Family::V355).await
}

/// `GET /volume-transfers/{id}` (3.55).
pub async fn show_v355(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    show(state, req, Family::V355, id).await
}

/// `DELETE /volume-transfers/{id}` (3.55, 202).
pub async fn delete_v355(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    delete(state, req, Family::V355, id).await
}

/// `POST /volume-transfers/{id}/accept` (3.55, 202).
pub async fn accept_v355(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    accept(state, req, Family::V355, id).await
}
