//! `/attachments` (3.27+): Cinder's `api/v3/attachments.py`. Below 3.27
//! every route answers 404 as if it did not exist; `os-complete` needs 3.44
//! and `mode` in the create body 3.54.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{AttachmentColumn, AttachmentQuery, FilterValue, Page, SortDir};
use clinker_types::AttachmentId;
use clinker_types::connection::Connector;
use serde_json::{Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Params, invalid_sort_key};
use crate::microversion as mv;
use crate::request::{Req, action_name, no_such_action, text};
use crate::services::attachments::{self as service, CreateAttachment, attachment_not_found};
use crate::validation::{self, JsonType, Schema, any, body_of, bool_from_str, object, of, uuid};
use crate::views::{self, attachments as view};

/// The filters non-admins may use (Cinder's `resource_filters.json` for
/// `attachment`, also its controller's `allowed_filters`).
pub const ALLOWED_FILTERS: &[&str] = &["volume_id", "status", "instance_id", "attach_status"];

/// `schemas/attachments.py`: `create`, and `create_v354` with `mode`.
fn create_schema(with_mode: bool) -> Schema {
    let mut attachment = object()
        .prop("instance_uuid", uuid())
        .prop("connector", of(&[JsonType::Object, JsonType::Null]))
        .prop("volume_uuid", uuid());
    if with_mode {
        attachment = attachment.prop(
            "mode",
            of(&[JsonType::String]).one_value_of(vec![json!("rw"), json!("ro")]),
        );
    }
    body_of("attachment", attachment.required(&["volume_uuid"]).closed())
}

/// `schemas/attachments.py`: `update`.
fn update_schema() -> Schema {
    body_of(
        "attachment",
        object()
            .prop("connector", object().properties_count(Some(1), None))
            .required(&["connector"])
            .closed(),
    )
}

/// `POST /attachments` (200): reserve, and connect when a connector is
/// given.
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::NEW_ATTACH)?;
    let with_mode = req.version.matches(mv::ATTACHMENT_CREATE_MODE_ARG);
    validation::validate(&create_schema(with_mode), &req.body_value())?;
    let body = req.body_object("attachment");
    let request = CreateAttachment {
        volume_uuid: text(&body, "volume_uuid").unwrap_or_default(),
        instance_uuid: text(&body, "instance_uuid"),
        // Cinder tests the connector's truthiness: `{}` (what the openstack
        // client sends without --connect) only reserves, like no connector.
        connector: body
            .get("connector")
            .and_then(Value::as_object)
            .filter(|connector| !connector.is_empty())
            .cloned(),
        mode: if with_mode { text(&body, "mode") } else { None },
    };
    let attachment = service::create_attachment(&state, &req.context, request).await?;
    Ok(views::ok(&view::show(&attachment)))
}

/// `GET /attachments/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(attachment_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::NEW_ATTACH)?;
    let (attachment, _) = service::get_attachment(&state, &req.context, &attachment_id).await?;
    Ok(views::ok(&view::show(&attachment)))
}

/// `PUT /attachments/{id}` (200): connect to the connector's host.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(attachment_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::NEW_ATTACH)?;
    validation::validate(&update_schema(), &req.body_value())?;
    let connector: Connector = req
        .body_object("attachment")
        .get("connector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let attachment =
        service::update_attachment(&state, &req.context, &attachment_id, connector).await?;
    Ok(views::ok(&view::show(&attachment)))
}

/// `DELETE /attachments/{id}` (200): the volume's remaining attachments.
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(attachment_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::NEW_ATTACH)?;
    let remaining =
        service::delete_attachment(&state, &req.context, req.compute.as_ref(), &attachment_id)
            .await?;
    Ok(views::ok(&view::list(&remaining, false)))
}

/// `POST /attachments/{id}/action`: `os-complete` (3.44, 204).
pub async fn action(
    State(state): State<ApiState>,
    req: Req,
    Path(attachment_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::NEW_ATTACH)?;
    let (name, _) = action_name(req.body.as_ref())?;
    match name.as_str() {
        "os-complete" => {
            mv::require(req.version, mv::NEW_ATTACH_COMPLETION)?;
            let schema = body_of("os-complete", any());
            validation::validate(&schema, &req.body_value())?;
            service::complete_attachment(&state, &req.context, &attachment_id).await?;
            Ok(views::empty(StatusCode::NO_CONTENT))
        }
        other => Err(no_such_action(other)),
    }
}

