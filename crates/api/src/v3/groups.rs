//! `/groups` (3.13): generic volume groups (Cinder's `api/v3/groups.py`):
//! list, detail, show, create, update, the `delete` and `reset_status`
//! actions, and `create-from-src` (3.14).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{FilterValue, GroupColumn, GroupQuery};
use clinker_types::VolumeId;
use clinker_types::group::{DEFAULT_CGSNAPSHOT_TYPE_ID, Group};
use serde_json::Value;

use super::collection::{Fetched, ListParams, Listed, sort_columns};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion as mv;
use crate::policy::enforce;
use crate::request::{Req, action_name, no_such_action, reset_status, trimmed};
use crate::services::groups::{self as service, CreateGroup, UpdateGroup, group_volumes};
use crate::validation::{
    self, Format, JsonType, Schema, any, body_of, bool_from_value, bool_param, boolean,
    description, name_allow_zero_min_length, object, of, uuid,
};
use crate::views::groups::{self as view, GroupExtras};
use crate::views::{self, ViewCtx};

fn create_schema() -> Schema {
    body_of(
        "group",
        object()
            .prop("description", description())
            .prop(
                "group_type",
                of(&[JsonType::String]).format(Format::GroupType),
            )
            .prop("name", name_allow_zero_min_length())
            .prop(
                "volume_types",
                of(&[JsonType::Array]).array_of(
                    of(&[JsonType::String]).length(None, Some(255)),
                    Some(1),
                    true,
                ),
            )
            .prop(
                "availability_zone",
                of(&[JsonType::String, JsonType::Null]).format(Format::AvailabilityZone),
            )
            .required(&["group_type", "volume_types"])
            .closed(),
    )
}

fn create_from_source_schema() -> Schema {
    body_of(
        "create-from-src",
        object()
            .prop("description", description())
            .prop("name", name_allow_zero_min_length())
            .prop("source_group_id", uuid())
            .prop("group_snapshot_id", uuid())
            .one_of(vec![
                any().required(&["group_snapshot_id"]),
                any().required(&["source_group_id"]),
            ])
            .closed(),
    )
}

fn update_schema() -> Schema {
    body_of(
        "group",
        object()
            .prop("description", description())
            .prop("name", name_allow_zero_min_length())
            .prop("add_volumes", description())
            .prop("remove_volumes", description())
            .any_of_required(&["name", "description", "add_volumes", "remove_volumes"])
            .closed(),
    )
}

/// `list_volume` of a detail view (3.25): a strict boolean.
fn list_volume(req: &Req) -> ApiResult<bool> {
    if !req.version.matches(mv::GROUP_VOLUME_LIST) {
        return Ok(false);
    }
    bool_param("list_volume", req.param("list_volume"))
}

/// The detail of a group for the caller, with its volumes when asked.
async fn detail_of(
    state: &ApiState,
    req: &Req,
    group: &Group,
    with_volumes: bool,
) -> ApiResult<Value> {
    let volumes: Option<Vec<VolumeId>> = if with_volumes {
        Some(
            group_volumes(state, group.id)
                .await?
                .into_iter()
                .map(|v| v.id)
                .collect(),
        )
    } else {
        None
    };
    let extras = GroupExtras {
        volumes: volumes.as_deref(),
        show_project: enforce(&req.context, "group:group_project_attribute", None).is_ok(),
    };
    Ok(view::group_detail(group, &ViewCtx::of(req), extras))
}

/// `GET /groups/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(group_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_VOLUME)?;
    let group = service::get_group(&state, &req.context, &group_id).await?;
    service::check_not_cgsnapshot_type(&group.group_type_id.to_string(), false)?;
    let with_volumes = list_volume(&req)?;
    let detail = detail_of(&state, &req, &group, with_volumes).await?;
    Ok(views::ok(&serde_json::json!({ "group": detail })))
}

/// From 3.31 a caller who is not an administrator may only filter on the
/// keys of Cinder's `resource_filters.json` (`~` variants from 3.34).
pub(crate) fn reject_invalid_filters(
    req: &Req,
    filters: &[(String, String)],
    allowed: &[&str],
) -> ApiResult<()> {
    if !req.version.matches(mv::RESOURCE_FILTER) || req.is_admin() {
        return Ok(());
    }
    let like = req.version.matches(mv::LIKE_FILTER);
    let invalid: Vec<&str> = filters
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| *k != "all_tenants")
        .filter(|k| {
            let base = k.strip_suffix('~').filter(|_| like).unwrap_or(k);
            !allowed.contains(&base)
        })
        .collect();
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid filters {} are found in query options.",
            invalid.join(",")
        )))
    }
}

