//! `/volumes`: list, detail, summary, show, create, update, delete (Cinder's
//! `api/v3/volumes.py`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::VolumeQuery;
use clinker_types::model::Volume;
use serde_json::{Value, json};

use super::collection::{Fetched, ListParams, Listed};
use super::filters;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::{self as mv, ApiVersion};
use crate::policy;
use crate::request::{Req, renamed, string_map, text};
use crate::services::create_volume::{CreateVolume, create_volume};
use crate::services::volumes::{self as service, UpdateVolume};
use crate::validation::{
    self, Format, JsonType, Schema, availability_zone, body_of, bool_from_value,
    metadata_allows_null, name_allow_zero_min_length, object, of, optional_boolean, optional_uuid,
    trimmed_text, volume_size,
};
use crate::views::volumes::{self as view, Detail};
use crate::views::{self, ViewCtx};

/// The create body schema of a version (`schemas/volumes.py`: `create`,
/// `create_volume_v313`, `_v347`, `_v353`).
pub fn create_schema(version: ApiVersion) -> Schema {
    let text = || of(&[JsonType::String, JsonType::Null]).length(Some(0), Some(255));
    let mut volume = object()
        .prop("name", trimmed_text(Format::NameNonMandatory))
        .prop("description", trimmed_text(Format::DescriptionNonMandatory))
        .prop("display_name", trimmed_text(Format::NameNonMandatory))
        .prop(
            "display_description",
            trimmed_text(Format::DescriptionNonMandatory),
        )
        .prop("volume_type", name_allow_zero_min_length())
        .prop("metadata", metadata_allows_null())
        .prop("snapshot_id", optional_uuid())
        .prop("source_volid", optional_uuid())
        .prop("consistencygroup_id", optional_uuid())
        .prop("size", volume_size(true))
        .prop("availability_zone", availability_zone())
        .prop("multiattach", optional_boolean())
        .prop("image_id", text())
        .prop("imageRef", text());
    if version.matches(mv::GROUP_VOLUME) {
        volume = volume.prop("group_id", text());
    }
    if version.matches(mv::VOLUME_CREATE_FROM_BACKUP) {
        volume = volume.prop("backup_id", optional_uuid());
    }
    if version.matches(mv::SUPPORT_VOLUME_SCHEMA_CHANGES) {
        volume = volume.closed();
    }
    object()
        .prop("volume", volume)
        .prop(
            "OS-SCH-HNT:scheduler_hints",
            of(&[JsonType::Object, JsonType::Null]),
        )
        .required(&["volume"])
        .closed()
}

/// The update body schema of a version (`update`, `update_v353`).
pub fn update_schema(version: ApiVersion) -> Schema {
    let mut volume = object()
        .prop("name", trimmed_text(Format::NameNonMandatory))
        .prop("description", trimmed_text(Format::DescriptionNonMandatory))
        .prop("display_name", trimmed_text(Format::NameNonMandatory))
        .prop(
            "display_description",
            trimmed_text(Format::DescriptionNonMandatory),
        )
        .prop("metadata", validation::extra_specs())
        .closed();
    if version.matches(mv::SUPPORT_VOLUME_SCHEMA_CHANGES) {
        volume = volume.any_of_required(&[
            "name",
            "description",
            "display_name",
            "display_description",
            "metadata",
        ]);
    }
    body_of("volume", volume)
}