/// `GET /attachments`: summaries.
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(&state, &req, false).await
}

/// `GET /attachments/detail`.
pub async fn detail(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(&state, &req, true).await
}

fn column(key: &str) -> Option<AttachmentColumn> {
    Some(match key {
        "id" => AttachmentColumn::Id,
        "volume_id" => AttachmentColumn::VolumeId,
        "instance_uuid" | "instance_id" => AttachmentColumn::InstanceUuid,
        // The view's `status` is the attachment's attach status. (Cinder
        // passes `status` to a model without that column, so its filter
        // matches nothing; Clinker filters what the view shows.)
        "attach_status" | "status" => AttachmentColumn::AttachStatus,
        "attached_host" => AttachmentColumn::AttachedHost,
        "attach_mode" => AttachmentColumn::AttachMode,
        "mountpoint" => AttachmentColumn::Mountpoint,
        "attach_time" => AttachmentColumn::AttachTime,
        "detach_time" => AttachmentColumn::DetachTime,
        "created_at" => AttachmentColumn::CreatedAt,
        "updated_at" => AttachmentColumn::UpdatedAt,
        _ => return None,
    })
}

/// Cinder's filtering of attachment lists: before 3.31 a non-admin's
/// unknown filters are dropped, from 3.31 refused; `all_tenants` is an
/// admin's only. `None` when no attachment can match (an admin's filter on
/// something that is not a column).
fn query(
    req: &Req,
    params: Params,
    sort: &[(String, SortDir)],
    page: &listing::Pagination,
) -> ApiResult<Option<AttachmentQuery>> {
    let mut filters = params.into_filters();
    if filters.iter().any(|(k, _)| !k.is_ascii()) {
        return Err(ApiError::bad_request(
            "Filter keys can only contain ASCII characters.",
        ));
    }
    let mut all_projects = false;
    if let Some(pos) = filters.iter().position(|(k, _)| k == "all_tenants") {
        let (_, value) = filters.remove(pos);
        all_projects = req.is_admin() && bool_from_str(&value).unwrap_or(true);
    }
    if !req.is_admin() {
        let invalid: Vec<&str> = filters
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !ALLOWED_FILTERS.contains(k))
            .collect();
        if req.version.matches(mv::RESOURCE_FILTER) && !invalid.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Invalid filters {} are found in query options.",
                invalid.join(",")
            )));
        }
        filters.retain(|(k, _)| ALLOWED_FILTERS.contains(&k.as_str()));
    }
    let sort = sort
        .iter()
        .map(|(key, dir)| column(key).map(|c| (c, *dir)).ok_or_else(invalid_sort_key))
        .collect::<ApiResult<Vec<_>>>()?;
    let marker = match &page.marker {
        None => None,
        Some(m) => Some(
            m.parse::<AttachmentId>()
                .map_err(|_| attachment_not_found(m))?,
        ),
    };
    let mut query = AttachmentQuery {
        project_id: (!all_projects).then(|| req.context.project_id.clone()),
        sort,
        page: Page {
            marker,
            limit: Some(page.limit),
            offset: (page.offset > 0).then_some(page.offset),
        },
        ..AttachmentQuery::default()
    };
    for (key, value) in filters {
        let Some(column) = column(&key) else {
            return Ok(None);
        };
        let value = match column {
            AttachmentColumn::AttachTime
            | AttachmentColumn::DetachTime
            | AttachmentColumn::CreatedAt
            | AttachmentColumn::UpdatedAt => {
                match clinker_types::Timestamp::parse_iso8601(&value) {
                    Some(t) => FilterValue::EqInt(t.as_micros()),
                    None => return Ok(None),
                }
            }
            _ => FilterValue::Eq(value),
        };
        query.filters.push((column, value));
    }
    Ok(Some(query))
}

async fn list(state: &ApiState, req: &Req, detailed: bool) -> ApiResult<Response> {
    mv::require(req.version, mv::NEW_ATTACH)?;
    let mut params = Params::new(&req.query);
    let sort = listing::sort_params(&mut params)?;
    let page = listing::pagination(&mut params, state.config.default.osapi_max_limit)?;
    let attachments = match query(req, params, &sort, &page)? {
        None => Vec::new(),
        Some(query) => service::list_attachments(state, &query).await?,
    };
    Ok(views::ok(&view::list(&attachments, detailed)))
}