#[async_trait::async_trait]
impl Listed for Group {
    fn require_version(req: &Req) -> ApiResult<()> {
        mv::require(req.version, mv::GROUP_VOLUME)
    }
    fn params(req: &Req, max_limit: u32) -> ApiResult<ListParams> {
        let mut params = ListParams::read(req, max_limit, false, false)?;
        params.filters.retain(|(k, _)| k != "list_volume");
        Ok(params)
    }
    fn query(req: &Req, params: &ListParams) -> ApiResult<Option<GroupQuery>> {
        let mut filters = params.filters.clone();
        reject_invalid_filters(req, &filters, &["name"])?;
        let all_tenants = match filters.iter().position(|(k, _)| k == "all_tenants") {
            Some(pos) => {
                filters.remove(pos);
                req.is_admin()
            }
            None => false,
        };
        let sort = sort_columns(&params.sort, GroupColumn::from_key)?;
        let page = params.db_page::<Self>()?;
        let mut columns = Vec::new();
        for (key, value) in filters {
            match GroupColumn::from_key(&key) {
                Some(column) => columns.push((column, FilterValue::Eq(value))),
                // Cinder matches nothing for keys that are not attributes.
                None => return Ok(None),
            }
        }
        Ok(Some(GroupQuery {
            project_id: (!all_tenants).then(|| req.context.project_id.clone()),
            filters: columns,
            sort,
            page,
        }))
    }
    async fn render(state: &ApiState, req: &Req, page: Fetched<Self>) -> ApiResult<Response> {
        let with_volumes = page.detailed && !page.filtered_out && list_volume(req)?;
        let mut items = Vec::new();
        for group in page
            .rows
            .iter()
            // Groups migrated from consistency groups are served by that API.
            .filter(|g| g.group_type_id.to_string() != DEFAULT_CGSNAPSHOT_TYPE_ID)
        {
            items.push(if page.detailed {
                detail_of(state, req, group, with_volumes).await?
            } else {
                view::group_summary(group)
            });
        }
        let last_id = page.rows.last().map(|g| g.id.to_string());
        let ctx = ViewCtx::of(req);
        let links = view::GROUPS.links(&ctx, false, last_id, items.len(), None, page.limit);
        Ok(views::ok(
            &view::GROUPS.page(items, links, None).into_value(),
        ))
    }
}

/// `POST /groups` (202): the summary view.
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_VOLUME)?;
    validation::validate(&create_schema(), &req.body_value())?;
    let body = req.body_object("group");
    let request = CreateGroup {
        name: trimmed(&body, "name"),
        description: trimmed(&body, "description"),
        group_type: body
            .get("group_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        volume_types: body
            .get("volume_types")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        availability_zone: body
            .get("availability_zone")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let group = service::create_group(&state, &req.context, request).await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "group": view::group_summary(&group) }),
    ))
}

/// `POST /groups/action` with `create-from-src` (3.14, 202).
pub async fn create_from_source(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_VOLUME)?;
    let (name, _) = action_name(req.body.as_ref())?;
    if name != "create-from-src" {
        return Err(no_such_action(&name));
    }
    mv::require(req.version, mv::GROUP_SNAPSHOTS)?;
    validation::validate(&create_from_source_schema(), &req.body_value())?;
    let body = req.body_object("create-from-src");
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let group = crate::services::group_sources::create_group_from_source(
        &state,
        &req.context,
        trimmed(&body, "name"),
        trimmed(&body, "description"),
        text("group_snapshot_id"),
        text("source_group_id"),
    )
    .await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "group": view::group_summary(&group) }),
    ))
}

/// `PUT /groups/{id}` (202, empty).
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(group_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_VOLUME)?;
    validation::validate(&update_schema(), &req.body_value())?;
    let body = req.body_object("group");
    let request = UpdateGroup {
        name: trimmed(&body, "name"),
        description: trimmed(&body, "description"),
        add_volumes: body
            .get("add_volumes")
            .and_then(Value::as_str)
            .map(str::to_owned),
        remove_volumes: body
            .get("remove_volumes")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    service::update_group(&state, &req.context, &group_id, request).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `POST /groups/{id}/action`: `delete`, `reset_status` (3.20).
pub async fn action(
    State(state): State<ApiState>,
    req: Req,
    Path(group_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_VOLUME)?;
    let (name, args) = action_name(req.body.as_ref())?;
    let body = req.body_value();
    let ctx = &req.context;
    match name.as_str() {
        "delete" => {
            let schema = body_of(
                "delete",
                object().prop("delete-volumes", boolean()).closed(),
            );
            validation::validate(&schema, &body)?;
            let delete_volumes = args
                .get("delete-volumes")
                .and_then(bool_from_value)
                .unwrap_or(false);
            service::delete_group(&state, ctx, &group_id, delete_volumes).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "reset_status" => {
            mv::require(req.version, mv::GROUP_VOLUME_RESET_STATUS)?;
            let status = reset_status(
                &req,
                "reset_status",
                Format::GroupStatus,
                "Invalid group status",
            )?;
            service::reset_group_status(&state, ctx, &group_id, status).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        other => Err(no_such_action(other)),
    }
}