fn size_of(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A volume's view as a response.
fn shown(req: &Req, volume: &Volume, detail: Detail, status: StatusCode) -> Response {
    view::show(volume, &ViewCtx::of(req), detail, status)
}

/// `POST /volumes` (202): the detail view without the `os-vol-*` keys.
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&create_schema(req.version), &body)?;
    let volume = req.body_object("volume");
    let hints = body
        .get("OS-SCH-HNT:scheduler_hints")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let image_ref = if volume.contains_key("image_id") {
        text(&volume, "image_id")
    } else {
        text(&volume, "imageRef")
    };
    let request = CreateVolume {
        size: size_of(volume.get("size")),
        name: renamed(&volume, "name", "display_name").flatten(),
        description: renamed(&volume, "description", "display_description").flatten(),
        volume_type: text(&volume, "volume_type"),
        metadata: string_map(volume.get("metadata")),
        snapshot_id: text(&volume, "snapshot_id"),
        source_volid: text(&volume, "source_volid"),
        availability_zone: text(&volume, "availability_zone"),
        scheduler_hints: hints,
        consistencygroup_id: text(&volume, "consistencygroup_id"),
        group_id: text(&volume, "group_id"),
        image_ref,
        backup_id: text(&volume, "backup_id"),
        multiattach: volume
            .get("multiattach")
            .and_then(bool_from_value)
            .unwrap_or(false),
    };
    let created = create_volume(&state, &req.context, request).await?;
    Ok(shown(&req, &created, Detail::Plain, StatusCode::ACCEPTED))
}

/// `GET /volumes/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(volume_id): Path<String>,
) -> ApiResult<Response> {
    let volume = service::get_volume(&state, &req.context, &volume_id).await?;
    Ok(shown(&req, &volume, Detail::Extended, StatusCode::OK))
}

/// `PUT /volumes/{id}`.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(volume_id): Path<String>,
) -> ApiResult<Response> {
    validation::validate(&update_schema(req.version), &req.body_value())?;
    let body = req.body_object("volume");
    let update = UpdateVolume {
        name: renamed(&body, "name", "display_name"),
        description: renamed(&body, "description", "display_description"),
        metadata: body.get("metadata").map(|m| string_map(Some(m))),
    };
    let volume = service::update_volume(&state, &req.context, &volume_id, update).await?;
    Ok(shown(&req, &volume, Detail::Plain, StatusCode::OK))
}

/// `DELETE /volumes/{id}` (`?cascade=`, `?force=` from 3.23).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(volume_id): Path<String>,
) -> ApiResult<Response> {
    let cascade = validation::bool_param("cascade", req.param("cascade"))?;
    let force = if req.version.matches(mv::VOLUME_DELETE_FORCE) {
        validation::bool_param("force", req.param("force"))?
    } else {
        false
    };
    if force {
        service::authorized_volume(&state, &req.context, &volume_id, "volume:force_delete").await?;
    }
    service::delete_volume(&state, &req.context, &volume_id, force, cascade).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

#[async_trait::async_trait]
impl Listed for Volume {
    fn params(req: &Req, max_limit: u32) -> ApiResult<ListParams> {
        ListParams::read(req, max_limit, false, true)
    }
    fn query(req: &Req, params: &ListParams) -> ApiResult<Option<VolumeQuery>> {
        filters::volume_query(req, params)
    }
    async fn render(_state: &ApiState, req: &Req, page: Fetched<Self>) -> ApiResult<Response> {
        let ctx = ViewCtx::of(req);
        Ok(view::list(
            &page.rows,
            &ctx,
            page.detailed,
            page.count,
            page.limit,
        ))
    }
}

/// `GET /volumes/summary` (3.12; `metadata` from 3.36).
pub async fn summary(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::VOLUME_SUMMARY)?;
    policy::enforce(&req.context, "volume:get_all", None)?;
    let all_tenants =
        req.is_admin() && validation::bool_param("all_tenants", req.param("all_tenants"))?;
    let project = (!all_tenants).then(|| req.context.project_id.clone());
    let (count, size) = state
        .db
        .volume_summary(project.as_deref())
        .await
        .map_err(ApiError::from)?;
    let mut summary = json!({"total_count": count, "total_size": size});
    if req.version.matches(mv::VOLUME_SUMMARY_METADATA) {
        let metadata = state
            .db
            .volume_summary_metadata(project.as_deref())
            .await
            .map_err(ApiError::from)?;
        if let Some(obj) = summary.as_object_mut() {
            obj.insert("metadata".into(), json!(metadata));
        }
    }
    Ok(views::ok(&json!({ "volume-summary": summary })))
}
