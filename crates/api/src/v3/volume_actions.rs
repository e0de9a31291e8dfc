//! `POST /volumes/{id}/action`: Cinder's `contrib/volume_actions.py`,
//! `contrib/admin_actions.py` and `contrib/volume_image_metadata.py`
//! actions.
//!
//! Served: `os-extend`, `os-set_bootable`, `os-update_readonly_flag`,
//! `os-reset_status`, `os-force_delete`, `os-set_image_metadata`,
//! `os-unset_image_metadata`, `os-show_image_metadata`, `revert` (3.40),
//! `os-retype`, `os-migrate_volume`, `os-migrate_volume_completion`,
//! `os-volume_upload_image`, `os-reimage` (3.68), and the legacy attach family (in [`super::attach_actions`]).
//! Every other action is
//! answered as an unknown action.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::MetadataKind;
use clinker_types::{AttachStatus, VolumeStatus};
use serde_json::{Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;
use crate::request::{Req, action_name, no_such_action};
use crate::services::lookup_error;
use crate::services::volumes::{self as service, ResetStatus, volume_not_found};
use crate::validation::{
    self, Format, JsonType, Pattern, any, body_of, bool_from_value, boolean, object, of,
    volume_size,
};
use crate::views;

fn flag(args: &Value, key: &str) -> bool {
    args.get(key).and_then(bool_from_value).unwrap_or(false)
}

/// Dispatches a volume action.
pub async fn action(
    State(state): State<ApiState>,
    req: Req,
    Path(volume_id): Path<String>,
) -> ApiResult<Response> {
    let (name, args) = action_name(req.body.as_ref())?;
    let body = req.body_value();
    let ctx = &req.context;
    match name.as_str() {
        "os-extend" => {
            let schema = body_of("os-extend", body_of("new_size", volume_size(false)));
            validation::validate(&schema, &body)?;
            let new_size = match args.get("new_size") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| ApiError::bad_request("new_size must be an integer"))?;
            service::extend_volume(&state, ctx, req.version, &volume_id, new_size).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-set_bootable" => {
            let schema = body_of("os-set_bootable", body_of("bootable", boolean()));
            validation::validate(&schema, &body)?;
            service::set_bootable(&state, ctx, &volume_id, flag(&args, "bootable")).await?;
            Ok(views::empty(StatusCode::OK))
        }
        "os-update_readonly_flag" => {
            let schema = body_of("os-update_readonly_flag", body_of("readonly", boolean()));
            validation::validate(&schema, &body)?;
            service::update_readonly_flag(&state, ctx, &volume_id, flag(&args, "readonly")).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-reset_status" => {
            let status_field = |format| of(&[JsonType::String, JsonType::Null]).format(format);
            let schema = body_of(
                "os-reset_status",
                object()
                    .format(Format::VolumeResetBody)
                    .prop("status", status_field(Format::VolumeStatus))
                    .prop("attach_status", status_field(Format::VolumeAttachStatus))
                    .prop(
                        "migration_status",
                        status_field(Format::VolumeMigrationStatus),
                    )
                    .closed(),
            );
            validation::validate(&schema, &body)?;
            let text = |key: &str| {
                args.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_lowercase)
            };
            let reset = ResetStatus {
                status: text("status").and_then(|s| s.parse::<VolumeStatus>().ok()),
                attach_status: text("attach_status").and_then(|s| s.parse::<AttachStatus>().ok()),
                migration_status: text("migration_status")
                    .map(|m| if m == "none" { None } else { Some(m) }),
            };
            service::reset_status(&state, ctx, &volume_id, reset).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-force_delete" => {
            validation::validate(&body_of("os-force_delete", any()), &body)?;
            service::force_delete(&state, ctx, &volume_id).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-show_image_metadata" => {
            validation::validate(&body_of("os-show_image_metadata", any()), &body)?;
            let volume = service::get_volume(&state, ctx, &volume_id).await?;
            policy::enforce(ctx, "volume:get_volume_metadata", Some(&volume.project_id))?;
            Ok(views::ok(&json!({ "metadata": volume.glance_metadata })))
        }
        "os-set_image_metadata" => {
            let metadata = object()
                .pattern_props(
                    Pattern::SpecKey,
                    of(&[JsonType::String]).length(None, Some(65_535)),
                )
                .closed();
            let schema = body_of("os-set_image_metadata", body_of("metadata", metadata));
            validation::validate(&schema, &body)?;
            let volume = service::get_volume(&state, ctx, &volume_id).await?;
            let target = Some(volume.project_id.as_str());
            policy::enforce(ctx, "volume_extension:volume_image_metadata:set", target)?;
            policy::enforce(ctx, "volume:update_volume_metadata", target)?;
            let metadata = args
                .get("metadata")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let merged = state
                .db
                .set_volume_metadata(volume.id, MetadataKind::Glance, &metadata, false)
                .await
                .map_err(|e| lookup_error(e, || volume_not_found(&volume_id)))?;
            Ok(views::ok(&json!({ "metadata": merged })))
        }
        "os-unset_image_metadata" => {
            let schema = body_of(
                "os-unset_image_metadata",
                body_of("key", of(&[JsonType::String]).length(Some(1), Some(255))),
            );
            validation::validate(&schema, &body)?;
            let volume = service::get_volume(&state, ctx, &volume_id).await?;
            let target = Some(volume.project_id.as_str());
            policy::enforce(ctx, "volume_extension:volume_image_metadata:remove", target)?;
            policy::enforce(ctx, "volume:delete_volume_metadata", target)?;
            let key = args.get("key").and_then(Value::as_str).unwrap_or_default();
            let missing = || {
                ApiError::not_found(format!(
                    "Glance metadata for volume/snapshot {volume_id} cannot be found."
                ))
            };
            if !volume.glance_metadata.contains_key(key) {
                return Err(missing());
            }
            state
                .db
                .delete_volume_metadata(volume.id, MetadataKind::Glance, key)
                .await
                .map_err(|e| lookup_error(e, missing))?;
            Ok(views::empty(StatusCode::OK))
        }
        attach if super::attach_actions::ACTIONS.contains(&attach) => {
            super::attach_actions::action(&state, &req, &volume_id, attach, &args).await
        }
        "revert" => {
            crate::microversion::require(req.version, crate::microversion::VOLUME_REVERT)?;
            let schema = body_of(
                "revert",
                object().prop("snapshot_id", of(&[JsonType::String, JsonType::Null])),
            );
            validation::validate(&schema, &body)?;
            let snapshot_id = args.get("snapshot_id").and_then(Value::as_str);
            crate::services::revert::revert_to_snapshot(&state, ctx, &volume_id, snapshot_id)
                .await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-retype" => {
            let schema = body_of(
                "os-retype",
                object()
                    .prop("new_type", of(&[JsonType::String]))
                    .prop(
                        "migration_policy",
                        of(&[JsonType::String, JsonType::Null])
                            .one_value_of(vec![json!("on-demand"), json!("never")]),
                    )
                    .required(&["new_type"])
                    .closed(),
            );
            validation::validate(&schema, &body)?;
            let new_type = args
                .get("new_type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let policy = match args.get("migration_policy").and_then(Value::as_str) {
                Some("on-demand") => clinker_rpc::volume::MigrationPolicy::OnDemand,
                _ => clinker_rpc::volume::MigrationPolicy::Never,
            };
            crate::services::retype::retype_volume(&state, ctx, &volume_id, new_type, policy)
                .await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-migrate_volume" => {
            let cluster = req.version >= crate::microversion::VOLUME_MIGRATE_CLUSTER;
            let mut inner = object()
                .prop("force_host_copy", boolean())
                .prop("lock_volume", boolean());
            inner = if cluster {
                inner
                    .prop(
                        "host",
                        of(&[JsonType::String, JsonType::Null]).length(None, Some(255)),
                    )
                    .prop("cluster", validation::name_allow_zero_min_length())
                    .closed()
            } else {
                inner
                    .prop("host", of(&[JsonType::String]).length(None, Some(255)))
                    .required(&["host"])
                    .closed()
            };
            validation::validate(&body_of("os-migrate_volume", inner), &body)?;
            let text = |key: &str| {
                args.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let (host, cluster_name) = (text("host"), if cluster { text("cluster") } else { None });
            let destination = match (host, cluster_name) {
                (Some(h), None) => crate::services::migration::Destination::Host(h),
                (None, Some(c)) => crate::services::migration::Destination::Cluster(c),
                _ if cluster => {
                    return Err(ApiError::invalid_input(
                        "One and only one of cluster and host must be set.",
                    ));
                }
                _ => return Err(ApiError::invalid_input("Host field is missing.")),
            };
            let request = crate::services::migration::MigrateRequest {
                destination,
                force_host_copy: flag(&args, "force_host_copy"),
                lock_volume: flag(&args, "lock_volume"),
            };
            crate::services::migration::migrate_volume(&state, ctx, &volume_id, request).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-migrate_volume_completion" => {
            let schema = body_of(
                "os-migrate_volume_completion",
                object()
                    .prop("new_volume", validation::uuid())
                    .prop(
                        "error",
                        of(&[JsonType::String, JsonType::Null, JsonType::Boolean]),
                    )
                    .required(&["new_volume"])
                    .closed(),
            );
            validation::validate(&schema, &body)?;
            let new_volume = args
                .get("new_volume")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // Cinder tests the value's truth: any non-empty string is an
            // error report.
            let error = match args.get("error") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => bool_from_value(&json!(s)).unwrap_or(!s.is_empty()),
                _ => false,
            };
            let kept = crate::services::migration::migrate_volume_completion(
                &state, ctx, &volume_id, new_volume, error,
            )
            .await?;
            Ok(views::ok(&json!({ "save_volume_id": kept.to_string() })))
        }
        "os-reimage" => {
            crate::microversion::require(req.version, crate::microversion::SUPPORT_REIMAGE_VOLUME)?;
            let schema = body_of(
                "os-reimage",
                object()
                    .prop("image_id", validation::uuid())
                    .prop("reimage_reserved", boolean())
                    .required(&["image_id"])
                    .closed(),
            );
            validation::validate(&schema, &body)?;
            let image_id = args.get("image_id").and_then(Value::as_str).unwrap_or("");
            crate::services::images::reimage(
                &state,
                ctx,
                &volume_id,
                image_id,
                flag(&args, "reimage_reserved"),
            )
            .await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-volume_upload_image" => {
            let with_params = req.version >= crate::microversion::UPLOAD_IMAGE_PARAMS;
            let mut inner = object()
                .prop(
                    "image_name",
                    of(&[JsonType::String]).length(Some(1), Some(255)),
                )
                .prop("force", boolean())
                .prop(
                    "disk_format",
                    of(&[JsonType::String]).one_value_of(
                        ["raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop"]
                            .iter()
                            .map(|f| json!(f))
                            .collect(),
                    ),
                )
                .prop("container_format", validation::description());
            if with_params {
                inner = inner
                    .prop(
                        "visibility",
                        of(&[JsonType::String]).one_value_of(
                            ["community", "public", "private", "shared"]
                                .iter()
                                .map(|f| json!(f))
                                .collect(),
                        ),
                    )
                    .prop("protected", boolean());
            }
            let schema = body_of(
                "os-volume_upload_image",
                inner.required(&["image_name"]).closed(),
            );
            validation::validate(&schema, &body)?;
            let text = |key: &str, default: &str| {
                args.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_owned()
            };
            let request = crate::services::images::UploadRequest {
                image_name: text("image_name", ""),
                force: flag(&args, "force"),
                disk_format: text("disk_format", "raw"),
                container_format: text("container_format", "bare"),
                visibility: with_params
                    .then(|| (text("visibility", "private"), flag(&args, "protected"))),
            };
            let response =
                crate::services::images::upload_volume_to_image(&state, ctx, &volume_id, request)
                    .await?;
            Ok(views::json(
                StatusCode::ACCEPTED,
                &json!({ "os-volume_upload_image": response }),
            ))
        }
        "os-unmanage" => {
            validation::validate(&body_of("os-unmanage", any()), &body)?;
            crate::services::manage::unmanage_volume(&state, ctx, &volume_id).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        other => Err(no_such_action(other)),
    }
}
